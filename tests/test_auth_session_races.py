"""A login that overlaps a password change, logout-all, deactivation or deletion never leaves a
session that survives it: the two are interleaved for real on PostgreSQL, each ordering forced
by a lock another connection holds and observed in pg_locks."""

import bcrypt
import pytest
from sqlalchemy import select

from conftest import PASSWORD, own_connection
from taskapp.admin import service as admin_service
from taskapp.auth.models import Session, User
from taskapp.extensions import db
from tests.support.concurrency import InThread, await_lock_waits

pytestmark = [pytest.mark.committing]

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(autouse=True)
def generous_limits(app, monkeypatch):
    for name in ("RATELIMIT_SIGNUP", "RATELIMIT_LOGIN"):
        monkeypatch.setitem(app.config, name, "1000 per minute")


@pytest.fixture
def blocker(app):
    """A connection of the test's own, in a transaction the test commits or rolls back."""
    connection = own_connection()
    connection.autocommit = False
    yield connection
    connection.rollback()
    connection.close()


def user_row(email: str) -> User | None:
    db.session.remove()
    return db.session.scalar(select(User).where(User.email == email))


def live_sessions(user_id: int) -> list[int]:
    db.session.remove()
    return list(
        db.session.scalars(
            select(Session.id).where(Session.user_id == user_id, Session.revoked_at.is_(None))
        )
    )


def login_body(email: str, password: str = PASSWORD) -> dict:
    return {"json": {"email": email, "password": password}}


# --- the revocation first: the login waits for it, then sees it ---------------------------

# What each revocation does in the database, as its service does it: the user's row locked
# (or deleted) first, then the change and the revocation, in one transaction.
IN_FLIGHT = {
    "password change": [
        "SELECT id FROM users WHERE id = %(id)s FOR NO KEY UPDATE",
        "UPDATE users SET password_hash = %(hash)s WHERE id = %(id)s",
        "UPDATE sessions SET revoked_at = now() WHERE user_id = %(id)s AND revoked_at IS NULL",
    ],
    "deactivation": [
        "SELECT id FROM users WHERE id = %(id)s FOR NO KEY UPDATE",
        "UPDATE users SET is_active = false WHERE id = %(id)s",
        "UPDATE sessions SET revoked_at = now() WHERE user_id = %(id)s AND revoked_at IS NULL",
    ],
    "deletion": ["DELETE FROM users WHERE id = %(id)s"],
}


@pytest.mark.parametrize("change", IN_FLIGHT)
def test_a_login_during_a_revocation_waits_and_then_fails(app, make_user, blocker, change):
    email, _ = make_user()
    user_id = user_row(email).id
    new_hash = bcrypt.hashpw(NEW_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    with blocker.cursor() as cursor:
        for statement in IN_FLIGHT[change]:
            cursor.execute(statement, {"id": user_id, "hash": new_hash})

    # The old password is right as far as the login's first read can tell.
    login = InThread(app, "post", "/login", **login_body(email))
    waits = await_lock_waits(app, 1, login)
    assert waits[0][0] in ("transactionid", "tuple"), waits  # on the user's row
    blocker.commit()

    response = login.result()
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.json["message"] == "Invalid email or password"
    assert live_sessions(user_id) == []


def test_a_rehash_in_flight_does_not_fail_a_login_with_the_right_password(app, make_user, blocker):
    """Another login's rehash (same password, new hash) changes the row under this login."""
    email, _ = make_user()
    user_id = user_row(email).id
    rehashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode()
    with blocker.cursor() as cursor:
        cursor.execute("SELECT id FROM users WHERE id = %s FOR NO KEY UPDATE", (user_id,))
        cursor.execute("UPDATE users SET password_hash = %s WHERE id = %s", (rehashed, user_id))

    login = InThread(app, "post", "/login", **login_body(email))
    await_lock_waits(app, 1, login)
    blocker.commit()

    assert login.result().status_code == 200
    assert len(live_sessions(user_id)) == 1


# --- the login first: the revocation waits for it, then revokes its session too -----------


@pytest.fixture
def admin_headers(make_user, login):
    email, password = make_user()
    admin_service.make_admin(email=email)
    return {"Authorization": f"Bearer {login(email, password)['access_token']}"}


def revocations(email: str, user_id: int, token: str, admin_headers: dict) -> dict:
    bearer = {"Authorization": f"Bearer {token}"}
    return {
        "password change": (
            "post",
            "/me/password",
            {
                "json": {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                "headers": bearer,
            },
            204,
        ),
        "logout-all": ("post", "/logout-all", {"headers": bearer}, 204),
        "deactivation": (
            "patch",
            f"/admin/users/{user_id}",
            {"json": {"is_active": False}, "headers": admin_headers},
            200,
        ),
        "deletion": ("delete", "/me", {"json": {"password": PASSWORD}, "headers": bearer}, 204),
    }


@pytest.mark.parametrize("change", ["password change", "logout-all", "deactivation", "deletion"])
def test_a_revocation_during_a_login_revokes_its_session(
    app, make_user, login, blocker, admin_headers, change
):
    email, _ = make_user()
    user_id = user_row(email).id
    first = login(email)
    # The login will hold its share lock on the user's row while its session insert waits
    # for this table lock.
    with blocker.cursor() as cursor:
        cursor.execute("LOCK TABLE sessions IN SHARE MODE")
    racing = InThread(app, "post", "/login", **login_body(email))
    assert await_lock_waits(app, 1, racing) == [("relation", "sessions")]

    method, path, kwargs, status = revocations(
        email, user_id, first["access_token"], admin_headers
    )[change]
    revocation = InThread(app, method, path, **kwargs)
    waits = await_lock_waits(app, 2, racing, revocation)
    # The revocation waits for the login's lock on the user's row, not for the table.
    assert sorted(waits)[-1][0] in ("transactionid", "tuple"), waits
    blocker.rollback()

    logged_in = racing.result()
    assert logged_in.status_code == 200, logged_in.get_data(as_text=True)
    assert revocation.result().status_code == status
    assert live_sessions(user_id) == []
    client = app.test_client()
    refreshed = client.post("/refresh", json={"refresh_token": logged_in.json["refresh_token"]})
    assert refreshed.status_code == 401
    me = client.get("/me", headers={"Authorization": f"Bearer {logged_in.json['access_token']}"})
    assert me.status_code == 401
