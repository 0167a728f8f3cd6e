# -*- test-case-name: tests.test_pgnotify -*-
"""The change feed across nodes: PostgreSQL LISTEN/NOTIFY (DESIGN.md §9).

Every batch this node publishes on its feed (events.py) is summarised and sent with
``pg_notify`` on one channel; every node LISTENs on it and publishes what other nodes sent
as ``RemoteChange`` batches, whose subscribers re-read what they need (an IMAP session reads
its mailbox's changes since its MODSEQ).  SQLite has one process and keeps the feed in it.

Implementation notes:

1. The payload is compact text, far below PostgreSQL's 8000-byte limit:
   ``v1 <node> <user id> <kind>:<mailbox id>:<first uid>-<last uid>:<modseq>[,...]``;
   a batch with many mailboxes is cut into several notifications.  The JMAP account data's
   changes (events.py ``IdentityChanged``, ``SubmissionChanged``, ``VacationChanged``) go
   as ``i``/``s``/``v`` entries with the object's id in the mailbox place
   (``s:<submission id>:0-0:0``) and arrive as those same typed changes (nothing in them
   to re-read but the state), so JMAP push on every node announces them.  A node of an
   older version drops such a notification as unreadable (they travel alone).  A calendar
   or address book change (``DavChanged``) goes as ``c``/``a`` with the collection's id.
2. A node ignores its own notifications by its node id (random, per process).
3. Two dedicated connections, each in its own thread: one waits for notifications (in short
   slices, so stopping is prompt), one sends; neither is a pool connection.  They are made
   with the engine's own connection arguments.
4. A lost connection is made again (with a growing pause); after the listener reconnects,
   notifications may have been missed, so every subscriber is told to resync
   (``Events.resync``).  A notification that cannot be sent is logged and dropped: other
   nodes' sessions catch up at their next poll (IDLE) or command.
5. PostgreSQL delivers notifications in commit order of the sending transactions; the sender
   sends in publish order, so one node's changes arrive in order.
"""

from __future__ import annotations

import queue
import secrets
import threading
from typing import Any, Callable, Iterator, Optional

from sqlalchemy.engine import Engine
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from mailgosend.events import (Change, ChangeBatch, DavChanged, Events, Expunged, FlagsChanged,
                               IdentityChanged, MailboxCreated, MailboxDeleted, MailboxRenamed,
                               NewMessage, RemoteChange, SubmissionChanged, VacationChanged)

__all__ = ["CHANNEL", "ChangeRelay", "decode", "encode"]

log = Logger()

CHANNEL = "mailgosend_changes"
MAX_PAYLOAD = 7000  # bytes; PostgreSQL refuses 8000 and more
_VERSION = "v1"
_KINDS = {"n": "new", "f": "flags", "x": "expunge", "m": "mailbox"}
_LETTERS = {name: letter for letter, name in _KINDS.items()}
_ACCOUNT_DATA: dict[str, Callable[[int], Change]] = {
    "i": lambda n: IdentityChanged(n or None), "s": SubmissionChanged,
    "v": lambda n: VacationChanged(), "c": lambda n: DavChanged("calendar", n),
    "a": lambda n: DavChanged("addressbook", n)}
_WAIT_SLICE = 0.5  # seconds the listener waits before looking at the stop flag
_MAX_PAUSE = 10.0  # seconds between reconnection attempts, at most
_BURST = 100  # notifications sent in one pipeline


def _summary(change: Change) -> Optional[tuple[str, int, int, int, int]]:
    """(kind letter, mailbox id, first UID, last UID, MODSEQ) of one local change."""
    if isinstance(change, NewMessage):
        return "n", change.mailbox_id, change.uid, change.uid, change.modseq
    if isinstance(change, FlagsChanged) and change.changes:
        uids = [c.uid for c in change.changes]
        return "f", change.mailbox_id, min(uids), max(uids), max(c.modseq for c in change.changes)
    if isinstance(change, Expunged) and change.uids:
        return "x", change.mailbox_id, min(change.uids), max(change.uids), 0
    if isinstance(change, (MailboxCreated, MailboxDeleted)):
        return "m", change.mailbox_id, 0, 0, 0
    if isinstance(change, MailboxRenamed):
        return "m", change.emptied_id or change.mailbox_id, 0, 0, 0
    if isinstance(change, IdentityChanged):
        return "i", change.identity_id or 0, 0, 0, 0
    if isinstance(change, SubmissionChanged):
        return "s", change.submission_id, 0, 0, 0
    if isinstance(change, VacationChanged):
        return "v", 0, 0, 0, 0
    if isinstance(change, DavChanged):
        return "c" if change.kind == "calendar" else "a", change.collection_id, 0, 0, 0
    return None


def encode(node: str, batch: ChangeBatch) -> list[str]:
    """The notification payloads for one local batch (none for a remote one)."""
    if batch.remote:
        return []
    merged: dict[tuple[str, int], list[int]] = {}  # one entry per kind and mailbox
    for change in batch.changes:
        summary = _summary(change)
        if summary is None:
            continue
        letter, mailbox_id, first, last, modseq = summary
        known = merged.get((letter, mailbox_id))
        if known is None:
            merged[(letter, mailbox_id)] = [first, last, modseq]
        else:
            known[0], known[1] = min(known[0], first), max(known[1], last)
            known[2] = max(known[2], modseq)
    head = f"{_VERSION} {node} {batch.user_id} "
    payloads: list[str] = []
    entries: list[str] = []
    for (letter, mailbox_id), (first, last, modseq) in merged.items():
        entry = f"{letter}:{mailbox_id}:{first}-{last}:{modseq}"
        if entries and len(head) + len(",".join(entries + [entry])) > MAX_PAYLOAD:
            payloads.append(head + ",".join(entries))
            entries = []
        entries.append(entry)
    if entries:
        payloads.append(head + ",".join(entries))
    return payloads


