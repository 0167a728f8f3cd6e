# -*- test-case-name: tests.test_imap_account -*-
"""Database jobs of the mailbox operations: listing with subscriptions, STATUS, quota, and the
stored \\Recent floor.  Creating, renaming and deleting are the store's own functions
(store/mailboxes.py), called by the service as they are."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from mailgosend.db.schema import mailboxes as mailboxes_table
from mailgosend.db.schema import messages as messages_table
from mailgosend.store import accounts
from mailgosend.store.mailboxes import (Mailbox, MailboxNotFound, get_mailbox, list_mailboxes,
                                        list_subscriptions)
from mailgosend.store.messages import MailboxCounts, mailbox_counts

__all__ = ["mailbox_status", "mailboxes_and_subscriptions", "quota_usage",
           "raise_recent_floor"]


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
