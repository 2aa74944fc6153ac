"""The one paginator: signed cursors (only issued ones are read), the same paging on every list."""

import base64
import json

import pytest
from sqlalchemy import event

from conftest import assert_error
from taskapp.extensions import db
from taskapp.pagination import encode_cursor

LISTS = {"tasks": "/tasks", "admin-users": "/admin/users"}


def unsigned(payload: dict) -> str:
    """A cursor as this API wrote them before they were signed: base64url of the JSON."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def forged(payload: dict) -> str:
    """A well-formed cursor signed with a key the app does not hold."""
    return unsigned(payload) + "." + "A" * 22


HAND_MADE = {
    "not base64": "not-base64!",
    "empty object": "e30",
    "unsigned, as before": unsigned({"s": "created_at", "o": "desc", "k": ["2026-01-01", 1]}),
    "forged time zone": forged(
        {"s": "created_at", "o": "desc", "k": [{"t": "2026-01-01T00:00+99:00"}, 1]}
    ),
    "forged NUL title": forged({"s": "title", "o": "desc", "k": ["a\u0000", 1]}),
    "forged id past int4": forged({"s": "id", "o": "asc", "k": [2**70]}),
    "forged not JSON": base64.urlsafe_b64encode(b"\xff" * 12).decode() + "." + "A" * 22,
    "signature only": "." + "A" * 22,
    "long": "A" * 5000 + "." + "A" * 22,
}


@pytest.fixture(autouse=True)
def many_signups(app, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_SIGNUP", "1000 per minute")


@pytest.fixture
def statements(app):
    """The SQL the app runs from here on, as a list of strings."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def first_cursor(client, path: str, headers: dict) -> str:
    body = client.get(path, query_string={"page_size": 1}, headers=headers).json
    cursor = body["meta"]["next_cursor"]
    assert cursor
    return cursor


@pytest.mark.parametrize("cursor", HAND_MADE.values(), ids=HAND_MADE.keys())
@pytest.mark.parametrize("path", LISTS.values())
def test_a_cursor_the_api_did_not_issue_is_422_without_a_query(
    client, admin_headers, make_task, statements, path, cursor
):
    make_task(admin_headers)
    statements.clear()
    response = client.get(path, query_string={"cursor": cursor}, headers=admin_headers)
    assert_error(response, 422, field="cursor")
    # Only the session lookup of authentication ran: the cursor never reached a list query.
    assert not any("FROM tasks" in sql or "count(" in sql.lower() for sql in statements)


def test_a_tampered_cursor_is_422(client, admin_headers, make_task):
    for _ in range(3):
        make_task(admin_headers)
    cursor = first_cursor(client, "/tasks", admin_headers)
    payload, signature = cursor.split(".")
    flipped = "B" if signature[0] != "B" else "C"
    # Another sort key, resigned by nobody; and the right payload with a changed signature.
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["k"][1] += 1
    for tampered in (unsigned(body) + "." + signature, payload + "." + flipped + signature[1:]):
        response = client.get("/tasks", query_string={"cursor": tampered}, headers=admin_headers)
        assert_error(response, 422, field="cursor")
    assert client.get(f"/tasks?cursor={cursor}", headers=admin_headers).status_code == 200


def test_a_cursor_of_one_list_is_422_on_the_other(client, admin_headers, make_user, make_task):
    for _ in range(2):
        make_user()
        make_task(admin_headers)
    for own, other in (("/tasks", "/admin/users"), ("/admin/users", "/tasks")):
        cursor = first_cursor(client, own, admin_headers)
        response = client.get(other, query_string={"cursor": cursor}, headers=admin_headers)
        assert_error(response, 422, field="cursor")


def test_a_cursor_signed_with_another_secret_is_422(build_app, client, admin_headers, make_task):
    for _ in range(2):
        make_task(admin_headers)
    other = build_app(JWT_SECRET_KEY="another-secret-that-is-long-enough-0123456789")
    with other.test_request_context():
        cursor = encode_cursor("tasks", sort="created_at", order="desc", keys=["x", 1])
    response = client.get("/tasks", query_string={"cursor": cursor}, headers=admin_headers)
    assert_error(response, 422, field="cursor")


@pytest.mark.parametrize("path", LISTS.values())
def test_every_list_walks_by_cursor_as_by_page(client, admin_headers, make_user, make_task, path):
    for _ in range(5):
        make_user()
        make_task(admin_headers)
    by_page = []
    for page in range(1, 5):
        body = client.get(path, query_string={"page": page, "page_size": 2}, headers=admin_headers)
        by_page += [item["id"] for item in body.json["data"]]
    by_cursor, query = [], {"page_size": 2}
    while True:
        body = client.get(path, query_string=query, headers=admin_headers).json
        by_cursor += [item["id"] for item in body["data"]]
        assert body["meta"]["page"] == (1 if "cursor" not in query else None)
        if body["meta"]["next_cursor"] is None:
            break
        query = {"page_size": 2, "cursor": body["meta"]["next_cursor"]}
    assert by_cursor == by_page
    assert len(by_cursor) == len(set(by_cursor)) == body["meta"]["total"]


@pytest.mark.parametrize("path", LISTS.values())
def test_a_cursor_with_a_page_is_422(client, admin_headers, make_user, make_task, path):
    make_user()
    make_task(admin_headers)
    make_task(admin_headers)
    cursor = first_cursor(client, path, admin_headers)
    query = {"cursor": cursor, "page": 1}
    assert_error(client.get(path, query_string=query, headers=admin_headers), 422, field="cursor")


def test_the_longest_title_makes_a_cursor_the_api_reads(client, admin_headers, make_task):
    # 200 characters outside the BMP: each is 12 characters of JSON escapes in the payload.
    for _ in range(2):
        make_task(admin_headers, title="\U0001f600" * 200)
    query = {"sort": "title", "order": "asc", "page_size": 1}
    first = client.get("/tasks", query_string=query, headers=admin_headers).json
    cursor = first["meta"]["next_cursor"]
    second = client.get("/tasks", query_string={**query, "cursor": cursor}, headers=admin_headers)
    assert second.status_code == 200, second.json
    assert second.json["data"][0]["id"] != first["data"][0]["id"]
