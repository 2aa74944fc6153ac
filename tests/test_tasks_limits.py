"""Per-user limits on tasks: RATELIMIT_TASK_WRITES (429) over every write route, and the
MAX_TASKS_PER_USER quota (409), which concurrent creates cannot race past."""

import threading

import pytest
from sqlalchemy import func, select

import config
from conftest import PASSWORD, assert_error
from taskapp.extensions import db
from taskapp.tasks.models import Task


def task_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Task))


# --- the write limit --------------------------------------------------------------------------


def test_task_writes_are_limited_per_user_across_routes(app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_TASK_WRITES", "4 per minute")
    headers, other = auth(), auth()

    task = client.post("/tasks", json={"title": "one"}, headers=headers).json
    assert (
        client.patch(f"/tasks/{task['id']}", json={"completed": True}, headers=headers).status_code
        == 200
    )
    assert (
        client.put(f"/tasks/{task['id']}", json={"title": "two"}, headers=headers).status_code
        == 200
    )
    assert client.delete(f"/tasks/{task['id']}", headers=headers).status_code == 204

    refused = client.post("/tasks", json={"title": "five"}, headers=headers)
    body = assert_error(refused, 429)
    assert "Rate limit exceeded" in body["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Limit"] == "4"
    assert task_count() == 0
    # Reads are not writes, and another user (from the same address) has a count of its own.
    assert client.get("/tasks", headers=headers).status_code == 200
    assert client.post("/tasks", json={"title": "mine"}, headers=other).status_code == 201


def test_list_and_label_writes_count_against_the_same_limit(app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_TASK_WRITES", "5 per minute")
    headers = auth()
    work = client.post("/lists", json={"name": "work"}, headers=headers).json
    client.post("/tasks", json={"title": "t", "labels": ["home"]}, headers=headers)
    assert (
        client.patch(f"/lists/{work['id']}", json={"name": "job"}, headers=headers).status_code
        == 200
    )
    renamed = client.patch("/labels/home", json={"name": "house"}, headers=headers)
    assert renamed.status_code == 200
    assert client.delete("/labels/house", headers=headers).status_code == 204
    assert_error(client.delete(f"/lists/{work['id']}", headers=headers), 429)
    assert client.get(f"/lists/{work['id']}", headers=headers).status_code == 200


def test_every_write_of_tasks_lists_and_labels_is_limited(client):
    """The whole class: each route that changes a user's tasks, lists or labels."""
    paths = client.get("/openapi.json").json["paths"]
    writes = [
        (path, method)
        for path, operations in paths.items()
        if path.startswith(("/tasks", "/lists", "/labels"))
        for method in operations
        if method in ("post", "put", "patch", "delete")
    ]
    assert len(writes) >= 10
    for path, method in writes:
        responses = paths[path][method]["responses"]
        assert "Retry-After" in responses.get("429", {}).get("headers", {}), (path, method)


def test_the_write_limit_defaults_to_120_per_minute_and_is_configurable(monkeypatch):
    assert config.TestingConfig().RATELIMIT_TASK_WRITES == "120 per minute"
    monkeypatch.setenv("RATELIMIT_TASK_WRITES", "10 per second")
    assert config.TestingConfig().RATELIMIT_TASK_WRITES == "10 per second"
    monkeypatch.setenv("RATELIMIT_TASK_WRITES", "lots")
    with pytest.raises(RuntimeError, match="RATELIMIT_TASK_WRITES"):
        config.TestingConfig()


def test_the_spec_documents_the_write_limit_and_the_quota(client):
    paths = client.get("/openapi.json").json["paths"]
    for path, method in [
        ("/tasks", "post"),
        ("/tasks/{task_id}", "patch"),
        ("/tasks/{task_id}", "put"),
        ("/tasks/{task_id}", "delete"),
    ]:
        responses = paths[path][method]["responses"]
        assert "Retry-After" in responses["429"]["headers"], (path, method)
    assert "MAX_TASKS_PER_USER" in paths["/tasks"]["post"]["responses"]["409"]["description"]
    assert "429" not in paths["/tasks"]["get"]["responses"]


# --- the quota --------------------------------------------------------------------------------


def test_a_user_at_the_quota_gets_409_and_nothing_is_created(app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_TASKS_PER_USER", 3)
    headers, other = auth(), auth()
    for number in range(3):
        assert (
            client.post("/tasks", json={"title": f"t{number}"}, headers=headers).status_code == 201
        )

    body = assert_error(client.post("/tasks", json={"title": "over"}, headers=headers), 409)

    assert "at most 3 tasks" in body["message"]
    listed = client.get("/tasks", headers=headers).json
    assert listed["meta"]["total"] == 3
    assert "over" not in [task["title"] for task in listed["data"]]
    # Changes are not creations; another user has a quota of its own; deleting frees a place.
    first = listed["data"][0]["id"]
    assert client.patch(f"/tasks/{first}", json={"title": "x"}, headers=headers).status_code == 200
    assert client.post("/tasks", json={"title": "theirs"}, headers=other).status_code == 201
    assert client.delete(f"/tasks/{first}", headers=headers).status_code == 204
    assert client.post("/tasks", json={"title": "again"}, headers=headers).status_code == 201


def test_a_quota_of_zero_is_no_quota(app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_TASKS_PER_USER", 0)
    headers = auth()
    for number in range(5):
        assert (
            client.post("/tasks", json={"title": f"t{number}"}, headers=headers).status_code == 201
        )


def test_the_quota_defaults_to_100000_and_is_configurable(monkeypatch):
    assert config.TestingConfig().MAX_TASKS_PER_USER == 100_000
    monkeypatch.setenv("MAX_TASKS_PER_USER", "0")
    assert config.TestingConfig().MAX_TASKS_PER_USER == 0
    monkeypatch.setenv("MAX_TASKS_PER_USER", "-1")
    with pytest.raises(RuntimeError, match="MAX_TASKS_PER_USER"):
        config.TestingConfig()


@pytest.mark.committing
def test_concurrent_creates_cannot_race_past_the_quota(app, make_user, login, monkeypatch):
    quota, attempts = 5, 16
    monkeypatch.setitem(app.config, "MAX_TASKS_PER_USER", quota)
    email, _ = make_user()
    headers = {"Authorization": f"Bearer {login(email, PASSWORD)['access_token']}"}
    barrier = threading.Barrier(attempts)
    statuses = []

    def create(number: int) -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(
            client.post("/tasks", json={"title": f"t{number}"}, headers=headers).status_code
        )

    threads = [threading.Thread(target=create, args=(n,)) for n in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(statuses) == [201] * quota + [409] * (attempts - quota)
    db.session.remove()
    assert db.session.scalar(select(func.count()).select_from(Task)) == quota
