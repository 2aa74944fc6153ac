"""Reading the change log since a sync token; issuing, checking and purging."""

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import Table, and_, delete, select, text, tuple_

from taskapp.errors import AppError
from taskapp.extensions import db
from taskapp.sync.models import Change

# Domain separation: the signing key also signs JWTs and keys the rate-limit digests.
_TOKEN_KEY_CONTEXT = b"taskapp sync token\x00"
# Tombstones outlive the token age limit by this much: a transaction that began (and so
# stamped its tombstone) a little before a token's snapshot may commit after it.
PURGE_MARGIN = timedelta(days=1)
XMIN = text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


class InvalidSyncToken(AppError):
    code = 422
    message = "Not a sync token this API issued for this feed"


class SyncTokenExpired(AppError):
    code = 410
    message = "This sync token is too old: list everything again (GET /tasks), then sync anew"


@dataclass(frozen=True)
class Position:
    """Where a sync stands: what a token carries (signed).

    ``since``: changes with ``seq`` >= it are still to be read. ``after``: within a walk of
    several pages, the (seq, entity_id) last returned. ``horizon`` and ``started``: the
    snapshot xmin and the time of the walk's first page, which become the next walk's
    ``since`` and age.
    """

    user_id: int
    kind: str
    since: int
    after: tuple[int, int] | None
    horizon: int
    started: int


def read_changes(
    user_id: int, *, kind: str, table: Table, token: str | None, limit: int
) -> tuple[list[dict], list[int], str, bool]:
    """The entities of ``kind`` (rows of ``table``) changed since ``token``, the ids deleted,
    the next token and whether more pages follow.

    Without a token: no changes, and a token for now. A transaction that commits after this
    read but wrote before it has an id at or above the snapshot's xmin, which becomes the
    next ``since``: it is read next time (an entity may come twice, never zero times).
    """
    horizon = _horizon()
    now = int(time.time())
    if token is None:
        return [], [], _issue(Position(user_id, kind, horizon, None, horizon, now)), False
    position = _decode(token, user_id=user_id, kind=kind)
    retention = timedelta(days=current_app.config["SYNC_RETENTION_DAYS"])
    if now - position.started > retention.total_seconds():
        raise SyncTokenExpired()
    if position.after is None:
        # A new walk: this snapshot's xmin bounds the next walk, and its time ages it.
        position = Position(user_id, kind, position.since, None, horizon, now)
    horizon = position.horizon
    changes = Change.__table__
    filters = [
        changes.c.user_id == user_id,
        changes.c.kind == kind,
        changes.c.seq >= position.since,
    ]
    if position.after is not None:
        filters.append(tuple_(changes.c.seq, changes.c.entity_id) > tuple_(*position.after))
    statement = (
        select(changes.c.seq, changes.c.entity_id, changes.c.deleted, table)
        .outerjoin(table, and_(table.c.id == changes.c.entity_id, ~changes.c.deleted))
        .where(*filters)
        .order_by(changes.c.seq, changes.c.entity_id)
        .limit(limit + 1)
    )
    rows = db.session.execute(statement).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    changed, deleted = [], []
    for row in rows:
        if row.deleted:
            deleted.append(row.entity_id)
        elif row.id is not None:
            changed.append({column.name: getattr(row, column.name) for column in table.columns})
    if has_more:
        last = rows[-1]
        after = (last.seq, last.entity_id)
        following = Position(user_id, kind, position.since, after, horizon, position.started)
    else:
        # The walk is over: the next one starts from its first page's snapshot.
        following = Position(user_id, kind, horizon, None, horizon, position.started)
    return changed, deleted, _issue(following), has_more


def purge_tombstones(*, older_than: timedelta, batch_size: int = 1000) -> int:
    """Delete tombstones older than ``older_than`` (plus a margin), in batches."""
    cutoff = datetime.now(UTC) - older_than - PURGE_MARGIN
    changes = Change.__table__
    deleted = 0
    while True:
        batch = (
            select(changes.c.user_id, changes.c.kind, changes.c.entity_id)
            .where(changes.c.deleted, changes.c.changed_at < cutoff)
            .limit(batch_size)
        )
        keys = tuple_(changes.c.user_id, changes.c.kind, changes.c.entity_id)
        count = db.session.execute(delete(changes).where(keys.in_(batch))).rowcount
        db.session.commit()
        deleted += count
        if count < batch_size:
            return deleted


def _horizon() -> int:
    """The lowest ``seq`` a transaction not yet visible to a later read can have."""
    return db.session.scalar(XMIN)


def _mac(payload: bytes) -> bytes:
    key = current_app.config["JWT_SECRET_KEY"].encode()
    return hmac.new(key, _TOKEN_KEY_CONTEXT + payload, hashlib.sha256).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode("ascii") + b"==")


def _issue(position: Position) -> str:
    payload = json.dumps(
        {
            "u": position.user_id,
            "k": position.kind,
            "f": position.since,
            "a": list(position.after) if position.after else None,
            "h": position.horizon,
            "t": position.started,
        },
        separators=(",", ":"),
    ).encode()
    return f"{_b64(payload)}.{_b64(_mac(payload))}"


def _decode(token: str, *, user_id: int, kind: str) -> Position:
    """The position in a token this API signed for this user and feed; else InvalidSyncToken."""
    try:
        body, _, mac = token.partition(".")
        payload = _unb64(body)
        if not hmac.compare_digest(_unb64(mac), _mac(payload)):
            raise InvalidSyncToken()
        data = json.loads(payload)
        after = data["a"]
        position = Position(
            data["u"], data["k"], data["f"], tuple(after) if after else None, data["h"], data["t"]
        )
    except (UnicodeEncodeError, binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidSyncToken() from None
    if (position.user_id, position.kind) != (user_id, kind):
        raise InvalidSyncToken()
    return position
