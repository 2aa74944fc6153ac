"""Emailed tokens: issue one (replacing the user's older one of its purpose), spend one, and
the links that carry them. Helpers only flush: the use case commits."""

import secrets
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import Row, delete, update

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


def invalidate_tokens(user_id: int, *purposes: str) -> None:
    """Retire the user's unused tokens of ``purposes`` (all purposes if none is given)."""
    query = update(EmailToken).where(EmailToken.user_id == user_id, EmailToken.used_at.is_(None))
    if purposes:
        query = query.where(EmailToken.purpose.in_(purposes))
    db.session.execute(query.values(used_at=datetime.now(UTC)))


def issue_token(
    user_id: int,
    purpose: str,
    *,
    token: tuple[str, str],
    lifetime: timedelta,
    new_email: str | None = None,
) -> str:
    """Store ``token`` (from new_token) for the user, replacing their older one of
    ``purpose``; returns its link."""
    invalidate_tokens(user_id, purpose)
    value, digest = token
    db.session.add(
        EmailToken(
            digest=digest,
            user_id=user_id,
            purpose=purpose,
            new_email=new_email,
            expires_at=datetime.now(UTC) + lifetime,
        )
    )
    return link(purpose, value)


def spend_token(token: str, purpose: str) -> Row | None:
    """Mark a live token of ``purpose`` used; its (user_id, new_email), or None if unknown,
    expired, replaced or used. One conditional UPDATE: of two concurrent uses one wins."""
    now = datetime.now(UTC)
    return db.session.execute(
        update(EmailToken)
        .where(
            EmailToken.digest == token_digest(token),
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
            EmailToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(EmailToken.user_id, EmailToken.new_email)
    ).first()


def purge_tokens(*, older_than: datetime) -> int:
    """Delete tokens that expired before ``older_than`` (used or not); no commit."""
    return db.session.execute(delete(EmailToken).where(EmailToken.expires_at < older_than)).rowcount


def queue_verification(user: User) -> None:
    """Issue a verification token for the user's address and queue its email."""
    hours = current_app.config["EMAIL_TOKEN_HOURS"]
    url = issue_token(user.id, "verify_email", token=new_token(), lifetime=timedelta(hours=hours))
    queue_mail(
        user.email, "verify_email", subject="Confirm your taskapp address", link=url, hours=hours
    )
