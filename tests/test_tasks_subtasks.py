"""Subtasks: one level, in the parent's list, deleted with the parent, listed by parent."""

import pytest
from sqlalchemy import select

from conftest import assert_error
from taskapp.extensions import db
from taskapp.tasks.models import Task
from tests.support.totals import kept_counts


@pytest.fixture
def headers(auth):
    return auth()


def test_a_subtask_takes_its_parents_list_and_follows_it(client, headers, make_task):
    work = client.post("/lists", json={"name": "Work"}, headers=headers).json["id"]
    home = client.post("/lists", json={"name": "Home"}, headers=headers).json["id"]
    parent = make_task(headers, list_id=work)

    child = make_task(headers, parent_id=parent["id"])
    assert (child["parent_id"], child["list_id"]) == (parent["id"], work)
    refused = client.post(
        "/tasks", json={"title": "t", "parent_id": parent["id"], "list_id": home}, headers=headers
    )
    assert_error(refused, 422)
    alone = client.patch(f"/tasks/{child['id']}", json={"list_id": home}, headers=headers)
    assert_error(alone, 422)

    before = client.get(f"/tasks/{child['id']}", headers=headers).headers["ETag"]
    moved = client.patch(f"/tasks/{parent['id']}", json={"list_id": home}, headers=headers)
    assert moved.status_code == 200
    after = client.get(f"/tasks/{child['id']}", headers=headers)
    assert after.json["list_id"] == home
    assert after.headers["ETag"] != before


def test_subtasks_are_one_level_deep(client, headers, make_task):
    parent = make_task(headers)
    child = make_task(headers, parent_id=parent["id"])
    other = make_task(headers)

    deeper = client.post("/tasks", json={"title": "t", "parent_id": child["id"]}, headers=headers)
    assert_error(deeper, 422)
    # A task with subtasks cannot itself become one.
    demoted = client.patch(
        f"/tasks/{parent['id']}", json={"parent_id": other["id"]}, headers=headers
    )
    assert_error(demoted, 422)
    itself = client.patch(f"/tasks/{other['id']}", json={"parent_id": other["id"]}, headers=headers)
    assert_error(itself, 422)
    db.session.expire_all()
    assert db.session.get(Task, parent["id"]).parent_id is None
    assert db.session.get(Task, other["id"]).parent_id is None


def test_another_users_parent_is_404(client, auth, headers, make_task):
    theirs = make_task(auth())
    mine = make_task(headers)

    assert_error(
        client.post("/tasks", json={"title": "t", "parent_id": theirs["id"]}, headers=headers), 404
    )
    assert_error(
        client.patch(f"/tasks/{mine['id']}", json={"parent_id": theirs["id"]}, headers=headers), 404
    )
    assert_error(
        client.post("/tasks", json={"title": "t", "parent_id": 2**31 - 1}, headers=headers), 404
    )


def test_deleting_a_parent_deletes_its_subtasks_and_keeps_the_counts(client, headers, make_task):
    parent = make_task(headers)
    for _ in range(3):
        make_task(headers, parent_id=parent["id"], completed=True)
    kept = make_task(headers)

    assert client.delete(f"/tasks/{parent['id']}", headers=headers).status_code == 204

    db.session.expire_all()
    assert list(db.session.scalars(select(Task.id))) == [kept["id"]]
    user_id = db.session.scalar(select(Task.user_id).where(Task.id == kept["id"]))
    assert kept_counts("task_counts", user_id) == (1, 0)


def test_completing_a_parent_leaves_its_subtasks_open(client, headers, make_task):
    parent = make_task(headers)
    child = make_task(headers, parent_id=parent["id"])

    client.patch(f"/tasks/{parent['id']}", json={"completed": True}, headers=headers)

    assert client.get(f"/tasks/{child['id']}", headers=headers).json["completed"] is False


def test_filter_by_parent(client, headers, make_task):
    parent = make_task(headers, title="p")
    make_task(headers, title="c1", parent_id=parent["id"])
    make_task(headers, title="c2", parent_id=parent["id"])
    make_task(headers, title="q")

    def matching(query):
        listed = client.get(f"/tasks?{query}", headers=headers).json
        return sorted(task["title"] for task in listed["data"]), listed["meta"]["total"]

    assert matching(f"parent_id={parent['id']}") == (["c1", "c2"], 2)
    assert matching("parent_id=null") == (["p", "q"], 2)
    # Unparenting with PATCH parent_id null.
    client.patch(f"/tasks/{parent['id'] + 1}", json={"parent_id": None}, headers=headers)
    assert matching("parent_id=null") == (["c1", "p", "q"], 3)
