"""Bad input on the task routes: an error in the envelope, and nothing changed in the database."""

import pytest

from conftest import assert_error, row_count, stored_row
from taskapp.tasks.models import Task

LONG_TITLE = "x" * 201
LONG_DESCRIPTION = "d" * 10_001
READ_ONLY_OR_UNKNOWN = {
    "id": 999,
    "user_id": 1,
    "owner": "someone@example.com",
    "created_at": "2020-01-01T00:00:00+00:00",
    "updated_at": "2020-01-01T00:00:00+00:00",
    "completed_at": "2020-01-01T00:00:00+00:00",
    "colour": "red",
}

# (body, the field named in the errors) for every body that may carry a title.
BAD_FIELDS = [
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "\t\n"}, "title"),
    ({"title": LONG_TITLE}, "title"),
    ({"title": None}, "title"),
    ({"title": 5}, "title"),
    ({"title": True}, "title"),
    ({"title": ["a list"]}, "title"),
    ({"title": {"an": "object"}}, "title"),
    ({"title": "nul\x00byte"}, "title"),
    ({"title": "lone \ud800 surrogate"}, "title"),
    ({"title": "ok", "description": LONG_DESCRIPTION}, "description"),
    ({"title": "ok", "description": 5}, "description"),
    ({"title": "ok", "description": ["a list"]}, "description"),
    ({"title": "ok", "description": "nul\x00byte"}, "description"),
    ({"title": "ok", "description": "\udfff"}, "description"),
    ({"title": "ok", "completed": 1}, "completed"),
    ({"title": "ok", "completed": 0}, "completed"),
    ({"title": "ok", "completed": 1.0}, "completed"),
    ({"title": "ok", "completed": "true"}, "completed"),
    ({"title": "ok", "completed": "false"}, "completed"),
    ({"title": "ok", "completed": None}, "completed"),
]
# A whole task (POST, PUT) also needs its title.
MISSING_TITLE = [({}, "title"), ({"description": "no title", "completed": True}, "title")]
WHOLE_BODY_ERRORS = BAD_FIELDS + MISSING_TITLE
# PATCH sends each bad field alone, without the filler title.
PARTIAL_BODY_ERRORS = [
    ({key: value for key, value in body.items() if not (key == "title" and value == "ok")}, field)
    for body, field in BAD_FIELDS
]
# Raw JSON documents: the test client's json=None would send no body at all.
NOT_AN_OBJECT = ['["a", "list"]', '[{"title": "in a list"}]', '"a string"', "5", "null", "true"]


@pytest.fixture
def headers(auth):
    return auth()


@pytest.fixture
def existing(headers, make_task):
    """A task of the caller, with the database snapshot to compare against."""
    task = make_task(headers, title="Existing", description="notes", completed=True)
    return task["id"], stored_row(Task, task["id"])


@pytest.mark.parametrize(("body", "field"), WHOLE_BODY_ERRORS)
def test_create_rejects_bad_field(client, headers, body, field):
    response = client.post("/tasks", json=body, headers=headers)

    assert_error(response, 422, field=field)
    assert row_count(Task) == 0


@pytest.mark.parametrize(("body", "field"), WHOLE_BODY_ERRORS)
def test_put_rejects_bad_field(client, headers, existing, body, field):
    task_id, before = existing

    response = client.put(f"/tasks/{task_id}", json=body, headers=headers)

    assert_error(response, 422, field=field)
    assert stored_row(Task, task_id) == before


@pytest.mark.parametrize(("body", "field"), PARTIAL_BODY_ERRORS)
def test_patch_rejects_bad_field(client, headers, existing, body, field):
    task_id, before = existing

    response = client.patch(f"/tasks/{task_id}", json=body, headers=headers)

    assert_error(response, 422, field=field)
    assert stored_row(Task, task_id) == before


def test_patch_with_one_bad_field_applies_none(client, headers, existing):
    task_id, before = existing

    response = client.patch(
        f"/tasks/{task_id}", json={"title": "fine", "completed": "yes"}, headers=headers
    )

    assert_error(response, 422, field="completed")
    assert stored_row(Task, task_id) == before


