"""Idempotency keys: one per user and key, with the response of the request that used it."""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from taskapp.extensions import db
from taskapp.timestamps import UTCDateTime


class IdempotencyKey(db.Model):
    """A key a user sent with a write, the fingerprint of that request, and its response.

    The row is inserted in the same transaction as the write's work and filled in with its
    response before that transaction commits, so work and response commit together or not
    at all (``status`` is NULL only inside it). A concurrent attempt is refused by an
    advisory lock on PostgreSQL, and by the unique constraint.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None]
    headers: Mapped[dict | None] = mapped_column(JSON)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
