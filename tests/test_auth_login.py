"""POST /login: the token pair, the session it opens, uniform failures, bad input, limits."""

import hashlib
import re
from datetime import UTC, datetime, timedelta

import bcrypt
import pytest
from flask_jwt_extended import decode_token
from sqlalchemy import select, update

from conftest import PASSWORD, assert_error, row_count
from taskapp.auth.models import RefreshToken, Session, User
from taskapp.extensions import db

PAIR_KEYS = {"access_token", "refresh_token", "token_type", "expires_in"}
HEX64 = re.compile(r"[0-9a-f]{64}")


def post_login(client, email, password=PASSWORD, **kwargs):
    return client.post("/login", json={"email": email, "password": password}, **kwargs)


def user_id(email: str) -> int:
    return db.session.scalar(select(User.id).where(User.email == email))


def sessions_of(uid: int) -> list[Session]:
    db.session.expire_all()
    return db.session.scalars(select(Session).where(Session.user_id == uid)).all()


@pytest.fixture
def no_login_limit(app, monkeypatch):
    """Tests that need more than five logins (limits are read at request time)."""
    monkeypatch.setitem(app.config, "RATELIMIT_LOGIN", "1000 per minute")


def test_login_returns_a_token_pair_not_to_be_cached(client, make_user):
    email, _ = make_user()

    response = post_login(client, email)

    assert response.status_code == 200
    body = response.json
    assert set(body) == PAIR_KEYS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert isinstance(body["access_token"], str) and isinstance(body["refresh_token"], str)
    assert body["access_token"] != body["refresh_token"]
    assert response.headers["Cache-Control"] == "no-store"


def test_tokens_carry_the_user_and_the_session(app, client, make_user):
    email, _ = make_user()

    body = post_login(client, email).json

    [session] = sessions_of(user_id(email))
    access = decode_token(body["access_token"])
    refresh = decode_token(body["refresh_token"])
    assert access["type"] == "access" and refresh["type"] == "refresh"
    for claims in (access, refresh):
        assert claims["sub"] == str(user_id(email))
        assert claims["sid"] == session.id
    assert access["exp"] - access["iat"] == body["expires_in"]
    # The refresh token lives as long as its session (30 days by default).
    assert abs(refresh["exp"] - session.expires_at.timestamp()) <= 1
    assert abs(refresh["exp"] - refresh["iat"] - timedelta(days=30).total_seconds()) <= 1
    assert access["jti"] != refresh["jti"]


def test_the_access_token_authenticates(client, make_user):
    email, _ = make_user()
    access = post_login(client, email).json["access_token"]

    response = client.get("/tasks", headers={"Authorization": f"Bearer {access}"})

    assert response.status_code == 200


def test_login_opens_a_session_with_a_stored_digest(client, make_user):
    email, _ = make_user()
    before = datetime.now(UTC)

    body = post_login(client, email, headers={"User-Agent": "pytest-agent/1.0"}).json

    [session] = sessions_of(user_id(email))
    assert session.revoked_at is None
    assert session.user_agent == "pytest-agent/1.0"
    assert session.ip_address == "127.0.0.1"
    lifetime = session.expires_at - before
    assert timedelta(days=30) - timedelta(seconds=5) <= lifetime <= timedelta(days=30, seconds=5)
    [token] = db.session.scalars(select(RefreshToken)).all()
    assert token.session_id == session.id
    assert token.user_id == user_id(email)
    assert token.revoked_at is None
    assert HEX64.fullmatch(token.digest)
    assert token.digest == hashlib.sha256(body["refresh_token"].encode()).hexdigest()


def test_each_login_opens_its_own_session(client, make_user):
    email, _ = make_user()

    first = post_login(client, email).json
    second = post_login(client, email).json

    sessions = sessions_of(user_id(email))
    assert len(sessions) == 2
    assert {decode_token(pair["access_token"])["sid"] for pair in (first, second)} == {
        session.id for session in sessions
    }
    assert row_count(RefreshToken) == 2


def test_no_column_of_any_row_holds_a_token_or_the_password(client, make_user):
    email, _ = make_user()
    body = post_login(client, email).json
    secrets = {
        body["refresh_token"],
        body["access_token"],
        decode_token(body["refresh_token"])["jti"],
        decode_token(body["access_token"])["jti"],
        PASSWORD,
    }

    cells = [
        str(value)
        for table in db.metadata.sorted_tables
        for row in db.session.execute(table.select())
        for value in row
        if value is not None
    ]

    assert cells  # the scan saw the user, the session and the digest
    for secret in secrets:
        assert not [cell for cell in cells if secret in cell]


