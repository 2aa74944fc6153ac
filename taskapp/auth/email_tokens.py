"""Emailed tokens: issue one (replacing the user's older one of its purpose), spend one, and
the links that carry them. Helpers only flush: the use case commits.

Every token is bound to the account's security state: it records the user's
``security_stamp`` when issued and is spent only while that is still the user's.
``retire_links`` moves the stamp on, which retires every outstanding token of every purpose
at once (a new purpose, such as an invitation, inherits this by being issued here).
"""

import secrets
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import delete, insert, literal, select, update

from taskapp.auth.models import EmailToken, User
from taskapp.auth.tokens import token_digest
from taskapp.extensions import db
from taskapp.mail import queue_mail

# 256 random bits, URL-safe: nothing to guess, and nothing to learn from the stored digest.
TOKEN_BYTES = 32
# The front end's pages the links open; each posts the token to the matching confirm route.
LINK_PATHS = {
    "password_reset": "/reset-password",
    "verify_email": "/verify-email",
    "change_email": "/confirm-email",
}


def new_token() -> tuple[str, str]:
    """A fresh random token and its digest."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_digest(token)


def link(purpose: str, token: str) -> str:
    """The front-end link for ``token``, from PUBLIC_BASE_URL (never the request's host)."""
    return f"{current_app.config['PUBLIC_BASE_URL']}{LINK_PATHS[purpose]}?token={token}"


def _replace_tokens(owner, purpose: str) -> None:
    """Retire the unused tokens of ``purpose`` of the user ``owner`` (an SQL condition on
    ``EmailToken.user_id``) selects: a newer one replaces them."""
    db.session.execute(
        update(EmailToken)
        .where(
            owner,
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
        )
        .values(used_at=datetime.now(UTC))
    )


def retire_links(user_id: int) -> None:
    """Retire every outstanding emailed token of the user, of every purpose, including one a
    concurrent request is issuing under the old stamp; locks the user's row until the commit."""
    db.session.execute(
        update(User).where(User.id == user_id).values(security_stamp=User.security_stamp + 1)
    )


def issue_token(
    user: User,
    purpose: str,
    *,
    token: tuple[str, str],
    lifetime: timedelta,
    new_email: str | None = None,
) -> str:
    """Store ``token`` (from new_token) for the user, under the security stamp the user was
    read with, replacing their older one of ``purpose``; returns its link."""
    _replace_tokens(EmailToken.user_id == user.id, purpose)
    value, digest = token
    db.session.add(
        EmailToken(
            digest=digest,
            user_id=user.id,
            security_stamp=user.security_stamp,
            purpose=purpose,
            new_email=new_email,
            expires_at=datetime.now(UTC) + lifetime,
        )
    )
    return link(purpose, value)


def issue_token_to_address(
    email: str, purpose: str, *, token: tuple[str, str], lifetime: timedelta
) -> str | None:
    """As ``issue_token``, to the active account at ``email``: its link, or None if none.

    The same two statements run whether or not there is such an account (the replacement,
    then an INSERT ... SELECT that finds it), so their work and timing do not tell.
    """
    value, digest = token
    found = select(User.id).where(User.email == email, User.is_active.is_(True))
    _replace_tokens(EmailToken.user_id.in_(found), purpose)
    expires_at = literal(datetime.now(UTC) + lifetime, EmailToken.expires_at.type)
    stored = db.session.execute(
        insert(EmailToken)
        .from_select(
            ["user_id", "security_stamp", "digest", "purpose", "expires_at"],
            found.add_columns(User.security_stamp, literal(digest), literal(purpose), expires_at),
        )
        .returning(EmailToken.id)
    ).first()
    return link(purpose, value) if stored is not None else None


def spend_token(token: str, purpose: str) -> tuple[User, str | None] | None:
    """Mark a live token of ``purpose`` used; its active user (row locked until the commit)
    and new_email, or None if unknown, expired, replaced, used, retired or its user inactive
    (the caller rolls back).

    One conditional UPDATE: of two concurrent uses one wins. The user's row is then locked
    and its stamp compared: whatever retires links (``retire_links``) either committed
    before, and the token is dead, or waits for this use case's commit.
    """
    now = datetime.now(UTC)
    spent = db.session.execute(
        update(EmailToken)
        .where(
            EmailToken.digest == token_digest(token),
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
            EmailToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(EmailToken.user_id, EmailToken.new_email, EmailToken.security_stamp)
    ).first()
    if spent is None:
        return None
    user = db.session.scalar(
        select(User)
        .where(User.id == spent.user_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    if user is None or not user.is_active or user.security_stamp != spent.security_stamp:
        return None
    return user, spent.new_email


def purge_tokens(*, older_than: datetime) -> int:
    """Delete tokens that expired before ``older_than`` (used or not); no commit."""
    return db.session.execute(delete(EmailToken).where(EmailToken.expires_at < older_than)).rowcount


def queue_verification(user: User) -> None:
    """Issue a verification token for the user's address and queue its email."""
    hours = current_app.config["EMAIL_TOKEN_HOURS"]
    url = issue_token(user, "verify_email", token=new_token(), lifetime=timedelta(hours=hours))
    queue_mail(
        user.email, "verify_email", subject="Confirm your taskapp address", link=url, hours=hours
    )
