"""Tasks: create, read, update, replace and delete, each user seeing only their own."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from conftest import assert_error, stored_row
from taskapp.auth.models import User
from taskapp.extensions import db
from taskapp.tasks.models import Task

TASK_KEYS = {
    *("id", "title", "description", "completed", "created_at", "updated_at"),
    *("list_id", "due_at", "priority", "labels", "completed_at", "parent_id", "position"),
    "recurrence",
}
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def stored(task_id: int) -> Task | None:
    """The task as the database has it now (not as the session remembers it)."""
    db.session.expire_all()
    return db.session.get(Task, task_id)


def user_id(email: str) -> int:
    return db.session.scalar(select(User.id).where(User.email == email))


def age(task_id: int) -> None:
    """Move a task's timestamps into the past, so a later update is visible in them."""
    db.session.execute(
        update(Task).where(Task.id == task_id).values(created_at=LONG_AGO, updated_at=LONG_AGO)
    )
    db.session.commit()


def test_create_returns_201_with_location_and_defaults(client, auth):
    response = client.post("/tasks", json={"title": "Buy milk"}, headers=auth())

    assert response.status_code == 201
    task = response.json
    assert set(task) == TASK_KEYS
    assert isinstance(task["id"], int)
    assert response.headers["Location"] == f"/tasks/{task['id']}"
    assert task["title"] == "Buy milk"
    assert task["description"] is None
    assert task["completed"] is False


def test_create_stores_the_task_for_its_owner(client, auth):
    headers = auth("owner@example.com")

    task = client.post(
        "/tasks",
        json={"title": "Write report", "description": "by Friday", "completed": True},
        headers=headers,
    ).json

    saved = stored(task["id"])
    assert saved.user_id == user_id("owner@example.com")
    assert (saved.title, saved.description, saved.completed) == ("Write report", "by Friday", True)
    assert (task["title"], task["description"], task["completed"]) == (
        "Write report",
        "by Friday",
        True,
    )


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("  padded  ", "padded"), ("\tTabbed\n", "Tabbed"), (" " + "x" * 200 + " ", "x" * 200)],
)
def test_create_trims_title(client, auth, sent, kept):
    response = client.post("/tasks", json={"title": sent}, headers=auth())

    assert response.status_code == 201
    assert response.json["title"] == kept
    assert stored(response.json["id"]).title == kept


@pytest.mark.parametrize("description", ["", "d" * 10_000, None])
def test_create_accepts_description_bounds(client, auth, description):
    response = client.post(
        "/tasks", json={"title": "t", "description": description}, headers=auth()
    )

    assert response.status_code == 201
    assert response.json["description"] == description
    assert stored(response.json["id"]).description == description


def test_create_accepts_unicode(client, auth):
    title = "Café ☕ 日本語 " + "é" * 180

    response = client.post("/tasks", json={"title": title}, headers=auth())

    assert response.status_code == 201
    assert response.json["title"] == title.strip()


def test_timestamps_are_iso_8601_utc(client, auth):
    task = client.post("/tasks", json={"title": "t"}, headers=auth()).json

    for name in ("created_at", "updated_at"):
        assert task[name].endswith("+00:00"), task[name]
        moment = datetime.fromisoformat(task[name])
        assert moment.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - moment) < timedelta(minutes=5)


def test_get_returns_the_task(client, auth, make_task):
    headers = auth()
    created = make_task(headers, title="Read", description="a book", completed=True)

    response = client.get(f"/tasks/{created['id']}", headers=headers)

    assert response.status_code == 200
    assert response.json == created


def test_get_missing_task_is_404(client, auth):
    assert_error(client.get("/tasks/12345", headers=auth()), 404)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"title": "  renamed  "}, {"title": "renamed"}),
        ({"description": "new notes"}, {"description": "new notes"}),
        ({"description": None}, {"description": None}),
        ({"completed": True}, {"completed": True}),
        ({}, {}),
    ],
)
def test_patch_changes_only_the_given_fields(client, auth, make_task, changes, expected):
    headers = auth()
    task = make_task(headers, title="Original", description="notes", completed=False)

    response = client.patch(f"/tasks/{task['id']}", json=changes, headers=headers)

    assert response.status_code == 200
    want = {
        "title": "Original",
        "description": "notes",
        "completed": False,
        **expected,
    }
    assert {key: response.json[key] for key in want} == want
    saved = stored(task["id"])
    assert {key: getattr(saved, key) for key in want} == want


