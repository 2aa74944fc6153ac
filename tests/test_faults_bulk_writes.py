"""The writes whose cost follows the user's data (deleting a list or an account, renaming or
deleting a label) run under DB_BULK_STATEMENT_TIMEOUT_MS, every other write under the
statement timeout: a trigger that makes each write of tasks slow shows which one applies."""

import dataclasses

import pytest
from sqlalchemy import text

from conftest import PASSWORD, assert_error
from taskapp.extensions import db

# Past the statement timeout below, inside the bulk one.
SLOW_TASK_WRITES = [
    "CREATE FUNCTION slow_task_write() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$",
    "CREATE TRIGGER slow_task_write AFTER UPDATE OR DELETE ON tasks "
    "FOR EACH STATEMENT EXECUTE FUNCTION slow_task_write()",
]


@pytest.fixture
def slow_task_writes(app, monkeypatch):
    """Each UPDATE or DELETE of tasks takes 0.3 s; statements may take 0.1 s, bulk ones 5 s.

    All of it happens in the test's outer transaction (conftest's ``app``), rolled back after
    the test: no other test sees the trigger.
    """
    timeouts = dataclasses.replace(
        app.config["DATABASE_TIMEOUTS"], statement_ms=100, bulk_statement_ms=5000
    )
    monkeypatch.setitem(app.config, "DATABASE_TIMEOUTS", timeouts)
    for statement in SLOW_TASK_WRITES:
        db.session.execute(text(statement))
    # The app sets its timeouts as a transaction begins: here, one is open already.
    db.session.execute(text("SET LOCAL statement_timeout = 100"))


@pytest.fixture
def labelled_task(client, auth):
    headers = auth()
    listed = client.post("/lists", json={"name": "Work"}, headers=headers).json
    task = client.post(
        "/tasks", json={"title": "t", "list_id": listed["id"], "labels": ["a"]}, headers=headers
    )
    assert task.status_code == 201
    return headers, listed["id"], task.headers["Location"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("DELETE", "/lists/{list_id}", None, 204),
        ("PATCH", "/labels/a", {"name": "b"}, 200),
        ("DELETE", "/labels/a", None, 204),
        ("DELETE", "/me", {"password": PASSWORD}, 204),
    ],
)
def test_a_write_that_follows_the_data_gets_the_bulk_timeout(
    client, labelled_task, slow_task_writes, method, path, body, status
):
    headers, list_id, _task = labelled_task

    response = client.open(path.format(list_id=list_id), method=method, json=body, headers=headers)

    assert response.status_code == status, response.text


def test_any_other_write_keeps_the_statement_timeout(client, labelled_task, slow_task_writes):
    headers, _list_id, task = labelled_task

    response = client.patch(task, json={"title": "u"}, headers=headers)

    assert_error(response, 503)
    assert client.get(task, headers=headers).json["title"] == "t"
