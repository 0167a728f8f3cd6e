"""Database jobs of the IMAP layer, composed from the store's public functions.

Each function runs inside one ``DatabaseRunner`` job (one transaction for writes).  Two needs
is not covered by store/ yet and is met here with a direct query, to move into
``store/messages.py`` (reported to the store's owner): reading a message's sealed ``meta`` to
copy it (``copy_messages``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from mailgosend.db.schema import mailboxes as mailboxes_table
from mailgosend.db.schema import messages as messages_table
from mailgosend.store import accounts
from mailgosend.store.blobs import SealedBlob
from mailgosend.store.mailboxes import (Mailbox, MailboxNotFound, get_mailbox,
                                        get_mailbox_by_id, list_mailboxes, list_subscriptions)
from mailgosend.store.messages import (DELETED, Delivered, MailboxCounts, MessageRow, deliver,
                                       expunge, list_messages, mailbox_counts, set_flags)

__all__ = ["CopyResult", "SyncState", "copy_messages", "live_uids", "mailbox_status",
           "mailboxes_and_subscriptions", "quota_usage", "raise_recent_floor", "sync_state"]

_IN_BATCH = 500


@dataclass(frozen=True)
class SyncState:
    mailbox: Optional[Mailbox]  # None: deleted while selected
    changed: list[MessageRow]  # MODSEQ above the session's, expunged rows included
    live_count: Optional[int]  # how many live messages, when a full check was asked for


def sync_state(conn: Connection, user_id: int, mailbox_id: int, since_modseq: int,
               full: bool) -> SyncState:
    """What changed in a mailbox since a session's last look (RFC 7162 MODSEQ order).

    ``full`` also counts the live messages: a count that disagrees with the session's view
    reveals what MODSEQ cannot show (rows purged after a long absence, the messages RENAME
    INBOX moved away), and the session then asks for ``live_uids``.
    """
    box = get_mailbox_by_id(conn, user_id, mailbox_id)
    if box is None:
        return SyncState(None, [], None)
    changed = list_messages(conn, mailbox_id, changed_since=since_modseq, include_expunged=True)
    count = None
    if full:
        count = int(conn.execute(select(func.count()).where(
            messages_table.c.mailbox_id == mailbox_id,
            messages_table.c.deleted_at.is_(None))).scalar_one())
    return SyncState(box, changed, count)


def live_uids(conn: Connection, mailbox_id: int) -> list[int]:
    """Every live UID of a mailbox, ascending."""
    return [int(row[0]) for row in conn.execute(
        select(messages_table.c.uid).where(messages_table.c.mailbox_id == mailbox_id,
                                           messages_table.c.deleted_at.is_(None))
        .order_by(messages_table.c.uid))]


@dataclass(frozen=True)
class CopyResult:
    uidvalidity: int
    pairs: list[tuple[int, int]]  # (source UID, new UID) in source order
    expunged: list[int]  # source UIDs removed (MOVE)
    blobs: dict[int, str]  # new UID -> blob id, for the spam trainer
    delivered: list[Delivered]  # the copies' rows, for the change feed (events.py)


def copy_messages(conn: Connection, user_id: int, source_id: int, uids: Sequence[int],
                  target_id: int, now: datetime, *, move: bool) -> CopyResult:
    """COPY (RFC 3501 §6.4.7, RFC 4315 COPYUID) or MOVE (RFC 6851) in one transaction.

    Copies share the sealed blob (same user, so the same key) and keep flags and INTERNALDATE.
    Each copy counts against the quota; QuotaExceeded rolls the whole job back.  A move
    expunges the sources first, so moving within a full quota works.
    """
    user = accounts.find_user_by_id(conn, user_id)
    if user is None:
        raise accounts.UnknownUser(f"user {user_id} no longer exists")
    wanted = sorted(set(uids))
    rows: list[MessageRow] = []
    metas: dict[int, bytes] = {}
    m = messages_table.c
    for i in range(0, len(wanted), _IN_BATCH):
        for r in conn.execute(select(m.id, m.mailbox_id, m.uid, m.modseq, m.flags,
                                     m.internal_date, m.size, m.blob_id, m.meta).where(
                m.mailbox_id == source_id, m.deleted_at.is_(None),
                m.uid.in_(wanted[i:i + _IN_BATCH])).order_by(m.uid)):
            rows.append(MessageRow(r.id, r.mailbox_id, r.uid, r.modseq, tuple(r.flags.split()),
                                   r.internal_date, r.size, r.blob_id, None))
            metas[int(r.uid)] = r.meta
    expunged: list[int] = []
    if move and rows:
        set_flags(conn, source_id, [row.uid for row in rows], [DELETED], "add")
        expunged = expunge(conn, source_id, [row.uid for row in rows], now=now)
    pairs, blobs, uidvalidity = [], {}, None
    delivered: list[Delivered] = []
    for row in rows:
        done = deliver(conn, user, target_id, SealedBlob(row.blob_id, row.size, 0),
                       metas[row.uid], row.flags, row.internal_date, now)
        delivered.append(done)
        pairs.append((row.uid, done.uid))
        blobs[done.uid] = row.blob_id
        uidvalidity = done.uidvalidity
    if uidvalidity is None:
        target = get_mailbox_by_id(conn, user_id, target_id)
        if target is None:
            raise MailboxNotFound(f"mailbox {target_id} does not exist")
        uidvalidity = target.uidvalidity
    return CopyResult(uidvalidity, pairs, expunged, blobs, delivered)


def mailboxes_and_subscriptions(conn: Connection, user_id: int
                                ) -> tuple[list[Mailbox], list[str]]:
    """LIST and LSUB: the mailboxes and the subscribed names, read in one transaction."""
    return list_mailboxes(conn, user_id), list_subscriptions(conn, user_id)


def quota_usage(conn: Connection, user_id: int) -> tuple[int, int]:
    """(used bytes, limit bytes; 0 = unlimited) as of now, not as of login."""
    user = accounts.find_user_by_id(conn, user_id)
    if user is None:
        raise accounts.UnknownUser(f"user {user_id} no longer exists")
    return user.used_bytes, user.quota_bytes


def mailbox_status(conn: Connection, user_id: int, name: str, recent_after: Optional[int]
                   ) -> tuple[Mailbox, MailboxCounts, int]:
    """STATUS (RFC 3501 §6.3.10): the mailbox, its counts, and how many UIDs are above
    ``recent_after`` (the \\Recent count), or above the stored floor when None."""
    box = get_mailbox(conn, user_id, name)
    if box is None:
        raise MailboxNotFound(f"mailbox {name} does not exist")
    floor = box.recent_floor if recent_after is None else recent_after
    recent = int(conn.execute(select(func.count()).where(
        messages_table.c.mailbox_id == box.id, messages_table.c.deleted_at.is_(None),
        messages_table.c.uid > floor)).scalar_one())
    return box, mailbox_counts(conn, box.id), recent


def raise_recent_floor(conn: Connection, mailbox_id: int, floor: int) -> None:
    """Store a higher \\Recent floor (RFC 3501 §2.3.2); never lowers it."""
    conn.execute(update(mailboxes_table).where(mailboxes_table.c.id == mailbox_id,
                                               mailboxes_table.c.recent_floor < floor)
                 .values(recent_floor=floor))
