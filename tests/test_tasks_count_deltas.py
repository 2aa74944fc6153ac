"""Kept counts as delta rows (migration 0009): concurrent writers of one user's tasks never
wait on one another's locks for the counts, and every total stays exact, folded or not."""

import threading

import pytest
from sqlalchemy import func, select

from conftest import own_connection
from taskapp.extensions import db
from taskapp.tasks import service, totals
from taskapp.tasks.models import task_count_deltas
from tests.support import wait_for
from tests.support.concurrency import InThread
from tests.support.totals import assert_kept_counts

STATEMENTS = {
    "insert": "INSERT INTO tasks (user_id, title, completed, priority, due_at) "
    "VALUES (%(user)s, 'raw', true, 2, '2030-01-01T10:00:00Z')",
    "toggle": "UPDATE tasks SET completed = NOT completed WHERE id = %(task)s",
    "move to a list": "UPDATE tasks SET list_id = %(list)s WHERE id = %(task)s",
    "delete": "DELETE FROM tasks WHERE id = %(task)s",
}


def user_id_of(client, headers) -> int:
    return client.get("/me", headers=headers).json["id"]


@pytest.mark.committing
@pytest.mark.parametrize("first", STATEMENTS)
@pytest.mark.parametrize("second", STATEMENTS)
def test_two_task_statements_of_one_user_do_not_wait_for_each_other(
    app, auth, make_task, first, second
):
    """Transaction A writes a task and stays open; B writes another task of the same user
    and commits under a lock_timeout: the count triggers lock nothing B waits for."""
    client = app.test_client()
    headers = auth()
    user = user_id_of(client, headers)
    list_id = client.post("/lists", json={"name": "L"}, headers=headers).json["id"]
    tasks = [make_task(headers, title=f"t{n}", priority="high")["id"] for n in range(2)]
    a, b = own_connection(), own_connection()
    try:
        with a.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(STATEMENTS[first], {"user": user, "task": tasks[0], "list": list_id})
        with b.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
            cursor.execute("BEGIN")
            cursor.execute(STATEMENTS[second], {"user": user, "task": tasks[1], "list": list_id})
            cursor.execute("COMMIT")
        with a.cursor() as cursor:
            cursor.execute("COMMIT")
    finally:
        a.close()
        b.close()
    assert_kept_counts()


@pytest.mark.committing
def test_single_task_writes_go_on_while_another_is_open(app, auth, make_task, monkeypatch):
    """A create holds its transaction open after its INSERT; a toggle, an edit, a deletion
    and a create in another list of the same user each finish meanwhile."""
    client = app.test_client()
    headers = auth()
    list_id = client.post("/lists", json={"name": "L"}, headers=headers).json["id"]
    tasks = [make_task(headers, title=f"t{n}")["id"] for n in range(3)]
    holding, release = threading.Event(), threading.Event()
    represent = service.with_row_labels  # a create's last step before its commit

    def hold(*args):
        if not holding.is_set():
            holding.set()
            release.wait(20)
        return represent(*args)

    monkeypatch.setattr(service, "with_row_labels", hold)
    held = InThread(app, "post", "/tasks", json={"title": "held"}, headers=headers)
    try:
        assert holding.wait(20)
        others = [
            InThread(app, "patch", f"/tasks/{tasks[0]}", json={"completed": True}, headers=headers),
            InThread(app, "patch", f"/tasks/{tasks[1]}", json={"title": "x"}, headers=headers),
            InThread(app, "delete", f"/tasks/{tasks[2]}", headers=headers),
            InThread(
                app, "post", "/tasks", json={"title": "n", "list_id": list_id}, headers=headers
            ),
        ]
        wait_for(lambda: all(other.done() for other in others), message="the other writes")
    finally:
        release.set()
    assert [other.result().status_code for other in others] == [200, 200, 204, 201]
    assert held.result().status_code == 201
    listed = client.get("/tasks", headers=headers).json["meta"]
    assert listed["total"] == 4
    assert_kept_counts()


def pending(user_id: int) -> int:
    rows = select(func.count()).where(task_count_deltas.c.user_id == user_id)
    return db.session.scalar(rows)


def test_writers_fold_the_deltas_and_totals_stay_exact(app, client, auth, make_task):
    headers = auth()
    user = user_id_of(client, headers)
    work = client.post("/lists", json={"name": "Work"}, headers=headers).json["id"]
    ids = []
    for n in range(totals.FOLD_AFTER + 5):
        fields = {"priority": ["low", "high"][n % 2], "due_at": f"2030-01-0{n % 3 + 1}T12:00:00Z"}
        ids.append(make_task(headers, title=f"t{n}", **fields, list_id=work)["id"])
        assert pending(user) <= totals.FOLD_AFTER + 1  # a writer folded them
        assert_kept_counts()
    client.post("/tasks/bulk", json={"action": "delete", "ids": ids[::2]}, headers=headers)
    assert_kept_counts()
    assert client.get(f"/tasks?list_id={work}", headers=headers).json["meta"]["total"] == len(
        ids[1::2]
    )


def test_a_fold_keeps_every_total_and_the_list_etag(app, client, auth, make_task):
    headers = auth()
    user = user_id_of(client, headers)
    work = client.post("/lists", json={"name": "Work"}, headers=headers).json["id"]
    ids = [make_task(headers, title=f"t{n}", labels=["x"], priority="high")["id"] for n in range(6)]
    client.patch(f"/tasks/{ids[0]}", json={"completed": True, "list_id": work}, headers=headers)
    client.delete(f"/tasks/{ids[1]}", headers=headers)
    queries = ["", "?priority=high", f"?list_id={work}", "?list_id=null", "?label=x"]
    before = {query: client.get(f"/tasks{query}", headers=headers) for query in queries}
    labels = client.get("/labels", headers=headers).json
    assert pending(user) > 0
    assert totals.fold_counts(user) > 0
    assert pending(user) == 0
    assert_kept_counts()
    for query, response in before.items():
        again = client.get(f"/tasks{query}", headers=headers)
        assert again.json["meta"] == response.json["meta"], query
        assert again.headers["ETag"] == response.headers["ETag"], query  # the stamp held
    assert client.get("/labels", headers=headers).json == labels
    client.patch(f"/tasks/{ids[2]}", json={"title": "new"}, headers=headers)
    assert client.get("/tasks", headers=headers).headers["ETag"] != before[""].headers["ETag"]