@pytest.mark.parametrize("field", READ_ONLY_OR_UNKNOWN)
def test_create_rejects_read_only_and_unknown_fields(client, headers, field):
    body = {"title": "ok", field: READ_ONLY_OR_UNKNOWN[field]}

    response = client.post("/tasks", json=body, headers=headers)

    assert_error(response, 422, field=field)
    assert row_count(Task) == 0


@pytest.mark.parametrize("method", ["patch", "put"])
@pytest.mark.parametrize("field", READ_ONLY_OR_UNKNOWN)
def test_update_rejects_read_only_and_unknown_fields(client, headers, existing, method, field):
    task_id, before = existing
    body = {"title": "changed", field: READ_ONLY_OR_UNKNOWN[field]}

    response = getattr(client, method)(f"/tasks/{task_id}", json=body, headers=headers)

    assert_error(response, 422, field=field)
    assert stored_row(Task, task_id) == before


def test_create_rejects_its_own_id_echoed_back(client, headers, make_task):
    task = make_task(headers)

    response = client.post("/tasks", json=task, headers=headers)

    body = assert_error(response, 422)
    assert {"id", "created_at", "updated_at"} <= set(body["errors"]["json"])
    assert row_count(Task) == 1


@pytest.mark.parametrize("body", NOT_AN_OBJECT)
def test_create_rejects_a_body_that_is_not_an_object(client, headers, body):
    response = client.post("/tasks", data=body, content_type="application/json", headers=headers)

    assert_error(response, 422, field="_schema")
    assert row_count(Task) == 0


@pytest.mark.parametrize("method", ["patch", "put"])
@pytest.mark.parametrize("body", NOT_AN_OBJECT)
def test_update_rejects_a_body_that_is_not_an_object(client, headers, existing, method, body):
    task_id, before = existing

    response = getattr(client, method)(
        f"/tasks/{task_id}", data=body, content_type="application/json", headers=headers
    )

    assert_error(response, 422, field="_schema")
    assert stored_row(Task, task_id) == before


MALFORMED_JSON = ['{"title": ', "{'title': 'single quotes'}", '{"title": "x",}', "not json"]


@pytest.mark.parametrize("data", MALFORMED_JSON)
def test_create_with_malformed_json_is_400(client, headers, data):
    response = client.post("/tasks", data=data, content_type="application/json", headers=headers)

    assert_error(response, 400)
    assert row_count(Task) == 0


@pytest.mark.parametrize("method", ["patch", "put"])
@pytest.mark.parametrize("data", MALFORMED_JSON)
def test_update_with_malformed_json_is_400(client, headers, existing, method, data):
    task_id, before = existing

    response = getattr(client, method)(
        f"/tasks/{task_id}", data=data, content_type="application/json", headers=headers
    )

    assert_error(response, 400)
    assert stored_row(Task, task_id) == before


BAD_QUERIES = [
    ({"completed": "yes"}, "completed"),
    ({"completed": "1"}, "completed"),
    ({"completed": "0"}, "completed"),
    ({"completed": "True"}, "completed"),
    ({"completed": ""}, "completed"),
    ({"search": ""}, "search"),
    ({"search": "s" * 201}, "search"),
    ({"search": "nul\x00byte"}, "search"),
    ({"sort": "bogus"}, "sort"),
    ({"sort": "id"}, "sort"),
    ({"sort": ""}, "sort"),
    ({"order": "up"}, "order"),
    ({"order": "ASC"}, "order"),
    ({"page": "0"}, "page"),
    ({"page": "-1"}, "page"),
    ({"page": "abc"}, "page"),
    ({"page": "1.5"}, "page"),
    ({"page": ""}, "page"),
    ({"page": "99999999999999999999"}, "page"),
    ({"page_size": "0"}, "page_size"),
    ({"page_size": "101"}, "page_size"),
    ({"page_size": "-5"}, "page_size"),
    ({"page_size": "ten"}, "page_size"),
    ({"limit": "5"}, "limit"),
    ({"access_token": "x"}, "access_token"),
]


