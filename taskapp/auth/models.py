"""Users, their sessions (refresh-token families), the refresh-token digests and the digests
of the single-use tokens sent by email (password reset, address verification and change)."""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, false, func, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from taskapp.extensions import db
from taskapp.timestamps import UTCDateTime

USER = "user"
ADMIN = "admin"
ROLES = (USER, ADMIN)


class User(db.Model):
    """An account. ``email`` is stored normalised (trimmed, lower-cased)."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN ({', '.join(repr(role) for role in ROLES)})", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(60))
    role: Mapped[str] = mapped_column(String(16), default=USER, server_default=USER)
    is_active: Mapped[bool] = mapped_column(default=True, server_default=true())
    # Set when the user follows a link sent to ``email`` (verification, reset, change).
    email_verified: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Moved on by whatever changes who may act for the account (password change or reset,
    # logout everywhere, deactivation, verification, address change): an emailed token works
    # only while the stamp it was issued under is still this one (auth/email_tokens.py).
    security_stamp: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())

    sessions: Mapped[list["Session"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


class Session(db.Model):
    """A login: one refresh-token family with the absolute expiry of its first login."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user_agent: Mapped[str | None] = mapped_column(String(255))
    ip_address: Mapped[str | None] = mapped_column(String(45))

    user: Mapped[User] = relationship(back_populates="sessions")


class RefreshToken(db.Model):
    """One issued refresh token, known only by the SHA-256 digest of the encoded JWT."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the token is rotated (spent) or its session is revoked.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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
    # The user's security_stamp when it was issued: the token dies when the stamp moves on.
    security_stamp: Mapped[int] = mapped_column(default=0, server_default="0")
    # The address to move to (change_email only).
    new_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the token is used, or when a newer token of the same purpose replaces it.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
