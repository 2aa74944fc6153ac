"""The change log: one row per synced entity, with the transaction that last wrote it."""

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, false, func
from sqlalchemy.orm import Mapped, mapped_column

from taskapp.extensions import db
from taskapp.timestamps import UTCDateTime


class Change(db.Model):
    """The last write of one entity (``kind`` "task"; "list", "label" can join), by triggers.

    Written by database triggers (migration 0006) in the writer's own transaction, so every
    writer is covered and a change and its log row commit together. ``seq`` is that
    transaction's id on PostgreSQL (``pg_current_xact_id()``), which a sync reader compares
    with its snapshot's xmin, so a transaction that commits late is still read. A deleted
    entity stays as a tombstone (``deleted``) until ``flask sync purge`` removes it after
    SYNC_RETENTION_DAYS.
    """

    __tablename__ = "sync_changes"
    __table_args__ = (
        Index("ix_sync_changes_user_id_kind_seq", "user_id", "kind", "seq", "entity_id"),
        Index("ix_sync_changes_changed_at", "changed_at"),
    )

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    entity_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(server_default=false())
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
