"""Task lists: CRUD scoped to the user, unique names, a quota, deletion with the tasks."""

import pytest
from sqlalchemy import select

from conftest import assert_error
from taskapp.extensions import db
from taskapp.tasks.models import Task, TaskList

LIST_KEYS = {"id", "name", "position", "created_at", "updated_at"}


@pytest.fixture
def headers(auth):
    return auth()


@pytest.fixture
def make_list(client):
    def make(headers: dict, name: str = "Groceries") -> dict:
        response = client.post("/lists", json={"name": name}, headers=headers)
        assert response.status_code == 201, response.json
        return response.json

    return make


def test_create_get_rename_and_list(client, headers, make_list):
    created = client.post("/lists", json={"name": "  Work  "}, headers=headers)

    assert created.status_code == 201
    assert set(created.json) == LIST_KEYS
    assert created.json["name"] == "Work"
    assert created.headers["Location"] == f"/lists/{created.json['id']}"
    url = created.headers["Location"]
    assert client.get(url, headers=headers).json == created.json

    renamed = client.patch(url, json={"name": "Office"}, headers=headers)
    assert renamed.status_code == 200
    assert renamed.json["name"] == "Office"
    second = make_list(headers, "Home")
    listed = client.get("/lists", headers=headers).json["data"]
    assert [item["name"] for item in listed] == ["Office", "Home"]  # in creation order
    assert listed[0]["position"] < listed[1]["position"] == second["position"]


def test_names_are_unique_per_user(client, auth, headers, make_list):
    make_list(headers, "Work")
    other = make_list(headers, "Home")

    assert_error(client.post("/lists", json={"name": "Work"}, headers=headers), 409)
    renamed = client.patch(f"/lists/{other['id']}", json={"name": "Work"}, headers=headers)
    assert_error(renamed, 409)
    make_list(auth(), "Work")  # another user may
    names = db.session.scalars(select(TaskList.name).where(TaskList.id == other["id"]))
    assert list(names) == ["Home"]


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 101}, {"name": 5}]
)
def test_invalid_names_are_422(client, headers, body):
    assert_error(client.post("/lists", json=body, headers=headers), 422, field="name")
    assert db.session.scalar(select(TaskList.id)) is None


def test_another_users_list_is_404(client, auth, headers, make_list):
    theirs = make_list(auth())
    url = f"/lists/{theirs['id']}"

    assert_error(client.get(url, headers=headers), 404)
    assert_error(client.patch(url, json={"name": "mine"}, headers=headers), 404)
    assert_error(client.delete(url, headers=headers), 404)
    assert_error(
        client.post("/tasks", json={"title": "t", "list_id": theirs["id"]}, headers=headers), 404
    )
    assert client.get("/lists", headers=headers).json["data"] == []
    assert (
        db.session.scalar(select(TaskList.name).where(TaskList.id == theirs["id"])) == "Groceries"
    )


def test_quota(app, client, headers, monkeypatch):
    monkeypatch.setitem(app.config, "LISTS_PER_USER", 2)
    for name in ("a", "b"):
        assert client.post("/lists", json={"name": name}, headers=headers).status_code == 201

    body = assert_error(client.post("/lists", json={"name": "c"}, headers=headers), 409)

    assert "2 lists" in body["message"]
    assert db.session.scalar(select(db.func.count()).select_from(TaskList)) == 2


def test_deleting_a_list_deletes_its_tasks(client, headers, make_list, make_task):
    # The kept counts after a list's deletion: tests/test_tasks_totals.py.
    doomed = make_list(headers, "Doomed")
    kept = make_list(headers, "Kept")
    for _ in range(3):
        make_task(headers, list_id=doomed["id"], completed=True)
    in_kept = make_task(headers, list_id=kept["id"])
    in_inbox = make_task(headers)

    assert client.delete(f"/lists/{doomed['id']}", headers=headers).status_code == 204

    assert_error(client.get(f"/lists/{doomed['id']}", headers=headers), 404)
    db.session.expire_all()
    remaining = set(db.session.scalars(select(Task.id)))
    assert remaining == {in_kept["id"], in_inbox["id"]}


def test_spec_documents_the_list_routes(client):
    spec = client.get("/openapi.json").json
    assert {"get", "post"} <= set(spec["paths"]["/lists"])
    item = spec["paths"]["/lists/{list_id}"]
    assert {"get", "patch", "delete"} <= set(item)
    assert "409" in spec["paths"]["/lists"]["post"]["responses"]
    assert "tasks" in item["delete"]["summary"]
    assert "Location" in spec["paths"]["/lists"]["post"]["responses"]["201"]["headers"]
