"""Snoozed Emails and their wake-up times (the ``snoozes`` table, migration 0023).

Plain functions over a Connection, run inside the caller's transaction.  A row names an
Email (``messages.email_id``: MOVE keeps it) waiting in the user's \\Snoozed mailbox; the
transaction that deletes a due row is the one that moves the message back (mail/snooze.py),
so deleting is claiming: on PostgreSQL a second node's DELETE waits for the first and then
finds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional, Sequence

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from mailgosend.db.schema import snoozes

__all__ = ["Snooze", "cancel", "claim_due", "due", "due_users", "for_user", "put"]

_IN_BATCH = 500


@dataclass(frozen=True)
class Snooze:
    user_id: int
    email_id: int
    wake_at: datetime
    return_mailbox_id: Optional[int]


def _snooze(row: object) -> Snooze:
    return Snooze(int(row.user_id), int(row.email_id), row.wake_at,  # type: ignore[attr-defined]
                  row.return_mailbox_id)  # type: ignore[attr-defined]


def for_user(conn: Connection, user_id: int,
             email_ids: Optional[Sequence[int]] = None) -> list[Snooze]:
    """The user's snoozes (of ``email_ids``, or all), soonest first."""
    s = snoozes.c
    found: list[Snooze] = []
    if email_ids is None:
        chunks: list[Optional[list[int]]] = [None]
    else:
        wanted = sorted(set(email_ids))
        chunks = [wanted[i:i + _IN_BATCH] for i in range(0, len(wanted), _IN_BATCH)]
    for chunk in chunks:
        query = select(s.user_id, s.email_id, s.wake_at, s.return_mailbox_id).where(
            s.user_id == user_id)
        if chunk is not None:
            query = query.where(s.email_id.in_(chunk))
        found.extend(_snooze(r) for r in conn.execute(query))
    return sorted(found, key=lambda item: (item.wake_at, item.email_id))


def put(conn: Connection, user_id: int, email_id: int, wake_at: datetime,
        return_mailbox_id: Optional[int], now: datetime) -> None:
    """Snooze (or re-snooze) one Email until ``wake_at``."""
    conn.execute(delete(snoozes).where(snoozes.c.user_id == user_id,
                                       snoozes.c.email_id == email_id))
    conn.execute(insert(snoozes).values(user_id=user_id, email_id=email_id, wake_at=wake_at,
                                        return_mailbox_id=return_mailbox_id, created_at=now))


def cancel(conn: Connection, user_id: int, email_ids: Sequence[int]) -> list[Snooze]:
    """Remove the snoozes of ``email_ids`` (a move out of Snoozed, an unsnooze); the rows
    removed."""
    removed: list[Snooze] = []
    wanted = sorted(set(email_ids))
    s = snoozes.c
    for i in range(0, len(wanted), _IN_BATCH):
        result = conn.execute(delete(snoozes).where(
            s.user_id == user_id, s.email_id.in_(wanted[i:i + _IN_BATCH])).returning(
                s.user_id, s.email_id, s.wake_at, s.return_mailbox_id))
        removed.extend(_snooze(r) for r in result)
    return removed


def due(conn: Connection, now: datetime, limit: int = 100) -> list[Snooze]:
    """Snoozes whose time has come, oldest first (any user: the wake-up worker's list)."""
    s = snoozes.c
    rows = conn.execute(select(s.user_id, s.email_id, s.wake_at, s.return_mailbox_id)
                        .where(s.wake_at <= now).order_by(s.wake_at, s.user_id, s.email_id)
                        .limit(limit))
    return [_snooze(r) for r in rows]


def due_users(conn: Connection, now: datetime, limit: int = 100) -> list[int]:
    """Users with a snooze whose time has come (the wake-up worker's list)."""
    s = snoozes.c
    found: list[Any] = list(conn.execute(select(s.user_id).where(s.wake_at <= now)
                                         .group_by(s.user_id).order_by(func.min(s.wake_at))
                                         .limit(limit)).scalars())
    return [int(u) for u in found]


def claim_due(conn: Connection, user_id: int, now: datetime, limit: int) -> list[Snooze]:
    """Delete up to ``limit`` of the user's due snoozes, soonest first: the rows this
    transaction claimed.  A row another transaction (another node) deleted first is not
    returned: on PostgreSQL the DELETE waits for that one and then skips the row."""
    s = snoozes.c
    soonest = (select(s.email_id).where(s.user_id == user_id, s.wake_at <= now)
               .order_by(s.wake_at, s.email_id).limit(limit))
    result = conn.execute(delete(snoozes).where(
        s.user_id == user_id, s.wake_at <= now, s.email_id.in_(soonest)).returning(
            s.user_id, s.email_id, s.wake_at, s.return_mailbox_id))
    return sorted((_snooze(r) for r in result), key=lambda x: (x.wake_at, x.email_id))
