"""Emailed links are bound to the account's security state: a password change or reset, a
logout everywhere, a deactivation, a verification and an address change retire every
outstanding link of every purpose; the mailbox's holder takes an account someone else signed
up with; address changes are security events."""

import time
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from conftest import PASSWORD, assert_error, unique_email
from taskapp.admin.service import make_admin
from taskapp.auth.models import User
from taskapp.extensions import db

TAKEOVER_PASSWORD = "the taker's passphrase"
NEW_PASSWORD = "the owner's new passphrase"


@pytest.fixture(autouse=True)
def generous_limits(app, monkeypatch):
    # Each case sends several messages to one address; the limits have tests of their own.
    for name in ("RATELIMIT_EMAIL_SEND", "RATELIMIT_EMAIL_SEND_TARGET", "RATELIMIT_SIGNUP"):
        monkeypatch.setitem(app.config, name, "1000 per minute")


@dataclass
class Account:
    email: str
    headers: dict


def newest(smtp, address: str, subject_part: str) -> str:
    """The token of the newest message to ``address`` whose subject has ``subject_part``."""
    deadline = time.monotonic() + 10
    while True:
        mails = [m for m in smtp.to(address) if subject_part in m.message["Subject"]]
        if mails and mails[-1].link is not None:
            return mails[-1].token
        assert time.monotonic() < deadline, f"no '{subject_part}' message to {address}"
        time.sleep(0.02)


def post(client, path: str, **kwargs):
    # buffered: the test client closes the response, which runs the send after it.
    return client.post(path, buffered=True, **kwargs)


@pytest.fixture
def new_account(client, login):
    """Sign up (the verification link is sent) and log in."""

    def make() -> Account:
        email = unique_email()
        body = {"email": email, "password": PASSWORD}
        assert post(client, "/signup", json=body).status_code == 201
        return Account(email, {"Authorization": f"Bearer {login(email)['access_token']}"})

    return make


def account_email(email: str) -> str | None:
    db.session.expire_all()
    return db.session.scalar(select(User.email).where(User.email == email))


# The links of each purpose: how one is requested, and how it is used (by whoever holds it).
def request_reset(client, smtp, account: Account) -> str:
    assert post(client, "/password-reset", json={"email": account.email}).status_code == 202
    return newest(smtp, account.email, "Reset")


def request_verification(client, smtp, account: Account) -> str:
    assert post(client, "/me/email/verify", headers=account.headers).status_code == 202
    return newest(smtp, account.email, "Confirm your taskapp address")


def request_change(client, smtp, account: Account, new_email: str | None = None) -> str:
    new_email = new_email or unique_email()
    body = {"new_email": new_email, "password": PASSWORD}
    assert post(client, "/me/email", json=body, headers=account.headers).status_code == 202
    return newest(smtp, new_email, "Confirm your new")


PURPOSES = {
    "password_reset": (
        request_reset,
        lambda client, token: client.post(
            "/password-reset/confirm", json={"token": token, "new_password": TAKEOVER_PASSWORD}
        ),
    ),
    "verify_email": (
        request_verification,
        lambda client, token: client.post("/email/verify/confirm", json={"token": token}),
    ),
    "change_email": (
        request_change,
        lambda client, token: client.post("/email/change/confirm", json={"token": token}),
    ),
}


# The actions that retire every link, each with the purpose of the link it uses itself (a
# newer link of one purpose replaces the older anyway: that pair is tested elsewhere).
def change_password(client, smtp, account: Account, request) -> None:
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert client.post("/me/password", json=body, headers=account.headers).status_code == 204


def reset_password(client, smtp, account: Account, request) -> None:
    token = request_reset(client, smtp, account)
    body = {"token": token, "new_password": NEW_PASSWORD}
    assert client.post("/password-reset/confirm", json=body).status_code == 204


def logout_all(client, smtp, account: Account, request) -> None:
    assert client.post("/logout-all", headers=account.headers).status_code == 204


def deactivate_and_reactivate(client, smtp, account: Account, request) -> None:
    admin = request.getfixturevalue("admin_headers")
    user_id = db.session.scalar(select(User.id).where(User.email == account.email))
    for active in (False, True):
        body = {"is_active": active}
        response = client.patch(f"/admin/users/{user_id}", json=body, headers=admin)
        assert response.status_code == 200, response.json


