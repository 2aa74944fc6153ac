"""Every kind of row a client makes the server store has a limit (taskapp/quotas.py): labels
per user, labels per task, lists, Idempotency-Keys and sessions (tasks: test_tasks_limits.py).
Each is a 409 naming its setting that changes nothing, holds under concurrent writers, and
is 0 for no limit."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

import config
from conftest import PASSWORD, assert_error, bearer
from taskapp.auth.models import Session
from taskapp.extensions import db
from taskapp.idempotency.models import IdempotencyKey
from taskapp.quotas import QUOTAS
from taskapp.tasks.models import Label, Task, TaskList
from taskapp.tasks.schemas import LABELS_PER_TASK


def count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def assert_over_limit(response, setting: str, limit: int) -> None:
    body = assert_error(response, 409)
    assert setting in body["message"] and f"at most {limit} " in body["message"]


def race(app, attempts: int, request) -> list[int]:
    """``request(client, n)`` from ``attempts`` threads released at once; their statuses."""
    barrier = threading.Barrier(attempts)
    statuses = []

    def run(number: int) -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(request(client, number).status_code)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    db.session.remove()
    return sorted(statuses)


@pytest.fixture
def committed_headers(app, make_user, login):
    email, _ = make_user()
    return bearer(login(email, PASSWORD)["access_token"])


# --- labels per user ---------------------------------------------------------------------------


def test_labels_per_user_hold_on_every_writer_that_makes_labels(app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "LABELS_PER_USER", 3)
    headers = auth()
    task = client.post("/tasks", json={"title": "t", "labels": ["a", "b", "c"]}, headers=headers)
    assert task.status_code == 201
    task_id = task.json["id"]

    created = client.post("/tasks", json={"title": "new", "labels": ["d"]}, headers=headers)
    patched = client.patch(f"/tasks/{task_id}", json={"labels": ["a", "e"]}, headers=headers)
    replaced = client.put(
        f"/tasks/{task_id}", json={"title": "t", "labels": ["f"]}, headers=headers
    )
    bulk = client.post(
        "/tasks/bulk", json={"action": "label", "ids": [task_id], "labels": ["g"]}, headers=headers
    )

    for response in (created, patched, replaced, bulk):
        assert_over_limit(response, "LABELS_PER_USER", 3)
    assert count(Label) == 3 and count(Task) == 1
    assert client.get(f"/tasks/{task_id}", headers=headers).json["labels"] == ["a", "b", "c"]
    # Labels the user has are reused freely; deleting one frees a place.
    reused = client.post("/tasks", json={"title": "r", "labels": ["A", "b"]}, headers=headers)
    assert reused.status_code == 201
    assert client.delete("/labels/c", headers=headers).status_code == 204
    again = client.post("/tasks", json={"title": "n", "labels": ["d"]}, headers=headers)
    assert again.status_code == 201


@pytest.mark.committing
def test_concurrent_writers_cannot_race_past_the_label_limit(app, committed_headers, monkeypatch):
    monkeypatch.setitem(app.config, "LABELS_PER_USER", 3)

    def create(client, number):
        body = {"title": f"t{number}", "labels": [f"label {number}"]}
        return client.post("/tasks", json=body, headers=committed_headers)

    assert race(app, 8, create) == [201] * 3 + [409] * 5
    assert count(Label) == 3


def test_bulk_label_cannot_put_more_than_the_limit_on_a_task(client, auth):
    headers = auth()
    full = [f"l{n}" for n in range(LABELS_PER_TASK)]
    task_id = client.post("/tasks", json={"title": "t", "labels": full}, headers=headers).json["id"]
    other = client.post("/tasks", json={"title": "o"}, headers=headers).json["id"]

    response = client.post(
        "/tasks/bulk",
        json={"action": "label", "ids": [other, task_id], "labels": ["x"]},
        headers=headers,
    )

    assert_over_limit(response, "labels on one task", LABELS_PER_TASK)
    assert len(client.get(f"/tasks/{task_id}", headers=headers).json["labels"]) == LABELS_PER_TASK
    assert client.get(f"/tasks/{other}", headers=headers).json["labels"] == []
    assert count(Label, Label.name == "x") == 0


# --- lists -------------------------------------------------------------------------------------


@pytest.mark.committing
def test_concurrent_creates_cannot_race_past_the_list_limit(app, committed_headers, monkeypatch):
    monkeypatch.setitem(app.config, "LISTS_PER_USER", 3)

    def create(client, number):
        return client.post("/lists", json={"name": f"l{number}"}, headers=committed_headers)

    assert race(app, 8, create) == [201] * 3 + [409] * 5
    assert count(TaskList) == 3


def test_a_list_limit_of_zero_is_no_limit(app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "LISTS_PER_USER", 0)
    headers = auth()
    for number in range(3):
        response = client.post("/lists", json={"name": f"l{number}"}, headers=headers)
        assert response.status_code == 201


# --- idempotency keys --------------------------------------------------------------------------


def keyed(headers: dict, key: str) -> dict:
    return {**headers, "Idempotency-Key": key}


def test_idempotency_keys_in_use_are_limited_per_user(app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "IDEMPOTENCY_KEYS_PER_USER", 2)
    headers, other = auth(), auth()
    for key in ("k1", "k2"):
        response = client.post("/tasks", json={"title": key}, headers=keyed(headers, key))
        assert response.status_code == 201

    over = client.post("/tasks", json={"title": "k3"}, headers=keyed(headers, "k3"))

    assert_over_limit(over, "IDEMPOTENCY_KEYS_PER_USER", 2)
    assert count(Task) == 2 and count(IdempotencyKey) == 2
    # A replay is no new key; a write without a key and another user are not held back.
    replay = client.post("/tasks", json={"title": "k1"}, headers=keyed(headers, "k1"))
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert client.post("/tasks", json={"title": "bare"}, headers=headers).status_code == 201
    theirs = client.post("/tasks", json={"title": "k3"}, headers=keyed(other, "k3"))
    assert theirs.status_code == 201
    # A key past IDEMPOTENCY_KEY_HOURS is no longer in use.
    expired = datetime.now(UTC) - timedelta(hours=app.config["IDEMPOTENCY_KEY_HOURS"], minutes=1)
    with app.app_context():
        db.session.execute(
            update(IdempotencyKey).where(IdempotencyKey.key == "k1").values(created_at=expired)
        )
        db.session.commit()
    later = client.post("/tasks", json={"title": "k3"}, headers=keyed(headers, "k3"))
    assert later.status_code == 201


@pytest.mark.committing
def test_concurrent_writes_cannot_race_past_the_key_limit(app, committed_headers, monkeypatch):
    monkeypatch.setitem(app.config, "IDEMPOTENCY_KEYS_PER_USER", 3)

    def create(client, number):
        headers = keyed(committed_headers, f"key {number}")
        return client.post("/tasks", json={"title": f"t{number}"}, headers=headers)

    assert race(app, 8, create) == [201] * 3 + [409] * 5
    assert count(IdempotencyKey) == 3 and count(Task) == 3


# --- sessions ----------------------------------------------------------------------------------


def test_a_login_past_the_session_limit_revokes_the_oldest(app, client, make_user, monkeypatch):
    monkeypatch.setitem(app.config, "SESSIONS_PER_USER", 2)
    email, _ = make_user()
    pairs = []
    for _ in range(3):
        response = client.post("/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200
        pairs.append(response.json)

    oldest, newest = pairs[0], pairs[-1]
    assert_error(client.get("/me", headers=bearer(oldest["access_token"])), 401)
    refresh = client.post("/refresh", json={"refresh_token": oldest["refresh_token"]})
    assert_error(refresh, 401)
    listed = client.get("/sessions", headers=bearer(newest["access_token"])).json
    assert len(listed) == 2
    assert count(Session, Session.revoked_at.is_(None)) == 2


@pytest.mark.committing
def test_concurrent_logins_cannot_race_past_the_session_limit(app, make_user, monkeypatch):
    monkeypatch.setitem(app.config, "SESSIONS_PER_USER", 2)
    for limit in ("RATELIMIT_LOGIN", "RATELIMIT_LOGIN_EMAIL"):
        monkeypatch.setitem(app.config, limit, "100 per minute")
    email, _ = make_user()

    def log_in(client, number):
        return client.post("/login", json={"email": email, "password": PASSWORD})

    assert race(app, 6, log_in) == [200] * 6
    assert count(Session, Session.revoked_at.is_(None)) == 2


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "default"),
    [
        ("MAX_TASKS_PER_USER", 100_000),
        ("LISTS_PER_USER", 100),
        ("LABELS_PER_USER", 1000),
        ("IDEMPOTENCY_KEYS_PER_USER", 1000),
        ("SESSIONS_PER_USER", 50),
    ],
)
def test_each_limit_has_a_default_and_refuses_a_negative_value(monkeypatch, setting, default):
    assert getattr(config.TestingConfig(), setting) == default
    monkeypatch.setenv(setting, "0")
    assert getattr(config.TestingConfig(), setting) == 0
    monkeypatch.setenv(setting, "-1")
    with pytest.raises(RuntimeError, match=setting):
        config.TestingConfig()


def test_every_limit_is_documented(client):
    with open("docs/configuration.md", encoding="utf-8") as handle:
        documented = handle.read()
    for quota in QUOTAS.values():
        if quota.fixed is None:
            assert f"`{quota.setting}`" in documented, quota.setting
    assert "`SESSIONS_PER_USER`" in documented
