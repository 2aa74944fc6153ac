"""Account and session rules: signup, login, refresh rotation with reuse detection, logout."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, delete, exists, select, update
from sqlalchemy.exc import IntegrityError

from taskapp import audit
from taskapp.auth.email_tokens import queue_verification, retire_links
from taskapp.auth.models import RefreshToken, Session, User
from taskapp.auth.passwords import hash_password, needs_rehash, verify_password
from taskapp.auth.tokens import issue_token_pair, read_refresh_token, token_digest
from taskapp.database import lock_until_commit
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


def _idle_cutoff(now: datetime) -> datetime:
    """Sessions last used (refreshed) before this can no longer refresh."""
    return now - timedelta(days=current_app.config["REFRESH_IDLE_DAYS"])


def lock_user(user_id: int) -> None:
    """Lock the user's row until the commit (FOR NO KEY UPDATE on PostgreSQL).

    Whatever ends every session of a user (password change, logout-all, deactivation,
    deletion) takes this lock before revoking, and a login holds FOR SHARE on the same row
    while it opens its session: the two serialise, so no login can insert a session that
    the revocation's statement did not see.
    """
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))


def _lock_for_login(user_id: int, password: str, verified_hash: str, *, rehash: bool) -> None:
    """Lock the user's row (shared, or exclusive to rehash) and check that the login still
    holds: the user exists, is active, and the password matches the hash as it is now.

    Waits for a password change, deactivation or deletion in flight, then sees its result. A
    hash that changed since it was verified (another login's rehash, a change) is checked
    again, under the lock; this bcrypt runs only when such a write raced the login.
    """
    current = db.session.execute(
        select(User.password_hash, User.is_active)
        .where(User.id == user_id)
        .with_for_update(read=not rehash, key_share=rehash)
    ).first()
    if current is None or not current.is_active:
        raise Unauthorized(BAD_CREDENTIALS)
    if current.password_hash != verified_hash and not verify_password(
        password, current.password_hash
    ):
        raise Unauthorized(BAD_CREDENTIALS)


def login(*, email: str, password: str, user_agent: str | None, ip_address: str | None) -> dict:
    """Check credentials and open a session; one answer for every kind of failure.

    A hash of a lower cost than BCRYPT_ROUNDS is redone with this password, so that login
    timing no longer tells old accounts apart.
    """
    user = db.session.scalar(select(User).where(User.email == email))
    verified_hash = user.password_hash if user else None
    valid = verify_password(password, verified_hash)
    if not (valid and user.is_active):
        if user is not None:
            audit.record("login_failed", "login failed", user_id=user.id)
        raise Unauthorized(BAD_CREDENTIALS)
    if current_app.config["REQUIRE_VERIFIED_EMAIL"] and not user.email_verified:
        # Only the password's owner gets here: the address is not disclosed to anyone else.
        queue_verification(user)
        db.session.commit()
        raise Forbidden(UNVERIFIED)
    # Hashed before taking the lock: bcrypt's time is not spent holding it.
    new_hash = hash_password(password) if needs_rehash(verified_hash) else None
    _lock_for_login(user.id, password, verified_hash, rehash=new_hash is not None)
    if new_hash is not None:
        user.password_hash = new_hash
    session = Session(
        user_id=user.id,
        expires_at=_now() + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
        user_agent=(user_agent or "")[:255] or None,
        ip_address=ip_address,
    )
    db.session.add(session)
    db.session.flush()
    _evict_oldest_sessions(user.id)
    pair = issue_token_pair(user.id, session.id, family_expires_at=session.expires_at)
    _store_refresh_token(pair, user.id, session)
    db.session.commit()
    if new_hash is not None:
        audit.record("password_rehashed", "password rehashed at login", user_id=user.id)
    return pair


def _evict_oldest_sessions(user_id: int) -> None:
    """Keep the user's newest SESSIONS_PER_USER unrevoked sessions (0: all); revoke the rest.

    Eviction rather than a refusal, so that sessions left behind never lock the owner out.
    The user's logins queue on an advisory lock here, each counting the others' sessions.
    """
    limit = current_app.config["SESSIONS_PER_USER"]
    if not limit:
        return
    lock_until_commit("sessions", user_id)
    older = (
        select(Session.id)
        .where(Session.user_id == user_id, Session.revoked_at.is_(None))
        .order_by(Session.id.desc())
        .offset(limit)
    )
    evicted = db.session.scalars(older).all()
    if evicted:
        revoke_sessions(session_ids=evicted)
        audit.record(
            "sessions_evicted",
            "oldest sessions revoked at login",
            user_id=user_id,
            sessions=len(evicted),
        )


def _live_session(session_id, now: datetime):
    """SQL condition: the session exists, is unrevoked, unexpired, not idle for longer than
    REFRESH_IDLE_DAYS, and its user is active."""
    return exists().where(
        Session.id == session_id,
        Session.revoked_at.is_(None),
        Session.expires_at > now,
        Session.last_used_at > _idle_cutoff(now),
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
        select(RefreshToken.user_id, RefreshToken.session_id, RefreshToken.revoked_at).where(
            RefreshToken.digest == digest
        )
    ).first()
    if known is not None and known.revoked_at is not None:
        revoke_sessions(session_ids=[known.session_id])
        db.session.commit()
        audit.record(
            "refresh_token_reuse",
            "spent refresh token presented again: its session is revoked",
            user_id=known.user_id,
            session_id=known.session_id,
        )
    else:
        db.session.rollback()


def revoke_sessions(*, session_ids=None, user_id: int | None = None) -> None:
    """Revoke sessions (by id, or every session of a user) and their refresh tokens; no commit.

    Every session of a user: the user's row is locked first (``lock_user``), so a login in
    flight either finishes before (and its session is revoked here) or sees the change.
    """
    if session_ids is None:
        lock_user(user_id)
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


def revoke_credentials(user_id: int) -> None:
    """End whatever acts for the user: every session (with its refresh tokens) and every
    emailed link of every purpose; no commit. A password change or reset, a logout
    everywhere and a deactivation each call it."""
    revoke_sessions(user_id=user_id)
    retire_links(user_id)


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
    """Delete expired or idle sessions and sessions revoked before ``revoked_before``, in batches.

    Their refresh-token rows go with them (ON DELETE CASCADE). Spent tokens of live
    sessions are kept: they are what reuse detection recognises. Each batch commits on its
    own so a cron run never holds long locks on a live service.
    """
    now = _now()
    deleted = 0
    while True:
        batch = (
            select(Session.id)
            .where(
                (Session.expires_at < now)
                | (Session.last_used_at < _idle_cutoff(now))
                | (Session.revoked_at < revoked_before)
            )
            .limit(batch_size)
            .scalar_subquery()
        )
        count = db.session.execute(delete(Session).where(Session.id.in_(batch))).rowcount
        db.session.commit()
        deleted += count
        if count < batch_size:
            return deleted
