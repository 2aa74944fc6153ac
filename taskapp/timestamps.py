"""The timestamp column type of every model: timezone-aware, always returned in UTC."""

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """A ``timestamptz`` read back in UTC, whatever the session's time zone; a naive value
    bound to it is taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.astimezone(UTC)
