"""Database jobs of the IMAP layer, composed from the store's public functions.

Each function runs inside one ``DatabaseRunner`` job (one transaction for writes).  Two needs
are not covered by store/ yet and are met here with a direct query, to move into
``store/messages.py`` and ``store/mailboxes.py`` (reported to the store's owner):
reading a message's sealed ``meta`` to copy it (``copy_messages``), and changing a mailbox's
``subscribed`` column (``set_subscribed``).
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
                                        get_mailbox_by_id)
from mailgosend.store.messages import (DELETED, MailboxCounts, MessageRow, deliver, expunge,
                                       list_messages, mailbox_counts, set_flags)

__all__ = ["CopyResult", "SyncState", "copy_messages", "mailbox_status", "quota_usage",
           "set_subscribed", "sync_state"]

_IN_BATCH = 500


@dataclass(frozen=True)
class SyncState:
    mailbox: Optional[Mailbox]  # None: deleted while selected
    changed: list[MessageRow]  # MODSEQ above the session's, expunged rows included
    live_uids: Optional[list[int]]  # every live UID, when a full check was asked for


def sync_state(conn: Connection, user_id: int, mailbox_id: int, since_modseq: int,
               full: bool) -> SyncState:
    """What changed in a mailbox since a session's last look (RFC 7162 MODSEQ order).

    ``full`` also lists every live UID, which catches what MODSEQ cannot show: rows purged
    after a long absence, and the messages RENAME INBOX moved away.
    """
    box = get_mailbox_by_id(conn, user_id, mailbox_id)
    if box is None:
        return SyncState(None, [], None)
    changed = list_messages(conn, mailbox_id, changed_since=since_modseq, include_expunged=True)
    live = None
    if full:
        live = [row[0] for row in conn.execute(
            select(messages_table.c.uid).where(messages_table.c.mailbox_id == mailbox_id,
                                               messages_table.c.deleted_at.is_(None))
            .order_by(messages_table.c.uid))]
    return SyncState(box, changed, live)


@dataclass(frozen=True)
class CopyResult:
    uidvalidity: int
    pairs: list[tuple[int, int]]  # (source UID, new UID) in source order
    expunged: list[int]  # source UIDs removed (MOVE)
    blobs: dict[int, str]  # new UID -> blob id, for the spam trainer


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
    metas: dict[int, bytes] = {}
    for i in range(0, len(wanted), _IN_BATCH):
        for uid, meta in conn.execute(select(messages_table.c.uid, messages_table.c.meta).where(
                messages_table.c.mailbox_id == source_id,
                messages_table.c.deleted_at.is_(None),
                messages_table.c.uid.in_(wanted[i:i + _IN_BATCH]))):
            metas[int(uid)] = meta
    rows = [row for row in list_messages(conn, source_id) if row.uid in metas]
    expunged: list[int] = []
    if move and rows:
        set_flags(conn, source_id, [row.uid for row in rows], [DELETED], "add")
        expunged = expunge(conn, source_id, [row.uid for row in rows], now=now)
    pairs, blobs, uidvalidity = [], {}, None
    for row in rows:
        done = deliver(conn, user, target_id, SealedBlob(row.blob_id, row.size, 0),
                       metas[row.uid], row.flags, row.internal_date, now)
        pairs.append((row.uid, done.uid))
        blobs[done.uid] = row.blob_id
        uidvalidity = done.uidvalidity
    if uidvalidity is None:
        target = get_mailbox_by_id(conn, user_id, target_id)
        if target is None:
            raise MailboxNotFound(f"mailbox {target_id} does not exist")
        uidvalidity = target.uidvalidity
    return CopyResult(uidvalidity, pairs, expunged, blobs)


def set_subscribed(conn: Connection, user_id: int, name: str, subscribed: bool) -> None:
    """SUBSCRIBE/UNSUBSCRIBE (RFC 3501 §6.3.6-7) of an existing mailbox."""
    box = get_mailbox(conn, user_id, name)
    if box is None:
        raise MailboxNotFound(f"mailbox {name} does not exist")
    conn.execute(update(mailboxes_table).where(mailboxes_table.c.id == box.id)
                 .values(subscribed=subscribed))


def quota_usage(conn: Connection, user_id: int) -> tuple[int, int]:
    """(used bytes, limit bytes; 0 = unlimited) as of now, not as of login."""
    user = accounts.find_user_by_id(conn, user_id)
    if user is None:
        raise accounts.UnknownUser(f"user {user_id} no longer exists")
    return user.used_bytes, user.quota_bytes


def mailbox_status(conn: Connection, user_id: int, name: str, recent_after: Optional[int]
                   ) -> tuple[Mailbox, MailboxCounts, int]:
    """STATUS (RFC 3501 §6.3.10): the mailbox, its counts, and how many UIDs are above
    ``recent_after`` (the \\Recent count; 0 when unknown)."""
    box = get_mailbox(conn, user_id, name)
    if box is None:
        raise MailboxNotFound(f"mailbox {name} does not exist")
    recent = 0
    if recent_after is not None:
        recent = int(conn.execute(select(func.count()).where(
            messages_table.c.mailbox_id == box.id, messages_table.c.deleted_at.is_(None),
            messages_table.c.uid > recent_after)).scalar_one())
    return box, mailbox_counts(conn, box.id), recent
