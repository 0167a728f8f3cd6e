"""JMAP Emails and Threads over the message rows (RFC 8621 §3, §4): lookups by id and the
exact ``/changes`` of Email, Thread and Mailbox from the user's change counter.

An Email is the live row(s) sharing an ``email_id`` (one today: a message is in one
mailbox; a MOVE hands the id to the new row); a Thread is the live rows sharing a
``thread_id``.  Nothing here decrypts: ids, flags, sizes and dates are plain columns.

``/changes`` (RFC 8620 §5.2) from state ``s`` reads what carries a counter value above ``s``
(mailstate.py): message rows (new, flagged, moved, expunged: soft-deleted rows keep their
final value), the tombstones a mailbox deletion leaves, and mailbox rows.  Whether an object
was created, updated or destroyed since ``s`` follows from when it was created
(``created_modseq``) and whether it is live now.  Pages (``maxChanges``) end at an
intermediate state ``(m, last id)``: every object whose latest change is at or below it was
returned, with its current state, which then is its state at ``m``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Optional, Sequence

from sqlalchemy import false, func, literal, null, select, true, union_all
from sqlalchemy.engine import Connection

from mailgosend.db.schema import (email_tombstones, mailbox_tombstones, mailboxes, messages,
                                  subscriptions)

__all__ = ["EmailRow", "Changes", "Position", "email_changes", "emails_by_id",
           "emails_in_threads", "mailbox_changes", "thread_changes"]

_IN_BATCH = 500


@dataclass(frozen=True)
class EmailRow:
    """One live message row of an Email: what Email/get's plain properties need."""

    email_id: int
    thread_id: int
    mailbox_id: int
    uid: int
    modseq: int
    flags: tuple[str, ...]
    internal_date: datetime
    size: int
    blob_id: str
    message_id: int  # the row's own id (messages.id), for structure/blob reads


_COLUMNS = (messages.c.email_id, messages.c.thread_id, messages.c.mailbox_id, messages.c.uid,
            messages.c.modseq, messages.c.flags, messages.c.internal_date, messages.c.size,
            messages.c.blob_id, messages.c.id)


def _email(r: Any) -> EmailRow:
    return EmailRow(int(r.email_id), int(r.thread_id), int(r.mailbox_id), int(r.uid),
                    int(r.modseq), tuple(r.flags.split()), r.internal_date, int(r.size),
                    r.blob_id, int(r.id))


def _batches(ids: Iterable[int]) -> list[list[int]]:
    unique = sorted(set(ids))
    return [unique[i:i + _IN_BATCH] for i in range(0, len(unique), _IN_BATCH)]


def emails_by_id(conn: Connection, user_id: int, email_ids: Sequence[int]) -> list[EmailRow]:
    """The live rows of the user's Emails ``email_ids`` (ids of other users or gone are
    simply absent), ordered by Email id then mailbox."""
    found: list[EmailRow] = []
    for batch in _batches(email_ids):
        found += [_email(row) for row in conn.execute(
            select(*_COLUMNS).where(messages.c.user_id == user_id,
                                    messages.c.email_id.in_(batch),
                                    messages.c.deleted_at.is_(None)))]
    return sorted(found, key=lambda e: (e.email_id, e.mailbox_id))


def emails_in_threads(conn: Connection, user_id: int, thread_ids: Sequence[int]
                      ) -> list[EmailRow]:
    """The live rows of the user's Threads ``thread_ids``, by thread, oldest received first
    (RFC 8621 §3.1: a Thread's emailIds are sorted by receivedAt), ties by Email id."""
    found: list[EmailRow] = []
    for batch in _batches(thread_ids):
        found += [_email(row) for row in conn.execute(
            select(*_COLUMNS).where(messages.c.user_id == user_id,
                                    messages.c.thread_id.in_(batch),
                                    messages.c.deleted_at.is_(None)))]
    return sorted(found, key=lambda e: (e.thread_id, e.internal_date, e.email_id))
