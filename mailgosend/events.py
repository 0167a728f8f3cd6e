"""The change feed: what each commit changed, published after it, addressed by user.

Every writer (SMTP receive, DSN delivery, IMAP, POP3, the outbound queue) publishes one
``ChangeBatch`` per user after its transaction commits; IMAP sessions (IDLE included) and,
later, webmail's server-sent events and the admin dashboard subscribe (DESIGN.md §11).
Subscribers are called in the reactor thread and must not block.  On PostgreSQL the feed
also crosses nodes (pgnotify.py, DESIGN.md §9).

Implementation notes:

1. A batch is published only after its transaction committed, in the reactor thread.
2. Besides mail, the JMAP account data (identities, submissions, the vacation response)
   publishes its changes (``IdentityChanged`` ...), so JMAP push names those types too;
   so do calendars and address books (``DavChanged``, from mail/dav.py).
3. Local changes carry what a client is shown: a new message its row (UID, MODSEQ, flags,
   size, INTERNALDATE), a flag change its new flags and MODSEQ, an expunge its UIDs, so a
   subscriber need not read back what was just written.
4. Changes heard from another node are ``RemoteChange`` (a compact summary): subscribers
   re-read what they need.  ``Resync`` says changes may have been missed (the cross-node
   connection was lost): every subscriber re-reads.
5. ``origin`` names the session that made the change (its own view is already updated);
   it never leaves the process.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Optional, Union

from twisted.logger import Logger

from mailgosend.store.messages import Delivered, FlagChange

__all__ = ["ACCOUNT_DATA_CHANGES", "AccountDataChange", "ChangeBatch", "DavChanged", "Events",
           "Expunged",
           "FlagsChanged", "IdentityChanged", "MailboxCreated", "MailboxDeleted",
           "MailboxRenamed", "NewMessage", "QueueChanged", "RemoteChange", "Resync",
           "SubmissionChanged", "VacationChanged", "new_message_batches"]

log = Logger()


@dataclass(frozen=True)
class NewMessage:
    """A message stored in a mailbox (delivery, APPEND, COPY, MOVE)."""

    mailbox_id: int
    uid: int
    modseq: int
    flags: tuple[str, ...]
    size: int
    internal_date: datetime
    message_id: int  # the row's id
    blob_id: str

    @classmethod
    def of(cls, delivered: Delivered) -> NewMessage:
        return cls(delivered.mailbox_id, delivered.uid, delivered.modseq, delivered.flags,
                   delivered.size, delivered.internal_date, delivered.message_id,
                   delivered.blob_id)


@dataclass(frozen=True)
class FlagsChanged:
    """Flags set by one operation (RFC 7162: the changed messages share one new MODSEQ)."""

    mailbox_id: int
    changes: tuple[FlagChange, ...]


@dataclass(frozen=True)
class Expunged:
    mailbox_id: int
    uids: tuple[int, ...]  # ascending


@dataclass(frozen=True)
class MailboxCreated:
    mailbox_id: int
    name: str


@dataclass(frozen=True)
class MailboxRenamed:
    """A mailbox renamed; with ``old_name == new_name``, another of its properties changed
    (subscription, JMAP sortOrder): the mailbox's JMAP state moved, IMAP has nothing to do."""

    mailbox_id: int
    old_name: str
    new_name: str
    emptied_id: Optional[int] = None  # RENAME INBOX: INBOX, whose messages moved away


@dataclass(frozen=True)
class MailboxDeleted:
    mailbox_id: int
    name: str


@dataclass(frozen=True)
class IdentityChanged:
    """A JMAP Identity of the user created, updated or destroyed (RFC 8621 §6); None: the
    derived identities of new aliases were created."""

    identity_id: Optional[int] = None


@dataclass(frozen=True)
class SubmissionChanged:
    """A JMAP EmailSubmission created, released from its undo hold, canceled or destroyed
    (RFC 8621 §7)."""

    submission_id: int


@dataclass(frozen=True)
class VacationChanged:
    """The user's VacationResponse was set (RFC 8621 §8)."""


@dataclass(frozen=True)
class DavChanged:
    """A calendar or address book of the user changed (mail/dav.py): an object stored or
    removed (``what`` "object"), or the collection made, changed or deleted
    ("collection").  Its sync token (RFC 6578) moved: re-read it."""

    kind: str  # "calendar" | "addressbook"
    collection_id: int
    what: str = "object"


# Changes of the account's data besides mail: no mailbox is concerned (IMAP ignores them);
# JMAP push announces their types (jmap/push.py).
AccountDataChange = Union[IdentityChanged, SubmissionChanged, VacationChanged, DavChanged]
ACCOUNT_DATA_CHANGES = (IdentityChanged, SubmissionChanged, VacationChanged, DavChanged)


