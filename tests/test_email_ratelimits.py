"""Rate limits of the routes that send mail (per client address and per target address) and
of the routes that take an emailed token (per client address)."""

import pytest

from conftest import PASSWORD, assert_error, row_count, unique_email
from taskapp.mail.models import OutboxMessage


def from_address(number: int) -> dict:
    return {"environ_base": {"REMOTE_ADDR": f"192.0.2.{number}"}}


def assert_limited(response) -> None:
    assert_error(response, 429)
    assert "Retry-After" in response.headers


def test_password_reset_is_limited_per_target_address_from_any_client(
    app, client, smtp, monkeypatch
):
    monkeypatch.setitem(app.config, "RATELIMIT_EMAIL_SEND_TARGET", "2 per hour")
    email = unique_email()
    for number in (1, 2):
        answer = client.post("/password-reset", json={"email": email}, **from_address(number))
        assert answer.status_code == 202
    before = row_count(OutboxMessage)

    # Spelled differently, still the same address.
    third = client.post("/password-reset", json={"email": f" {email.upper()}"}, **from_address(3))
    assert_limited(third)
    assert row_count(OutboxMessage) == before  # refused before any work
    other = client.post("/password-reset", json={"email": unique_email()}, **from_address(4))
    assert other.status_code == 202


def test_password_reset_is_limited_per_client_address(app, client, smtp, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_EMAIL_SEND", "2 per minute")
    for _ in range(2):
        answer = client.post("/password-reset", json={"email": unique_email()})
        assert answer.status_code == 202
    assert_limited(client.post("/password-reset", json={"email": unique_email()}))
    other = client.post("/password-reset", json={"email": unique_email()}, **from_address(9))
    assert other.status_code == 202


def test_address_change_is_limited_per_new_address(app, client, smtp, auth, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_EMAIL_SEND_TARGET", "1 per hour")
    target = unique_email()
    body = {"new_email": target, "password": PASSWORD}
    first = client.post("/me/email", json=body, headers=auth(), **from_address(1))
    assert first.status_code == 202
    second = client.post("/me/email", json=body, headers=auth(), **from_address(2))
    assert_limited(second)


def test_verification_requests_are_limited_per_account_address(
    app, client, smtp, auth, monkeypatch
):
    monkeypatch.setitem(app.config, "RATELIMIT_EMAIL_SEND_TARGET", "1 per hour")
    headers = auth()
    assert client.post("/me/email/verify", headers=headers, **from_address(1)).status_code == 202
    assert_limited(client.post("/me/email/verify", headers=headers, **from_address(2)))
    # Another account is counted apart.
    assert client.post("/me/email/verify", headers=auth(), **from_address(3)).status_code == 202


@pytest.mark.parametrize(
    "path, body",
    [
        ("/password-reset/confirm", {"token": "nope", "new_password": "long enough"}),
        ("/email/verify/confirm", {"token": "nope"}),
        ("/email/change/confirm", {"token": "nope"}),
    ],
)
def test_token_routes_are_limited_per_client_address(app, client, monkeypatch, path, body):
    monkeypatch.setitem(app.config, "RATELIMIT_EMAIL_CONFIRM", "2 per minute")
    for _ in range(2):
        assert_error(client.post(path, json=body), 400)
    assert_limited(client.post(path, json=body))
    assert_error(client.post(path, json=body, **from_address(7)), 400)
