"""Account and session rules: signup, login, refresh rotation with reuse detection, logout."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import bindparam, delete, exists, select, update
from sqlalchemy.exc import IntegrityError

from taskapp.auth.email_tokens import queue_verification
from taskapp.auth.models import RefreshToken, Session, User
from taskapp.auth.passwords import hash_password, verify_password
from taskapp.auth.tokens import issue_token_pair, read_refresh_token, token_digest
from taskapp.errors import Conflict, Forbidden, Unauthorized
from taskapp.extensions import db

BAD_CREDENTIALS = "Invalid email or password"
BAD_REFRESH_TOKEN = "Refresh token is invalid, expired or revoked"
UNVERIFIED = "Email address not verified: a new verification link has been sent to it"
EMAIL_TAKEN = "Email already registered"


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def unique_email() -> Iterator[None]:
    """Around the flush or commit that writes an address: one another account holds (the
    unique index decides, so concurrent writers too) rolls back and is a Conflict."""
    try:
        yield
    except IntegrityError:
        db.session.rollback()
        raise Conflict(EMAIL_TAKEN) from None


def create_user(*, email: str, password: str) -> User:
    """Register a user and email a verification link; the unique index settles concurrent
    signups of one email."""
    user = User(email=email, password_hash=hash_password(password))
    db.session.add(user)
    with unique_email():
        db.session.flush()
        queue_verification(user)
        db.session.commit()
    return user


def _store_refresh_token(pair: dict, user_id: int, session: Session) -> dict:
    db.session.add(
        RefreshToken(
            digest=token_digest(pair["refresh_token"]),
            user_id=user_id,
            session_id=session.id,
            expires_at=session.expires_at,
        )
    )
    return pair


def login(*, email: str, password: str, user_agent: str | None, ip_address: str | None) -> dict:
    """Check credentials and open a session; one answer for every kind of failure."""
    user = db.session.scalar(select(User).where(User.email == email))
    valid = verify_password(password, user.password_hash if user else None)
    if not (valid and user.is_active):
        raise Unauthorized(BAD_CREDENTIALS)
    if current_app.config["REQUIRE_VERIFIED_EMAIL"] and not user.email_verified:
        # Only the password's owner gets here: the address is not disclosed to anyone else.
        queue_verification(user)
        db.session.commit()
        raise Forbidden(UNVERIFIED)
    session = Session(
        user_id=user.id,
        expires_at=_now() + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
        user_agent=(user_agent or "")[:255] or None,
        ip_address=ip_address,
    )
    db.session.add(session)
    db.session.flush()
    pair = issue_token_pair(user.id, session.id, family_expires_at=session.expires_at)
    _store_refresh_token(pair, user.id, session)
    db.session.commit()
    return pair


def _live_session(session_id, now: datetime):
    """SQL condition: the session exists, is unrevoked, unexpired, and its user is active."""
    return exists().where(
        Session.id == session_id,
        Session.revoked_at.is_(None),
        Session.expires_at > now,
        Session.user_id == User.id,
        User.is_active.is_(True),
    )


def rotate_refresh_token(*, token: str) -> dict:
    """Spend a refresh token and issue a new pair in the same family.

    The spend is one conditional UPDATE, so of two concurrent refreshes with one token
    exactly one wins. A token that was already spent is reuse: the family is revoked.
    """
    user_id, session_id = read_refresh_token(token)
    digest = token_digest(token)
    now = _now()
    spent = db.session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.digest == digest,
            RefreshToken.session_id == session_id,
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
            _live_session(RefreshToken.session_id, now),
        )
        .values(revoked_at=now)
        .returning(RefreshToken.session_id)
    ).first()
    if spent is None:
        _revoke_family_if_reused(digest)
        raise Unauthorized(BAD_REFRESH_TOKEN)
    session = db.session.get(Session, session_id)
    session.last_used_at = now
    pair = issue_token_pair(user_id, session_id, family_expires_at=session.expires_at)
    _store_refresh_token(pair, user_id, session)
    db.session.commit()
    return pair


def _revoke_family_if_reused(digest: str) -> None:
    """A known but spent token presented again: revoke its whole session (RFC 9700 4.14.2)."""
    known = db.session.execute(
        select(RefreshToken.session_id, RefreshToken.revoked_at).where(
            RefreshToken.digest == digest
        )
    ).first()
    if known is not None and known.revoked_at is not None:
        revoke_sessions(session_ids=[known.session_id])
        db.session.commit()
    else:
        db.session.rollback()


def revoke_sessions(*, session_ids=None, user_id: int | None = None) -> None:
    """Revoke sessions (by id, or every session of a user) and their refresh tokens; no commit."""
    now = _now()
    session_filter = (
        Session.id.in_(session_ids) if session_ids is not None else Session.user_id == user_id
    )
    token_filter = (
        RefreshToken.session_id.in_(session_ids)
        if session_ids is not None
        else RefreshToken.user_id == user_id
    )
    db.session.execute(
        update(Session).where(session_filter, Session.revoked_at.is_(None)).values(revoked_at=now)
    )
    db.session.execute(
        update(RefreshToken)
        .where(token_filter, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def logout(*, token: str) -> None:
    """Revoke the session of a refresh token; repeating it is harmless."""
    _, session_id = read_refresh_token(token)
    known = db.session.scalar(
        select(RefreshToken.id).where(
            RefreshToken.digest == token_digest(token), RefreshToken.session_id == session_id
        )
    )
    if known is None:
        raise Unauthorized(BAD_REFRESH_TOKEN)
    revoke_sessions(session_ids=[session_id])
    db.session.commit()


# Built once: it runs on every authenticated request, and building it cost more than running it.
_SESSION_USER = (
    select(User)
    .join(Session, Session.user_id == User.id)
    .where(
        User.id == bindparam("user_id"),
        User.is_active.is_(True),
        Session.id == bindparam("session_id"),
        Session.revoked_at.is_(None),
        Session.expires_at > bindparam("now", type_=Session.expires_at.type),
    )
)


def load_session_user(user_id: int, session_id: int) -> User | None:
    """The active user behind a live session: one indexed query per authenticated request."""
    params = {"user_id": user_id, "session_id": session_id, "now": _now()}
    return db.session.scalar(_SESSION_USER, params)


def purge_sessions(*, revoked_before: datetime, batch_size: int = 1000) -> int:
    """Delete expired sessions and sessions revoked before ``revoked_before``, in batches.

    Their refresh-token rows go with them (ON DELETE CASCADE). Spent tokens of live
    sessions are kept: they are what reuse detection recognises. Each batch commits on its
    own so a cron run never holds long locks on a live service.
    """
    now = _now()
    deleted = 0
    while True:
        batch = (
            select(Session.id)
            .where((Session.expires_at < now) | (Session.revoked_at < revoked_before))
            .limit(batch_size)
            .scalar_subquery()
        )
        count = db.session.execute(delete(Session).where(Session.id.in_(batch))).rowcount
        db.session.commit()
        deleted += count
        if count < batch_size:
            return deleted
