"""Labels on tasks: created by name, compared case-insensitively, listed with counts, renamed
and removed on every task at once."""

import re

import pytest
from sqlalchemy import select

from conftest import assert_error
from taskapp.extensions import db
from taskapp.tasks.models import Label, task_labels


@pytest.fixture
def headers(auth):
    return auth()


def test_labels_are_trimmed_deduplicated_and_created(client, headers, make_task):
    task = make_task(headers, labels=[" Work ", "work", "Home", "WORK"])

    assert task["labels"] == ["Home", "Work"]
    again = make_task(headers, labels=["HOME"])
    assert again["labels"] == ["Home"]  # the existing label, as first spelt
    assert sorted(db.session.scalars(select(Label.name))) == ["Home", "Work"]


def test_patch_replaces_the_labels_and_changes_the_etag(client, headers, make_task):
    created = client.post("/tasks", json={"title": "t", "labels": ["a"]}, headers=headers)
    url = created.headers["Location"]

    same = client.patch(
        url, json={"labels": ["A"]}, headers={**headers, "If-Match": created.headers["ETag"]}
    )
    assert same.status_code == 200
    assert same.headers["ETag"] == created.headers["ETag"]  # the same label: nothing changed

    changed = client.patch(
        url, json={"labels": ["b", "c"]}, headers={**headers, "If-Match": same.headers["ETag"]}
    )
    assert changed.status_code == 200
    assert changed.json["labels"] == ["b", "c"]
    assert changed.headers["ETag"] != same.headers["ETag"]
    assert client.get(url, headers=headers).json["labels"] == ["b", "c"]

    stale = client.patch(
        url, json={"labels": ["z"]}, headers={**headers, "If-Match": same.headers["ETag"]}
    )
    assert_error(stale, 412)
    assert client.get(url, headers=headers).json["labels"] == ["b", "c"]  # rolled back
    assert client.put(url, json={"title": "t"}, headers=headers).json["labels"] == []


@pytest.mark.parametrize(
    "labels",
    [["x"] * 21, [""], ["  "], ["x" * 51], ["a\tb"], ["a\x1fb"], "work", [5], None],
)
def test_invalid_labels_are_422(client, headers, labels):
    response = client.post("/tasks", json={"title": "t", "labels": labels}, headers=headers)

    assert_error(response, 422, field="labels")
    assert db.session.scalar(select(Label.id)) is None


def test_list_rename_and_delete(client, auth, headers, make_task):
    first = make_task(headers, labels=["work", "urgent"])
    second = make_task(headers, labels=["Work"])
    make_task(auth(), labels=["work"])  # another user's label of the same name

    listed = client.get("/labels", headers=headers).json["data"]
    assert listed == [{"name": "urgent", "tasks": 1}, {"name": "work", "tasks": 2}]

    assert_error(client.patch("/labels/URGENT", json={"name": "Work"}, headers=headers), 409)
    renamed = client.patch("/labels/WORK", json={"name": "Job"}, headers=headers)
    assert renamed.status_code == 200
    assert renamed.json == {"name": "Job", "tasks": 2}
    assert client.get(f"/tasks/{second['id']}", headers=headers).json["labels"] == ["Job"]

    assert client.delete("/labels/job", headers=headers).status_code == 204
    assert client.get(f"/tasks/{first['id']}", headers=headers).json["labels"] == ["urgent"]
    assert [label["name"] for label in client.get("/labels", headers=headers).json["data"]] == [
        "urgent"
    ]
    assert_error(client.delete("/labels/job", headers=headers), 404)
    assert_error(client.patch("/labels/nope", json={"name": "x"}, headers=headers), 404)


def test_rename_and_delete_change_the_etags_of_the_tasks(client, headers):
    created = client.post("/tasks", json={"title": "t", "labels": ["a/b"]}, headers=headers)
    url, etag = created.headers["Location"], created.headers["ETag"]

    assert client.patch("/labels/a/b", json={"name": "c"}, headers=headers).status_code == 200
    renamed = client.get(url, headers=headers)
    assert renamed.headers["ETag"] != etag
    assert client.delete("/labels/c", headers=headers).status_code == 204
    deleted = client.get(url, headers=headers)
    assert deleted.headers["ETag"] not in (etag, renamed.headers["ETag"])
    assert deleted.json["labels"] == []
    assert db.session.scalar(select(task_labels.c.task_id)) is None


