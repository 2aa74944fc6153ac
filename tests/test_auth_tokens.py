"""POST /refresh and /logout: rotation, reuse detection, revocation, bad tokens, limits."""

import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from flask_jwt_extended import decode_token
from sqlalchemy import select, update

from conftest import TEST_JWT_SECRET, assert_error, bearer
from taskapp.auth.models import RefreshToken, Session, User
from taskapp.auth.tokens import token_digest
from taskapp.extensions import db

PAIR_KEYS = {"access_token", "refresh_token", "token_type", "expires_in"}
OTHER_SECRET = "another-secret-key-that-is-also-long-enough-9876543210"
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
VIAS = ["body", "bearer"]


def present(client, path: str, token: str, via: str):
    """POST the refresh token to ``path`` in the JSON body or as the Bearer credential."""
    if via == "body":
        return client.post(path, json={"refresh_token": token})
    return client.post(path, headers=bearer(token))


def refresh(client, token: str, via: str = "body"):
    return present(client, "/refresh", token, via)


def logout(client, token: str, via: str = "body"):
    return present(client, "/logout", token, via)


def can_use_access(client, token: str) -> bool:
    status = client.get("/tasks", headers=bearer(token)).status_code
    assert status in (200, 401)
    return status == 200


def assert_unauthorized(response) -> dict:
    """401 in the envelope, never flask-jwt-extended's default 422 {"msg"}."""
    body = assert_error(response, 401)
    assert "msg" not in body
    assert response.headers["WWW-Authenticate"] == "Bearer"
    return body


def craft(claims: dict, key: str = TEST_JWT_SECRET, algorithm: str = "HS256", **changes) -> str:
    """A JWT with ``claims`` (updated by ``changes``), signed with ``key``."""
    return jwt.encode({**claims, **changes}, key, algorithm=algorithm)


def stored_session(token: str) -> Session:
    db.session.expire_all()
    return db.session.get(Session, decode_token(token, allow_expired=True)["sid"])


def stored_token(token: str) -> RefreshToken | None:
    db.session.expire_all()
    return db.session.scalar(select(RefreshToken).where(RefreshToken.digest == token_digest(token)))


@pytest.fixture
def user(make_user):
    email, _ = make_user()
    return email


@pytest.fixture
def pair(user, login):
    """A fresh login's token pair."""
    return login(user)


# --- rotation ---------------------------------------------------------------------------


@pytest.mark.parametrize("via", VIAS)
def test_refresh_returns_a_new_pair_in_the_same_session(client, pair, via):
    response = refresh(client, pair["refresh_token"], via)

    assert response.status_code == 200
    body = response.json
    assert set(body) == PAIR_KEYS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert response.headers["Cache-Control"] == "no-store"
    assert body["refresh_token"] != pair["refresh_token"]
    assert body["access_token"] != pair["access_token"]
    old, new = decode_token(pair["refresh_token"]), decode_token(body["refresh_token"])
    access = decode_token(body["access_token"])
    assert isinstance(access["sub"], str)
    assert access["sub"] == new["sub"] == old["sub"]
    assert access["sid"] == new["sid"] == old["sid"]
    assert access["type"] == "access" and new["type"] == "refresh"
    assert can_use_access(client, body["access_token"])


def test_rotation_spends_the_old_digest_and_stores_the_new_one(client, pair):
    session = stored_session(pair["refresh_token"])
    session.last_used_at = datetime.now(UTC) - timedelta(days=6)  # within REFRESH_IDLE_DAYS
    db.session.commit()

    new = refresh(client, pair["refresh_token"]).json

    spent, issued = stored_token(pair["refresh_token"]), stored_token(new["refresh_token"])
    assert issued.digest == hashlib.sha256(new["refresh_token"].encode()).hexdigest()
    assert spent.revoked_at is not None
    assert issued.revoked_at is None
    assert issued.session_id == spent.session_id
    assert issued.user_id == spent.user_id
    session = stored_session(new["refresh_token"])
    assert session.revoked_at is None
    assert session.last_used_at > datetime.now(UTC) - timedelta(minutes=1)


def test_rotation_never_extends_the_session(client, pair):
    first = decode_token(pair["refresh_token"])

    new = refresh(client, pair["refresh_token"]).json

    rotated = decode_token(new["refresh_token"])
    assert abs(rotated["exp"] - first["exp"]) <= 1
    assert (
        stored_token(new["refresh_token"]).expires_at
        == stored_session(new["refresh_token"]).expires_at
    )


