"""The lock order of tasks.locks: every writer takes its locks in LOCK_ORDER's order, the
user's queue before any row it writes; and writers whose order among the kept count rows
used to depend on the triggers' names (a deletion or rename while a task write holds the
user's queue) wait for it instead of taking rows the task write needs next, so both finish:
out of that order, PostgreSQL times out or finds a deadlock."""

import re
import threading

import pytest
from sqlalchemy import event

from conftest import PASSWORD
from taskapp.extensions import db
from taskapp.tasks import placement
from taskapp.tasks.locks import LOCK_ORDER
from tests.support.concurrency import InThread, await_lock_waits

# Which step of LOCK_ORDER a statement takes, by its SQL; None: it locks nothing.
STEPS = {
    # The key's own row is written under that lock, before the work's.
    "new_keys": r"pg_advisory_xact_lock\(%\(key\)s\)|^INSERT INTO idempotency_keys",
    "user": r"FROM users .*FOR NO KEY UPDATE",
    "user_tasks": r"pg_advisory_xact_lock_shared",  # shared or exclusive, by a CASE
    "list": r"FROM lists .*FOR UPDATE",
    "label": r"FROM labels .*FOR UPDATE",
    "tasks": r"FROM tasks .*FOR UPDATE",
    "list_order": r"pg_advisory_xact_lock",
    "writes": r"^(INSERT|UPDATE|DELETE) ",
}
assert list(STEPS) == [lock.name for lock in LOCK_ORDER]


def step_of(statement: str) -> str | None:
    statement = " ".join(statement.split())
    return next((name for name, pattern in STEPS.items() if re.search(pattern, statement)), None)


def steps_taken(client, method: str, path: str, body, headers) -> list[str]:
    """The LOCK_ORDER steps one request takes, in the order it takes them."""
    taken = []

    def record(conn, cursor, statement, parameters, context, executemany):
        # One message may carry several statements (the session check, a lock before its
        # read: taskapp.auth.session_check, taskapp.database.LEAD_OPTION), run in turn.
        for part in statement.split(";"):
            step = step_of(part.strip())
            if step is not None:
                taken.append(step)

    bind = db.session.get_bind()
    engine = bind.engine if hasattr(bind, "engine") else bind
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.open(path, method=method.upper(), json=body, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code < 300, (path, response.json)
    return taken


def test_every_writer_takes_its_locks_in_the_stated_order(client, auth, make_task):
    headers = auth()
    work = client.post("/lists", json={"name": "Work"}, headers=headers).json["id"]
    spare = client.post("/lists", json={"name": "Spare"}, headers=headers).json["id"]
    parent = make_task(headers, labels=["a"], list_id=work)["id"]
    child = make_task(headers, parent_id=parent)["id"]
    other = make_task(headers, due_at="2030-01-01T00:00:00Z", recurrence="FREQ=DAILY")["id"]
    writers = [
        ("post", "/tasks", {"title": "new", "parent_id": parent, "labels": ["b"]}),
        ("patch", f"/tasks/{other}", {"completed": True, "labels": ["c"], "list_id": work}),
        ("put", f"/tasks/{child}", {"title": "replaced"}),
        ("post", f"/tasks/{parent}/move", {"list_id": None}),
        ("post", f"/tasks/{other}/move", {"before": parent}),
        *(
            ("post", "/tasks/bulk", {"action": action, "ids": [other, parent], **extra})
            for action, extra in (
                ("complete", {}),
                ("reopen", {}),
                ("move", {"list_id": spare}),
                ("label", {"labels": ["d"]}),
                ("unlabel", {"labels": ["a"]}),
            )
        ),
        ("patch", "/labels/b", {"name": "e"}),
        ("delete", "/labels/c", None),
        ("patch", f"/lists/{work}", {"name": "Renamed"}),
        ("delete", f"/tasks/{child}", None),
        ("post", "/tasks/bulk", {"action": "delete", "ids": [other]}),
        ("delete", f"/lists/{spare}", None),
        ("delete", "/me", {"password": PASSWORD}),
    ]
    order = list(STEPS)
    for path, body in (("/lists", {"name": "Keyed"}), ("/tasks", {"title": "keyed"})):
        keyed = {**headers, "Idempotency-Key": f"lock-order {path}"}
        taken = steps_taken(client, "post", path, body, keyed)
        assert taken[0] == "new_keys", (path, taken)
        assert [order.index(step) for step in taken] == sorted(map(order.index, taken)), taken
    for method, path, body in writers:
        taken = steps_taken(client, method, path, body, headers)
        indices = [order.index(step) for step in taken]
        assert indices == sorted(indices), (method, path, taken)
        if "writes" in taken:
            assert "user_tasks" in taken, (method, path, taken)


WRITERS = {
    # A's request, its expected status: each deletes or rewrites rows the task write of B
    # locks or references after the queue (the list, the label, the user and their counts).
    "list deletion": ("delete", "/lists/{list_id}", None, 204),
    "label rename": ("patch", "/labels/x", {"name": "y"}, 200),
    "label deletion": ("delete", "/labels/x", None, 204),
    "account deletion": ("delete", "/me", {"password": PASSWORD}, 204),
}


@pytest.mark.committing
@pytest.mark.parametrize("writer", WRITERS)
def test_a_writer_waits_for_a_task_write_holding_the_queue(app, auth, monkeypatch, writer):
    headers = auth()
    client = app.test_client()
    list_id = client.post("/lists", json={"name": "L"}, headers=headers).json["id"]
    created = client.post("/tasks", json={"title": "t", "labels": ["x"]}, headers=headers)
    assert created.status_code == 201, created.json
    holding, release = threading.Event(), threading.Event()
    next_key = placement.generate_key_between

    def hold(*args):
        """B, creating a task, holds the user's queue (and its list's order) here, before its
        insert and triggers."""
        holding.set()
        release.wait(20)
        return next_key(*args)

    monkeypatch.setattr(placement, "generate_key_between", hold)
    body = {"title": "new", "list_id": list_id, "labels": ["x"]}
    task_write = InThread(app, "post", "/tasks", json=body, headers=headers)
    assert holding.wait(20)
    method, path, json, status = WRITERS[writer]
    try:
        other = InThread(app, method, path.format(list_id=list_id), json=json, headers=headers)
        await_lock_waits(app, 1, other)  # A queues behind B
    finally:
        release.set()
    assert task_write.result().status_code == 201, task_write.result().json
    assert other.result().status_code == status, other.result().json
