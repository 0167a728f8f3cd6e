"""The POP3 maildrop over the store: a session's numbered view of the user's INBOX.

Lazy by construction: login reads the plain index columns once (UID, size, blob id; nothing is
decrypted), which answers STAT, LIST and UIDL.  RETR and TOP decrypt blob ranges of
``chunk_size`` octets in the database threads, one range per job, so a 50 MB message is never
held or decrypted in one piece.

Numbering (RFC 1939 §5) is fixed at login and does not change during the session: messages
delivered later appear in the next session, and DELE only marks.  The marks are applied at QUIT
(RFC 1939 §6 UPDATE state) in one transaction: \\Deleted is set and the messages are expunged
exactly as an IMAP EXPUNGE does (a soft delete), and the retrieved messages get \\Seen, as
Dovecot does; both are then published on the change feed (events.py), so IMAP sessions, IDLE
included, see them at once.  A session that ends any other way changes
nothing.

Concurrent sessions are allowed (Dovecot's default, ``pop3_lock_session = no``) instead of
refusing the second with ``[IN-USE]`` (RFC 2449 §8.1.1): a lock kept in one process would not
hold across nodes sharing the database (DESIGN §9), and none is needed.  RFC 1939 §8 asks the
lock to keep messages from being "modified or removed" during a session; here messages are
immutable, each session deletes by UID (a message another session already removed is skipped),
and an expunged message stays readable until ``purge_expunged`` runs long after any session
could still be open.  UIDL (RFC 1939 §7) is "<UIDVALIDITY>.<UID>" of the INBOX message: stable
across sessions and never reused, because UIDs are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import Interface, implementer

from mailgosend.crypto import KeyRing
from mailgosend.db.runner import DatabaseRunner
from mailgosend.db.schema import users
from mailgosend.events import Change, ChangeBatch, Events, Expunged, FlagsChanged
from mailgosend.pop3.replies import NoSuchMessage, POP3Refusal
from mailgosend.store import accounts, mailboxes, messages
from mailgosend.store.blobs import BlobStore

__all__ = ["IPOP3Maildrop", "Maildrop", "MaildropEntry", "MaildropSnapshot", "MessageDeleted",
           "apply_update", "load_snapshot", "maildrop_factory", "read_range"]


class IPOP3Maildrop(Interface):
    """Avatar interface a POP3 login asks the realm for; the avatar is a :class:`Maildrop`."""


@dataclass(frozen=True)
class MaildropEntry:
    uid: int
    size: int
    blob_id: str


@dataclass(frozen=True)
class MaildropSnapshot:
    """What one read job gives a new session; plain data, nothing decrypted."""

    user_id: int
    owner_uuid: str
    email: str
    mailbox_id: Optional[int]  # None: the account has no INBOX yet (nothing was delivered)
    uidvalidity: int
    entries: tuple[MaildropEntry, ...]


def load_snapshot(conn: Connection, email: str) -> MaildropSnapshot:
    """The INBOX index for a user who just logged in (one read job)."""
    user = accounts.get_user(conn, email)
    box = mailboxes.get_by_role(conn, user.id, "inbox")
    if box is None:
        return MaildropSnapshot(user.id, user.uuid, user.email, None, 0, ())
    rows = messages.list_messages(conn, box.id)
    entries = tuple(MaildropEntry(row.uid, row.size, row.blob_id) for row in rows)
    return MaildropSnapshot(user.id, user.uuid, user.email, box.id, box.uidvalidity, entries)


def read_range(conn: Connection, blob_store: BlobStore, keyring: KeyRing, owner_uuid: str,
               blob_id: str, offset: int, length: int) -> bytes:
    """Plaintext octets [offset, offset + length) of one message, decrypting only the segments
    they touch (a read job: database blobs are read through ``conn``)."""
    with blob_store.open_blob(conn, keyring, owner_uuid, blob_id) as reader:
        return reader.read_range(offset, length)


def apply_update(conn: Connection, user_id: int, mailbox_id: int, deleted: Sequence[int],
                 seen: Sequence[int], now: datetime
                 ) -> tuple[list[messages.FlagChange], list[int]]:
    """RFC 1939 §6 UPDATE in one write transaction; returns the \\Seen changes and the UIDs
    expunged.

    The users row is locked first: ``set_flags`` would otherwise lock the mailbox before
    ``expunge`` locks the user, against the order store/mailboxes.py fixes for PostgreSQL.
    """
    conn.execute(select(users.c.id).where(users.c.id == user_id)
                 .with_for_update(key_share=True)).first()
    changed = []
    if seen:
        changed = messages.set_flags(conn, mailbox_id, seen, [messages.SEEN], "add").changed
    if not deleted:
        return changed, []
    messages.set_flags(conn, mailbox_id, deleted, [messages.DELETED], "add")
    return changed, messages.expunge(conn, mailbox_id, deleted, now=now)


class MessageDeleted(POP3Refusal):
    """RFC 1939 §6 DELE of a message already marked."""

    def __init__(self, number: int) -> None:
        super().__init__(f"Message {number} already deleted")


@implementer(IPOP3Maildrop)
class Maildrop:
    """One session's maildrop.  Message numbers are 1-based, as on the wire."""

    def __init__(self, snapshot: MaildropSnapshot, runner: DatabaseRunner,
                 blob_store: BlobStore, keyring: KeyRing, clock: IReactorTime,
                 events: Events) -> None:
        self.snapshot = snapshot
        self._events = events
        self._runner = runner
        self._blob_store = blob_store
        self._keyring = keyring
        self._clock = clock
        self._deleted: set[int] = set()
        self._retrieved: set[int] = set()

    @property
    def email(self) -> str:
        return self.snapshot.email

    def _entry(self, number: int) -> MaildropEntry:
        if not 1 <= number <= len(self.snapshot.entries) or number in self._deleted:
            raise NoSuchMessage(number)
        return self.snapshot.entries[number - 1]

    def listing(self) -> list[tuple[int, MaildropEntry]]:
        """(number, entry) of every message not marked as deleted, in order."""
        return [(n, e) for n, e in enumerate(self.snapshot.entries, 1) if n not in self._deleted]

    def stat(self) -> tuple[int, int]:
        """RFC 1939 §5 STAT: count and total octets, marked messages excluded."""
        live = self.listing()
        return len(live), sum(entry.size for _, entry in live)

    def size(self, number: int) -> int:
        return self._entry(number).size

    def uidl(self, number: int) -> str:
        return f"{self.snapshot.uidvalidity}.{self._entry(number).uid}"

    def delete(self, number: int) -> None:
        if 1 <= number <= len(self.snapshot.entries) and number in self._deleted:
            raise MessageDeleted(number)
        self._entry(number)
        self._deleted.add(number)

    def reset(self) -> None:
        """RFC 1939 §5 RSET: unmark every message."""
        self._deleted.clear()

    def mark_retrieved(self, number: int) -> None:
        self._retrieved.add(number)

    def read(self, number: int, offset: int, length: int) -> Deferred[bytes]:
        """Octets of one message, decrypted in a database thread."""
        entry = self._entry(number)
        return self._runner.read(read_range, self._blob_store, self._keyring,
                                 self.snapshot.owner_uuid, entry.blob_id, offset, length)

    def commit(self) -> Deferred[list[int]]:
        """Apply the marks (QUIT in the TRANSACTION state); fires with the UIDs expunged once
        committed and announced on the change feed (IMAP sessions see them go)."""
        entries = self.snapshot.entries
        deleted = sorted(entries[n - 1].uid for n in self._deleted)
        seen = sorted(entries[n - 1].uid for n in self._retrieved - self._deleted)
        if self.snapshot.mailbox_id is None or not (deleted or seen):
            done: Deferred[list[int]] = Deferred()
            done.callback([])
            return done
        now = datetime.fromtimestamp(self._clock.seconds(), timezone.utc)
        mailbox_id = self.snapshot.mailbox_id
        d = self._runner.write(apply_update, self.snapshot.user_id, mailbox_id, deleted, seen,
                               now)

        def committed(result: tuple[list[messages.FlagChange], list[int]]) -> list[int]:
            flagged, expunged = result
            changes: list[Change] = []
            if flagged:
                changes.append(FlagsChanged(mailbox_id, tuple(flagged)))
            if expunged:
                changes.append(Expunged(mailbox_id, tuple(expunged)))
            self._events.publish(ChangeBatch(self.snapshot.user_id, tuple(changes)))
            return expunged

        return d.addCallback(committed)

    def logout(self) -> None:
        """Realm logout hook: the marks die with the session (nothing was written)."""
        self._deleted.clear()
        self._retrieved.clear()


def maildrop_factory(runner: DatabaseRunner, blob_store: BlobStore, keyring: KeyRing,
                     clock: IReactorTime, events: Events
                     ) -> Callable[[str], Deferred[Maildrop]]:
    """The realm's avatar factory for :class:`IPOP3Maildrop`: email -> Deferred[Maildrop]."""

    def make(email: str) -> Deferred[Maildrop]:
        return runner.read(load_snapshot, email).addCallback(
            Maildrop, runner, blob_store, keyring, clock, events)

    return make
