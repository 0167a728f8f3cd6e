"""The queue worker: claims due recipients and delivers them, like Postfix's queue manager.

- A commit that queues mail wakes the worker at once (events.watch_queue); a timer covers
  retries falling due and rows queued by other nodes.
- Claimed recipients are grouped by destination domain (or all go to RELAY_HOST).  One job
  per domain resolves MX once and runs up to DELIVERY_DESTINATION_CONCURRENCY sessions, each
  taking messages from the job until none is left: one connection carries many messages.
  All jobs together hold at most DELIVERY_CONCURRENCY sessions.
- Every attempt is written (store/queue.py) as soon as the peer answers the final dot, so a
  crash re-sends at most what was in flight (RFC 5321 §6.1).
- Stopping: no new message is started; messages in flight get SHUTDOWN_GRACE_SECONDS to
  finish, then their connections are dropped and their claims stay for the next start.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailgosend.config import Config
from mailgosend.crypto import KeyRing
from mailgosend.db.runner import DatabaseRunner
from mailgosend.delivery import client as smtp_client
from mailgosend.delivery.bounces import Bouncer
from mailgosend.delivery.mtasts import MTASTS, StsLookup, classify_tls
from mailgosend.store.queue import QUEUE_OWNER
from mailgosend.delivery.mx import (Destinations, Host, ascii_domain, resolve_destinations,
                                    resolve_relay)
from mailgosend.delivery.policy import (RetryPolicy, decide, delay_warning_due,
                                        ordered_attempts, split_reply_text)
from mailgosend.mailauth import dkimsign
from mailgosend.store import queue as queue_store
from mailgosend.store.blobs import BlobStore

log = Logger()

RELAY_JOB = "[relay]"
SMALL_MESSAGE = 1024 * 1024   # read whole (one worker job, DKIM over it); larger ones stream
PREFETCH = 16                 # small messages of a job read in one query


@dataclass(frozen=True)
class DeliverySettings:
    hostname: str
    port: int
    retry: RetryPolicy
    delay_warning_hours: float
    concurrency: int
    destination_concurrency: int
    paused: bool
    relay: Optional[tuple[str, int]] = None
    relay_auth: Optional[tuple[str, str]] = None
    relay_ca_file: Optional[str] = None
    bind: Optional[str] = None
    grace_seconds: float = 30.0
    batch: int = 500
    lease: timedelta = timedelta(hours=1)
    poll_seconds: float = 60.0
    timeouts: Optional[smtp_client.Timeouts] = None

    @classmethod
    def from_config(cls, config: Config) -> "DeliverySettings":
        relay = None
        if config["RELAY_HOST"]:
            relay = config["RELAY_HOST"]
            if isinstance(relay, str):
                host, _, port = relay.rpartition(":")
                relay = (host, int(port)) if host and port.isdigit() else (relay, 25)
        auth = (config["RELAY_USER"], config["RELAY_PASSWORD"]) if config["RELAY_USER"] else None
        return cls(
            hostname=config["HOSTNAME"], port=config["DELIVERY_PORT"],
            retry=RetryPolicy(tuple(config["QUEUE_RETRY_MINS"]),
                              timedelta(hours=config["QUEUE_MAX_AGE_HOURS"])),
            delay_warning_hours=config["DELAY_WARNING_HOURS"],
            concurrency=config["DELIVERY_CONCURRENCY"],
            destination_concurrency=config["DELIVERY_DESTINATION_CONCURRENCY"],
            paused=config["DELIVERY_PAUSED"], relay=tuple(relay) if relay else None,
            relay_auth=auth, relay_ca_file=config["RELAY_CA_FILE"] or None,
            bind=config["DELIVERY_BIND"] or None,
            grace_seconds=config["SHUTDOWN_GRACE_SECONDS"])


def wire_address(address: str) -> str:
    """The address as sent: an IDN domain in A-labels when the local part is ASCII, so such
    mail needs no SMTPUTF8 (RFC 6531 §3.2 only requires it for non-ASCII local parts)."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii() or not local.isascii():
        return address
    try:
        return f"{local}@{ascii_domain(domain)}"
    except ValueError:
        return address


