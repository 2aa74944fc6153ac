"""The hot routes' round trips to PostgreSQL: each statement below is one message (the session
check rides with the first, a lock with the read it guards); in production a write adds BEGIN
and COMMIT (BENCHMARKS.md lists each route's and why each is needed)."""

import re

import pytest
from sqlalchemy import event

from taskapp.extensions import db

TRANSACTION_CONTROL = re.compile(r"\s*(SAVEPOINT|RELEASE|ROLLBACK)\b", re.IGNORECASE)


@pytest.fixture
def messages(app):
    """The messages sent to PostgreSQL during the test, as sent (after every listener that
    prepends), the test's own savepoints left out."""
    sent = []

    def record(_conn, _cursor, statement, *_args):
        if not TRANSACTION_CONTROL.match(statement):
            sent.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", record)
    yield sent
    event.remove(engine, "after_cursor_execute", record)


def carried_check(sent: list[str]) -> None:
    """The session was checked once, with the request's first message, never on its own."""
    assert "taskapp_check_session" in sent[0], sent
    assert sum("taskapp_check_session" in message for message in sent) == 1, sent
    assert not any("FROM sessions" in message for message in sent), sent


def test_a_page_is_one_message(client, auth, make_task, messages):
    headers = auth()
    make_task(headers)
    messages.clear()
    response = client.get("/tasks?page_size=20", headers=headers)
    assert response.status_code == 200 and response.headers["ETag"]
    assert len(messages) == 1, messages  # the check, the page, its total and its change stamp
    carried_check(messages)


def test_a_conditional_page_reads_the_stamp_first(client, auth, make_task, messages):
    headers = auth()
    make_task(headers)
    etag = client.get("/tasks", headers=headers).headers["ETag"]
    messages.clear()
    response = client.get("/tasks", headers={**headers, "If-None-Match": etag})
    assert response.status_code == 304
    assert len(messages) == 1, messages  # the check and the stamp: no page read
    carried_check(messages)


def test_a_page_past_the_end_still_has_the_etag_of_the_stamp(client, auth, make_task):
    headers = auth()
    make_task(headers)
    for url in ("/tasks?page=5", "/tasks?page=5&include_total=false", "/tasks?label=nope"):
        first = client.get(url, headers=headers)
        assert first.status_code == 200 and first.json["data"] == []
        again = client.get(url, headers={**headers, "If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304, url
        make_task(headers)
        changed = client.get(url, headers={**headers, "If-None-Match": first.headers["ETag"]})
        assert changed.status_code == 200, url


def test_create_without_labels_reads_no_labels(app, client, auth, messages, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_TASKS_PER_USER", 0)  # its read is counted below
    headers = auth()
    messages.clear()
    response = client.post("/tasks", json={"title": "t"}, headers=headers)
    assert response.status_code == 201 and response.json["labels"] == []
    # the user's queue (with the check), the list's order lock with its last position, the
    # INSERT returning the task
    assert len(messages) == 3, messages
    carried_check(messages)
    assert "pg_advisory_xact_lock" in messages[1] and "max(tasks.position)" in messages[1]


def test_create_with_the_quota_reads_the_kept_count_once(app, client, auth, messages, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_TASKS_PER_USER", 10)
    headers = auth()
    messages.clear()
    assert client.post("/tasks", json={"title": "t"}, headers=headers).status_code == 201
    assert len(messages) == 4, messages


def test_completing_a_task_that_does_not_recur_is_one_update(
    app, client, auth, make_task, messages
):
    headers = auth()
    task = make_task(headers, labels=["Work", "home"])
    for completed in (True, False):
        messages.clear()
        response = client.patch(
            f"/tasks/{task['id']}", json={"completed": completed}, headers=headers
        )
        assert response.status_code == 200 and response.json["completed"] is completed
        assert response.json["labels"] == ["home", "Work"]
        assert len(messages) == 2, messages  # the user's queue (with the check), the UPDATE
        carried_check(messages)


def test_completing_a_recurring_task_still_moves_it(client, auth, make_task):
    headers = auth()
    task = make_task(headers, due_at="2030-01-01T09:00:00Z", recurrence="FREQ=DAILY")
    before = client.get(f"/tasks/{task['id']}", headers=headers).headers["ETag"]
    response = client.patch(f"/tasks/{task['id']}", json={"completed": True}, headers=headers)
    assert response.status_code == 200
    assert response.json["completed"] is False
    assert response.json["due_at"].startswith("2030-01-02T09:00:00")
    assert response.headers["ETag"] != before


@pytest.mark.parametrize("stale", [True, False])
def test_completing_a_stale_or_missing_task_still_answers_412_or_404(
    client, auth, make_task, stale
):
    headers = auth()
    task = make_task(headers)
    old_etag = client.get(f"/tasks/{task['id']}", headers=headers).headers["ETag"]
    client.patch(f"/tasks/{task['id']}", json={"title": "newer"}, headers=headers)
    target = task["id"] if stale else task["id"] + 1000
    response = client.patch(
        f"/tasks/{target}",
        json={"completed": True},
        headers={**headers, "If-Match": old_etag},
    )
    assert response.status_code == (412 if stale else 404)
    assert client.get(f"/tasks/{task['id']}", headers=headers).json["completed"] is False


def test_delete_is_one_statement_after_the_queue(client, auth, make_task, messages):
    headers = auth()
    task = make_task(headers)
    messages.clear()
    assert client.delete(f"/tasks/{task['id']}", headers=headers).status_code == 204
    assert len(messages) == 2, messages
    carried_check(messages)


def test_get_one_task_reads_its_labels_from_its_row(client, auth, make_task, messages):
    headers = auth()
    task = make_task(headers, labels=["b", "A"])
    messages.clear()
    response = client.get(f"/tasks/{task['id']}", headers=headers)
    assert response.json["labels"] == ["A", "b"]
    assert len(messages) == 1, messages
