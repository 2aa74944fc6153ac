"""Column types shared by the models."""

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeDecorator

SQLITE_FORMAT = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d"


class UTCDateTime(TypeDecorator):
    """A timezone-aware timestamp, always returned in UTC.

    PostgreSQL stores ``timestamptz``; SQLite returns naive values of CURRENT_TIMESTAMP,
    which is UTC, so they are marked as such.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            # Stored as CURRENT_TIMESTAMP writes it (whole seconds): SQLite compares the text,
            # so one format is what makes equal instants compare equal (keyset pagination).
            return dialect.type_descriptor(sqlite.DATETIME(storage_format=SQLITE_FORMAT))
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: datetime | None, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value is not None and dialect.name == "sqlite":
            # Compare like CURRENT_TIMESTAMP does: naive UTC text.
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
