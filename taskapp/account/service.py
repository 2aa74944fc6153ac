"""Account rules: password change, session listing and revocation, account deletion."""

from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from taskapp import audit
from taskapp.admin.service import active_admin_ids_locked
from taskapp.auth.models import Session, User
from taskapp.auth.passwords import hash_password, verify_password
from taskapp.auth.service import lock_user, revoke_credentials, revoke_sessions
from taskapp.database import allow_long_statements
from taskapp.errors import Conflict, Forbidden, NotFound
from taskapp.extensions import db
from taskapp.tasks.locks import lock_user_tasks

WRONG_PASSWORD = "Password is incorrect"
LAST_ADMIN = "The last active admin cannot delete their account; make another admin first"


def check_password(user_id: int, password: str) -> User:
    """The user, unless ``password`` is not theirs: Forbidden (a route's confirmation of intent)."""
    # The caller (the session check rides with this read, unless current_user loaded it).
    user = db.session.get(User, user_id)
    if not verify_password(password, user.password_hash):
        audit.record("password_check_failed", "wrong password for an account", user_id=user_id)
        raise Forbidden(WRONG_PASSWORD)
    return user


def change_password(user_id: int, *, current_password: str, new_password: str) -> None:
    """Set a new password, revoke every session of the user (this one included) and retire
    every emailed link: one sent earlier must not undo the password just chosen."""
    user = check_password(user_id, current_password)
    user.password_hash = hash_password(new_password)
    revoke_credentials(user_id)
    db.session.commit()
    audit.record("password_changed", "password changed: every session revoked", user_id=user_id)


def list_sessions(user_id: int, *, current_session_id: int) -> list[dict]:
    """The user's live sessions (not revoked, expired or idle), newest first, marking the
    caller's own."""
    now = datetime.now(UTC)
    idle_since = now - timedelta(days=current_app.config["REFRESH_IDLE_DAYS"])
    sessions = db.session.scalars(
        select(Session)
        .where(
            Session.user_id == user_id,
            Session.revoked_at.is_(None),
            Session.expires_at > now,
            Session.last_used_at > idle_since,
        )
        .order_by(Session.created_at.desc(), Session.id.desc())
    )
    return [
        {
            "id": session.id,
            "created_at": session.created_at,
            "last_used_at": session.last_used_at,
            "user_agent": session.user_agent,
            "current": session.id == current_session_id,
        }
        for session in sessions
    ]


def revoke_session(user_id: int, session_id: int) -> None:
    """Revoke one of the user's sessions; another user's session is NotFound."""
    owner = db.session.scalar(select(Session.user_id).where(Session.id == session_id))
    if owner != user_id:
        raise NotFound("Session not found")
    revoke_sessions(session_ids=[session_id])
    db.session.commit()
    audit.record("session_revoked", "session revoked", user_id=user_id, session_id=session_id)


def revoke_all_sessions(user_id: int) -> None:
    """Log the user out everywhere: every session and every emailed link."""
    revoke_credentials(user_id)
    db.session.commit()
    audit.record("logout_all", "every session revoked by the user", user_id=user_id)


def delete_account(user_id: int, *, password: str) -> None:
    """Delete the user with their tasks and sessions (ON DELETE CASCADE).

    Refused with Conflict for the last active admin, counted under the admin rows' locks as
    the admin API counts them.
    """
    user = check_password(user_id, password)
    if user.is_admin and active_admin_ids_locked() == [user_id]:
        db.session.rollback()
        raise Conflict(LAST_ADMIN)
    # Serialises with a login in flight (see lock_user): it sees no user, or its session goes.
    lock_user(user_id)
    lock_user_tasks(user_id)  # the cascade deletes the user's tasks: their writers' queue
    allow_long_statements()  # the cascade deletes every task of the account
    db.session.execute(delete(User).where(User.id == user_id))
    db.session.commit()
    audit.record("account_deleted", "account deleted by its user", user_id=user_id)
