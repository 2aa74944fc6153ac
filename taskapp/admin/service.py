"""User administration: list and search users, change their role and status, make admins."""

import logging

from sqlalchemy import select

from taskapp import audit
from taskapp.auth.models import ADMIN, User
from taskapp.auth.passwords import hash_password
from taskapp.auth.service import revoke_credentials, unique_email
from taskapp.errors import Conflict, NotFound
from taskapp.extensions import db
from taskapp.pagination import page_of

USER_LIST = "admin-users"  # the cursor_list of AdminUserQuerySchema
LAST_ADMIN = "The last active admin cannot be deactivated or demoted"

log = logging.getLogger(__name__)


def list_users(
    *, search: str | None = None, page: int = 1, page_size: int = 10, cursor: dict | None = None
) -> dict:
    """One page of every user, by id, optionally those whose email contains ``search``; by
    offset (``page``) or after a cursor, as the task list pages."""
    query = select(User)
    if search:
        # autoescape: %, _ and the escape character match literally.
        query = query.where(User.email.icontains(search, autoescape=True))
    return page_of(
        USER_LIST,
        query,
        columns=[User.id],
        sort="id",
        page=page,
        page_size=page_size,
        cursor=cursor,
        entities=True,
    )


def active_admin_ids_locked() -> list[int]:
    """The active admins, their rows locked (FOR UPDATE on PostgreSQL) until the commit.

    Always locked in id order, so two admins demoting each other queue instead of
    deadlocking; the second then counts the rows as the first left them.
    """
    return list(
        db.session.scalars(
            select(User.id)
            .where(User.role == ADMIN, User.is_active.is_(True))
            .order_by(User.id)
            .with_for_update()
        )
    )


def update_user(actor_id: int, user_id: int, *, changes: dict) -> User:
    """Set a user's ``is_active`` and/or ``role``; deactivation revokes every session and
    emailed link (a reactivated account gets none of them back).

    Refused with Conflict when it would leave no active admin.
    """
    removes_admin = changes.get("is_active") is False or changes.get("role", ADMIN) != ADMIN
    active_admins = active_admin_ids_locked() if removes_admin else []
    user = db.session.scalar(
        select(User).where(User.id == user_id).execution_options(populate_existing=True)
    )
    if user is None:
        db.session.rollback()
        raise NotFound("User not found")
    if removes_admin and active_admins == [user.id]:
        db.session.rollback()
        raise Conflict(LAST_ADMIN)
    for name, value in changes.items():
        setattr(user, name, value)
    if changes.get("is_active") is False:
        revoke_credentials(user.id)
    audit_fields = {"actor_id": actor_id, "target_id": user.id, "changes": changes}
    db.session.commit()
    log.info("admin changed a user", extra=audit_fields)
    if changes.get("is_active") is False:
        audit.record(
            "user_deactivated",
            "user deactivated: every session revoked",
            actor_id=actor_id,
            user_id=user.id,
        )
    return user


def find_user(*, email: str) -> User | None:
    """The user with this (normalised) email, if any."""
    return db.session.scalar(select(User).where(User.email == email))


def user_exists(*, email: str) -> bool:
    """Whether a user has this (normalised) email; ends its transaction, so that the caller
    may then wait (a command on its operator's prompt) with none open."""
    exists = find_user(email=email) is not None
    db.session.rollback()  # it changed nothing
    return exists


def make_admin(*, email: str, password: str | None = None) -> tuple[User, bool]:
    """Promote the user with ``email`` to an active admin, or create one with ``password``.

    Returns the user and whether it was created. An existing user keeps their password.
    """
    user = find_user(email=email)
    created = user is None
    if created:
        if password is None:
            raise NotFound("User not found")
        user = User(email=email, password_hash=hash_password(password))
        db.session.add(user)
    user.role = ADMIN
    user.is_active = True
    with unique_email():
        db.session.commit()
    return user, created
