"""The POP3 maildrop over the mail service: a session's numbered view of the user's INBOX.

Lazy by construction: login reads the plain index columns once (UID, size, blob id; nothing is
decrypted), which answers STAT, LIST and UIDL.  RETR and TOP decrypt blob ranges of
``chunk_size`` octets in the database threads, one range per job, so a 50 MB message is never
held or decrypted in one piece.

Numbering (RFC 1939 §5) is fixed at login and does not change during the session: messages
delivered later appear in the next session, and DELE only marks.  The marks are applied at QUIT
(RFC 1939 §6 UPDATE state) in one transaction: \\Deleted is set and the messages are expunged
exactly as an IMAP EXPUNGE does (a soft delete), and the retrieved messages get \\Seen, as
Dovecot does; the mail service then publishes both on the change feed (events.py), so IMAP
sessions, IDLE included, see them at once.  A session that ends any other way changes
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
from typing import Callable, Optional

from twisted.internet.defer import Deferred
from zope.interface import Interface, implementer

from mailgosend.mail.messages import InboxIndex
from mailgosend.mail.service import MailService, UserMail
from mailgosend.pop3.replies import NoSuchMessage, POP3Refusal

__all__ = ["IPOP3Maildrop", "Maildrop", "MaildropEntry", "MaildropSnapshot", "MessageDeleted",
           "maildrop_factory", "snapshot_of"]


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


def snapshot_of(index: InboxIndex) -> MaildropSnapshot:
    """The numbered view of a user who just logged in, from their INBOX rows."""
    user, box = index.user, index.mailbox
    if box is None:
        return MaildropSnapshot(user.id, user.uuid, user.email, None, 0, ())
    entries = tuple(MaildropEntry(row.uid, row.size, row.blob_id) for row in index.rows)
    return MaildropSnapshot(user.id, user.uuid, user.email, box.id, box.uidvalidity, entries)


class MessageDeleted(POP3Refusal):
    """RFC 1939 §6 DELE of a message already marked."""

    def __init__(self, number: int) -> None:
        super().__init__(f"Message {number} already deleted")


@implementer(IPOP3Maildrop)
class Maildrop:
    """One session's maildrop.  Message numbers are 1-based, as on the wire."""

    def __init__(self, snapshot: MaildropSnapshot, mail: UserMail) -> None:
        self.snapshot = snapshot
        self._mail = mail
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
        return self._mail.read_range(entry.blob_id, offset, length)

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
        return self._mail.delete_and_mark_seen(self.snapshot.mailbox_id, deleted, seen)

    def logout(self) -> None:
        """Realm logout hook: the marks die with the session (nothing was written)."""
        self._deleted.clear()
        self._retrieved.clear()


def maildrop_factory(mail: MailService) -> Callable[[str], Deferred[Maildrop]]:
    """The realm's avatar factory for :class:`IPOP3Maildrop`: email -> Deferred[Maildrop]."""

    def make(email: str) -> Deferred[Maildrop]:
        return mail.inbox_index(email).addCallback(
            lambda index: Maildrop(snapshot_of(index), mail.for_user(index.user)))

    return make