def test_a_chain_of_rotations_keeps_working(client, pair):
    tokens = pair
    for _ in range(3):
        response = refresh(client, tokens["refresh_token"])
        assert response.status_code == 200
        tokens = response.json
    assert can_use_access(client, tokens["access_token"])


@pytest.mark.parametrize("via", VIAS)
def test_a_spent_refresh_token_is_refused(client, pair, via):
    assert refresh(client, pair["refresh_token"]).status_code == 200

    assert_unauthorized(refresh(client, pair["refresh_token"], via))


# --- reuse detection --------------------------------------------------------------------


@pytest.mark.parametrize("via", VIAS)
def test_reusing_a_spent_token_revokes_the_whole_session(client, pair, via):
    rotated = refresh(client, pair["refresh_token"]).json
    assert can_use_access(client, rotated["access_token"])

    assert_unauthorized(refresh(client, pair["refresh_token"], via))

    assert_unauthorized(refresh(client, rotated["refresh_token"]))
    assert not can_use_access(client, rotated["access_token"])
    assert not can_use_access(client, pair["access_token"])
    assert stored_session(rotated["refresh_token"]).revoked_at is not None
    assert stored_token(rotated["refresh_token"]).revoked_at is not None


def test_reuse_leaves_the_users_other_sessions_alone(client, user, login, pair):
    other = login(user)
    refresh(client, pair["refresh_token"])

    assert_unauthorized(refresh(client, pair["refresh_token"]))

    assert stored_session(other["refresh_token"]).revoked_at is None
    assert can_use_access(client, other["access_token"])
    assert refresh(client, other["refresh_token"]).status_code == 200


# --- tokens of the wrong kind or no token ------------------------------------------------


@pytest.mark.parametrize("via", VIAS)
def test_an_access_token_is_refused_on_refresh(client, pair, via):
    assert_unauthorized(refresh(client, pair["access_token"], via))

    # Not mistaken for reuse: the session still rotates.
    assert refresh(client, pair["refresh_token"]).status_code == 200


def test_a_refresh_token_is_refused_on_tasks(client, pair):
    assert_unauthorized(client.get("/tasks", headers=bearer(pair["refresh_token"])))


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "x" * 4000,
    ],
)
@pytest.mark.parametrize("via", VIAS)
def test_a_malformed_token_is_refused(client, pair, token, via):
    assert_unauthorized(refresh(client, token, via))
    assert stored_session(pair["refresh_token"]).revoked_at is None


@pytest.mark.parametrize("via", VIAS)
def test_a_token_signed_with_another_key_is_refused(client, pair, via):
    forged = craft(decode_token(pair["refresh_token"]), OTHER_SECRET)

    assert_unauthorized(refresh(client, forged, via))

    # The forgery names a real session; it must not be able to revoke it.
    assert stored_session(pair["refresh_token"]).revoked_at is None
    assert refresh(client, pair["refresh_token"]).status_code == 200


def test_an_unsigned_token_is_refused(client, pair):
    unsigned = craft(decode_token(pair["refresh_token"]), None, algorithm="none")

    assert_unauthorized(refresh(client, unsigned))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_a_token_with_another_algorithm_is_refused(client, pair):
    other_alg = craft(decode_token(pair["refresh_token"]), algorithm="HS512")

    assert_unauthorized(refresh(client, other_alg))


