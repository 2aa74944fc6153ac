"""Account recovery and address rules: password reset, address verification, address change.

Every request that sends mail writes the token and the outbox message in one transaction.
Following a link proves the address: a verification or an address change retires every other
outstanding link of the account, a reset every link and every session as well, so whoever
signed up with (or queued a change from) an address they cannot read loses what they queued,
and after a reset the account altogether.
"""

import logging
from datetime import datetime, timedelta

from flask import current_app

from taskapp import audit
from taskapp.account.service import check_password
from taskapp.auth.email_tokens import (
    issue_token,
    issue_token_to_address,
    new_token,
    purge_tokens,
    queue_verification,
    retire_links,
    spend_token,
)
from taskapp.auth.models import User
from taskapp.auth.passwords import hash_password
from taskapp.auth.service import revoke_credentials, unique_email
from taskapp.errors import Conflict, InvalidToken
from taskapp.extensions import db
from taskapp.mail import queue_mail

log = logging.getLogger(__name__)


def request_password_reset(*, email: str) -> None:
    """Email a reset link to the active account at ``email``; with none there, a note saying
    so. The same work either way (the same statements, a message rendered, written and
    committed, then sent after the response), so neither the answer nor its timing tells
    whether the account exists.
    """
    minutes = current_app.config["PASSWORD_RESET_MINUTES"]
    url = issue_token_to_address(
        email, "password_reset", token=new_token(), lifetime=timedelta(minutes=minutes)
    )
    if url is not None:
        queue_mail(
            email,
            "password_reset",
            subject="Reset your taskapp password",
            link=url,
            minutes=minutes,
        )
    else:
        queue_mail(email, "password_reset_unknown", subject="Reset your taskapp password")
    db.session.commit()


def _spend(token: str, purpose: str) -> tuple[User, str | None]:
    """Spend the token: its active user and (for an address change) the new address."""
    spent = spend_token(token, purpose)
    if spent is None:
        db.session.rollback()
        raise InvalidToken()
    return spent


def reset_password(*, token: str, new_password: str) -> None:
    """Set a new password with a reset token: the token is spent, every session and every
    other link retired, and the address counts as verified (the link reached it)."""
    user, _ = _spend(token, "password_reset")
    user.password_hash = hash_password(new_password)
    user.email_verified = True
    revoke_credentials(user.id)
    db.session.commit()
    log.info("password reset by email link", extra={"user_id": user.id})


def request_verification(user_id: int) -> None:
    """Email a new verification link to the user's address (replacing any older one)."""
    # The caller (the session check rides with this read, unless current_user loaded it).
    user = db.session.get(User, user_id)
    if user.email_verified:
        raise Conflict("Email address is already verified")
    queue_verification(user)
    db.session.commit()


def verify_email(*, token: str) -> None:
    """Mark the address the token was sent to as verified; the token is spent and every other
    outstanding link (a pending address change included) retired."""
    user, _ = _spend(token, "verify_email")
    user.email_verified = True
    retire_links(user.id)
    db.session.commit()


def request_email_change(user_id: int, *, password: str, new_email: str) -> None:
    """Email a confirmation link to ``new_email`` and a notice to the current address; the
    address changes only when the link is followed."""
    user = check_password(user_id, password)
    if new_email == user.email:
        raise Conflict("This is already the account's address")
    hours = current_app.config["EMAIL_TOKEN_HOURS"]
    url = issue_token(
        user,
        "change_email",
        token=new_token(),
        lifetime=timedelta(hours=hours),
        new_email=new_email,
    )
    queue_mail(
        new_email,
        "email_change_confirm",
        subject="Confirm your new taskapp address",
        link=url,
        hours=hours,
        new_email=new_email,
    )
    queue_mail(
        user.email,
        "email_change_notice",
        subject="Your taskapp address is about to change",
        new_email=new_email,
    )
    db.session.commit()
    audit.record("email_change_requested", "address change requested", user_id=user_id)


def change_email(*, token: str) -> None:
    """Move the account to the address the token was sent to, now verified. Every other
    outstanding link is retired; the unique index settles an address taken meanwhile (409)."""
    user, new_email = _spend(token, "change_email")
    retire_links(user.id)
    user.email = new_email
    user.email_verified = True
    with unique_email():
        db.session.commit()
    audit.record("email_changed", "address changed by emailed link", user_id=user.id)


def purge_email_tokens(*, older_than: datetime) -> int:
    """Delete emailed tokens that expired before ``older_than``."""
    deleted = purge_tokens(older_than=older_than)
    db.session.commit()
    return deleted
