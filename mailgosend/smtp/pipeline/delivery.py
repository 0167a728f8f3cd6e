"""Store a received message: a copy per local user, a queue row per remote
recipient, all in ONE transaction, so the 250 that follows it covers every
recipient (DESIGN.md §3).

Sealing (AES over the whole message, per recipient key) happens in the
worker pool before the transaction; the transaction only records rows.  A
local recipient whose quota no longer has room at this point fails the whole
message with ``452 4.2.2`` and nothing is stored for anybody, so a retry by
the client never duplicates mail for the others.

Each user's copy is sealed separately anyway, so a copy may start with its own
first header lines (the per-user spam verdict of the Bayesian classifier): a
*variant prefix* replaces the stored file's shared prefix for that owner, and
that copy's structure is analysed from its own bytes.
"""

from __future__ import annotations

import contextlib
import mmap
import tempfile
from dataclasses import dataclass
from datetime import datetime
from typing import IO, AbstractSet, Any, BinaryIO, Iterator, Mapping, Optional, Sequence, cast

from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from mailgosend.crypto import KeyRing
from mailgosend.delivery.bounces import seal_report_copies, store_report_copies
from mailgosend.db.runner import DatabaseRunner
from mailgosend.events import Events, QueueChanged, new_message_batches
from mailgosend.smtp.replies import SMTPReply
from mailgosend.smtp.session import SMTPSession
from mailgosend.store import accounts
from mailgosend.store import queue as queue_store
from mailgosend.store.queue import QUEUE_OWNER
from mailgosend.store.blobs import BlobStore, SealedBlob
from mailgosend.store.messages import Delivered, QuotaExceeded, deliver, seal_info
from mailgosend.store.mimeinfo import analyse

log = Logger()

# A variant copy up to this size is assembled in memory; larger ones in a spool file.
VARIANT_IN_MEMORY = 1024 * 1024


@dataclass(frozen=True)
class Targets:
    local: tuple[accounts.User, ...]
    remote: tuple[str, ...]


def mailbox_full(text: str) -> SMTPReply:
    """A full mailbox, at RCPT or at the end of DATA: the code QuotaExceeded carries."""
    return SMTPReply(QuotaExceeded.smtp_code, QuotaExceeded.enhanced_code, text)


def canonical_recipient(address: str, default_domain: str) -> str:
    """``<postmaster>`` without a domain means ours (RFC 5321 §4.5.1)."""
    return f"postmaster@{default_domain}" if address.lower() == "postmaster" else address


def resolve_targets(conn: Connection, recipients: Sequence[str],
                    default_domain: str) -> Targets:
    local: dict[str, accounts.User] = {}
    remote: list[str] = []
    for rcpt in recipients:
        address = canonical_recipient(rcpt, default_domain)
        resolution = accounts.resolve_recipient(conn, address)
        if not resolution.deliverable:
            # Accepted at RCPT, gone now (deleted meanwhile): let the client retry later.
            raise SMTPReply(451, "4.3.0", f"<{rcpt}>: recipient changed during the "
                                          "transaction; try again")
        for user in resolution.users:
            local.setdefault(user.email, user)
        remote += [r for r in resolution.remote if r not in remote]
    return Targets(tuple(local.values()), tuple(remote))


def merge_targets(parts: Sequence[Targets]) -> Targets:
    """Several recipients' targets as one, each user and remote address once."""
    users: dict[str, accounts.User] = {}
    remote: list[str] = []
    for part in parts:
        for user in part.local:
            users.setdefault(user.email, user)
        remote += [r for r in part.remote if r not in remote]
    return Targets(tuple(users.values()), tuple(remote))