@pytest.mark.parametrize(("params", "field"), BAD_QUERIES)
def test_list_rejects_bad_query(client, headers, make_task, params, field):
    make_task(headers)

    response = client.get("/tasks", query_string=params, headers=headers)

    assert_error(response, 422, field=field)


@pytest.mark.parametrize(
    ("params", "meta"),
    [
        ({"search": "s" * 200}, {"page": 1, "page_size": 10, "total": 0, "pages": 0}),
        ({"page_size": "100"}, {"page": 1, "page_size": 100, "total": 1, "pages": 1}),
    ],
)
def test_list_accepts_query_bounds(client, headers, make_task, params, meta):
    make_task(headers)

    response = client.get("/tasks", query_string=params, headers=headers)

    assert response.status_code == 200
    assert response.json["meta"] == {**meta, "next_cursor": None}


def test_list_accepts_page_size_one(client, headers, make_task):
    make_task(headers)

    response = client.get("/tasks", query_string={"page_size": "1"}, headers=headers)

    assert response.status_code == 200
    meta = response.json["meta"]
    assert isinstance(meta.pop("next_cursor"), str)  # a full page: there may be more
    assert meta == {"page": 1, "page_size": 1, "total": 1, "pages": 1}


BAD_IDS = ["abc", "1.5", "-1", "0x1", "2147483648", "99999999999999999999999", "1e3", " 1"]


@pytest.mark.parametrize("method", ["get", "patch", "put", "delete"])
@pytest.mark.parametrize("task_id", BAD_IDS)
def test_bad_task_id_in_url_is_404(client, headers, existing, method, task_id):
    existing_id, before = existing
    body = {"title": "changed"} if method in ("patch", "put") else None

    response = getattr(client, method)(f"/tasks/{task_id}", json=body, headers=headers)

    assert_error(response, 404)
    assert stored_row(Task, existing_id) == before


@pytest.mark.parametrize("task_id", ["0", "2147483647"])
def test_absent_task_id_in_range_is_404(client, headers, task_id):
    assert_error(client.get(f"/tasks/{task_id}", headers=headers), 404)


ROUTES = [
    ("get", "/tasks", None),
    ("post", "/tasks", {"title": "sneaky"}),
    ("get", "/tasks/{id}", None),
    ("patch", "/tasks/{id}", {"title": "sneaky"}),
    ("put", "/tasks/{id}", {"title": "sneaky"}),
    ("delete", "/tasks/{id}", None),
]
BAD_AUTHORIZATION = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer not-a-jwt"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("bad_headers", BAD_AUTHORIZATION)
def test_missing_or_malformed_token_is_401(client, existing, method, path, body, bad_headers):
    task_id, before = existing

    response = getattr(client, method)(path.format(id=task_id), json=body, headers=bad_headers)

    assert_error(response, 401)
    assert stored_row(Task, task_id) == before
    assert row_count(Task) == 1


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_refresh_token_as_bearer_is_401(client, make_user, login, make_task, method, path, body):
    email, password = make_user()
    tokens = login(email, password)
    task = make_task({"Authorization": f"Bearer {tokens['access_token']}"})
    before = stored_row(Task, task["id"])

    response = getattr(client, method)(
        path.format(id=task["id"]),
        json=body,
        headers={"Authorization": f"Bearer {tokens['refresh_token']}"},
    )

    assert_error(response, 401)
    assert stored_row(Task, task["id"]) == before
    assert row_count(Task) == 1


def test_token_in_query_string_is_ignored(client, make_user, login):
    tokens = login(*make_user())

    response = client.get("/tasks", query_string={"jwt": tokens["access_token"]})

    assert_error(response, 401)


def test_authentication_comes_before_validation(client):
    response = client.post("/tasks", json={"title": "", "id": 5})

    assert_error(response, 401)
    assert row_count(Task) == 0
