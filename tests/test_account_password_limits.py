"""Every route that checks the caller's password is limited as /login is: per account (one count
with /login's per-email limit) and per client address; and the last admin cannot leave."""

import pytest
from sqlalchemy import select

from conftest import PASSWORD, assert_error
from taskapp.admin import service as admin_service
from taskapp.auth.models import User
from taskapp.extensions import db

ADDRESS_LIMIT = 5  # RATELIMIT_PASSWORD_CHECK's default: 5 per minute
ACCOUNT_LIMIT = 10  # RATELIMIT_LOGIN_EMAIL's default: 10 per hour
WRONG = "not the password"


@pytest.fixture(autouse=True)
def generous_login_limits(app, monkeypatch):
    """Logging in the sessions these tests need must not spend the address limits."""
    for name in ("RATELIMIT_SIGNUP", "RATELIMIT_LOGIN"):
        monkeypatch.setitem(app.config, name, "1000 per minute")


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def change_password(client, token: str, current: str = WRONG, address: str = "198.51.100.7"):
    return client.post(
        "/me/password",
        json={"current_password": current, "new_password": "a brand new secret"},
        headers=bearer(token),
        environ_base={"REMOTE_ADDR": address},
    )


def delete_me(client, token: str, password: str = WRONG, address: str = "198.51.100.7"):
    return client.delete(
        "/me",
        json={"password": password},
        headers=bearer(token),
        environ_base={"REMOTE_ADDR": address},
    )


CHECKS = {"POST /me/password": change_password, "DELETE /me": delete_me}


def password_hash(email: str) -> str:
    db.session.expire_all()
    return db.session.scalar(select(User.password_hash).where(User.email == email))


@pytest.mark.parametrize("check", CHECKS)
def test_password_checks_are_limited_per_address_across_accounts(client, make_user, login, check):
    send = CHECKS[check]
    tokens = []
    for _ in range(ADDRESS_LIMIT + 1):
        email, _ = make_user()
        tokens.append(login(email)["access_token"])

    statuses = [send(client, token).status_code for token in tokens[:ADDRESS_LIMIT]]
    assert statuses == [403] * ADDRESS_LIMIT

    # A fresh account, the right password: this address has had its guesses for the minute.
    response = send(client, tokens[-1], PASSWORD)
    body = assert_error(response, 429)
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert response.headers["X-RateLimit-Limit"] == str(ADDRESS_LIMIT)
    assert "Rate limit exceeded" in body["message"]
    # Another address is not affected.
    assert send(client, tokens[-1], WRONG, "203.0.113.9").status_code == 403


def test_both_password_routes_share_the_address_count(client, make_user, login):
    email, _ = make_user()
    token = login(email)["access_token"]
    for number in range(ADDRESS_LIMIT):
        send = change_password if number % 2 else delete_me
        assert send(client, token).status_code == 403
    assert_error(delete_me(client, token, PASSWORD), 429)
    assert_error(change_password(client, token, PASSWORD), 429)
    db.session.expire_all()
    assert db.session.scalar(select(User).where(User.email == email)) is not None


def test_a_stolen_token_adds_no_guesses_to_the_accounts_budget(client, make_user, login):
    """Guesses through /me/password and DELETE /me, from any address, spend the account's
    /login budget, and the other way round."""
    email, _ = make_user()
    token = login(email)["access_token"]  # one login: counted too
    before = password_hash(email)
    sent = 1
    for number in range(ACCOUNT_LIMIT - 3):
        send = CHECKS[list(CHECKS)[number % 2]]
        assert send(client, token, WRONG, f"198.51.100.{number + 1}").status_code == 403
        sent += 1
    for number in range(ACCOUNT_LIMIT - sent):
        attempt = {"email": email, "password": WRONG}
        response = client.post(
            "/login", json=attempt, environ_base={"REMOTE_ADDR": f"192.0.2.{number + 1}"}
        )
        assert response.status_code == 401

    # The right password, from yet another address, on each route: the account is closed.
    for send in CHECKS.values():
        response = send(client, token, PASSWORD, "203.0.113.77")
        assert_error(response, 429)
        assert response.headers["X-RateLimit-Limit"] == str(ACCOUNT_LIMIT)
        assert 60 < int(response.headers["Retry-After"]) <= 3600
    attempt = {"email": email, "password": PASSWORD}
    assert_error(
        client.post("/login", json=attempt, environ_base={"REMOTE_ADDR": "203.0.113.78"}), 429
    )
    assert password_hash(email) == before
    # Another account is not affected.
    other, _ = make_user()
    assert (
        change_password(client, login(other)["access_token"], PASSWORD, "203.0.113.79").status_code
        == 204
    )


def test_unauthenticated_requests_are_not_counted(client, make_user, login):
    email, _ = make_user()
    token = login(email)["access_token"]
    for _ in range(ADDRESS_LIMIT + 2):
        assert_error(change_password(client, "not-a-token"), 401)
    assert change_password(client, token, PASSWORD).status_code == 204


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").json


@pytest.mark.parametrize(
    ("path", "method", "success"), [("/me/password", "post", "204"), ("/me", "delete", "204")]
)
def test_the_spec_documents_the_limits(spec, path, method, success):
    responses = spec["paths"][path][method]["responses"]
    assert "Retry-After" in responses["429"]["headers"]
    assert responses["429"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert "X-RateLimit-Remaining" in responses[success]["headers"]


# --- the last admin -------------------------------------------------------------------------


def make_admin(make_user, login) -> tuple[int, str]:
    email, _ = make_user()
    user, _ = admin_service.make_admin(email=email)
    return user.id, login(email)["access_token"]


def test_the_last_active_admin_cannot_delete_itself(client, make_user, login, spec):
    admin_id, token = make_admin(make_user, login)

    body = assert_error(delete_me(client, token, PASSWORD), 409)

    assert "last active admin" in body["message"]
    db.session.expire_all()
    assert db.session.get(User, admin_id) is not None
    assert client.get("/me", headers=bearer(token)).status_code == 200
    assert "409" in spec["paths"]["/me"]["delete"]["responses"]


def test_an_admin_with_another_active_admin_may_delete_itself(client, make_user, login):
    admin_id, token = make_admin(make_user, login)
    make_admin(make_user, login)

    assert delete_me(client, token, PASSWORD).status_code == 204
    db.session.expire_all()
    assert db.session.get(User, admin_id) is None


def test_an_inactive_admin_does_not_count(client, make_user, login):
    admin_id, token = make_admin(make_user, login)
    other_id, _ = make_admin(make_user, login)
    db.session.get(User, other_id).is_active = False
    db.session.commit()

    assert_error(delete_me(client, token, PASSWORD), 409)


def test_the_email_change_checks_the_password_and_shares_the_counts(client, make_user, login, spec):
    email, _ = make_user()
    token = login(email)["access_token"]
    for _ in range(ADDRESS_LIMIT):
        assert delete_me(client, token).status_code == 403

    response = client.post(
        "/me/email",
        json={"new_email": "elsewhere@example.com", "password": PASSWORD},
        headers=bearer(token),
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )

    assert_error(response, 429)
    assert "Retry-After" in spec["paths"]["/me/email"]["post"]["responses"]["429"]["headers"]