@dataclass(frozen=True)
class RemoteChange:
    """A change committed by another node: its kind and where (pgnotify.py); re-read it."""

    kind: str  # "new", "flags", "expunge" or "mailbox"
    mailbox_id: Optional[int]
    first_uid: int = 0
    last_uid: int = 0
    modseq: int = 0


@dataclass(frozen=True)
class Resync:
    """Changes may have been missed: re-read everything (mailbox_id matches any mailbox)."""

    mailbox_id: None = None


Change = Union[NewMessage, FlagsChanged, Expunged, MailboxCreated, MailboxRenamed,
               MailboxDeleted, IdentityChanged, SubmissionChanged, VacationChanged,
               DavChanged, RemoteChange, Resync]


@dataclass(frozen=True)
class ChangeBatch:
    """What one commit changed for one user."""

    user_id: int
    changes: tuple[Change, ...]
    origin: Any = field(default=None, compare=False)  # the session that made it, if any
    remote: bool = False  # heard from another node: not sent on again

    def for_mailbox(self, mailbox_id: int) -> tuple[Change, ...]:
        """The changes that concern one mailbox."""
        return tuple(c for c in self.changes if _concerns(c, mailbox_id))


def _concerns(change: Change, mailbox_id: int) -> bool:
    if isinstance(change, Resync):
        return True
    if isinstance(change, ACCOUNT_DATA_CHANGES):
        return False
    if isinstance(change, RemoteChange) and change.mailbox_id is None:
        return True
    if isinstance(change, MailboxRenamed) and change.emptied_id == mailbox_id:
        return True
    return change.mailbox_id == mailbox_id


@dataclass(frozen=True)
class QueueChanged:
    """Rows were added to the outbound queue (``queue_id``: the message, when known)."""

    queue_id: Optional[int] = None


def new_message_batches(delivered: Iterable[Delivered], origin: Any = None
                        ) -> list[ChangeBatch]:
    """One batch per user for the copies one commit stored, in the order given."""
    by_user: dict[int, list[Change]] = {}
    for item in delivered:
        by_user.setdefault(item.user_id, []).append(NewMessage.of(item))
    return [ChangeBatch(user_id, tuple(changes), origin) for user_id, changes in by_user.items()]


Subscriber = Callable[[ChangeBatch], None]


class Events:
    """The feed of one process: per-user subscribers, whole-feed subscribers (the IMAP hub,
    the cross-node bridge) and queue watchers."""

    def __init__(self) -> None:
        self._subscribers: dict[int, list[Subscriber]] = defaultdict(list)
        self._followers: list[Subscriber] = []
        self._queue_watchers: list[Callable[[QueueChanged], None]] = []

    def watch_queue(self, callback: Callable[[QueueChanged], None]) -> None:
        """``callback(change)`` runs after every commit that added outbound queue rows, so
        the queue worker attempts a new message at once instead of at its next poll."""
        self._queue_watchers.append(callback)

    def publish_queued(self, change: QueueChanged) -> None:
        for callback in list(self._queue_watchers):
            try:
                callback(change)
            except Exception:
                log.failure("queue watcher failed")

    def subscribe(self, user_id: int, callback: Subscriber) -> Callable[[], None]:
        """``callback(batch)`` for every batch of that user.  Returns the function that
        unsubscribes (call it when the session ends)."""
        self._subscribers[user_id].append(callback)

        def unsubscribe() -> None:
            callbacks = self._subscribers.get(user_id, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._subscribers.pop(user_id, None)
        return unsubscribe

    def follow(self, callback: Subscriber) -> Callable[[], None]:
        """``callback(batch)`` for every batch of every user; returns the unsubscriber."""
        self._followers.append(callback)

        def unfollow() -> None:
            if callback in self._followers:
                self._followers.remove(callback)
        return unfollow

    def publish(self, batch: ChangeBatch) -> None:
        if not batch.changes:
            return
        for callback in list(self._followers) + list(self._subscribers.get(batch.user_id, ())):
            try:
                callback(batch)
            except Exception:
                log.failure("change feed subscriber failed")

    def publish_all(self, batches: Iterable[ChangeBatch]) -> None:
        for batch in batches:
            self.publish(batch)

    def resync(self) -> None:
        """Tell every user's subscribers to re-read (changes may have been missed)."""
        for user_id in list(self._subscribers):
            self.publish(ChangeBatch(user_id, (Resync(),), remote=True))

    def subscriber_count(self, user_id: int) -> int:
        return len(self._subscribers.get(user_id, ()))
