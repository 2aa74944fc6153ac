"""Claiming an idempotency key for a write, storing and replaying its response, purging."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError

from taskapp.database import advisory_key, lock_until_commit
from taskapp.errors import AppError, Conflict
from taskapp.extensions import db
from taskapp.idempotency.models import IdempotencyKey
from taskapp.quotas import check_quota

IN_FLIGHT = "A request with this Idempotency-Key is still being processed; retry later"
RETRY_AFTER = {"Retry-After": "1"}


class KeyReused(AppError):
    """The key was used before with another request (the draft's 422)."""

    code = 422
    message = "This Idempotency-Key was used with a different request"


@dataclass(frozen=True)
class StoredResponse:
    """The response of the first request made with a key."""

    status: int
    headers: dict[str, str]
    body: bytes


def claim_key(
    user_id: int, *, key: str, fingerprint: str, kept_for: timedelta
) -> StoredResponse | int:
    """Reserve ``key`` for this request in the current transaction, or find its first use.

    Returns the stored response to replay, or the id of the new reservation (the caller's
    work and ``store_response`` then commit it, filled in, in one transaction). Raises
    Conflict while another attempt with the key is in flight, KeyReused for a different
    request. A key older than ``kept_for`` counts as unused (the purge may not have run yet).
    """
    # Held until this transaction ends: a concurrent attempt answers 409 at once instead of
    # queueing behind the unique index for as long as the first one takes.
    held = db.session.scalar(
        text("SELECT pg_try_advisory_xact_lock(:lock)"),
        {"lock": advisory_key("idempotency", user_id, key)},
    )
    if not held:
        raise Conflict(IN_FLIGHT, headers=RETRY_AFTER)
    found = db.session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    )
    if found is not None and found.created_at < datetime.now(UTC) - kept_for:
        db.session.delete(found)
        db.session.flush()
        found = None
    if found is not None:
        if found.fingerprint != fingerprint:
            raise KeyReused()
        return StoredResponse(found.status, dict(found.headers or {}), found.body or b"")
    # The user's new keys queue here until their transactions end, so each counts the
    # others' (IDEMPOTENCY_KEYS_PER_USER); replays above never wait.
    lock_until_commit("idempotency", user_id)
    claimed = IdempotencyKey(user_id=user_id, key=key, fingerprint=fingerprint)
    db.session.add(claimed)
    try:
        db.session.flush()
    except IntegrityError:
        # Another attempt committed the key first (two keys whose lock ids collide): it is
        # in flight or done.
        db.session.rollback()
        raise Conflict(IN_FLIGHT, headers=RETRY_AFTER) from None
    live = select(func.count()).where(
        IdempotencyKey.user_id == user_id,
        IdempotencyKey.created_at >= datetime.now(UTC) - kept_for,
    )
    check_quota("idempotency_keys", db.session.scalar(live))
    return claimed.id


def store_response(claim_id: int, response: StoredResponse) -> None:
    """Keep the response of the request that claimed ``claim_id``, and commit it with the
    work of that request (still uncommitted: see ``taskapp.transactions.held_commits``)."""
    db.session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == claim_id)
        .values(status=response.status, headers=response.headers, body=response.body)
    )
    db.session.commit()


def purge_keys(*, older_than: timedelta, batch_size: int = 1000) -> int:
    """Delete keys created more than ``older_than`` ago, in batches (each its own commit)."""
    cutoff = datetime.now(UTC) - older_than
    deleted = 0
    while True:
        batch = (
            select(IdempotencyKey.id)
            .where(IdempotencyKey.created_at < cutoff)
            .limit(batch_size)
            .scalar_subquery()
        )
        count = db.session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.id.in_(batch))
        ).rowcount
        db.session.commit()
        deleted += count
        if count < batch_size:
            return deleted
