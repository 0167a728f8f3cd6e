# -*- test-case-name: tests.test_mail_delivery -*-
"""The one local-delivery path: SMTP receive, delivery reports (DSNs), IMAP APPEND and
MULTIAPPEND, and later webmail's Sent copy and Drafts, all file messages through here.

Three steps, so a caller can put other rows in the same transaction (SMTP its queue row,
the Bouncer the outcomes it reports on):

1. ``seal`` (a worker thread): the message is analysed once and sealed once per owner (each
   copy under its owner's key, DESIGN §4).  A copy may start with its own header lines (a
   *variant prefix*, the per-user spam verdict), in which case it is analysed on its own.
2. ``file`` (inside the caller's database job): a copy per placement (user, mailbox role or
   id, flags, INTERNALDATE), users in id order so two multi-user deliveries cannot deadlock.
   What a refused copy (full quota, missing mailbox) does is the caller's choice: fail the
   whole transaction ("raise"), leave that copy out and log it ("skip"), or return the
   refusal in its slot ("return").
3. ``settle`` after the COMMIT (blobs released, unused ones discarded, new mail announced),
   or ``abandon`` when the job failed.

``deliver`` and ``deliver_all`` run the three steps for callers with nothing else to commit.
Nothing here knows a protocol: the sender, recipients and their parameters arrive as a
neutral ``Envelope``, and errors are the store's, carrying the codes each front end maps
(``QuotaExceeded.smtp_code``/``imap_code``).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import (IO, Any, BinaryIO, Iterable, Iterator, Literal, Mapping, NamedTuple,
                    Optional, Sequence, Union, cast)

from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger

from mailgosend.crypto import KeyRing
from mailgosend.db.runner import DatabaseRunner
from mailgosend.events import Events, new_message_batches
from mailgosend.store import accounts
from mailgosend.store import queue as queue_store
from mailgosend.store.accounts import User
from mailgosend.store.blobs import BlobStore, SealedBlob
from mailgosend.store.messages import (Delivered, RecipientRefused, RefusedRecipient, Workers,
                                       deliver, normalize_flags, seal_info)
from mailgosend.mail import substring
from mailgosend.mail.searchtext import KEY_PURPOSE as SEARCH_KEY
from mailgosend.mail.searchtext import Document, document_tokens, extract_document
from mailgosend.store import search as search_store
from mailgosend.store.mimeinfo import MessageInfo, analyse
from mailgosend.store.threads import thread_keys

__all__ = ["Envelope", "LocalDelivery", "Placement", "RecipientGone", "Sealed", "SealedCopy",
           "Targets",
           "canonical_recipient", "merge_targets", "resolve_targets"]

log = Logger()

# A variant copy up to this size is assembled in memory; larger ones in a spool file.
VARIANT_IN_MEMORY = 1024 * 1024

Source = Union[bytes, str, "os.PathLike[str]", IO[bytes]]  # bytes, a spool file path, or open


class SealedCopy(NamedTuple):
    """One owner's copy, ready to file: the sealed blob, the sealed structure, and the keys
    it is threaded by (store/threads.py), all computed in the worker thread."""

    blob: SealedBlob
    meta: bytes
    thread_keys: tuple[bytes, ...] = ()
    # The search index's tokens of the copy (mail/searchtext.py), for a user owner: filed
    # with the message in the same transaction.
    tokens: Optional[frozenset[bytes]] = None


Sealed = dict[str, SealedCopy]  # owner uuid -> its copy
Refusal = Literal["raise", "skip", "return"]


@dataclass(frozen=True)
class Envelope:
    """Who sent a message to whom, whatever brought it (SMTP, a DSN, webmail)."""

    sender: str  # "" is the null reverse-path
    recipients: tuple[str, ...]
    smtputf8: bool = False
    body_8bit: bool = False
    authenticated: Optional[str] = None  # the login that submitted it, if any
    peer: Optional[str] = None  # the client's address, for logs
    envid: Optional[str] = None  # RFC 3461 ENVID
    ret: Optional[str] = None  # RFC 3461 RET
    # RFC 3461 NOTIFY and ORCPT by lower-cased recipient, for queued copies
    notify: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    release_at: Optional[datetime] = None  # send later: the queued copy is held until then


@dataclass(frozen=True)
class Placement:
    """One copy to file: whose, where (a role such as "inbox" or "junk", or a mailbox id),
    with which flags, and its INTERNALDATE (None: the time of delivery)."""

    user: User
    mailbox: Union[str, int]
    flags: tuple[str, ...] = ()
    internal_date: Optional[datetime] = None


@dataclass(frozen=True)
class Targets:
    """Where a message for some addresses goes: local users, and remote addresses (aliases
    that forward) for the outbound queue."""

    local: tuple[User, ...]
    remote: tuple[str, ...]


class RecipientGone(Exception):
    """An address accepted earlier no longer resolves (deleted meanwhile): retry later."""

    smtp_code = 451
    enhanced_code = "4.3.0"

    def __init__(self, address: str) -> None:
        super().__init__(f"{address}: recipient changed")
        self.address = address


def canonical_recipient(address: str, default_domain: str) -> str:
    """``<postmaster>`` without a domain means ours (RFC 5321 §4.5.1)."""
    return f"postmaster@{default_domain}" if address.lower() == "postmaster" else address


def merge_targets(parts: Sequence[Targets]) -> Targets:
    """Several recipients' targets as one, each user and remote address once."""
    users: dict[str, User] = {}
    remote: list[str] = []
    for part in parts:
        for user in part.local:
            users.setdefault(user.email, user)
        remote += [r for r in part.remote if r not in remote]
    return Targets(tuple(users.values()), tuple(remote))