def decode(payload: str) -> Optional[tuple[str, ChangeBatch]]:
    """(sending node, remote batch), or None for a payload this version does not read."""
    parts = payload.split(" ")
    if len(parts) != 4 or parts[0] != _VERSION:
        return None
    _, node, user, body = parts
    try:
        changes: list[Change] = []
        for entry in body.split(","):
            letter, mailbox, uids, modseq = entry.split(":")
            first, last = uids.split("-")
            if letter in _ACCOUNT_DATA:
                changes.append(_ACCOUNT_DATA[letter](int(mailbox)))
                continue
            changes.append(RemoteChange(_KINDS[letter], int(mailbox), int(first), int(last),
                                        int(modseq)))
        return node, ChangeBatch(int(user), tuple(changes), remote=True)
    except (KeyError, ValueError):
        return None


class ChangeRelay(Service):
    """Sends this node's feed to the others and publishes theirs on it."""

    def __init__(self, engine: Engine, events: Events, reactor: Any,
                 node_id: Optional[str] = None) -> None:
        self._engine = engine
        self._events = events
        self._reactor = reactor
        self.node_id = node_id or secrets.token_hex(8)
        self._outbox: queue.Queue[Optional[str]] = queue.Queue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._unfollow: Optional[Callable[[], None]] = None
        self.connected = threading.Event()  # set while the listener is LISTENing

    def startService(self) -> None:
        super().startService()
        self._stopping.clear()
        self._unfollow = self._events.follow(self._published)
        self._threads = [threading.Thread(target=self._listen, name="feed-listen", daemon=True),
                         threading.Thread(target=self._send, name="feed-send", daemon=True)]
        for thread in self._threads:
            thread.start()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None
        self._stopping.set()
        self._outbox.put(None)
        threads, self._threads = self._threads, []

        def join() -> None:
            for thread in threads:
                thread.join(10)

        return deferToThread(join)

    # --- reactor side ------------------------------------------------------------------------

    def _published(self, batch: ChangeBatch) -> None:
        for payload in encode(self.node_id, batch):
            self._outbox.put(payload)

    def _received(self, payload: str) -> None:
        found = decode(payload)
        if found is None:
            log.warn("change feed: unreadable notification ignored")
            return
        node, batch = found
        if node != self.node_id:
            self._events.publish(batch)

    # --- threads -------------------------------------------------------------------------------

    def _connect(self) -> Any:
        import psycopg

        args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
        return psycopg.connect(*args, **kwargs, autocommit=True)

    def _connections(self, what: str) -> Iterator[Any]:
        """Connections until the service stops, a new one after each failure."""
        pause = 0.5
        while not self._stopping.is_set():
            try:
                conn = self._connect()
            except Exception as exc:
                log.warn("change feed: cannot connect for {what}: {error}", what=what,
                         error=exc.__class__.__name__)
                self._stopping.wait(pause)
                pause = min(pause * 2, _MAX_PAUSE)
                continue
            pause = 0.5
            try:
                yield conn
            finally:
                conn.close()

    def _listen(self) -> None:
        first = True
        for conn in self._connections("LISTEN"):
            try:
                conn.execute(f"LISTEN {CHANNEL}")
                self.connected.set()
                if not first:  # notifications may have been lost meanwhile
                    log.info("change feed: LISTEN connection back, subscribers resync")
                    self._reactor.callFromThread(self._events.resync)
                first = False
                while not self._stopping.is_set():
                    for notify in conn.notifies(timeout=_WAIT_SLICE):
                        self._reactor.callFromThread(self._received, notify.payload)
                    if conn.closed:
                        raise ConnectionError("closed")
            except Exception as exc:
                if not self._stopping.is_set():
                    log.warn("change feed: LISTEN connection lost ({error}); reconnecting",
                             error=exc.__class__.__name__)
            finally:
                self.connected.clear()

    def _send(self) -> None:
        """Send what is queued, a burst at a time (psycopg pipelines ``executemany``)."""
        pending: list[str] = []
        for conn in self._connections("NOTIFY"):
            try:
                while True:
                    if not pending:
                        pending = self._next_burst()
                    if not pending or pending[-1] is None:
                        pending = [p for p in pending if p is not None]
                        if pending:
                            self._notify(conn, pending)
                        return
                    self._notify(conn, pending)
                    pending = []
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warn("change feed: notifications could not be sent ({error}); other "
                         "nodes catch up at their next poll", error=exc.__class__.__name__)
                pending = []

    def _next_burst(self) -> list[Any]:
        """Block for one payload, then take whatever else is queued (up to ``_BURST``);
        None (stop) ends a burst."""
        burst = [self._outbox.get()]
        while burst[-1] is not None and len(burst) < _BURST:
            try:
                burst.append(self._outbox.get_nowait())
            except queue.Empty:
                break
        return burst

    @staticmethod
    def _notify(conn: Any, payloads: list[str]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany("SELECT pg_notify(%s, %s)", [(CHANNEL, p) for p in payloads])