def node_name(config: Config) -> str:
    """Stable across restarts of this node (so it takes its own claims back at once) and
    distinct between nodes sharing one database (DESIGN.md §9)."""
    return f"{socket.gethostname()}:{os.path.abspath(config['DATA_DIR'])}"[-64:]


class BlobSource:
    """The message for the SMTP client: DKIM header(s) first, then the stored bytes,
    read in the worker pool (decryption never runs in the reactor thread)."""

    def __init__(self, prefix: bytes, whole: Optional[bytes], chunks: Any, workers: Any,
                 close: Callable[[], None]) -> None:
        self.prefix = prefix
        self._whole = whole
        self._chunks = chunks
        self._workers = workers
        self._close = close

    def read_chunk(self) -> "Deferred[bytes]":
        if self._whole is not None:
            data, self._whole = self._whole, b""
            return defer.succeed(data)
        if self._chunks is None:
            return defer.succeed(b"")
        return self._workers.run(self._next)

    def _next(self) -> bytes:
        try:
            return next(self._chunks)  # type: ignore[no-any-return]
        except StopIteration:
            self.close()
            return b""

    def close(self) -> None:
        if self._chunks is not None:
            self._chunks = None
            self._close()


@dataclass
class _DomainJob:
    key: str
    pending: deque[queue_store.Claim] = field(default_factory=deque)
    sessions: int = 0
    destinations: Optional[Deferred[Destinations]] = None
    sts: Optional[Deferred[StsLookup]] = None    # the domain's MTA-STS policy (one lookup)
    sts_counted: bool = False                    # policy-level failures counted once a job
    # Messages read ahead for the sessions of this job (blob id -> bytes, From domain).
    prefetched: dict[str, tuple[bytes, Optional[str]]] = field(default_factory=dict)


