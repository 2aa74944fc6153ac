"""The lock order of tasks.locks holds between writers whose order among the kept count rows
used to depend on the triggers' names: a deletion or rename that starts while a task write
holds the user's queue waits for it (locks.lock_user_tasks) instead of taking rows the task
write needs next, so both finish; out of that order, PostgreSQL would find a deadlock."""

import threading

import pytest
from test_auth_session_races import InThread, await_lock_waits

from conftest import PASSWORD, requires_postgres
from taskapp.tasks import placement

pytestmark = [requires_postgres, pytest.mark.committing]

WRITERS = {
    # A's request, its expected status: each deletes or rewrites rows the task write of B
    # locks or references after the queue (the list, the label, the user and their counts).
    "list deletion": ("delete", "/lists/{list_id}", None, 204),
    "label rename": ("patch", "/labels/x", {"name": "y"}, 200),
    "label deletion": ("delete", "/labels/x", None, 204),
    "account deletion": ("delete", "/me", {"password": PASSWORD}, 204),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_a_writer_waits_for_a_task_write_holding_the_queue(app, auth, monkeypatch, writer):
    headers = auth()
    client = app.test_client()
    list_id = client.post("/lists", json={"name": "L"}, headers=headers).json["id"]
    created = client.post("/tasks", json={"title": "t", "labels": ["x"]}, headers=headers)
    assert created.status_code == 201, created.json
    holding, release = threading.Event(), threading.Event()
    take_order = placement.lock_list_order

    def hold(user_id, in_list):
        """B, creating a task, holds the user's queue here, before its insert and triggers."""
        take_order(user_id, in_list)
        holding.set()
        release.wait(20)

    monkeypatch.setattr(placement, "lock_list_order", hold)
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
