"""A session idle for REFRESH_IDLE_DAYS can no longer refresh; hashes of a lower cost than
BCRYPT_ROUNDS are redone at the next successful login."""

from datetime import UTC, datetime, timedelta

import bcrypt
import pytest
from sqlalchemy import select

import config
from conftest import PASSWORD, assert_error
from taskapp.auth.models import Session, User
from taskapp.auth.passwords import needs_rehash
from taskapp.extensions import db


def idle_for(days: float) -> None:
    """Make every session last used ``days`` ago."""
    for session in db.session.scalars(select(Session)):
        session.last_used_at = datetime.now(UTC) - timedelta(days=days)
    db.session.commit()


def refresh(client, token: str):
    return client.post("/refresh", json={"refresh_token": token})


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_session_idle_past_the_limit_cannot_refresh(client, make_user, login):
    email, _ = make_user()
    tokens = login(email)
    idle_for(7.01)  # REFRESH_IDLE_DAYS: 7

    assert_error(refresh(client, tokens["refresh_token"]), 401)
    # It is no longer listed either (a live session of the same user is).
    other = login(email)
    sessions = client.get("/sessions", headers=bearer(other["access_token"])).json
    assert [session["current"] for session in sessions] == [True]


def test_a_session_used_within_the_limit_refreshes_and_its_clock_restarts(client, make_user, login):
    email, _ = make_user()
    tokens = login(email)
    idle_for(6.9)

    renewed = refresh(client, tokens["refresh_token"])
    assert renewed.status_code == 200
    db.session.expire_all()
    [session] = db.session.scalars(select(Session)).all()
    assert session.last_used_at > datetime.now(UTC) - timedelta(minutes=1)


def test_the_idle_limit_is_configurable(app, client, make_user, login, monkeypatch):
    monkeypatch.setitem(app.config, "REFRESH_IDLE_DAYS", 1)
    email, _ = make_user()
    tokens = login(email)
    idle_for(1.01)
    assert_error(refresh(client, tokens["refresh_token"]), 401)


def test_the_idle_setting_comes_from_the_environment(monkeypatch):
    assert config.TestingConfig().REFRESH_IDLE_DAYS == 7
    monkeypatch.setenv("REFRESH_IDLE_DAYS", "3")
    assert config.TestingConfig().REFRESH_IDLE_DAYS == 3
    monkeypatch.setenv("REFRESH_IDLE_DAYS", "0")
    with pytest.raises(RuntimeError, match="REFRESH_IDLE_DAYS"):
        config.TestingConfig()


def test_purge_deletes_idle_sessions(runner, client, make_user, login):
    email, _ = make_user()
    login(email)
    idle_for(8)
    kept = login(email)

    result = runner.invoke(args=["tokens", "purge"])

    assert "purged 1 session(s)" in result.output
    assert refresh(client, kept["refresh_token"]).status_code == 200


# --- rehash at login -------------------------------------------------------------------------


def stored_hash(email: str) -> str:
    db.session.expire_all()
    return db.session.scalar(select(User.password_hash).where(User.email == email))


def cost(password_hash: str) -> int:
    return int(password_hash.split("$")[2])


def test_a_hash_of_a_lower_cost_is_redone_at_the_next_login(app, client, make_user, monkeypatch):
    email, _ = make_user()  # hashed at the tests' cost, 4
    old = stored_hash(email)
    monkeypatch.setitem(app.config, "BCRYPT_ROUNDS", 5)

    # A failed login changes nothing.
    assert_error(client.post("/login", json={"email": email, "password": "wrong password"}), 401)
    assert stored_hash(email) == old

    assert client.post("/login", json={"email": email, "password": PASSWORD}).status_code == 200
    new = stored_hash(email)
    assert cost(new) == 5 and new != old
    assert bcrypt.checkpw(PASSWORD.encode(), new.encode())
    # Once at the configured cost, it stays as it is.
    assert client.post("/login", json={"email": email, "password": PASSWORD}).status_code == 200
    assert stored_hash(email) == new


def test_a_hash_at_a_higher_cost_is_kept(app, client, make_user, monkeypatch):
    email, _ = make_user()
    monkeypatch.setitem(app.config, "BCRYPT_ROUNDS", 5)
    client.post("/login", json={"email": email, "password": PASSWORD})
    at_five = stored_hash(email)
    monkeypatch.setitem(app.config, "BCRYPT_ROUNDS", 4)

    assert client.post("/login", json={"email": email, "password": PASSWORD}).status_code == 200
    assert stored_hash(email) == at_five


@pytest.mark.parametrize(
    ("password_hash", "expected"),
    [
        ("$2b$04$" + "a" * 53, True),
        ("$2b$12$" + "a" * 53, False),
        ("$2b$13$" + "a" * 53, False),
        ("not a bcrypt hash", True),
    ],
)
def test_needs_rehash_reads_the_cost(app, monkeypatch, password_hash, expected):
    monkeypatch.setitem(app.config, "BCRYPT_ROUNDS", 12)
    assert needs_rehash(password_hash) is expected