def test_patch_bumps_updated_at_only(client, auth, make_task):
    headers = auth()
    task = make_task(headers)
    age(task["id"])

    response = client.patch(f"/tasks/{task['id']}", json={"completed": True}, headers=headers)

    assert response.status_code == 200
    assert datetime.fromisoformat(response.json["created_at"]) == LONG_AGO
    assert datetime.fromisoformat(response.json["updated_at"]) > LONG_AGO
    assert stored(task["id"]).updated_at > LONG_AGO


def test_put_resets_omitted_fields_to_defaults(client, auth, make_task):
    headers = auth()
    task = make_task(headers, title="Old", description="old notes", completed=True)

    response = client.put(f"/tasks/{task['id']}", json={"title": "  New  "}, headers=headers)

    assert response.status_code == 200
    assert response.json["id"] == task["id"]
    assert (response.json["title"], response.json["description"], response.json["completed"]) == (
        "New",
        None,
        False,
    )
    saved = stored(task["id"])
    assert (saved.title, saved.description, saved.completed) == ("New", None, False)


def test_put_replaces_every_field(client, auth, make_task):
    headers = auth()
    task = make_task(headers, title="Old")
    age(task["id"])
    body = {"title": "New", "description": "new notes", "completed": True}

    response = client.put(f"/tasks/{task['id']}", json=body, headers=headers)

    assert response.status_code == 200
    assert {key: response.json[key] for key in body} == body
    assert datetime.fromisoformat(response.json["created_at"]) == LONG_AGO
    assert datetime.fromisoformat(response.json["updated_at"]) > LONG_AGO


def test_put_without_title_is_422_and_changes_nothing(client, auth, make_task):
    headers = auth()
    task = make_task(headers, title="Keep", description="notes", completed=True)
    before = stored_row(Task, task["id"])

    response = client.put(
        f"/tasks/{task['id']}", json={"description": "x", "completed": False}, headers=headers
    )

    assert_error(response, 422, field="title")
    assert stored_row(Task, task["id"]) == before


def test_delete_is_204_then_404(client, auth, make_task):
    headers = auth()
    task = make_task(headers)

    first = client.delete(f"/tasks/{task['id']}", headers=headers)

    assert first.status_code == 204
    assert first.get_data() == b""
    assert stored(task["id"]) is None
    assert_error(client.get(f"/tasks/{task['id']}", headers=headers), 404)
    assert_error(client.delete(f"/tasks/{task['id']}", headers=headers), 404)


def test_delete_leaves_other_tasks(client, auth, make_task):
    headers = auth()
    doomed, kept = make_task(headers, title="doomed"), make_task(headers, title="kept")

    assert client.delete(f"/tasks/{doomed['id']}", headers=headers).status_code == 204

    assert stored(kept["id"]).title == "kept"
    assert [task["id"] for task in client.get("/tasks", headers=headers).json["data"]] == [
        kept["id"]
    ]


OTHER_USER_REQUESTS = [
    ("get", None),
    ("patch", {"title": "hijacked", "completed": True}),
    ("patch", {}),
    ("put", {"title": "hijacked"}),
    ("delete", None),
]


@pytest.mark.parametrize(("method", "body"), OTHER_USER_REQUESTS)
def test_another_users_task_is_404_and_untouched(client, auth, make_task, method, body):
    owner, intruder = auth(), auth()
    task = make_task(owner, title="private", description="secret", completed=False)
    age(task["id"])
    before = stored_row(Task, task["id"])

    response = getattr(client, method)(f"/tasks/{task['id']}", json=body, headers=intruder)

    assert_error(response, 404)
    assert stored_row(Task, task["id"]) == before
    assert client.get(f"/tasks/{task['id']}", headers=owner).json["title"] == "private"


@pytest.mark.parametrize(("method", "body"), OTHER_USER_REQUESTS)
def test_another_users_task_looks_like_a_missing_one(client, auth, make_task, method, body):
    intruder = auth()
    task = make_task(auth())

    foreign = getattr(client, method)(f"/tasks/{task['id']}", json=body, headers=intruder)
    missing = getattr(client, method)(f"/tasks/{task['id'] + 1000}", json=body, headers=intruder)

    assert assert_error(foreign, 404) == assert_error(missing, 404)


def test_another_users_task_never_listed(client, auth, make_task):
    owner, other = auth(), auth()
    make_task(owner, title="private shared-word")
    mine = make_task(other, title="mine shared-word")

    for query in ("", "?search=shared-word", "?completed=false", "?page_size=100"):
        data = client.get(f"/tasks{query}", headers=other).json["data"]
        assert [task["id"] for task in data] == [mine["id"]], query
