"""GET /lists and GET /labels page as every list does (taskapp/pagination.py): by page or by
cursor, with meta, 100 items by default so that a client that never pages still gets them."""

import pytest

from conftest import assert_error


@pytest.fixture
def owner(client, auth):
    """A user with 5 lists (L0..L4) and 5 labels (e..a, each on one task)."""
    headers = auth()
    for number in range(5):
        assert (
            client.post("/lists", json={"name": f"L{number}"}, headers=headers).status_code == 201
        )
    for name in "edcba":
        response = client.post("/tasks", json={"title": name, "labels": [name]}, headers=headers)
        assert response.status_code == 201
    return headers


ROUTES = {"/lists": ("name", [f"L{n}" for n in range(5)]), "/labels": ("name", list("abcde"))}


@pytest.mark.parametrize("path", ROUTES)
def test_a_client_that_never_pages_gets_every_item_and_the_meta(client, owner, path):
    field, names = ROUTES[path]
    body = client.get(path, headers=owner).json

    assert [item[field] for item in body["data"]] == names
    assert body["meta"] == {
        "page": 1,
        "page_size": 100,
        "total": 5,
        "pages": 1,
        "next_cursor": None,
    }


@pytest.mark.parametrize("path", ROUTES)
def test_pages_by_number_and_by_cursor_walk_the_same_order(client, owner, path):
    field, names = ROUTES[path]
    by_page = [
        client.get(f"{path}?page={page}&page_size=2", headers=owner).json for page in (1, 2, 3)
    ]
    walked, cursor = [], None
    while True:
        query = f"?page_size=2&cursor={cursor}" if cursor else "?page_size=2"
        page = client.get(f"{path}{query}", headers=owner).json
        walked += [item[field] for item in page["data"]]
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break

    assert [item[field] for page in by_page for item in page["data"]] == names
    assert by_page[0]["meta"]["pages"] == 3 and by_page[0]["meta"]["total"] == 5
    assert walked == names


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    "query", ["page_size=0", "page_size=101", "page=0", "sort=name", "cursor=forged.abc"]
)
def test_bad_page_queries_are_422(client, owner, path, query):
    assert_error(client.get(f"{path}?{query}", headers=owner), 422)


def test_a_cursor_of_one_list_is_refused_by_the_other(client, owner):
    cursor = client.get("/lists?page_size=2", headers=owner).json["meta"]["next_cursor"]

    assert_error(client.get(f"/labels?cursor={cursor}", headers=owner), 422, field="cursor")


def test_each_user_pages_only_their_own(client, owner, auth):
    other = auth()

    assert client.get("/lists", headers=other).json["meta"]["total"] == 0
    assert client.get("/labels", headers=other).json["data"] == []
