# -*- test-case-name: tests.test_imap_account -*-
"""Copy and move of messages between one user's mailboxes, in one transaction.

One operation for every front end (mox's ``MessageMove``): IMAP COPY/MOVE today, webmail's
"move to folder" and "mark as spam" later.  The spam-filing rule (filing.py) and the Bayes
training are applied by the service after the commit (service.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection

from mailgosend.db.schema import messages as messages_table
from mailgosend.db.schema import users as users_table
from mailgosend.store import accounts, snoozes
from mailgosend.store.blobs import SealedBlob
from mailgosend.store.mailboxes import MailboxNotFound, get_mailbox_by_id
from mailgosend.store.messages import (DELETED, Delivered, EmailLink, MessageRow, deliver,
                                       expunge, set_flags)

__all__ = ["CopyResult", "copy_messages"]

_IN_BATCH = 500


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

    JMAP (RFC 8621 §4.1.1): a moved message keeps its Email id (only its mailbox changes); a
    copy is a new Email in the same Thread.
    """
    user = accounts.find_user_by_id(conn, user_id)
    if user is None:
        raise accounts.UnknownUser(f"user {user_id} no longer exists")
    # Lock order (store/mailboxes.py): the users row before the change counter, which
    # set_flags takes before the expunge would take the users row.
    conn.execute(select(users_table.c.id).where(users_table.c.id == user_id)
                 .with_for_update(key_share=True)).first()
    wanted = sorted(set(uids))
    rows: list[MessageRow] = []
    metas: dict[int, bytes] = {}
    links: dict[int, EmailLink] = {}
    m = messages_table.c
    for i in range(0, len(wanted), _IN_BATCH):
        for r in conn.execute(select(m.id, m.mailbox_id, m.uid, m.modseq, m.flags,
                                     m.internal_date, m.size, m.blob_id, m.meta, m.email_id,
                                     m.thread_id, m.created_modseq).where(
                m.mailbox_id == source_id, m.deleted_at.is_(None),
                m.uid.in_(wanted[i:i + _IN_BATCH])).order_by(m.uid)):
            rows.append(MessageRow(r.id, r.mailbox_id, r.uid, r.modseq, tuple(r.flags.split()),
                                   r.internal_date, r.size, r.blob_id, None))
            metas[int(r.uid)] = r.meta
            links[int(r.uid)] = (EmailLink(int(r.thread_id), int(r.email_id),
                                           int(r.created_modseq)) if move
                                 else EmailLink(int(r.thread_id)))
    expunged: list[int] = []
    if move and rows:
        # A message moved (out of Snoozed, by IMAP MOVE or any front end) is awake: its
        # snooze is cancelled (mail/snooze.py puts a new one after moving it in).
        moved_ids = (links[row.uid].email_id for row in rows)
        snoozes.cancel(conn, user_id, [e for e in moved_ids if e is not None])
        set_flags(conn, source_id, [row.uid for row in rows], [DELETED], "add")
        expunged = expunge(conn, source_id, [row.uid for row in rows], now=now)
    pairs, blobs, uidvalidity = [], {}, None
    delivered: list[Delivered] = []
    for row in rows:
        done = deliver(conn, user, target_id, SealedBlob(row.blob_id, row.size, 0),
                       metas[row.uid], row.flags, row.internal_date, now,
                       link=links[row.uid])
        pairs.append((row.uid, done.uid))
        blobs[done.uid] = row.blob_id
        delivered.append(done)
        uidvalidity = done.uidvalidity
    if uidvalidity is None:
        target = get_mailbox_by_id(conn, user_id, target_id)
        if target is None:
            raise MailboxNotFound(f"mailbox {target_id} does not exist")
        uidvalidity = target.uidvalidity
    return CopyResult(uidvalidity, pairs, expunged, blobs, delivered)
