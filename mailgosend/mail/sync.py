# -*- test-case-name: tests.test_imap_snapshot -*-
"""What changed in a mailbox since a MODSEQ: the reads every front end keeps a view current with.

Each function is a database job (``DatabaseRunner.read``) that returns plain values.  They
rely on note 2 and 3 of the package docstring: every change to a message allocates a new
MODSEQ, and expunge is a soft delete, so "changed since m" (flags, new rows and expunges) is
one indexed query.  What MODSEQ cannot show (rows purged long after their expunge, messages
RENAME INBOX moved away) is caught by counting the live rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from mailgosend.db.schema import messages as messages_table
from mailgosend.store.mailboxes import Mailbox, get_mailbox, get_mailbox_by_id
from mailgosend.store.messages import MessageRow, list_messages

__all__ = ["SnapshotDelta", "SyncState", "Vanished", "live_count", "live_uids", "refresh",
           "sync_state", "vanished"]


@dataclass(frozen=True)
class SnapshotDelta:
    """What ``refresh`` found; ``rows`` is everything when ``full``, else the changes."""

    mailbox: Optional[Mailbox]
    full: bool
    rows: list[MessageRow]
    since: int  # the snapshot MODSEQ the changes are relative to
    live_count: Optional[int]  # counted in the same job, when HIGHESTMODSEQ moved or due


@dataclass(frozen=True)
class SyncState:
    mailbox: Optional[Mailbox]  # None: deleted while selected
    changed: list[MessageRow]  # MODSEQ above the session's, expunged rows included
    live_count: Optional[int]  # how many live messages, when a full check was asked for


@dataclass(frozen=True)
class Vanished:
    """What ``vanished`` read: UIDs expunged after the MODSEQ (still kept as rows), and,
    only when some UID below UIDNEXT has no row at all, every UID that has one."""

    expunged: list[int]
    present: Optional[list[int]]


def live_count(conn: Connection, mailbox_id: int) -> int:
    """How many messages of a mailbox are not expunged."""
    return int(conn.execute(select(func.count()).where(
        messages_table.c.mailbox_id == mailbox_id,
        messages_table.c.deleted_at.is_(None))).scalar_one())


def live_uids(conn: Connection, mailbox_id: int) -> list[int]:
    """Every live UID of a mailbox, ascending (when a count disagreed with a view)."""
    return [int(row[0]) for row in conn.execute(
        select(messages_table.c.uid).where(messages_table.c.mailbox_id == mailbox_id,
                                           messages_table.c.deleted_at.is_(None))
        .order_by(messages_table.c.uid))]


def refresh(conn: Connection, user_id: int, name: str,
            known: dict[int, tuple[int, int, bool]]) -> SnapshotDelta:
    """The mailbox ``name`` and what changed since the snapshot ``known`` holds for it
    (mailbox id -> (UIDVALIDITY, MODSEQ, count due)); everything if there is none or its
    UIDVALIDITY differs (RFC 3501 §2.3.1.1: the old UIDs mean nothing).  Equal HIGHESTMODSEQ
    means nothing changed: one indexed query."""
    box = get_mailbox(conn, user_id, name)
    if box is None:
        return SnapshotDelta(None, False, [], 0, None)
    base = known.get(box.id)
    if base is None or base[0] != box.uidvalidity:
        return SnapshotDelta(box, True, list_messages(conn, box.id), 0, None)
    _, since, due = base
    if box.highestmodseq == since and not due:
        return SnapshotDelta(box, False, [], since, None)
    changed = list_messages(conn, box.id, changed_since=since, include_expunged=True)
    return SnapshotDelta(box, False, changed, since, live_count(conn, box.id))


def sync_state(conn: Connection, user_id: int, mailbox_id: int, since_modseq: int,
               full: bool) -> SyncState:
    """What changed in a mailbox since a view's last look (RFC 7162 MODSEQ order).

    ``full`` also counts the live messages: a count that disagrees with the view reveals what
    MODSEQ cannot show, and the view then asks for ``live_uids``.
    """
    box = get_mailbox_by_id(conn, user_id, mailbox_id)
    if box is None:
        return SyncState(None, [], None)
    changed = list_messages(conn, mailbox_id, changed_since=since_modseq, include_expunged=True)
    return SyncState(box, changed, live_count(conn, mailbox_id) if full else None)


def vanished(conn: Connection, mailbox_id: int, since: int, uidnext: int) -> Vanished:
    """The expunged rows after MODSEQ ``since`` (the MODSEQ index), and all UIDs only if the
    row count shows UIDs without a row (RFC 7162 §3.2.5.2, see imap/qresync.py)."""
    m = messages_table
    expunged = [int(r[0]) for r in conn.execute(
        select(m.c.uid).where(m.c.mailbox_id == mailbox_id, m.c.modseq > since,
                              m.c.deleted_at.is_not(None)).order_by(m.c.uid))]
    rows = int(conn.execute(select(func.count()).where(m.c.mailbox_id == mailbox_id))
               .scalar_one())
    present = None
    if rows < uidnext - 1:
        present = [int(r[0]) for r in conn.execute(
            select(m.c.uid).where(m.c.mailbox_id == mailbox_id).order_by(m.c.uid))]
    return Vanished(expunged, present)
