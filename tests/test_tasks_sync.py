"""GET /tasks/changes: incremental sync with tombstones, signed tokens, and no skipped commit."""

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from conftest import assert_error, own_connection
from taskapp.extensions import db
from taskapp.sync import service as sync_service
from taskapp.sync.models import Change
from taskapp.tasks.models import Task

# Each request commits, as in production: in one test-wide transaction, its own writes would
# all stay at or above every snapshot's xmin and come back on every sync (as duplicates).
# Each test runs as the server is, and beside another long transaction (other_transaction).
pytestmark = [pytest.mark.committing, pytest.mark.usefixtures("other_transaction")]


def sync(client, headers, since=None, **params):
    if since is not None:
        params["since"] = since
    response = client.get("/tasks/changes", query_string=params, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def replay(client, headers, token, state: dict, *, limit=100) -> str:
    """Apply every change since ``token`` to ``state`` (id -> task); the token to go on from."""
    while True:
        answer = sync(client, headers, token, limit=limit)
        for task in answer["changed"]:
            state[task["id"]] = task
        for task_id in answer["deleted"]:
            state.pop(task_id, None)
        token = answer["sync_token"]
        if not answer["has_more"]:
            return token


def unchanged_repeats(answer, known: dict, gone=()) -> None:
    """Whatever ``answer`` carries beyond what changed is a repeat of a known, unchanged task.

    On PostgreSQL the snapshot horizon is the server's: while any other transaction (another
    client's, another database's) is open, a sync may send tasks again. Never a stale one.
    """
    for task in answer["changed"]:
        assert task == known[task["id"]], task
    assert set(answer["deleted"]) <= set(gone)


def test_without_since_there_are_no_changes_and_a_token_for_now(client, auth, make_task):
    headers = auth()
    before = make_task(headers, title="before")
    answer = sync(client, headers)
    assert answer["changed"] == [] and answer["deleted"] == [] and not answer["has_more"]
    unchanged_repeats(sync(client, headers, answer["sync_token"]), {before["id"]: before})


def test_changes_and_deletions_since_a_token(client, auth, make_task):
    headers = auth()
    deleted, changed, kept = (make_task(headers, title=t) for t in ("gone", "changed", "kept"))
    token = sync(client, headers)["sync_token"]
    client.patch(f"/tasks/{changed['id']}", json={"completed": True}, headers=headers)
    client.delete(f"/tasks/{deleted['id']}", headers=headers)
    created = make_task(headers, title="new")
    answer = sync(client, headers, token)
    now = {task["id"]: task for task in answer["changed"]}
    assert {changed["id"], created["id"]} <= set(now) <= {changed["id"], created["id"], kept["id"]}
    # Each as GET /tasks/{id} shows it now.
    current = {
        task["id"]: client.get(f"/tasks/{task['id']}", headers=headers).json
        for task in (kept, changed, created)
    }
    assert now == {task_id: current[task_id] for task_id in now}
    assert answer["deleted"] == [deleted["id"]]
    unchanged_repeats(sync(client, headers, answer["sync_token"]), current, [deleted["id"]])


def test_a_walk_of_small_pages_replays_the_state(client, auth, make_task):
    headers = auth()
    token = sync(client, headers)["sync_token"]
    tasks = [make_task(headers, title=f"t{n}") for n in range(7)]
    client.delete(f"/tasks/{tasks[3]['id']}", headers=headers)
    first = sync(client, headers, token, limit=3)
    assert first["has_more"] and len(first["changed"]) + len(first["deleted"]) == 3
    state = {}
    replay(client, headers, token, state, limit=3)
    listed = client.get("/tasks", query_string={"page_size": 100}, headers=headers).json["data"]
    assert state == {task["id"]: task for task in listed}


def test_each_user_syncs_their_own_tasks(client, auth, make_task):
    alice, bob = auth(), auth()
    token = sync(client, alice)["sync_token"]
    make_task(bob)
    assert sync(client, alice, token)["changed"] == []


def test_another_users_token_is_a_422(client, auth):
    token = sync(client, auth())["sync_token"]
    response = client.get("/tasks/changes", query_string={"since": token}, headers=auth())
    assert_error(response, 422)


@pytest.mark.parametrize(
    "token",
    ["x", "abc.def", "e30.AAAAAAAAAAAAAAAAAAAAAA", "not a token", "é.é"],
)
def test_a_token_not_issued_here_is_a_422(client, auth, token):
    headers = auth()
    response = client.get("/tasks/changes", query_string={"since": token}, headers=headers)
    assert_error(response, 422)


def test_a_tampered_token_is_a_422(client, auth):
    headers = auth()
    body, mac = sync(client, headers)["sync_token"].split(".")
    forged = sync_service._b64(sync_service._unb64(body).replace(b'"f":', b'"f":1'))
    response = client.get(
        "/tasks/changes", query_string={"since": f"{forged}.{mac}"}, headers=headers
    )
    assert_error(response, 422)


def test_a_token_older_than_the_retention_is_a_410(client, auth, app):
    headers = auth()
    user_id = client.get("/me", headers=headers).json["id"]
    days = app.config["SYNC_RETENTION_DAYS"]
    started = int((datetime.now(UTC) - timedelta(days=days, minutes=1)).timestamp())
    old = sync_service._issue(sync_service.Position(user_id, "task", 1, None, 1, started))
    body = assert_error(
        client.get("/tasks/changes", query_string={"since": old}, headers=headers), 410
    )
    assert "GET /tasks" in body["message"]


@pytest.mark.parametrize("limit", [0, 501, "x"])
def test_a_limit_out_of_range_is_a_422(client, auth, limit):
    response = client.get("/tasks/changes", query_string={"limit": limit}, headers=auth())
    assert_error(response, 422, field="limit")


def test_the_purge_removes_old_tombstones_only(client, auth, make_task, runner, app):
    headers = auth()
    old, recent, alive = (make_task(headers) for _ in range(3))
    client.delete(f"/tasks/{old['id']}", headers=headers)
    client.delete(f"/tasks/{recent['id']}", headers=headers)
    days = app.config["SYNC_RETENTION_DAYS"]
    long_ago = datetime.now(UTC) - timedelta(days=days + 2)
    db.session.execute(
        update(Change).where(Change.entity_id == old["id"]).values(changed_at=long_ago)
    )
    db.session.commit()
    result = runner.invoke(args=["sync", "purge"])
    assert result.exit_code == 0 and "purged 1" in result.output, result.output
    left = set(db.session.scalars(select(Change.entity_id)))
    assert left == {recent["id"], alive["id"]}


def test_deleting_the_account_takes_its_change_log(client, auth, make_task):
    headers = auth()
    make_task(headers)
    response = client.delete("/me", json={"password": "correct horse battery"}, headers=headers)
    assert response.status_code == 204
    assert db.session.scalars(select(Change)).all() == []


def test_a_transaction_that_commits_late_is_not_skipped(client, auth, make_task):
    headers = auth()
    early, late = make_task(headers, title="early"), make_task(headers, title="late")
    token = sync(client, headers)["sync_token"]
    first, second = own_connection(), own_connection()
    first.autocommit = second.autocommit = False
    try:
        with first.cursor() as slow:
            # The slow transaction gets its id first, then writes and commits last.
            slow.execute("SELECT pg_current_xact_id()")
            with second.cursor() as fast:
                fast.execute("UPDATE tasks SET title = 'fast' WHERE id = %s", (late["id"],))
            second.commit()
            answer = sync(client, headers, token)
            # (Other transactions on the server may hold the horizon back: "early" may come
            # again, unchanged; duplicates are allowed, skips are not.)
            assert "fast" in [task["title"] for task in answer["changed"]]
            slow.execute("UPDATE tasks SET title = 'slow' WHERE id = %s", (early["id"],))
        first.commit()
        state = {}
        replay(client, headers, answer["sync_token"], state)
        assert state[early["id"]]["title"] == "slow"
    finally:
        first.close()
        second.close()


@pytest.mark.slow
def test_a_reader_syncing_during_concurrent_writes_ends_with_the_final_state(client, auth):
    headers = auth()
    user_id = client.get("/me", headers=headers).json["id"]
    state, token = {}, sync(client, headers)["sync_token"]
    writers, rounds = 4, 40
    ids, ids_lock, failures = [], threading.Lock(), []
    rng = random.Random(16)

    connections = [own_connection() for _ in range(writers)]

    def write(number: int) -> None:
        connection = connections[number]
        connection.autocommit = False
        local = random.Random(number)
        try:
            for step in range(rounds):
                with connection.cursor() as cursor:
                    # Take a transaction id now and write a little later: commits then come
                    # out of id order, as under load.
                    cursor.execute("SELECT pg_current_xact_id()")
                    time.sleep(local.random() / 200)
                    with ids_lock:
                        target = local.choice(ids) if ids else None
                    action = local.random()
                    if target is None or action < 0.4:
                        cursor.execute(
                            "INSERT INTO tasks (user_id, title) VALUES (%s, %s) RETURNING id",
                            (user_id, f"w{number}-{step}"),
                        )
                        with ids_lock:
                            ids.append(cursor.fetchone()[0])
                    elif action < 0.85:
                        cursor.execute(
                            "UPDATE tasks SET title = %s, version = version + 1 WHERE id = %s",
                            (f"w{number}-{step}", target),
                        )
                    else:
                        cursor.execute("DELETE FROM tasks WHERE id = %s", (target,))
                    time.sleep(local.random() / 200)
                connection.commit()
        except Exception as error:  # reported by the test thread
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    syncs = 0
    while any(thread.is_alive() for thread in threads):
        token = replay(client, headers, token, state, limit=rng.choice([2, 5, 50]))
        syncs += 1
    for thread in threads:
        thread.join()
    assert not failures, failures
    replay(client, headers, token, state)
    db.session.remove()
    final = {task.id: task.title for task in db.session.scalars(select(Task))}
    assert {task_id: task["title"] for task_id, task in state.items()} == final
    assert syncs > 3  # the reader did sync while the writers wrote