def test_a_validly_signed_token_unknown_to_the_database_is_refused(client, pair):
    # Same user, session and expiry, but never issued: its digest is not stored.
    unknown = craft(decode_token(pair["refresh_token"]), jti="never-issued")

    assert_unauthorized(refresh(client, unknown))
    assert_unauthorized(logout(client, unknown))

    assert stored_session(pair["refresh_token"]).revoked_at is None
    assert refresh(client, pair["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    "claims_change",
    [{"sid": None}, {"sid": "not-a-number"}, {"sub": "not-a-number"}, {"type": "access"}],
)
def test_a_signed_token_with_bad_claims_is_refused(client, pair, claims_change):
    claims = decode_token(pair["refresh_token"])
    claims.update(claims_change)
    claims = {key: value for key, value in claims.items() if value is not None}

    assert_unauthorized(refresh(client, craft(claims)))


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_a_signed_token_without_expiry_is_refused(client, pair, kind):
    claims = decode_token(pair[kind])
    with_expiry = craft(claims)
    del claims["exp"]
    forever = craft(claims)

    if kind == "access_token":
        assert can_use_access(client, with_expiry)  # the forgery is right but for exp
        body = assert_unauthorized(client.get("/tasks", headers=bearer(forever)))
    else:
        body = assert_unauthorized(refresh(client, forever))
        assert stored_session(pair["refresh_token"]).revoked_at is None
    assert body["message"] == "Invalid token or wrong token type"


def test_an_expired_refresh_token_is_refused(client, pair):
    now = int(time.time())
    expired = craft(
        decode_token(pair["refresh_token"]), iat=now - 7200, nbf=now - 7200, exp=now - 3600
    )

    body = assert_unauthorized(refresh(client, expired))

    assert "expired" in body["message"].lower()


def test_refresh_tokens_expire_after_the_configured_lifetime(app, client, user, login, monkeypatch):
    # Lifetimes are read when a token is issued, so the running app can be reconfigured: a
    # lifetime already over (rather than a sleep through a short one).
    monkeypatch.setitem(app.config, "JWT_REFRESH_TOKEN_EXPIRES", timedelta(seconds=-1))
    tokens = login(user)

    body = assert_unauthorized(refresh(client, tokens["refresh_token"]))

    assert "expired" in body["message"].lower()


def test_a_session_past_its_expiry_is_refused(client, pair):
    # The JWT itself is still valid: the database's absolute expiry decides.
    db.session.execute(
        update(Session)
        .where(Session.id == decode_token(pair["refresh_token"])["sid"])
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.session.commit()

    assert_unauthorized(refresh(client, pair["refresh_token"]))
    assert not can_use_access(client, pair["access_token"])


def test_tokens_of_a_deactivated_user_are_refused(client, user, pair):
    db.session.execute(update(User).where(User.email == user).values(is_active=False))
    db.session.commit()

    assert_unauthorized(refresh(client, pair["refresh_token"]))
    assert not can_use_access(client, pair["access_token"])


@pytest.mark.parametrize("path", ["/refresh", "/logout"])
@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"json": {}}, id="empty-body"),
        pytest.param({"json": {"refresh_token": None}}, id="null-token"),
        pytest.param({"headers": {"Authorization": "Bearer"}}, id="bearer-without-token"),
        pytest.param({"headers": {"Authorization": "Bearer    "}}, id="bearer-blank"),
        pytest.param({"headers": {"Authorization": "Basic dXNlcjpwYXNz"}}, id="basic"),
    ],
)
def test_a_missing_token_is_refused(client, path, kwargs):
    assert_unauthorized(client.post(path, **kwargs))


@pytest.mark.parametrize("path", ["/refresh", "/logout"])
def test_a_token_in_the_query_string_is_refused(client, pair, path):
    token = pair["refresh_token"]

    # Neither route takes query parameters, so a token there is refused as unknown input,
    # never read (and the session it names lives on).
    body = assert_error(client.post(f"{path}?refresh_token={token}&jwt={token}"), 422)
    assert set(body["errors"]["query"]) == {"refresh_token", "jwt"}
    assert stored_session(token).revoked_at is None


@pytest.mark.parametrize("path", ["/refresh", "/logout"])
@pytest.mark.parametrize("value", [123, True, ["a.b.c"], {"token": "a.b.c"}, ""])
def test_a_refresh_token_field_that_is_not_a_token_string_is_invalid_input(client, path, value):
    assert_error(client.post(path, json={"refresh_token": value}), 422, field="refresh_token")


@pytest.mark.parametrize("path", ["/refresh", "/logout"])
def test_unknown_fields_are_rejected(client, pair, path):
    body = {"refresh_token": pair["refresh_token"], "session_id": 1}

    assert_error(client.post(path, json=body), 422, field="session_id")
    assert stored_token(pair["refresh_token"]).revoked_at is None


@pytest.mark.parametrize("path", ["/refresh", "/logout"])
@pytest.mark.parametrize("token", ["a.b\ud800.c", "t\u00f6ken.a.b", "a.b.c\x00"])
def test_a_token_that_is_not_ascii_is_refused(client, path, token):
    # JSON can spell a lone surrogate, which cannot even be encoded to look the token up.
    assert_unauthorized(client.post(path, json={"refresh_token": token}))


