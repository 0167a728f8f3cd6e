"""INSERT ... ON CONFLICT on both back ends: the dialect's own INSERT construct.

SQLAlchemy Core's generic ``insert`` has no ``on_conflict_do_update``; PostgreSQL's and
SQLite's each have one with the same signature.  A counter or a "seen" row written by two
nodes (or two threads) at once must be one statement, not an UPDATE followed by an INSERT
that races (a UniqueViolation when both INSERT).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

__all__ = ["upsert_into"]


def upsert_into(conn: Connection, table: Table) -> Any:
    """The INSERT of ``conn``'s dialect for ``table``, with ``on_conflict_do_update`` and
    ``on_conflict_do_nothing``."""
    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
