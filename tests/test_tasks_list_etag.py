"""Conditional lists: GET /tasks and GET /tasks/changes answer 304 until a task changes."""

import pytest
from sqlalchemy import event

from taskapp.extensions import db

LISTS = ["/tasks", "/tasks?completed=true&sort=title", "/tasks/changes", "/tasks/changes?limit=5"]


@pytest.fixture
def statements(app):
    """The SQL statements the app runs while the test does."""
    seen = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    event.remove(db.engine, "before_cursor_execute", record)


@pytest.mark.parametrize("url", LISTS)
def test_if_none_match_answers_304_without_reading_the_list(
    client, auth, make_task, url, statements
):
    headers = auth()
    make_task(headers)
    first = client.get(url, headers=headers)
    assert first.status_code == 200 and first.headers["ETag"]
    statements.clear()
    again = client.get(url, headers={**headers, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.get_data() == b""
    assert any("task_counts" in s for s in statements)  # the stamp, and nothing else
    read = [s for s in statements if "FROM tasks" in s or "FROM sync_changes" in s]
    assert read == [], read


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize("write", ["create", "update", "delete"])
def test_any_write_of_a_task_changes_the_etag(client, auth, make_task, url, write):
    headers = auth()
    task = make_task(headers)
    etag = client.get(url, headers=headers).headers["ETag"]
    if write == "create":
        make_task(headers)
    elif write == "update":
        client.patch(f"/tasks/{task['id']}", json={"title": "new"}, headers=headers)
    else:
        client.delete(f"/tasks/{task['id']}", headers=headers)
    response = client.get(url, headers={**headers, "If-None-Match": etag})
    assert response.status_code == 200
    assert response.headers["ETag"] != etag


def test_the_etag_is_per_url_and_per_user(client, auth, make_task):
    alice, bob = auth(), auth()
    etag = client.get("/tasks", headers=alice).headers["ETag"]
    assert client.get("/tasks?page=2", headers=alice).headers["ETag"] != etag
    assert client.get("/tasks", headers={**bob, "If-None-Match": etag}).status_code == 200


def test_another_users_write_keeps_the_etag(client, auth, make_task):
    alice, bob = auth(), auth()
    etag = client.get("/tasks", headers=alice).headers["ETag"]
    make_task(bob)
    assert client.get("/tasks", headers={**alice, "If-None-Match": etag}).status_code == 304


def test_star_and_weak_forms_match(client, auth):
    headers = auth()
    etag = client.get("/tasks", headers=headers).headers["ETag"]
    for value in ("*", f"W/{etag}", f'"other", {etag}'):
        response = client.get("/tasks", headers={**headers, "If-None-Match": value})
        assert response.status_code == 304, value


def test_the_spec_documents_the_list_etag(client):
    paths = client.get("/openapi.json").json["paths"]
    for path in ("/tasks", "/tasks/changes"):
        operation = paths[path]["get"]
        names = {parameter["name"] for parameter in operation["parameters"]}
        # Next to the query parameters, not instead of them.
        assert {"If-None-Match", "limit" if "changes" in path else "completed"} <= names
        assert "304" in operation["responses"]
        assert "ETag" in operation["responses"]["200"]["headers"]
