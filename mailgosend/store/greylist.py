"""Greylisting state (RFC 6647): one row per keyed triplet hash (db/schema.py ``greylist``).

A row is keyed by a 32-byte HMAC that spam/greylist.py computes; this module refuses any
other key, so an address can never be stored here by mistake.  The policy (what a row's
times mean) lives in spam/greylist.py; these are the plain reads and writes it needs, run by
``DatabaseRunner`` inside its transaction.

Concurrency: a new row is inserted with ``ON CONFLICT DO NOTHING`` (both back ends), so two
sessions that meet the same new triplet at once both defer and neither fails; a known row is
read ``FOR UPDATE`` on PostgreSQL before it changes.  SQLite has a single writer anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from sqlalchemy import delete, or_, select, update
from mailgosend.db.upsert import upsert_into
from sqlalchemy.engine import Connection

from mailgosend.db.schema import greylist

__all__ = ["KEY_SIZE", "TripletState", "get", "insert_new", "mark_passed", "purge",
           "restart", "touch", "upsert_passed"]

KEY_SIZE = 32


@dataclass(frozen=True)
class TripletState:
    first_seen: datetime
    last_seen: datetime
    passed: bool


def _checked(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
        raise ValueError(f"greylist keys must be {KEY_SIZE}-byte keyed hashes")
    return bytes(key)


def get(conn: Connection, key: bytes, *, lock: bool = False) -> Optional[TripletState]:
    """The row's state, or None; ``lock`` holds it (PostgreSQL) until the transaction ends."""
    stmt = select(greylist.c.first_seen, greylist.c.last_seen, greylist.c.passed).where(
        greylist.c.triplet == _checked(key))
    if lock:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        return None
    return TripletState(row.first_seen, row.last_seen, bool(row.passed))


def insert_new(conn: Connection, key: bytes, now: datetime) -> bool:
    """Record a first attempt; False if a concurrent session recorded it first."""
    stmt = (upsert_into(conn, greylist).values(triplet=_checked(key), first_seen=now, last_seen=now,
                                 passed=False)
            .on_conflict_do_nothing(index_elements=[greylist.c.triplet])
            .returning(greylist.c.triplet))
    return conn.execute(stmt).first() is not None


def restart(conn: Connection, key: bytes, now: datetime) -> None:
    """An expired row becomes a first attempt again."""
    conn.execute(update(greylist).where(greylist.c.triplet == _checked(key))
                 .values(first_seen=now, last_seen=now, passed=False))


def mark_passed(conn: Connection, key: bytes, now: datetime) -> None:
    conn.execute(update(greylist).where(greylist.c.triplet == _checked(key))
                 .values(passed=True, last_seen=now))


def touch(conn: Connection, key: bytes, now: datetime) -> None:
    conn.execute(update(greylist).where(greylist.c.triplet == _checked(key))
                 .values(last_seen=now))


def upsert_passed(conn: Connection, key: bytes, now: datetime) -> None:
    """A row that is passed as of now, whether it existed or not (the client entries)."""
    stmt = upsert_into(conn, greylist).values(triplet=_checked(key), first_seen=now, last_seen=now,
                                passed=True)
    conn.execute(stmt.on_conflict_do_update(index_elements=[greylist.c.triplet],
                                            set_={"passed": True, "last_seen": now}))


def purge(conn: Connection, *, unpassed_before: datetime, passed_before: datetime) -> int:
    """Delete rows past their time: unpassed ones last seen before ``unpassed_before`` (never
    retried in the window), passed ones last seen before ``passed_before``.  Returns how many.

    Unpassed rows are never touched after their first attempt, so their ``last_seen`` is their
    ``first_seen`` and both conditions use the ``last_seen`` index.
    """
    c = greylist.c
    result = conn.execute(delete(greylist).where(or_(
        (c.passed == False) & (c.last_seen < unpassed_before),  # noqa: E712 (SQL, not Python)
        (c.passed == True) & (c.last_seen < passed_before))))  # noqa: E712
    return int(result.rowcount or 0)
