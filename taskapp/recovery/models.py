"""Single-use tokens sent by email: password reset, address verification, address change."""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from taskapp.extensions import db
from taskapp.sqltypes import UTCDateTime

PURPOSES = ("password_reset", "verify_email", "change_email")


class EmailToken(db.Model):
    """One emailed token, known only by the SHA-256 digest of its random value."""

    __tablename__ = "email_tokens"
    __table_args__ = (
        CheckConstraint(
            "purpose IN ('password_reset', 'verify_email', 'change_email')", name="purpose"
        ),
        # Finds a user's live tokens of a purpose, which a newer request invalidates.
        Index("ix_email_tokens_user_id_purpose", "user_id", "purpose"),
        Index("ix_email_tokens_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(16))
    # The address to move to (change_email only).
    new_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the token is used, or when a newer token of the same purpose replaces it.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
