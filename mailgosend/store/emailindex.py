# -*- test-case-name: tests.test_jmap_query_changes -*-
"""What the in-memory Email/query index (mail/query.py) reads: a user's message rows, all
live ones or every one changed since a value of the user's change counter (mailstate.py),
and the tombstones of rows removed with their mailbox.  Plain columns only."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import select
from sqlalchemy.engine import Connection

from mailgosend.db.schema import email_tombstones, messages
from mailgosend.store.emails import EmailRow

__all__ = ["IndexRow", "Tombstone", "index_rows"]

IndexRow = tuple[EmailRow, bool]  # (the row, expunged)
Tombstone = tuple[int, int, int]  # (email id, thread id, mailbox id)

_COLUMNS = (messages.c.email_id, messages.c.thread_id, messages.c.mailbox_id, messages.c.uid,
            messages.c.modseq, messages.c.flags, messages.c.internal_date, messages.c.size,
            messages.c.blob_id, messages.c.id, messages.c.deleted_at)


def index_rows(conn: Connection, user_id: int, since: Optional[int]
               ) -> tuple[list[IndexRow], list[Tombstone]]:
    """``since`` None: every live row (and no tombstones).  Otherwise every row whose MODSEQ
    is above ``since``, expunged ones included, in MODSEQ order, and the tombstones left
    since then (the ``(user_id, modseq)`` indexes serve both)."""
    query = select(*_COLUMNS).where(messages.c.user_id == user_id)
    if since is None:
        query = query.where(messages.c.deleted_at.is_(None))
    else:
        query = query.where(messages.c.modseq > since).order_by(messages.c.modseq)
    rows = [(EmailRow(int(r.email_id), int(r.thread_id), int(r.mailbox_id), int(r.uid),
                      int(r.modseq), tuple(r.flags.split()), r.internal_date, int(r.size),
                      r.blob_id, int(r.id)), r.deleted_at is not None)
            for r in conn.execute(query)]
    if since is None:
        return rows, []
    t = email_tombstones.c
    stones = [(int(r.email_id), int(r.thread_id), int(r.mailbox_id)) for r in conn.execute(
        select(t.email_id, t.thread_id, t.mailbox_id).where(t.user_id == user_id,
                                                            t.modseq > since))]
    return rows, stones
