"""The account routes: /me, password change, sessions, logout-all, account deletion."""

import pytest
from sqlalchemy import func, select

from conftest import PASSWORD, assert_error, bearer
from taskapp.auth.models import RefreshToken, Session, User
from taskapp.extensions import db
from taskapp.tasks.models import Task


@pytest.fixture
def user(make_user, login):
    """A user with two sessions: returns (email, first token pair, second token pair)."""
    email, _ = make_user()
    return email, login(email), login(email)


def test_me_returns_the_account(client, user):
    email, tokens, _ = user
    response = client.get("/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert set(response.json) == {"id", "email", "email_verified", "role", "created_at"}
    assert response.json["email"] == email
    assert response.json["role"] == "user"


def test_sessions_lists_active_sessions_and_marks_current(client, user):
    _, first, second = user
    response = client.get("/sessions", headers=bearer(second["access_token"]))
    assert response.status_code == 200
    sessions = response.json
    assert len(sessions) == 2
    assert [s["current"] for s in sessions] == [True, False]
    assert set(sessions[0]) == {"id", "created_at", "last_used_at", "user_agent", "current"}


def test_delete_session_revokes_its_tokens_at_once(client, user):
    _, first, second = user
    sessions = client.get("/sessions", headers=bearer(second["access_token"])).json
    first_id = next(s["id"] for s in sessions if not s["current"])
    response = client.delete(f"/sessions/{first_id}", headers=bearer(second["access_token"]))
    assert response.status_code == 204
    assert_error(client.get("/tasks", headers=bearer(first["access_token"])), 401)
    assert_error(client.post("/refresh", json={"refresh_token": first["refresh_token"]}), 401)
    assert client.get("/tasks", headers=bearer(second["access_token"])).status_code == 200
    remaining = client.get("/sessions", headers=bearer(second["access_token"])).json
    assert [s["id"] for s in remaining] != [first_id] and len(remaining) == 1


def test_delete_another_users_session_is_404(client, user, auth):
    _, tokens, _ = user
    mine = client.get("/sessions", headers=bearer(tokens["access_token"])).json[0]["id"]
    stranger = auth()
    assert_error(client.delete(f"/sessions/{mine}", headers=stranger), 404)
    assert_error(client.delete("/sessions/999999", headers=stranger), 404)
    assert client.get("/me", headers=bearer(tokens["access_token"])).status_code == 200


def test_logout_all_revokes_every_session(client, user):
    email, first, second = user
    assert client.post("/logout-all", headers=bearer(first["access_token"])).status_code == 204
    for tokens in (first, second):
        assert_error(client.get("/me", headers=bearer(tokens["access_token"])), 401)
        assert_error(client.post("/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    live = db.session.scalar(
        select(func.count()).select_from(Session).where(Session.revoked_at.is_(None))
    )
    assert live == 0


def test_password_change_revokes_sessions_and_old_password(client, user, login):
    email, first, second = user
    response = client.post(
        "/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=bearer(first["access_token"]),
    )
    assert response.status_code == 204
    for tokens in (first, second):
        assert_error(client.get("/me", headers=bearer(tokens["access_token"])), 401)
    assert_error(client.post("/login", json={"email": email, "password": PASSWORD}), 401)
    assert login(email, "a brand new secret")["access_token"]


@pytest.mark.parametrize(
    "body, status",
    [
        ({"current_password": "wrong password", "new_password": "a brand new secret"}, 403),
        ({"current_password": PASSWORD, "new_password": "short"}, 422),
        ({"current_password": PASSWORD, "new_password": "x" * 73}, 422),
        ({"current_password": PASSWORD}, 422),
        ({"current_password": PASSWORD, "new_password": "long enough", "extra": 1}, 422),
    ],
)
def test_password_change_refuses_bad_input_and_changes_nothing(client, user, body, status):
    email, tokens, _ = user
    before = db.session.scalar(select(User.password_hash).where(User.email == email))
    response = client.post("/me/password", json=body, headers=bearer(tokens["access_token"]))
    assert_error(response, status)
    db.session.expire_all()
    assert db.session.scalar(select(User.password_hash).where(User.email == email)) == before
    assert client.get("/me", headers=bearer(tokens["access_token"])).status_code == 200


def test_delete_account_removes_tasks_and_sessions(client, user, make_task):
    email, tokens, _ = user
    headers = bearer(tokens["access_token"])
    make_task(headers, title="doomed")
    user_id = client.get("/me", headers=headers).json["id"]
    response = client.delete("/me", json={"password": PASSWORD}, headers=headers)
    assert response.status_code == 204
    assert db.session.get(User, user_id) is None
    for model in (Task, Session, RefreshToken):
        count = db.session.scalar(
            select(func.count()).select_from(model).where(model.user_id == user_id)
        )
        assert count == 0, model
    assert_error(client.get("/me", headers=headers), 401)
    assert_error(client.post("/login", json={"email": email, "password": PASSWORD}), 401)


def test_delete_account_needs_the_password(client, user, make_task):
    _, tokens, _ = user
    headers = bearer(tokens["access_token"])
    make_task(headers)
    assert_error(client.delete("/me", json={"password": "not my password"}, headers=headers), 403)
    assert_error(client.delete("/me", json={}, headers=headers), 422)
    assert client.get("/tasks", headers=headers).json["meta"]["total"] == 1


@pytest.mark.parametrize(
    "method, path",
    [("get", "/me"), ("get", "/sessions"), ("post", "/logout-all"), ("delete", "/sessions/1")],
)
def test_account_routes_need_an_access_token(client, user, method, path):
    _, tokens, _ = user
    assert_error(getattr(client, method)(path), 401)
    assert_error(getattr(client, method)(path, headers=bearer(tokens["refresh_token"])), 401)
