"""A dead session is refused on every route, though its check rides with the request's first
statement (taskapp.auth.session_check): nothing is read or written for it, and it is a 401
whatever else the request would have answered."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from conftest import assert_error
from taskapp.auth.models import Session, User
from taskapp.extensions import db
from taskapp.tasks.models import Task


def revoke(client, headers):
    assert client.post("/logout-all", headers=headers).status_code == 204


def expire(client, headers):
    db.session.execute(update(Session).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    db.session.commit()


def deactivate(client, headers):
    db.session.execute(update(User).values(is_active=False))
    db.session.commit()


KILLS = [revoke, expire, deactivate]


def task_titles() -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(Task.title).order_by(Task.id)))


@pytest.mark.parametrize("kill", KILLS)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/tasks", None),
        ("get", "/tasks/{id}", None),
        ("get", "/tasks/changes", None),
        ("post", "/tasks", {"title": "after"}),
        ("post", "/tasks", {"title": ""}),  # a 422 for a live session
        ("patch", "/tasks/{id}", {"completed": True}),
        ("patch", "/tasks/{id}", {"title": "after", "labels": ["x"]}),
        ("patch", "/tasks/{id}", {"nope": 1}),  # a 422 for a live session
        ("delete", "/tasks/{id}", None),
        ("delete", "/tasks/99999", None),  # a 404 for a live session
        ("post", "/tasks/bulk", {"action": "complete", "ids": ["{id}"]}),
        ("get", "/labels", None),
        ("get", "/me", None),
    ],
)
def test_a_dead_session_is_refused_and_changes_nothing(
    client, auth, make_task, kill, method, path, body
):
    headers = auth()
    task = make_task(headers, title="before")
    kill(client, headers)
    path = path.format(id=task["id"])
    if body and body.get("ids"):
        body = {**body, "ids": [task["id"]]}
    response = getattr(client, method)(path, json=body, headers=headers)
    assert_error(response, 401)
    assert response.json["message"] == "Session is no longer valid"
    assert task_titles() == ["before"]
    completed = db.session.scalar(select(Task.completed).where(Task.id == task["id"]))
    assert completed is False


def test_a_dead_session_with_a_known_etag_is_not_answered_304(client, auth, make_task):
    headers = auth()
    make_task(headers)
    etag = client.get("/tasks", headers=headers).headers["ETag"]
    revoke(client, headers)
    response = client.get("/tasks", headers={**headers, "If-None-Match": etag})
    assert_error(response, 401)


def test_a_dead_session_over_its_write_limit_is_told_401_not_429(
    app, client, auth, make_task, monkeypatch
):
    monkeypatch.setitem(app.config, "RATELIMIT_TASK_WRITES", "1 per minute")
    headers = auth()
    make_task(headers)
    revoke(client, headers)
    assert_error(client.post("/tasks", json={"title": "x"}, headers=headers), 401)


def test_another_session_of_the_user_lives_on(client, make_user, login, make_task):
    email, password = make_user()
    first = {"Authorization": f"Bearer {login(email, password)['access_token']}"}
    second = {"Authorization": f"Bearer {login(email, password)['access_token']}"}
    make_task(first)
    sessions = db.session.scalars(select(Session.id).order_by(Session.id)).all()
    assert client.delete(f"/sessions/{sessions[0]}", headers=second).status_code == 204
    assert_error(client.get("/tasks", headers=first), 401)
    assert client.get("/tasks", headers=second).status_code == 200
    assert client.post("/tasks", json={"title": "y"}, headers=second).status_code == 201
    assert db.session.scalar(select(func.count()).select_from(Task)) == 2