class Delivery:
    def __init__(self, *, runner: DatabaseRunner, keyring: KeyRing, blob_store: BlobStore,
                 workers: Any, events: Events, default_domain: str) -> None:
        self._runner = runner
        self._keyring = keyring
        self._blobs = blob_store
        self._workers = workers
        self._events = events
        self._default_domain = default_domain

    @property
    def default_domain(self) -> str:
        return self._default_domain

    def targets(self, session: SMTPSession) -> "Deferred[Targets]":
        """Where the message goes: from what RCPT learnt, or asked again if incomplete."""
        known = [session.resolved.get(canonical_recipient(r, self._default_domain))
                 for r in session.recipients]
        if session.recipients and all(t is not None for t in known):
            return succeed(merge_targets(known))  # type: ignore[arg-type]
        return self._runner.read(resolve_targets, session.recipients, self._default_domain)

    def discard(self, sealed: dict[str, tuple[SealedBlob, bytes]]) -> None:
        """The message was refused before its transaction: nothing references these."""
        for blob, _ in sealed.values():
            self._blobs.discard(blob, unreferenced=True)

    async def commit(self, session: SMTPSession, targets: Targets,
                     sealed: dict[str, tuple[SealedBlob, bytes]], junk: AbstractSet[int],
                     now: datetime) -> str:
        """One transaction for every copy and queue row; returns the id quoted in the 250:
        the outbound queue id when the message was queued (what ``mailgosend queue show``
        takes and the queue worker logs), else the transaction id (in the log lines and
        the Received header of the stored copies).

        ``junk``: the ids of the local users whose copy is filed in Junk (the spam verdict
        is per user: the shared score plus that user's Bayesian points)."""
        try:
            delivered, queue_id = await self._runner.write(
                self._record, session, targets, sealed, junk, now)
        except BaseException as exc:
            # A refused job was rolled back for certain; after any other failure the COMMIT
            # may still have happened, so files are left for the purge step.
            refused = isinstance(exc, (QuotaExceeded, SMTPReply))
            for blob, _ in sealed.values():
                self._blobs.discard(blob, unreferenced=refused)
            if isinstance(exc, QuotaExceeded):
                raise mailbox_full("Mailbox full: the message does not fit "
                                   "in a recipient's quota") from None
            raise
        for blob, _ in sealed.values():
            self._blobs.release(blob)
        self._events.publish_all(new_message_batches(delivered))
        if targets.remote:
            self._events.publish_queued(QueueChanged(queue_id))
        if queue_id is not None:
            return str(queue_id)
        return session.transaction_id or session.session_id

    async def deliver_report(self, raw: bytes, sender: str, now: datetime) -> int:
        """Store a delivery report (RFC 3464) for a local ``sender`` in the INBOX of every
        user the address reaches, as the queue's Bouncer stores its reports; returns how
        many copies were stored.  A submission's sender is always local
        (accounts.may_send_as); a full mailbox just gets none."""
        resolution = await self._runner.read(accounts.resolve_recipient, sender)
        if not resolution.users:
            return 0
        copies = await self._workers.run(seal_report_copies, self._blobs, self._keyring, raw,
                                         resolution.users)
        try:
            delivered = await self._runner.write(store_report_copies, self._blobs, copies,
                                                 now, f"for {sender}")
        except BaseException:
            for _user, blob, _meta in copies:
                self._blobs.discard(blob, unreferenced=False)
            raise
        for _user, blob, _meta in copies:
            self._blobs.release(blob)
        self._events.publish_all(new_message_batches(delivered))
        return len(delivered)

    def seal_all(self, handle: IO[bytes], targets: Targets,
                 variants: Optional[Mapping[str, bytes]] = None, shared_prefix: int = 0,
                 spool_dir: Optional[str] = None) -> dict[str, tuple[SealedBlob, bytes]]:
        """Worker thread: analyse the stored form once, seal a copy per user and one for
        the queue (each under its owner's key).

        ``variants`` maps an owner's uuid to the header lines its copy starts with instead
        of the file's first ``shared_prefix`` bytes; such a copy is assembled (in memory, or
        in ``spool_dir`` when large) and analysed on its own.
        """
        variants = variants or {}
        info = _analysed(handle)
        owners = [user.uuid for user in targets.local]
        if targets.remote:
            owners.append(QUEUE_OWNER)
        sealed: dict[str, tuple[SealedBlob, bytes]] = {}
        try:
            for owner in owners:
                prefix = variants.get(owner)
                if prefix is None:
                    handle.seek(0)
                    blob = self._blobs.seal(self._keyring, owner, cast(BinaryIO, handle))
                    meta = info
                else:
                    with _variant(prefix, handle, shared_prefix, spool_dir) as copy:
                        if isinstance(copy, bytes):
                            meta = analyse(copy).to_json()
                            blob = self._blobs.seal(self._keyring, owner, copy)
                        else:
                            meta = _analysed(copy)
                            copy.seek(0)
                            blob = self._blobs.seal(self._keyring, owner, cast(BinaryIO, copy))
                sealed[owner] = (blob, seal_info(self._keyring, owner, blob.blob_id, meta))
        except BaseException:
            for blob, _ in sealed.values():
                self._blobs.discard(blob, unreferenced=True)
            raise
        return sealed

    def _record(self, conn: Connection, session: SMTPSession, targets: Targets,
                sealed: dict[str, tuple[SealedBlob, bytes]], junk: AbstractSet[int],
                now: datetime) -> tuple[list[Delivered], Optional[int]]:
        delivered = []
        for user in targets.local:
            role = "junk" if user.id in junk else "inbox"
            blob, meta = sealed[user.uuid]
            delivered.append(deliver(conn, user, role, blob, meta, (), now, now,
                                     blob_store=self._blobs))
        queue_id = None
        if targets.remote:
            queue_id = self._enqueue(conn, session, targets.remote, sealed[QUEUE_OWNER][0], now)
        return delivered, queue_id

    def _enqueue(self, conn: Connection, session: SMTPSession, recipients: Sequence[str],
                 blob: SealedBlob, now: datetime) -> int:
        user_id: Optional[int] = None
        if session.authenticated:
            user = accounts.find_user(conn, session.authenticated)
            user_id = user.id if user is not None else None
        self._blobs.commit(conn, blob, user_id, now)  # type: ignore[arg-type]
        params = session.mail_params
        # RFC 3461: what the client asked of each recipient travels with the queue row (an
        # address reached only through a local alias has no RCPT of its own).
        asked = {rcpt.lower(): (p.notify, p.orcpt) for rcpt, p in session.rcpt_params.items()}
        notify = {rcpt: asked[rcpt.lower()] for rcpt in recipients if rcpt.lower() in asked}
        return queue_store.enqueue(
            conn, sender=session.mail_from or "", user_id=user_id, blob_id=blob.blob_id,
            size=blob.size, recipients=recipients, now=now, smtputf8=params.smtputf8,
            body_8bit=params.body == "8BITMIME" or session.body_8bit, envid=params.envid,
            ret=params.ret, notify=notify)



def _analysed(handle: IO[bytes]) -> bytes:
    """The structure of a spool file, as stored JSON (mmap: no copy of a large message)."""
    handle.seek(0, 2)
    if handle.tell() == 0:
        return analyse(b"").to_json()
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        return analyse(mapped).to_json()  # type: ignore[arg-type]


@contextlib.contextmanager
def _variant(prefix: bytes, handle: IO[bytes], start: int, spool_dir: Optional[str]
             ) -> Iterator[bytes | IO[bytes]]:
    """``prefix`` followed by the file from ``start``: bytes, or a spool file when large."""
    handle.seek(0, 2)
    size = len(prefix) + handle.tell() - start
    handle.seek(start)
    if size <= VARIANT_IN_MEMORY:
        yield prefix + handle.read()
        return
    with tempfile.TemporaryFile(dir=spool_dir or None) as out:
        out.write(prefix)
        while chunk := handle.read(1024 * 1024):
            out.write(chunk)
        out.flush()
        yield out