class QueueService(Service):
    def __init__(self, *, settings: DeliverySettings, runner: DatabaseRunner, keyring: KeyRing,
                 blob_store: BlobStore, workers: Any, resolver: Any, signer: Any,
                 bouncer: Bouncer, clock: Any, node: str,
                 connect: Callable[..., Deferred[Any]] = smtp_client.connect,
                 rand: Optional[random.Random] = None,
                 mta_sts: Optional[MTASTS] = None) -> None:
        self.setName("delivery")
        self.settings = settings
        self._runner = runner
        self._keyring = keyring
        self._blobs = blob_store
        self._workers = workers
        self._resolver = resolver
        self._signer = signer
        self._bouncer = bouncer
        self._clock = clock
        self._node = node
        self._connect = connect
        self._mta_sts = mta_sts
        self._rand = rand or secrets.SystemRandom()
        self._sessions = DeferredSemaphore(settings.concurrency)
        self._jobs: dict[str, _DomainJob] = {}
        self._claimed = 0          # recipients claimed and not yet recorded
        self._scan_call: Any = None
        self._scanning = False
        self._rescan = False
        self._timer: Any = None
        self._stopping = False
        self._active: set[Deferred[Any]] = set()
        self._connections: set[Any] = set()

    # --- life cycle -----------------------------------------------------------------------
    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), timezone.utc)

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        if self.settings.paused:
            log.info("delivery paused (DELIVERY_PAUSED): outbound mail stays queued")
            return
        d = self._runner.write(queue_store.release_node_claims, self._node, self._now())

        def released(count: int) -> None:
            if count:
                log.info("delivery: {count} recipient(s) in flight at the last stop are due "
                         "again", count=count)
            self.wake()
        d.addCallbacks(released, lambda f: log.failure("delivery: start-up failed", f))

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._stopping = True
        for call in (self._scan_call, self._timer):
            if call is not None and call.active():
                call.cancel()
        return Deferred.fromCoroutine(self._drain())

    async def _drain(self) -> None:
        if not self._active:
            return
        waiting = defer.DeferredList(list(self._active), consumeErrors=True)
        timeout = self._clock.callLater(self.settings.grace_seconds, self._abort_connections)
        await waiting
        if timeout.active():
            timeout.cancel()

    def _abort_connections(self) -> None:
        for connection in list(self._connections):
            connection.abort()

    # --- scheduling -----------------------------------------------------------------------
    def wake(self) -> None:
        """Look for due mail now (coalesced: one scan at a time, one more if asked meanwhile)."""
        if not self.running or self._stopping or self.settings.paused:
            return
        if self._scanning:
            self._rescan = True
            return
        if self._scan_call is None or not self._scan_call.active():
            self._scan_call = self._clock.callLater(0, self._start_scan)

    def _start_scan(self) -> None:
        self._track(Deferred.fromCoroutine(self._scan()))

    def _track(self, d: Deferred[Any]) -> None:
        self._active.add(d)

        def done(result: Any) -> Any:
            self._active.discard(d)
            return result
        d.addBoth(done)
        d.addErrback(lambda f: log.failure("delivery: unexpected error", f))

    async def _scan(self) -> None:
        self._scanning = True
        try:
            while not self._stopping:
                self._rescan = False
                room = self.settings.batch - self._claimed
                if self._claimed and room < self.settings.batch // 2:
                    # Refill in large claims when half the batch is done (see _record), not
                    # a few rows at every session's end: small claims cost a statement
                    # each and leave sessions idle, so they hang up and reconnect.
                    break
                now = self._now()
                claims = await self._runner.write(
                    queue_store.claim_due, self._node, now, limit=room,
                    stale_before=now - self.settings.lease)
                if self._stopping:
                    await self._runner.write(queue_store.unclaim,
                                             [r.id for c in claims for r in c.recipients], now)
                    return
                for claim in claims:
                    self._claimed += len(claim.recipients)
                    self._dispatch(claim)
                if sum(len(c.recipients) for c in claims) < room and not self._rescan:
                    break
            await self._arm_timer()
        finally:
            self._scanning = False
        if self._rescan:
            # Woken while the scan was finishing (during the timer query): that wake must
            # not be lost behind a timer a minute away.
            self._rescan = False
            self.wake()

    async def _arm_timer(self) -> None:
        if self._stopping:
            return
        due = await self._runner.read(queue_store.next_due)
        if self._stopping:   # stopped while the query ran: a timer now would outlive us
            return
        delay = self.settings.poll_seconds
        if due is not None:
            delay = min(delay, max(0.0, (due - self._now()).total_seconds()))
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._clock.callLater(delay + 0.05, self.wake)

    def _dispatch(self, claim: queue_store.Claim) -> None:
        """Split one message's recipients by domain and hand them to the domain jobs."""
        by_domain: dict[str, list[queue_store.QueuedRecipient]] = {}
        for rcpt in claim.recipients:
            key = RELAY_JOB if self.settings.relay else rcpt.domain.lower()
            by_domain.setdefault(key, []).append(rcpt)
        for key, rcpts in by_domain.items():
            job = self._jobs.get(key)
            if job is None:
                job = self._jobs[key] = _DomainJob(key)
            job.pending.append(queue_store.Claim(claim.message, tuple(rcpts)))
            self._spawn(job)

    def _spawn(self, job: _DomainJob) -> None:
        while (job.pending and job.sessions < self.settings.destination_concurrency
               and job.sessions < len(job.pending)):
            job.sessions += 1
            self._track(Deferred.fromCoroutine(self._session(job)))

    # --- one session ----------------------------------------------------------------------
    def _destinations(self, job: _DomainJob) -> Deferred[Destinations]:
        if job.destinations is None:
            if self.settings.relay:
                host, port = self.settings.relay
                job.destinations = self._workers.run(resolve_relay, host,
                                                     resolver=self._resolver, port=port)
            else:
                job.destinations = self._workers.run(resolve_destinations, job.key,
                                                     resolver=self._resolver,
                                                     port=self.settings.port)
        return _shared(job.destinations)

    def _sts(self, job: _DomainJob) -> Deferred[StsLookup]:
        assert self._mta_sts is not None
        if job.sts is None:
            job.sts = Deferred.fromCoroutine(self._mta_sts.lookup(job.key))
        return _shared(job.sts)

    async def _apply_sts(self, job: _DomainJob, destinations: Destinations
                         ) -> tuple[Destinations, Optional[StsLookup]]:
        """The MTA-STS policy of the job's domain (RFC 8461 §5) and the MX hosts it allows;
        policy-level failures are counted for TLS-RPT once per job."""
        if self._mta_sts is None or self.settings.relay:
            return destinations, None
        lookup = await self._sts(job)
        allowed, excluded = self._mta_sts.permitted(lookup, destinations)
        if not job.sts_counted:
            job.sts_counted = True
            if lookup.fetch_error and lookup.policy is None:
                await self._mta_sts.count(lookup, "", "sts-policy-fetch-error")
            # RFC 8460 §4.3.2.2: an MX not covered by the policy.
            await self._mta_sts.count_all(lookup, excluded, "validation-failure")
            if excluded:
                log.info("MTA-STS: {domain} ({mode}): MX {hosts} not in its policy",
                         domain=job.key, mode=lookup.policy.mode if lookup.policy else "-",
                         hosts=", ".join(excluded))
        return allowed, lookup

    async def _session(self, job: _DomainJob) -> None:
        try:
            try:
                destinations = await self._destinations(job)
            except Exception as exc:
                destinations = Destinations(job.key, temporary_error=f"451 4.4.3 DNS lookup "
                                                                     f"failed: {exc}")
            if destinations.permanent_error or destinations.temporary_error:
                await self._fail_all(job, destinations.permanent_error
                                     or destinations.temporary_error or "451 4.4.3")
                return
            destinations, sts = await self._apply_sts(job, destinations)
            if not destinations.hosts:
                # RFC 8461 §5: enforce and no MX matches: keep the mail, try again later.
                await self._fail_all(job, f"451 4.7.5 MTA-STS policy of {job.key} (enforce) "
                                          "lists none of its MX hosts; not delivered")
                return
            await self._sessions.acquire()
            try:
                await self._deliver_over_one_connection(job, destinations, sts)
            except Exception:
                # A bug, not a peer's doing: defer what waits (recorded, so nothing spins
                # or is lost) and let the next scan try again after the retry step.
                log.failure("delivery: session to {domain} failed", domain=job.key)
                await self._fail_all(job, "451 4.3.0 Local error in the delivery worker")
            finally:
                self._sessions.release()
        finally:
            job.sessions -= 1
            if job.pending and not self._stopping:
                self._spawn(job)
            elif not job.pending and job.sessions == 0 and self._jobs.get(job.key) is job:
                del self._jobs[job.key]
            if self._stopping and job.sessions == 0 and job.pending:
                leftover = [r.id for c in job.pending for r in c.recipients]
                self._claimed -= len(leftover)
                job.pending.clear()
                await self._runner.write(queue_store.unclaim, leftover, self._now())
            elif not self._stopping:
                self.wake()

    async def _fail_all(self, job: _DomainJob, reply_text: str) -> None:
        """DNS said the domain cannot be reached (bounce) or not now (defer)."""
        code, enhanced, text = split_reply_text(reply_text)
        while job.pending:
            claim = job.pending.popleft()
            await self._record(claim, code, f"{enhanced} {text}" if enhanced else text,
                               {r.id: None for r in claim.recipients}, None, None)

    def _client_settings(self) -> Any:
        relay = self.settings.relay
        auth = self.settings.relay_auth if relay else None
        kwargs: dict[str, Any] = dict(
            helo_name=self.settings.hostname,
            # Postfix's "may" towards MX hosts; a smarthost that gets our password must
            # prove who it is (RFC 8314 §3, RFC 7672's lesson: unverified TLS is no
            # protection for credentials).
            tls="encrypt" if auth else "may",
            verify_hostname=relay[0] if auth and relay else None,
            ca_file=self.settings.relay_ca_file if relay else None,
            auth=auth, bind_address=self.settings.bind)
        if self.settings.timeouts is not None:
            kwargs["timeouts"] = self.settings.timeouts
        return smtp_client.ClientSettings(**kwargs)

    async def _open(self, job: _DomainJob, destinations: Destinations,
                    sts: Optional[StsLookup] = None) -> tuple[Any, Optional[Host], str]:
        """A session with the first host that accepts us, or (None, host, why not)."""
        last_mx = job.pending[0].recipients[0].last_mx if job.pending else None
        why = "451 4.4.1 No MX host answered"
        last_host: Optional[Host] = None
        for host, address in ordered_attempts(destinations, last_mx):
            if self._stopping:
                break
            last_host = host
            settings = self._client_settings()
            if self._mta_sts is not None:
                settings = self._mta_sts.client_settings(sts, host.name, settings)
            try:
                try:
                    session = await self._connect(self._clock, address, destinations.port,
                                                  host.name, settings)
                except smtp_client.SessionFailed as exc:
                    if not (exc.tls_failed and settings.tls == "may"):
                        raise
                    # Postfix's "may": a handshake that fails is retried in clear, as if
                    # STARTTLS had not been offered (RFC 7435 §4).
                    log.info("delivery: TLS handshake with {host} [{address}] failed; "
                             "retrying without TLS", host=host.name, address=address)
                    session = await self._connect(self._clock, address, destinations.port,
                                                  host.name, replace(settings, tls="none"))
            except smtp_client.SessionFailed as exc:
                reply = exc.reply
                text = reply.text
                if sts is not None and sts.enforced and reply.enhanced in ("4.7.4", "4.7.5"):
                    # RFC 8461 §5: no verified TLS to this MX: nothing is sent in clear.
                    text = f"{text} (MTA-STS policy of {sts.domain} is enforce)"
                    assert self._mta_sts is not None
                    await self._mta_sts.count(sts, host.name,
                                              classify_tls(None, False, reply.text))
                why = f"{reply.code} {reply.enhanced + ' ' if reply.enhanced else ''}" \
                      f"{host.name} [{address}]: {text}"
                log.info("delivery: {host} [{address}] not usable: {why}", host=host.name,
                         address=address, why=text)
                continue
            if session.tls_note:
                log.info("delivery: TLS with {host}: {note}", host=host.name,
                         note=session.tls_note)
            if sts is not None and self._mta_sts is not None:
                result = classify_tls(session.tls_version, session.tls_verified,
                                      session.tls_note)
                if sts.policy is not None and result != "success":
                    log.info("MTA-STS: {domain} ({mode}): {host}: {result}; delivered "
                             "anyway (testing)", domain=sts.domain, mode=sts.policy.mode,
                             host=host.name, result=result)
                await self._mta_sts.count(sts, host.name, result)
            return session, host, ""
        return None, last_host, why

    async def _deliver_over_one_connection(self, job: _DomainJob, destinations: Destinations,
                                           sts: Optional[StsLookup] = None) -> None:
        session, host, why = await self._open(job, destinations, sts)
        if session is None:
            # Every address failed: everything waiting for this destination is deferred
            # (another session would meet the same hosts).
            code, enhanced, text = split_reply_text(why)
            while job.pending:
                claim = job.pending.popleft()
                await self._record(claim, code if code // 100 == 4 else 451,
                                   f"{enhanced} {text}" if enhanced else text,
                                   {r.id: None for r in claim.recipients},
                                   host.name if host else None, None)
            return
        transport = getattr(session, "transport", None)
        if transport is not None:
            self._connections.add(transport)
        try:
            while job.pending and not self._stopping:
                if session.lost:
                    # The peer closed an idle connection: the job opens a new one.
                    return
                claim = job.pending.popleft()
                lost = await self._send(session, host, claim, job)
                if lost:
                    return
            await session.quit()
        finally:
            if transport is not None:
                self._connections.discard(transport)

    async def _send(self, session: Any, host: Optional[Host], claim: queue_store.Claim,
                    job: _DomainJob) -> bool:
        """One message over ``session``; True when the connection was lost."""
        message = claim.message
        host_name = host.name if host else None
        try:
            source = await self._source(message, job)
        except Exception as exc:
            log.error("delivery: queue id {id}: cannot read the stored message: {error}",
                      id=message.id, error=type(exc).__name__)
            await self._record(claim, 451, "4.3.0 Local error reading the queued message",
                               {r.id: None for r in claim.recipients}, None, None)
            return False
        wire = {r.id: wire_address(r.recipient) for r in claim.recipients}
        envelope = smtp_client.Envelope(
            sender=wire_address(message.sender),
            recipients=tuple(smtp_client.Recipient(wire[r.id], r.notify, r.orcpt)
                             for r in claim.recipients),
            size=message.size + len(source.prefix), smtputf8=message.smtputf8,
            body_8bit=message.body_8bit, envid=message.envid, ret=message.ret)
        try:
            result = await session.send(envelope, source)
        finally:
            source.close()
        by_address = {res.recipient.address: res.reply for res in result.results}
        replies = {r.id: by_address.get(wire[r.id]) for r in claim.recipients}
        await self._record(claim, None, None, replies, host_name, session.tls_version,
                           peer_dsn="DSN" in session.extensions)
        return bool(result.session_lost)

    async def _source(self, message: queue_store.QueuedMessage, job: _DomainJob
                      ) -> BlobSource:
        # A worker job reads (decrypts) the message and finds its From domain; the reactor
        # thread never parses it.  Small messages are read for the next few messages of the
        # job at once (one query) and sent from memory; large ones are streamed again from
        # the blob (dkimpy signs whole messages, so a large one that gets signed is read
        # twice, transiently in memory the first time).
        small = message.size <= SMALL_MESSAGE
        sign = self._signer is not None and await self._signer.signs_anything()
        data: Optional[bytes] = None
        domain: Optional[str] = None
        if small and message.blob_id not in job.prefetched:
            wanted = [message.blob_id] + [
                c.message.blob_id for c in list(job.pending)[:PREFETCH - 1]
                if c.message.size <= SMALL_MESSAGE and c.message.blob_id not in job.prefetched]
            job.prefetched.update(await self._workers.run(self._read_batch, wanted, sign))
        if small and message.blob_id in job.prefetched:
            data, domain = job.prefetched.pop(message.blob_id)
        elif small or sign:
            data, domain = await self._workers.run(self._read_for_sending, message.blob_id,
                                                   sign)
        prefix = await self._signature(data, domain) if data is not None else b""
        if small:
            return BlobSource(prefix, data, None, self._workers, lambda: None)
        del data
        reader = await self._workers.run(self._blobs.open_blob, self._runner,
                                         self._keyring, QUEUE_OWNER, message.blob_id)
        return BlobSource(prefix, None, iter(reader.iter_plaintext()), self._workers,
                          reader.close)

    async def _signature(self, data: bytes, domain: Optional[str]) -> bytes:
        """DKIM-Signature field(s) for the From domain's keys; b'' without a key (cached)."""
        if self._signer is None or domain is None:
            return b""
        keys = await self._signer.keys_for(domain)
        if not keys:
            return b""
        try:
            return await self._workers.run(dkimsign.sign, data, keys, self._clock.seconds())  # type: ignore[no-any-return]
        except dkimsign.DKIMSigningError as exc:
            log.warn("DKIM: message from {domain} sent unsigned: {reason}", domain=domain,
                     reason=str(exc))
            return b""

    def _read_batch(self, blob_ids: list[str], sign: bool
                    ) -> dict[str, tuple[bytes, Optional[str]]]:
        """Small queue blobs in one query (store/blobs.py open_small_blobs); those it does not
        return (file storage, larger blobs) are read one by one later."""
        with self._runner.connect() as conn:
            readers = self._blobs.open_small_blobs(conn, self._keyring, QUEUE_OWNER,
                                                   list(dict.fromkeys(blob_ids)))
        found = {}
        for blob_id, reader in readers.items():
            with reader:
                data = b"".join(reader)
            found[blob_id] = (data, dkimsign.signing_domain(data) if sign else None)
        return found

    def _read_whole(self, blob_id: str) -> bytes:
        with self._blobs.open_blob(self._runner, self._keyring, QUEUE_OWNER,
                                   blob_id) as reader:
            return b"".join(reader)

    def _read_for_sending(self, blob_id: str, sign: bool) -> tuple[bytes, Optional[str]]:
        data = self._read_whole(blob_id)
        return data, dkimsign.signing_domain(data) if sign else None

    async def _record(self, claim: queue_store.Claim, code: Optional[int], text: Optional[str],
                      replies: dict[int, Any], host_name: Optional[str],
                      tls_version: Optional[str], peer_dsn: bool = True) -> None:
        """Turn replies (or one shared code/text) into outcomes and store them; ``peer_dsn``:
        the peer advertised DSN (see Bouncer.record)."""
        now = self._now()
        outcomes = []
        for rcpt in claim.recipients:
            reply = replies.get(rcpt.id)
            if reply is not None:
                r_code = reply.code
                r_text = f"{reply.enhanced} {reply.text}" if reply.enhanced else reply.text
            else:
                r_code = code if code is not None else 451
                r_text = text or "4.4.2 Connection lost before the reply"
            status, next_at = decide(r_code, created_at=claim.message.started_at,
                                     attempts_before=rcpt.attempts, now=now,
                                     policy=self.settings.retry, rand=self._rand)
            if status == "expired":
                r_text = f"{r_text} (gave up: the message is older than QUEUE_MAX_AGE_HOURS)"
            outcomes.append(queue_store.Outcome(
                rcpt.id, rcpt.queue_id, rcpt.recipient, status, r_code, r_text,
                mx_host=host_name, tls_version=tls_version, next_attempt_at=next_at))
            log.info("delivery: queue id {id} to <{rcpt}> via {host}: {status} ({code})",
                     id=claim.message.id, rcpt=rcpt.recipient, host=host_name or "-",
                     status=status, code=r_code)
        warn = any(o.status == "deferred" for o in outcomes) and delay_warning_due(
            claim.message.started_at, now, claim.message.delay_warned,
            self.settings.delay_warning_hours)
        try:
            await self._bouncer.record(claim, outcomes, now, delay_warning=warn,
                                       peer_dsn=peer_dsn)
        finally:
            before = self._claimed
            self._claimed -= len(claim.recipients)
            half = self.settings.batch // 2
            if self._claimed < half <= before:
                self.wake()


def _shared(source: Deferred[Any]) -> Deferred[Any]:
    """A Deferred of its own for each waiter on one lookup (every session of a job)."""
    d: Deferred[Any] = Deferred()

    def share(result: Any) -> Any:
        if isinstance(result, Failure):
            d.errback(result)
        else:
            d.callback(result)
        return result
    source.addBoth(share)
    return d