def test_another_users_label_is_404(client, auth, headers, make_task):
    make_task(auth(), labels=["theirs"])

    assert_error(client.patch("/labels/theirs", json={"name": "mine"}, headers=headers), 404)
    assert_error(client.delete("/labels/theirs", headers=headers), 404)
    assert client.get("/labels", headers=headers).json["data"] == []


def test_the_spec_pattern_of_a_label_name_refuses_what_the_field_refuses(client):
    spec = client.get("/openapi.json").json
    pattern = spec["components"]["schemas"]["LabelRename"]["properties"]["name"]["pattern"]
    for name, taken in [("work", True), (" work\t", True), ("a\x0bb", False), ("a\x1fb", False)]:
        assert (re.search(pattern, name) is not None) is taken, name


def test_pages_show_the_labels_every_writer_left(client, headers, make_task):
    """A page reads the names kept on the task row (tasks.label_names, by triggers); each
    task on it shows what GET /tasks/{id} (read from task_labels) shows."""
    first = make_task(headers, labels=["home", "Phone"])["id"]
    second = make_task(headers, labels=["home"])["id"]
    third = make_task(headers)["id"]

    def agree():
        page = client.get("/tasks?page_size=100", headers=headers).json["data"]
        for task in page:
            alone = client.get(f"/tasks/{task['id']}", headers=headers).json
            assert task["labels"] == alone["labels"], task["id"]
        return {task["id"]: task["labels"] for task in page}

    assert agree() == {first: ["home", "Phone"], second: ["home"], third: []}
    steps = [
        ("patch", f"/tasks/{first}", {"labels": ["phone", "errand"]}),
        ("post", "/tasks/bulk", {"action": "label", "ids": [second, third], "labels": ["x"]}),
        ("post", "/tasks/bulk", {"action": "unlabel", "ids": [second], "labels": ["home"]}),
        ("patch", "/labels/x", {"name": "Renamed"}),
        ("delete", "/labels/phone", None),
        ("put", f"/tasks/{third}", {"title": "no labels now"}),
    ]
    for method, path, body in steps:
        response = client.open(path, method=method.upper(), json=body, headers=headers)
        assert response.status_code < 300, (path, response.json)
        agree()
    assert agree() == {first: ["errand"], second: ["Renamed"], third: []}


def test_a_tasks_label_writes_change_it_once(client, headers):
    # The label triggers touch a task only when a label itself goes: a write that removes a
    # label from a task changes it once, so the ETag it answers with is the task's.
    created = client.post("/tasks", json={"title": "t", "labels": ["a", "b"]}, headers=headers)
    url = created.headers["Location"]

    changed = client.patch(
        url, json={"labels": ["b"]}, headers={**headers, "If-Match": created.headers["ETag"]}
    )

    assert changed.status_code == 200
    assert client.get(url, headers=headers).headers["ETag"] == changed.headers["ETag"]
    assert (
        client.patch(
            url, json={"title": "u"}, headers={**headers, "If-Match": changed.headers["ETag"]}
        ).status_code
        == 200
    )


@pytest.mark.committing  # the feed orders commits: each request must be one of its own
def test_rename_and_delete_show_in_the_changes_feed(client, headers, other_transaction):
    labelled = client.post("/tasks", json={"title": "t", "labels": ["a"]}, headers=headers).json
    other = client.post("/tasks", json={"title": "other", "labels": ["z"]}, headers=headers).json

    def changed_since(token: str) -> dict:
        feed = client.get(f"/tasks/changes?since={token}", headers=headers).json
        changed = {task["id"]: task["labels"] for task in feed["changed"]}
        # The other task may come again (another transaction on the server holds the feed's
        # horizon back), only ever as it is now.
        assert changed.pop(other["id"], ["z"]) == ["z"], feed
        return changed

    token = client.get("/tasks/changes", headers=headers).json["sync_token"]
    assert client.patch("/labels/a", json={"name": "c"}, headers=headers).status_code == 200
    assert changed_since(token) == {labelled["id"]: ["c"]}

    token = client.get("/tasks/changes", headers=headers).json["sync_token"]
    assert client.delete("/labels/c", headers=headers).status_code == 204
    assert changed_since(token) == {labelled["id"]: []}
