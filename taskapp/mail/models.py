"""The outbox: every outgoing message, written in the transaction that decided to send it."""

from datetime import datetime

from sqlalchemy import Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from taskapp.extensions import db
from taskapp.timestamps import UTCDateTime


class OutboxMessage(db.Model):
    """A message to deliver; ``sent_at`` (or ``failed_at``) is set once the server answered."""

    __tablename__ = "mail_outbox"
    __table_args__ = (
        # What the worker claims: the unsent messages that are due, oldest first.
        Index(
            "ix_mail_outbox_due",
            "next_attempt_at",
            postgresql_where=text("sent_at IS NULL AND failed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A permanent refusal (5xx): retrying would not help; kept for the operator.
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(255))
