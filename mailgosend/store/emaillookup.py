"""Messages by their JMAP email number (RFC 8621 §4: an Email is one stored message).

Until the email-id column (migration 0010, jmap-state) is merged, the email number is the
``messages.id`` row id; this module is the one place that knows it, so switching to
``messages.email_id`` is a change here only.  Only live (not expunged) rows of the given
user are found: another user's ids are simply absent (RFC 8620 §5.1 notFound).
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import select
from sqlalchemy.engine import Connection

from mailgosend.db.schema import messages
from mailgosend.store.messages import MessageRow, _ROW_COLUMNS, _row

__all__ = ["find_messages", "email_number"]

_IN_BATCH = 500


def email_number(message_id: int) -> int:
    """The email number of the stored message ``messages.id`` (see the module docstring)."""
    return message_id


def find_messages(conn: Connection, user_id: int, numbers: Iterable[int]) -> dict[int, MessageRow]:
    """The live messages of ``user_id`` among the email ``numbers``, by number; one query
    per 500."""
    wanted = sorted(set(numbers))
    found: dict[int, MessageRow] = {}
    for i in range(0, len(wanted), _IN_BATCH):
        query = select(*_ROW_COLUMNS).where(
            messages.c.user_id == user_id, messages.c.deleted_at.is_(None),
            messages.c.id.in_(wanted[i:i + _IN_BATCH]))
        for record in conn.execute(query):
            row = _row(record)
            found[email_number(row.id)] = row
    return found
