"""One mailbox, one account, one rate-limit key: every route that takes an address accepts it
only in a form normalise_email folds into one spelling, and refuses the syntax by which
several spellings reach one mailbox (quoted local parts, backslashes, comments, encoded
words, address literals)."""

import pytest
from sqlalchemy import func, select

from conftest import PASSWORD, assert_error, row_count
from taskapp.auth.models import User
from taskapp.emails import InvalidEmail, normalise_email
from taskapp.extensions import db
from taskapp.mail.models import OutboxMessage

VICTIM = "victim@example.com"
# Each reaches the victim's mailbox through some relay or client, or names it in another way.
OTHER_SYNTAX = [
    '"victim"@example.com',
    '"\\victim"@example.com',
    "vic\\tim@example.com",
    "=?utf-8?q?victim?=@example.com",
    "=?UTF-8?B?dmljdGlt?=@example.com",
    "victim(comment)@example.com",
    "(comment)victim@example.com",
    "victim@(comment)example.com",
    "victim@[192.0.2.1]",
    "＂victim＂@example.com",  # full-width quotes: NFKC makes them '"'
]
# Spellings that fold into the victim's one (so they share its account and key).
SAME_SPELLING = [" VICTIM@Example.COM ", "ｖｉｃｔｉｍ@example.com", "victim@EXAMPLE.com"]


@pytest.mark.parametrize("text", OTHER_SYNTAX)
def test_other_syntax_of_a_mailbox_is_refused(text):
    with pytest.raises(InvalidEmail):
        normalise_email(text)


@pytest.mark.parametrize("text", SAME_SPELLING)
def test_spellings_of_one_address_fold_into_one(text):
    assert normalise_email(text) == VICTIM


def users_named(fragment: str) -> int:
    return db.session.scalar(
        select(func.count()).select_from(User).where(User.email.contains(fragment))
    )


@pytest.mark.parametrize("text", OTHER_SYNTAX)
def test_no_route_takes_another_syntax_and_none_sends_mail(client, smtp, auth, text):
    headers = auth()
    before = row_count(OutboxMessage)

    assert_error(
        client.post("/signup", json={"email": text, "password": PASSWORD}), 422, field="email"
    )
    assert_error(
        client.post("/login", json={"email": text, "password": PASSWORD}), 422, field="email"
    )
    assert_error(client.post("/password-reset", json={"email": text}), 422, field="email")
    change = {"new_email": text, "password": PASSWORD}
    assert_error(client.post("/me/email", json=change, headers=headers), 422, field="new_email")

    assert users_named("victim") == 0
    assert row_count(OutboxMessage) == before


def from_address(number: int) -> dict:
    return {"environ_base": {"REMOTE_ADDR": f"192.0.2.{number}"}}


def test_one_mailbox_is_one_per_address_limit_whatever_the_spelling(app, client, smtp, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_EMAIL_SEND_TARGET", "2 per hour")
    for number in (1, 2):
        sent = client.post("/password-reset", json={"email": VICTIM}, **from_address(number))
        assert sent.status_code == 202
    before = row_count(OutboxMessage)

    spellings = SAME_SPELLING + OTHER_SYNTAX
    for number, text in enumerate(spellings, start=10):
        answer = client.post("/password-reset", json={"email": text}, **from_address(number))
        # Limited as the victim's address, or refused outright: never a new key and a mail.
        assert answer.status_code in (422, 429), (text, answer.status_code)
        assert (answer.status_code == 429) == (text in SAME_SPELLING), text
    assert row_count(OutboxMessage) == before


def test_signing_up_again_in_another_spelling_is_the_same_account(
    app, client, make_user, monkeypatch
):
    monkeypatch.setitem(app.config, "RATELIMIT_SIGNUP", "1000 per minute")
    make_user(VICTIM)
    for text in SAME_SPELLING:
        assert_error(client.post("/signup", json={"email": text, "password": PASSWORD}), 409)
    for text in OTHER_SYNTAX:
        assert_error(client.post("/signup", json={"email": text, "password": PASSWORD}), 422)
    assert users_named("victim") == 1
