"""GET /tasks: filter, search, sort, paginate; always a total order over the caller's tasks."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from taskapp.extensions import db
from taskapp.tasks.models import Task


def list_tasks(client, headers, **params) -> dict:
    response = client.get("/tasks", query_string=params, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def titles(page: dict) -> list[str]:
    return [task["title"] for task in page["data"]]


def set_columns(task_id: int, **values) -> None:
    """Write columns the API does not let clients set (timestamps), straight to the database."""
    db.session.execute(update(Task).where(Task.id == task_id).values(**values))
    db.session.commit()


def at(day: int) -> datetime:
    return datetime(2026, 1, day, 12, tzinfo=UTC)


def test_empty_list(client, auth):
    page = list_tasks(client, auth())

    assert page["data"] == []
    assert page["meta"] == {
        "page": 1,
        "page_size": 10,
        "total": 0,
        "pages": 0,
        "next_cursor": None,
    }


def test_default_page_size_is_10(client, auth, make_task):
    headers = auth()
    for number in range(12):
        make_task(headers, title=f"task {number}")

    first = list_tasks(client, headers)
    second = list_tasks(client, headers, page=2)

    assert len(first["data"]) == 10
    cursor = first["meta"].pop("next_cursor")
    assert isinstance(cursor, str) and cursor
    assert first["meta"] == {"page": 1, "page_size": 10, "total": 12, "pages": 2}
    assert len(second["data"]) == 2
    assert second["meta"] == {
        "page": 2,
        "page_size": 10,
        "total": 12,
        "pages": 2,
        "next_cursor": None,
    }


@pytest.mark.parametrize(
    ("page_size", "pages", "last_page_length"), [(1, 5, 1), (2, 3, 1), (5, 1, 5), (100, 1, 5)]
)
def test_meta_counts_pages(client, auth, make_task, page_size, pages, last_page_length):
    headers = auth()
    for number in range(5):
        make_task(headers, title=f"task {number}")

    last = list_tasks(client, headers, page=pages, page_size=page_size)

    # A full page may have a successor: it offers a cursor; a short one is the end.
    assert (last["meta"].pop("next_cursor") is None) == (last_page_length < page_size)
    assert last["meta"] == {"page": pages, "page_size": page_size, "total": 5, "pages": pages}
    assert len(last["data"]) == last_page_length


@pytest.mark.parametrize("page", [2, 3, 1000])
def test_page_past_the_end_is_empty_with_true_total(client, auth, make_task, page):
    headers = auth()
    for _ in range(3):
        make_task(headers)

    result = list_tasks(client, headers, page=page, page_size=5)

    assert result["data"] == []
    assert result["meta"] == {
        "page": page,
        "page_size": 5,
        "total": 3,
        "pages": 1,
        "next_cursor": None,
    }


def test_list_items_are_full_tasks(client, auth, make_task):
    headers = auth()
    task = make_task(headers, title="whole", description="notes", completed=True)

    assert list_tasks(client, headers)["data"] == [task]


@pytest.mark.parametrize(("value", "expected"), [("true", ["done"]), ("false", ["open"])])
def test_filter_completed(client, auth, make_task, value, expected):
    headers = auth()
    make_task(headers, title="done", completed=True)
    make_task(headers, title="open", completed=False)

    page = list_tasks(client, headers, completed=value)

    assert titles(page) == expected
    assert page["meta"]["total"] == 1


def test_without_filter_lists_both(client, auth, make_task):
    headers = auth()
    make_task(headers, title="done", completed=True)
    make_task(headers, title="open", completed=False)

    assert sorted(titles(list_tasks(client, headers))) == ["done", "open"]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("milk", ["Buy MILK", "Shopping"]),  # title or description, any case
        ("MiLk", ["Buy MILK", "Shopping"]),
        ("buy", ["Buy MILK"]),
        ("oat", ["Shopping"]),  # description only
        ("shop", ["Shopping"]),
        ("Call mum", ["Call mum"]),  # the whole title
        ("nothing like it", []),
    ],
)
def test_search_is_case_insensitive_over_title_and_description(
    client, auth, make_task, search, expected
):
    headers = auth()
    make_task(headers, title="Buy MILK")
    make_task(headers, title="Shopping", description="oat Milk and bread")
    make_task(headers, title="Call mum", description=None)

    page = list_tasks(client, headers, search=search, sort="title", order="asc")

    assert titles(page) == expected
    assert page["meta"]["total"] == len(expected)


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("0%", ["100% done"]),
        ("%", ["100% done"]),
        ("a_b", ["a_b"]),
        ("_", ["a_b"]),
        ("\\", ["back\\slash"]),
        ("k\\s", ["back\\slash"]),
        ("a/b", ["a/b"]),  # SQLAlchemy's escape character is literal too
        ("[ab]", ["[ab]"]),
    ],
)
def test_search_wildcards_match_literally(client, auth, make_task, search, expected):
    headers = auth()
    for title in ("100% done", "1000 done", "a_b", "axb", "back\\slash", "backslash", "a/b"):
        make_task(headers, title=title)
    make_task(headers, title="[ab]")

    assert titles(list_tasks(client, headers, search=search)) == expected


def test_search_wildcards_in_description_match_literally(client, auth, make_task):
    headers = auth()
    make_task(headers, title="literal", description="50% off")
    make_task(headers, title="other", description="500 off")

    assert titles(list_tasks(client, headers, search="0%")) == ["literal"]


def test_search_and_filter_combine(client, auth, make_task):
    headers = auth()
    make_task(headers, title="report draft", completed=True)
    make_task(headers, title="report final", completed=False)
    make_task(headers, title="unrelated", completed=True)

    page = list_tasks(client, headers, search="report", completed="true")

    assert titles(page) == ["report draft"]
    assert page["meta"]["total"] == 1


@pytest.fixture
def three_tasks(auth, make_task):
    """Three tasks whose order differs by each sort key (and from their id order)."""
    headers = auth()
    for title, created, updated in (("b", 3, 5), ("c", 1, 6), ("a", 2, 4)):
        task = make_task(headers, title=title)
        set_columns(task["id"], created_at=at(created), updated_at=at(updated))
    return headers


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["b", "a", "c"]),  # default: created_at desc
        ({"order": "asc"}, ["c", "a", "b"]),
        ({"sort": "created_at"}, ["b", "a", "c"]),
        ({"sort": "created_at", "order": "asc"}, ["c", "a", "b"]),
        ({"sort": "created_at", "order": "desc"}, ["b", "a", "c"]),
        ({"sort": "updated_at", "order": "asc"}, ["a", "b", "c"]),
        ({"sort": "updated_at", "order": "desc"}, ["c", "b", "a"]),
        ({"sort": "updated_at"}, ["c", "b", "a"]),
        ({"sort": "title", "order": "asc"}, ["a", "b", "c"]),
        ({"sort": "title", "order": "desc"}, ["c", "b", "a"]),
        ({"sort": "title"}, ["c", "b", "a"]),
    ],
)
def test_sort_and_order(client, three_tasks, params, expected):
    assert titles(list_tasks(client, three_tasks, **params)) == expected


def test_update_moves_task_in_updated_at_order(client, three_tasks):
    oldest = list_tasks(client, three_tasks, sort="updated_at", order="asc")["data"][0]

    client.patch(f"/tasks/{oldest['id']}", json={"completed": True}, headers=three_tasks)

    page = list_tasks(client, three_tasks, sort="updated_at", order="desc")
    assert page["data"][0]["id"] == oldest["id"]


def walk(client, headers, **params) -> list[int]:
    """Ids of every page, in order, until an empty page."""
    ids, page = [], 1
    while True:
        result = list_tasks(client, headers, page=page, page_size=2, **params)
        if not result["data"]:
            assert page == result["meta"]["pages"] + 1
            return ids
        ids += [task["id"] for task in result["data"]]
        page += 1


@pytest.mark.parametrize("sort", ["created_at", "updated_at", "title"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_ties_are_broken_by_id(client, auth, make_task, sort, order):
    headers = auth()
    ids = []
    for _ in range(7):
        task = make_task(headers, title="same")
        set_columns(task["id"], created_at=at(1), updated_at=at(1))
        ids.append(task["id"])

    walked = walk(client, headers, sort=sort, order=order)

    assert walked == sorted(ids, reverse=order == "desc")


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_walking_pages_with_partial_ties_returns_each_task_once(client, auth, make_task, order):
    headers = auth()
    ids = [make_task(headers, title=f"group {number % 3}")["id"] for number in range(9)]

    walked = walk(client, headers, sort="title", order=order)

    assert sorted(walked) == sorted(ids)
    everything = list_tasks(client, headers, page_size=100, sort="title", order=order)
    assert [task["id"] for task in everything["data"]] == walked
    assert titles(everything) == sorted(titles(everything), reverse=order == "desc")


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"completed": "false"},
        {"search": "dog"},
        {"priority": "high", "sort": "title", "order": "asc"},
        {"label": "home", "search": "walk"},
        {"page": "2"},
    ],
    ids=repr,
)
def test_include_total_false_gives_the_same_page_uncounted(client, auth, make_task, query):
    headers = auth()
    for number in range(7):
        make_task(
            headers,
            title=f"Walk the dog {number}",
            priority="high" if number % 2 else "low",
            labels=["home"] if number % 3 else [],
            completed=number % 4 == 0,
        )
    params = {**query, "page_size": "2"}
    counted = client.get("/tasks", query_string=params, headers=headers)
    uncounted = client.get(
        "/tasks", query_string={**params, "include_total": "false"}, headers=headers
    )
    assert counted.status_code == uncounted.status_code == 200
    assert uncounted.json["data"] == counted.json["data"]
    assert counted.json["meta"]["total"] is not None
    meta = uncounted.json["meta"]
    assert meta["total"] is None and meta["pages"] is None
    assert meta["page"] == counted.json["meta"]["page"]
    # Cursors of a page counted or not are the same walk.
    assert meta["next_cursor"] is not None
    after = client.get(
        "/tasks",
        query_string={
            **{name: value for name, value in query.items() if name != "page"},
            "cursor": meta["next_cursor"],
            "include_total": "false",
            "page_size": "2",
        },
        headers=headers,
    )
    assert after.status_code == 200 and after.json["meta"]["total"] is None


def test_include_total_false_past_the_end_is_empty(client, auth, make_task):
    headers = auth()
    make_task(headers, title="only")
    response = client.get("/tasks?page=3&include_total=false", headers=headers)
    assert response.json == {
        "data": [],
        "meta": {"page": 3, "page_size": 10, "total": None, "pages": None, "next_cursor": None},
    }


def test_include_total_takes_a_boolean_only(client, auth):
    response = client.get("/tasks?include_total=maybe", headers=auth())
    assert response.status_code == 422
    assert "include_total" in response.json["errors"]["query"]
