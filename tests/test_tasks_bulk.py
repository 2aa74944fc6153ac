"""POST /tasks/bulk: one action on up to 100 of the caller's tasks, all or nothing."""

import pytest
from sqlalchemy import select

from conftest import assert_error
from taskapp.extensions import db
from taskapp.tasks.models import Task
from tests.support.totals import kept_counts


@pytest.fixture
def headers(auth):
    return auth()


@pytest.fixture
def three(headers, make_task):
    return [make_task(headers, title=f"t{n}")["id"] for n in range(3)]


def bulk(client, headers, **body):
    return client.post("/tasks/bulk", json=body, headers=headers)


def state(task_id: int) -> Task:
    db.session.expire_all()
    return db.session.get(Task, task_id)


def counts(owner_of: int | None = None) -> tuple[int, int]:
    """The kept counts of the only user with tasks (or of the owner of task ``owner_of``)."""
    db.session.expire_all()
    users = select(Task.user_id).distinct()
    if owner_of is not None:
        users = users.where(Task.id == owner_of)
    return kept_counts("task_counts", db.session.scalars(users).one())


def test_complete_and_reopen(client, headers, three):
    done = bulk(client, headers, action="complete", ids=three[:2])
    assert done.status_code == 200
    assert done.json == {"action": "complete", "ids": sorted(three[:2])}
    assert state(three[0]).completed and state(three[0]).completed_at is not None
    assert counts() == (3, 2)
    again = bulk(client, headers, action="complete", ids=three)
    assert again.json["ids"] == [three[2]]  # only what changed
    reopened = bulk(client, headers, action="reopen", ids=three)
    assert reopened.json["ids"] == sorted(three)
    assert counts() == (3, 0)
    assert state(three[1]).completed_at is None


def test_delete_with_subtasks_keeps_the_counts(client, headers, three, make_task):
    make_task(headers, parent_id=three[0], completed=True)

    deleted = bulk(client, headers, action="delete", ids=[three[0], three[1]])

    assert deleted.json["ids"] == sorted(three[:2])
    assert list(db.session.scalars(select(Task.id))) == [three[2]]
    assert counts() == (1, 0)


def test_move_puts_them_at_the_end_of_the_list(client, headers, three, make_task):
    work = client.post("/lists", json={"name": "Work"}, headers=headers).json["id"]
    first = make_task(headers, title="w", list_id=work)["id"]
    child = make_task(headers, title="c", parent_id=three[2])["id"]

    assert_error(bulk(client, headers, action="move", ids=[child], list_id=work), 422)
    moved = bulk(client, headers, action="move", ids=[three[2], three[0]], list_id=work)
    assert moved.json["ids"] == sorted([three[0], three[2]])
    listed = client.get(f"/tasks?list_id={work}&sort=position&order=asc", headers=headers).json
    assert [t["id"] for t in listed["data"]] == [first, three[0], three[2], child]
    back = bulk(client, headers, action="move", ids=[three[0]], list_id=None)
    assert back.status_code == 200
    assert state(three[0]).list_id is None


def test_label_and_unlabel(client, headers, three):
    client.patch(f"/tasks/{three[0]}", json={"labels": ["a"]}, headers=headers)
    etag = client.get(f"/tasks/{three[1]}", headers=headers).headers["ETag"]

    labelled = bulk(client, headers, action="label", ids=three[:2], labels=["A", "b"])
    assert labelled.json["ids"] == sorted(three[:2])
    assert client.get(f"/tasks/{three[0]}", headers=headers).json["labels"] == ["a", "b"]
    got = client.get(f"/tasks/{three[1]}", headers=headers)
    assert got.json["labels"] == ["a", "b"] and got.headers["ETag"] != etag
    unlabelled = bulk(client, headers, action="unlabel", ids=three, labels=["a"])
    assert unlabelled.json["ids"] == sorted(three[:2])
    assert client.get(f"/tasks/{three[0]}", headers=headers).json["labels"] == ["b"]


def test_one_foreign_or_missing_id_changes_nothing(client, auth, headers, three, make_task):
    theirs = make_task(auth())["id"]

    for ids in ([*three, theirs], [*three, 2**31 - 1]):
        for action in ("complete", "delete"):
            assert_error(bulk(client, headers, action=action, ids=ids), 404)
    assert counts(owner_of=three[0]) == (3, 0)
    assert all(not state(task_id).completed for task_id in three)
    assert state(theirs).completed is False


@pytest.mark.parametrize(
    "body",
    [
        {"action": "complete", "ids": []},
        {"action": "complete", "ids": list(range(1, 102))},
        {"action": "complete", "ids": ["1"]},
        {"action": "archive", "ids": [1]},
        {"action": "move", "ids": [1]},
        {"action": "label", "ids": [1]},
        {"action": "label", "ids": [1], "labels": []},
        {"ids": [1]},
    ],
)
def test_invalid_requests_are_422(client, headers, three, body):
    assert_error(bulk(client, headers, **body), 422)
    assert counts() == (3, 0)