def resolve_targets(conn: Connection, recipients: Sequence[str],
                    default_domain: str) -> Targets:
    """Database job: the targets of ``recipients``; RecipientGone for one that no longer
    resolves."""
    parts = []
    for rcpt in recipients:
        resolution = accounts.resolve_recipient(conn, canonical_recipient(rcpt, default_domain))
        if not resolution.deliverable:
            raise RecipientGone(rcpt)
        parts.append(Targets(tuple(resolution.users), tuple(resolution.remote)))
    return merge_targets(parts)


class LocalDelivery:
    """Seals and files messages into local mailboxes; one per process (the mail service's)."""

    def __init__(self, *, runner: DatabaseRunner, keyring: KeyRing, blob_store: BlobStore,
                 workers: Workers, events: Optional[Events] = None) -> None:
        self._runner = runner
        self._keyring = keyring
        self._blobs = blob_store
        self._workers = workers
        self._events = events
        # told of the INBOX copies each commit filed (mail/vacation.py VacationResponder)
        self.responder: Optional[Any] = None

    # --- 1. sealing (worker thread) ---------------------------------------------------------

    def seal(self, source: Source, owners: Sequence[str], *,
             variants: Optional[Mapping[str, bytes]] = None, shared_prefix: int = 0,
             spool_dir: Optional[str] = None) -> Sealed:
        """Worker thread: analyse ``source`` once and seal a copy per owner (user uuid, or
        the queue's owner).  ``variants`` maps an owner to the header lines its copy starts
        with instead of the source's first ``shared_prefix`` bytes; such a copy is assembled
        (in memory, or in ``spool_dir`` when large) and analysed on its own.  On failure
        nothing sealed is left behind."""
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as handle:
                return self.seal(handle, owners, variants=variants,
                                 shared_prefix=shared_prefix, spool_dir=spool_dir)
        variants = variants or {}
        info = _analysed(source)
        shared = info.to_json()
        shared_document: Optional[Document] = None
        shared_grams: Optional[substring.Grams] = None
        sealed: Sealed = {}
        try:
            for owner in dict.fromkeys(owners):
                prefix = variants.get(owner)
                document, grams = None, None
                if prefix is None:
                    blob = self._seal_source(owner, source)
                    meta = info
                    if owner != queue_store.QUEUE_OWNER:
                        if shared_document is None or shared_grams is None:
                            shared_document, shared_grams = _document(info, source)
                        document, grams = shared_document, shared_grams
                else:
                    with _variant(prefix, source, shared_prefix, spool_dir) as copy:
                        meta = _analysed(copy)
                        blob = self._seal_source(owner, copy)
                        if owner != queue_store.QUEUE_OWNER:
                            document, grams = _document(meta, copy)
                # The search index's keyed tokens (JMAP's words and IMAP's substrings), made
                # here in the worker thread.
                tokens = None
                if document is not None and grams is not None:
                    key = self._keyring.derive(SEARCH_KEY, owner)
                    tokens = frozenset(document_tokens(key, document)
                                       | substring.imap_tokens(key, grams))
                sealed[owner] = SealedCopy(
                    blob, seal_info(self._keyring, owner, blob.blob_id,
                                    shared if prefix is None else meta.to_json()),
                    thread_keys(self._keyring, owner, meta), tokens)
        except BaseException:
            self.abandon(sealed, refused=True)
            raise
        return sealed

    def _seal_source(self, owner: str, source: Union[bytes, IO[bytes]]) -> SealedBlob:
        if isinstance(source, bytes):
            return self._blobs.seal(self._keyring, owner, source)
        source.seek(0)
        return self._blobs.seal(self._keyring, owner, cast(BinaryIO, source))

    # --- 2. filing (inside the caller's database job) ----------------------------------------

    def file(self, conn: Connection, sealed: Sealed, placements: Sequence[Placement],
             now: datetime, *, refused: Refusal = "raise", about: str = ""
             ) -> list[Union[Delivered, RefusedRecipient, None]]:
        """A copy per placement, in the caller's transaction; one slot per placement: the
        ``Delivered``, or for a refused copy (QuotaExceeded, MailboxError, UnknownUser) the
        refusal ("return") or None ("skip", logged with ``about``).  "raise" lets the
        refusal fail the caller's transaction.  Copies of one owner share the sealed blob."""
        results: list[Union[Delivered, RefusedRecipient, None]] = [None] * len(placements)
        recorded: set[str] = set()  # owners whose blob row exists in this transaction
        for i in sorted(range(len(placements)), key=lambda i: placements[i].user.id):
            place = placements[i]
            owner = place.user.uuid
            blob, meta, keys, tokens = sealed[owner]
            store = None if owner in recorded else self._blobs
            date = place.internal_date or now
            if refused == "raise":
                results[i] = deliver(conn, place.user, place.mailbox, blob, meta, place.flags,
                                     date, now, blob_store=store, thread_keys=keys)
                if tokens is not None:
                    search_store.add_document(conn, place.user.id, blob.blob_id, tokens)
                recorded.add(owner)
                continue
            try:
                with conn.begin_nested():
                    results[i] = deliver(conn, place.user, place.mailbox, blob, meta,
                                         place.flags, date, now, blob_store=store,
                                         thread_keys=keys)
                    if tokens is not None:
                        search_store.add_document(conn, place.user.id, blob.blob_id, tokens)
            except RecipientRefused as refusal:
                if refused == "return":
                    results[i] = refusal
                else:
                    log.warn("message {about} not stored for {user}: {reason}", about=about,
                             user=place.user.email, reason=str(refusal))
            else:
                recorded.add(owner)
        return results

    def queue_copy(self, conn: Connection, envelope: Envelope, recipients: Sequence[str],
                   blob: SealedBlob, now: datetime) -> int:
        """In the caller's transaction: the outbound queue's copy (sealed for the queue's
        owner) with a row for ``recipients``; returns the queue id.  RFC 3461: what the
        sender asked of each recipient travels with it."""
        user_id: Optional[int] = None
        if envelope.authenticated:
            user = accounts.find_user(conn, envelope.authenticated)
            user_id = user.id if user is not None else None
        self._blobs.commit(conn, blob, user_id, now)  # type: ignore[arg-type]
        notify = {rcpt: envelope.notify[rcpt.lower()] for rcpt in recipients
                  if rcpt.lower() in envelope.notify}
        return queue_store.enqueue(
            conn, sender=envelope.sender, user_id=user_id, blob_id=blob.blob_id,
            size=blob.size, recipients=recipients, now=now, smtputf8=envelope.smtputf8,
            body_8bit=envelope.body_8bit, envid=envelope.envid, ret=envelope.ret,
            notify=notify, release_at=envelope.release_at)

    # --- 3. after the transaction (reactor thread) -------------------------------------------

    def settle(self, sealed: Sealed, results: Iterable[Any], *, queued: bool = False,
               publish: bool = True) -> None:
        """After the COMMIT: the blobs that copies (or the queue) reference are released,
        the others discarded; the new messages are announced (``publish``)."""
        delivered = [item for item in results if isinstance(item, Delivered)]
        used = {owner for owner, copy in sealed.items()
                if any(item.blob_id == copy.blob.blob_id for item in delivered)}
        for owner, (blob, *_) in sealed.items():
            if owner in used or (queued and owner == queue_store.QUEUE_OWNER):
                self._blobs.release(blob)
            else:
                self._blobs.discard(blob, unreferenced=True)
        if publish and self._events is not None:
            self._events.publish_all(new_message_batches(delivered))

    def abandon(self, sealed: Sealed, *, refused: bool) -> None:
        """The message will not be stored: ``refused`` when its transaction was rolled back
        for certain (or never ran); otherwise the COMMIT may have happened and the files
        wait for the purge step."""
        for copy in sealed.values():
            self._blobs.discard(copy.blob, unreferenced=refused)

    # --- the three steps in one call -----------------------------------------------------------

    def resolve(self, recipients: Sequence[str], default_domain: str) -> Deferred[Targets]:
        """Where mail for ``recipients`` goes (one read job); fails with RecipientGone."""
        return self._runner.read(resolve_targets, recipients, default_domain)

    async def commit(self, envelope: Envelope, placements: Sequence[Placement],
                     sealed: Sealed, remote: Sequence[str], now: datetime
                     ) -> tuple[list[Delivered], Optional[int]]:
        """File every placement and queue the copy for ``remote`` in ONE transaction, all or
        nothing (a refusal fails it: SMTP's "250 covers every recipient", DESIGN §3); then
        settle.  Returns the copies and the queue id (None: nothing remote)."""
        def record(conn: Connection) -> tuple[list[Any], Optional[int]]:
            delivered = self.file(conn, sealed, placements, now)
            queue_id = None
            if remote:
                queue_id = self.queue_copy(conn, envelope, remote,
                                           sealed[queue_store.QUEUE_OWNER][0], now)
            return delivered, queue_id

        try:
            delivered, queue_id = await self._runner.write(record)
        except BaseException as exc:
            # A refused job was rolled back for certain; after any other failure the COMMIT
            # may still have happened, so files are left for the purge step.
            self.abandon(sealed, refused=isinstance(exc, RecipientRefused))
            raise
        self.settle(sealed, delivered, queued=queue_id is not None)
        if self.responder is not None:  # the vacation response (mail/vacation.py)
            self.responder.delivered(envelope.sender, [
                (place.user, item.email_id) for place, item in zip(placements, delivered)
                if isinstance(item, Delivered) and place.mailbox == "inbox"])
        return [d for d in delivered if isinstance(d, Delivered)], queue_id

    async def deliver(self, source: Source, placements: Sequence[Placement], now: datetime,
                      *, refused: Refusal = "return", publish: bool = True, about: str = ""
                      ) -> list[Union[Delivered, RefusedRecipient, None]]:
        """Seal, file in one transaction and settle: one slot per placement (see ``file``).
        Invalid flags fail before anything is sealed."""
        placements = [Placement(p.user, p.mailbox, normalize_flags(p.flags), p.internal_date)
                      for p in placements]
        sealed = await self._workers.run(self.seal, source,
                                         [p.user.uuid for p in placements])
        try:
            results = await self._runner.write(self.file, sealed, placements, now,
                                               refused=refused, about=about)
        except BaseException:
            self.abandon(sealed, refused=False)
            raise
        self.settle(sealed, results, publish=publish)
        return results

    async def deliver_all(self, user: User, mailbox_id: int,
                          messages: Sequence[tuple[Source, Iterable[str], datetime]],
                          now: datetime, *, publish: bool = True) -> list[Delivered]:
        """Several messages into one mailbox in ONE transaction, every one or none, with
        consecutive UIDs (the mailbox row stays locked by the first allocation): IMAP
        MULTIAPPEND (RFC 3502).  A refusal or any error commits nothing."""
        placed = [(source, Placement(user, mailbox_id, normalize_flags(flags), date))
                  for source, flags, date in messages]
        done = await DeferredList([self._workers.run(self.seal, source, [user.uuid])
                                   for source, _ in placed], consumeErrors=True)
        outcomes: list[Sealed] = [value for ok, value in done if ok]
        failures = [value for ok, value in done if not ok]
        if failures:
            for sealed in outcomes:
                self.abandon(sealed, refused=True)
            failures[0].raiseException()

        def record(conn: Connection) -> list[Any]:
            return [self.file(conn, sealed, [place], now)[0]
                    for sealed, (_, place) in zip(outcomes, placed)]

        try:
            results = await self._runner.write(record)
        except BaseException:
            for sealed in outcomes:
                self.abandon(sealed, refused=False)
            raise
        for sealed, item in zip(outcomes, results):
            self.settle(sealed, [item], publish=False)
        if publish and self._events is not None:  # one batch: the messages of one commit
            self._events.publish_all(new_message_batches(results))
        return cast(list[Delivered], results)

    async def deliver_report(self, raw: bytes, sender: str, now: datetime, about: str) -> int:
        """A delivery report (RFC 3464) for ``sender``: into the INBOX of every local user
        the address reaches; a full mailbox just gets none.  Returns how many were stored."""
        resolution = await self._runner.read(accounts.resolve_recipient, sender)
        if not resolution.users:
            return 0
        results = await self.deliver(raw, [Placement(user, "inbox")
                                           for user in resolution.users],
                                     now, refused="skip", about=about)
        return sum(1 for item in results if isinstance(item, Delivered))