@pytest.mark.parametrize(
    "typed",
    ["USER@EXAMPLE.COM", "User@Example.com", "  user@example.com  ", "\tUser@example.COM\n"],
)
def test_email_matches_case_insensitively(client, make_user, typed):
    make_user("user@example.com")

    response = post_login(client, typed)

    assert response.status_code == 200
    assert len(sessions_of(user_id("user@example.com"))) == 1


def test_every_credential_failure_is_the_same_401(client, make_user, no_login_limit):
    email, _ = make_user()
    deactivated, _ = make_user()
    db.session.execute(update(User).where(User.email == deactivated).values(is_active=False))
    db.session.commit()

    attempts = {
        "unknown email": post_login(client, "nobody@example.com"),
        "unknown, not even an email": post_login(client, "nobody"),
        "wrong password": post_login(client, email, PASSWORD + "!"),
        "wrong case of password": post_login(client, email, PASSWORD.upper()),
        "100-byte password": post_login(client, email, "a" * 100),
        "73-byte password starting with the right one": post_login(
            client, email, PASSWORD + "x" * (73 - len(PASSWORD))
        ),
        "too short password": post_login(client, email, "a"),
        "empty password": post_login(client, email, ""),
        "deactivated user": post_login(client, deactivated),
        # JSON can spell a lone surrogate: bcrypt cannot take it (it has no UTF-8 bytes).
        "password with a lone surrogate": post_login(client, email, PASSWORD + "\ud800"),
        "password with a NUL": post_login(client, email, PASSWORD + "\x00"),
    }

    reference = assert_error(attempts["unknown email"], 401)
    assert "errors" not in reference
    for name, response in attempts.items():
        assert response.status_code == 401, name
        assert response.get_data() == attempts["unknown email"].get_data(), name
        assert response.headers.get("WWW-Authenticate") == "Bearer", name
    assert row_count(Session) == 0
    assert row_count(RefreshToken) == 0


def test_every_credential_failure_costs_a_bcrypt_check(
    app, client, make_user, no_login_limit, monkeypatch
):
    # "Similar timing", checked by the work done rather than by a clock: an unknown email or
    # an unusable password costs one bcrypt check at the configured cost, as a wrong password.
    monkeypatch.setitem(app.config, "BCRYPT_ROUNDS", 5)
    email, _ = make_user()
    checked_costs = []
    checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        checked_costs.append(int(hashed.split(b"$")[2]))
        return checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    attempts = {
        "wrong password": (email, PASSWORD + "!"),
        "unknown email": ("nobody@example.com", PASSWORD),
        "100-byte password": (email, "a" * 100),
    }
    for name, (who, password) in attempts.items():
        checked_costs.clear()
        assert_error(post_login(client, who, password), 401)
        assert checked_costs == [5], name


def test_a_72_byte_password_is_not_matched_by_a_longer_one(client, make_user):
    email, _ = make_user(password="p" * 72)

    assert_error(post_login(client, email, "p" * 73), 401)
    assert post_login(client, email, "p" * 72).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "email"),
        ({"email": "a@example.com"}, "password"),
        ({"email": None, "password": PASSWORD}, "email"),
        ({"email": 42, "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": None}, "password"),
        ({"email": "a@example.com", "password": 12345678}, "password"),
        ({"email": "a@example.com", "password": ["x"]}, "password"),
        ({"email": "a@example.com", "password": PASSWORD, "remember": True}, "remember"),
    ],
)
def test_malformed_login_input_is_rejected(client, body, field):
    assert_error(client.post("/login", json=body), 422, field=field)
    assert row_count(Session) == 0


def test_an_email_that_is_not_valid_unicode_is_rejected(client, make_user):
    make_user("lone@example.com")

    response = post_login(client, "lone\udfff@example.com")

    assert_error(response, 422, field="email")
    assert row_count(Session) == 0


def test_successful_login_carries_rate_limit_headers(client, make_user):
    email, _ = make_user()

    remaining = []
    for _ in range(5):
        response = post_login(client, email)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "5"
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))

    assert remaining == [4, 3, 2, 1, 0]


def test_sixth_login_in_a_minute_is_refused_even_with_the_right_password(client, make_user):
    email, _ = make_user()
    for _ in range(5):
        assert_error(post_login(client, email, "wrong password"), 401)

    response = post_login(client, email)

    body = assert_error(response, 429)
    assert "errors" not in body
    assert int(response.headers["Retry-After"]) > 0
    assert row_count(Session) == 0
    # The limit is per client address: another address may still log in.
    other = post_login(client, email, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert other.status_code == 200
