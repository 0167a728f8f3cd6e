# -*- test-case-name: tests.test_pop3_maildrop -*-
"""Database jobs on messages that are more than one store call: the POP3 UPDATE transaction
and the inbox index a POP3 session numbers, and reading a range of a message's plaintext."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection

from mailgosend.crypto import KeyRing
from mailgosend.db.schema import users
from mailgosend.store import accounts, mailboxes, messages
from mailgosend.store.accounts import User
from mailgosend.store.blobs import BlobStore
from mailgosend.store.mailboxes import Mailbox
from mailgosend.store.messages import MessageRow

__all__ = ["InboxIndex", "delete_and_mark_seen", "inbox_index", "read_range"]


@dataclass(frozen=True)
class InboxIndex:
    """A user's INBOX rows (plain columns, nothing decrypted); ``mailbox`` None: the account
    has no INBOX yet (nothing was delivered)."""

    user: User
    mailbox: Optional[Mailbox]
    rows: list[MessageRow]


def inbox_index(conn: Connection, email: str) -> InboxIndex:
    """The live INBOX rows of the user ``email``, in UID order (one read job)."""
    user = accounts.get_user(conn, email)
    box = mailboxes.get_by_role(conn, user.id, "inbox")
    if box is None:
        return InboxIndex(user, None, [])
    return InboxIndex(user, box, messages.list_messages(conn, box.id))


def read_range(conn: Connection, blob_store: BlobStore, keyring: KeyRing, owner_uuid: str,
               blob_id: str, offset: int, length: int) -> bytes:
    """Plaintext octets [offset, offset + length) of one message, decrypting only the segments
    they touch (a read job: database blobs are read through ``conn``)."""
    with blob_store.open_blob(conn, keyring, owner_uuid, blob_id) as reader:
        return reader.read_range(offset, length)


def delete_and_mark_seen(conn: Connection, user_id: int, mailbox_id: int,
                         deleted: Sequence[int], seen: Sequence[int], now: datetime
                         ) -> tuple[list[messages.FlagChange], list[int]]:
    """\\Seen on ``seen``, then \\Deleted and expunge on ``deleted``, in one write transaction
    (RFC 1939 §6 UPDATE); returns the \\Seen changes and the UIDs expunged.

    The users row is locked first: ``set_flags`` would otherwise lock the mailbox before
    ``expunge`` locks the user, against the order store/mailboxes.py fixes for PostgreSQL.
    """
    conn.execute(select(users.c.id).where(users.c.id == user_id)
                 .with_for_update(key_share=True)).first()
    changed: list[messages.FlagChange] = []
    if seen:
        changed = messages.set_flags(conn, mailbox_id, seen, [messages.SEEN], "add").changed
    if not deleted:
        return changed, []
    messages.set_flags(conn, mailbox_id, deleted, [messages.DELETED], "add")
    return changed, messages.expunge(conn, mailbox_id, deleted, now=now)
