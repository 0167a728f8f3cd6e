"""Column types shared by the schema.

Time in mailgosend is always UTC and always timezone-aware: IMAP INTERNALDATE, queue retry times,
session expiry and ban expiry are compared across processes, nodes and back ends, and a naive
datetime silently means "local time of whoever wrote it".  ``UTCDateTime`` makes that mistake
impossible to store and gives every reader the same kind of value on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.types import DateTime, TypeDecorator

__all__ = ["UTCDateTime"]


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that goes in and comes out as an aware UTC ``datetime``.

    PostgreSQL stores it as ``timestamp with time zone``; SQLite has no time zones, so the value is
    normalised to UTC and stored naive (SQLAlchemy's fixed-width ISO text, which sorts and compares
    correctly as text), and the UTC zone is put back on the way out.  Naive values are refused on
    bind with ``ValueError`` (SQLAlchemy wraps it in ``StatementError``) because there is no way to
    know which zone they were meant in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        """Normalise an aware datetime to UTC; refuse naive ones."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UTCDateTime expects a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} refused: pass an aware datetime "
                "(e.g. datetime.now(timezone.utc)) so nobody stores local time by mistake"
            )
        utc = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return the stored instant as an aware UTC datetime on every back end."""
        if value is None:
            return None
        stored: datetime = value
        if stored.tzinfo is None:
            return stored.replace(tzinfo=timezone.utc)
        return stored.astimezone(timezone.utc)