def verify(client, smtp, account: Account, request) -> None:
    # The link sent at signup: still live, since no newer verification link was requested.
    token = newest(smtp, account.email, "Confirm your taskapp address")
    assert client.post("/email/verify/confirm", json={"token": token}).status_code == 204


def change_address(client, smtp, account: Account, request) -> None:
    token = request_change(client, smtp, account)
    assert client.post("/email/change/confirm", json={"token": token}).status_code == 204


ACTIONS = {
    "password_change": (change_password, None),
    "password_reset": (reset_password, "password_reset"),
    "logout_all": (logout_all, None),
    "deactivation": (deactivate_and_reactivate, None),
    "verification": (verify, "verify_email"),
    "address_change": (change_address, "change_email"),
}

CASES = [
    pytest.param(action, purpose, id=f"{action}-retires-{purpose}")
    for action, (_, own) in ACTIONS.items()
    for purpose in PURPOSES
    if purpose != own
]


@pytest.mark.parametrize(("action", "purpose"), CASES)
def test_a_retiring_action_kills_every_outstanding_link(
    client, smtp, new_account, request, action, purpose
):
    account = new_account()
    email = account.email
    issue, use = PURPOSES[purpose]
    token = issue(client, smtp, account)

    ACTIONS[action][0](client, smtp, account, request)

    assert_error(use(client, token), 400)
    # Nothing the link would have done happened.
    assert_error(client.post("/login", json={"email": email, "password": TAKEOVER_PASSWORD}), 401)


def test_the_mailbox_holder_takes_an_account_signed_up_with_their_address(
    client, smtp, make_user, login
):
    """Someone signs up first with the victim's address and queues a move to their own; the
    victim, refused at signup, resets the password: the first claimant keeps nothing."""
    victim = unique_email()
    make_user(victim)
    taker = login(victim)
    taker_headers = {"Authorization": f"Bearer {taker['access_token']}"}
    taker_address = unique_email()
    change_token = request_change(client, smtp, Account(victim, taker_headers), taker_address)

    signup = client.post("/signup", json={"email": victim, "password": NEW_PASSWORD})
    assert_error(signup, 409)
    reset_password(client, smtp, Account(victim, {}), None)

    assert_error(client.post("/email/change/confirm", json={"token": change_token}), 400)
    assert account_email(victim) == victim
    assert_error(client.get("/me", headers=taker_headers), 401)
    assert_error(client.post("/refresh", json={"refresh_token": taker["refresh_token"]}), 401)
    assert_error(client.post("/login", json={"email": victim, "password": PASSWORD}), 401)
    login(victim, NEW_PASSWORD)


def test_a_deactivated_account_spends_no_link(client, smtp, new_account, admin_headers):
    account = new_account()
    email = account.email
    token = request_reset(client, smtp, account)
    user_id = db.session.scalar(select(User.id).where(User.email == email))
    client.patch(f"/admin/users/{user_id}", json={"is_active": False}, headers=admin_headers)

    body = {"token": token, "new_password": TAKEOVER_PASSWORD}
    assert_error(client.post("/password-reset/confirm", json=body), 400)


def test_address_changes_are_security_events(client, smtp, new_account, json_log):
    account = new_account()
    email = account.email
    new_email = unique_email()
    token = request_change(client, smtp, account, new_email)
    assert client.post("/email/change/confirm", json={"token": token}).status_code == 204

    user_id = db.session.scalar(select(User.id).where(User.email == new_email))
    logged = [
        (line["event"], line["level"], line["user_id"])
        for line in json_log()
        if line["logger"] == "taskapp.security"
    ]
    assert logged == [
        ("email_change_requested", "INFO", user_id),
        ("email_changed", "INFO", user_id),
    ]
    # The app's own lines (the SMTP test server logs what it receives).
    text = str([line for line in json_log() if line["logger"].startswith("taskapp")])
    assert email not in text and new_email not in text and token not in text


def test_an_admin_made_by_the_cli_keeps_its_links_working(client, smtp, make_user):
    """Promotion changes no credential: links issued before it still work."""
    email, _ = make_user()
    token = request_reset(client, smtp, Account(email, {}))
    make_admin(email=email)
    body = {"token": token, "new_password": NEW_PASSWORD}
    assert client.post("/password-reset/confirm", json=body).status_code == 204