# --- logout -----------------------------------------------------------------------------


@pytest.mark.parametrize("via", VIAS)
def test_logout_revokes_the_session_and_its_tokens(client, pair, via):
    response = logout(client, pair["refresh_token"], via)

    assert response.status_code == 204
    assert response.get_data() == b""
    assert_unauthorized(refresh(client, pair["refresh_token"]))
    assert not can_use_access(client, pair["access_token"])
    assert stored_session(pair["refresh_token"]).revoked_at is not None
    assert stored_token(pair["refresh_token"]).revoked_at is not None


def test_logout_after_rotation_revokes_the_current_tokens(client, pair):
    rotated = refresh(client, pair["refresh_token"]).json

    assert logout(client, rotated["refresh_token"]).status_code == 204

    assert_unauthorized(refresh(client, rotated["refresh_token"]))
    assert not can_use_access(client, rotated["access_token"])


@pytest.mark.parametrize("via", VIAS)
def test_repeating_logout_is_harmless(client, pair, via):
    assert logout(client, pair["refresh_token"]).status_code == 204

    response = logout(client, pair["refresh_token"], via)

    assert response.status_code == 204
    assert stored_session(pair["refresh_token"]).revoked_at is not None


def test_logout_leaves_the_users_other_sessions_working(client, user, login, pair):
    other = login(user)

    assert logout(client, pair["refresh_token"]).status_code == 204

    assert can_use_access(client, other["access_token"])
    assert stored_session(other["refresh_token"]).revoked_at is None
    rotated = refresh(client, other["refresh_token"])
    assert rotated.status_code == 200
    assert can_use_access(client, rotated.json["access_token"])


@pytest.mark.parametrize("via", VIAS)
def test_logout_refuses_what_is_not_a_valid_refresh_token(client, pair, via):
    claims = decode_token(pair["refresh_token"])
    now = int(time.time())
    for token in (
        pair["access_token"],
        "garbage",
        craft(claims, OTHER_SECRET),
        craft(claims, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
    ):
        assert_unauthorized(logout(client, token, via))

    assert stored_session(pair["refresh_token"]).revoked_at is None
    assert can_use_access(client, pair["access_token"])


# --- rate limits ------------------------------------------------------------------------


def test_successful_refresh_carries_rate_limit_headers(client, pair):
    response = refresh(client, pair["refresh_token"])

    assert response.status_code == 200
    assert response.headers["X-RateLimit-Limit"] == "10"
    assert response.headers["X-RateLimit-Remaining"] == "9"


def test_eleventh_refresh_in_a_minute_is_rate_limited(app, client, pair, monkeypatch):
    tokens = pair
    for _ in range(10):
        response = refresh(client, tokens["refresh_token"])
        assert response.status_code == 200
        tokens = response.json

    response = refresh(client, tokens["refresh_token"])

    body = assert_error(response, 429)
    assert "errors" not in body
    assert int(response.headers["Retry-After"]) > 0
    # The refused request did not spend the token.
    assert stored_token(tokens["refresh_token"]).revoked_at is None
    monkeypatch.setitem(app.config, "RATELIMIT_REFRESH", "1000 per minute")
    assert refresh(client, tokens["refresh_token"]).status_code == 200


# --- concurrency (PostgreSQL) -----------------------------------------------------------


@pytest.mark.committing
def test_concurrent_refreshes_with_one_token_succeed_once(app, pair):
    threads_count = 6
    barrier = threading.Barrier(threads_count)
    responses, failures = [], []

    def rotate() -> None:
        try:
            with app.app_context():
                client = app.test_client()
                barrier.wait(timeout=10)
                response = refresh(client, pair["refresh_token"])
                responses.append((response.status_code, response.json))
        except Exception as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=rotate) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not failures
    statuses = sorted(status for status, _ in responses)
    assert statuses == [200] + [401] * (threads_count - 1)
    for status, body in responses:
        if status == 401:
            assert body["code"] == 401 and body["status"] == "Unauthorized"
            assert "msg" not in body
    # Exactly one new token was issued for the session.
    db.session.expire_all()
    sid = decode_token(pair["refresh_token"])["sid"]
    issued = db.session.scalars(select(RefreshToken).where(RefreshToken.session_id == sid)).all()
    assert len(issued) == 2