def _analysed(source: Union[bytes, IO[bytes]]) -> MessageInfo:
    """The structure of a message (a file is mapped: no copy in memory)."""
    if isinstance(source, bytes):
        return analyse(source)
    source.seek(0, 2)
    if source.tell() == 0:
        return analyse(b"")
    try:
        fileno = source.fileno()
    except (AttributeError, OSError):  # an in-memory file
        source.seek(0)
        return analyse(source.read())
    with mmap.mmap(fileno, 0, access=mmap.ACCESS_READ) as mapped:
        return analyse(mapped)  # type: ignore[arg-type]


@contextlib.contextmanager
def _variant(prefix: bytes, source: Union[bytes, IO[bytes]], start: int,
             spool_dir: Optional[str]) -> Iterator[Union[bytes, IO[bytes]]]:
    """``prefix`` followed by the source from ``start``: bytes, or a spool file when large."""
    if isinstance(source, bytes):
        yield prefix + source[start:]
        return
    source.seek(0, 2)
    size = len(prefix) + source.tell() - start
    source.seek(start)
    if size <= VARIANT_IN_MEMORY:
        yield prefix + source.read()
        return
    with tempfile.TemporaryFile(dir=spool_dir or None) as out:
        out.write(prefix)
        while chunk := source.read(1024 * 1024):
            out.write(chunk)
        out.flush()
        yield out


def _document(info: MessageInfo, source: Union[bytes, IO[bytes]]
              ) -> tuple[Document, substring.Grams]:
    """The searchable text of a message being sealed, and its IMAP trigrams (worker
    thread)."""
    if isinstance(source, bytes):
        data = source

        def read(start: int, end: int) -> bytes:
            return data[start:end]

        size = len(data)
    else:
        handle = source

        def read(start: int, end: int) -> bytes:
            handle.seek(start)
            return handle.read(max(0, end - start))

        size = handle.seek(0, os.SEEK_END)
    return extract_document(info, read), substring.imap_grams(info, read, size)
