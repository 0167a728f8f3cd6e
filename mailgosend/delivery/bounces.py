"""Recording delivery outcomes, with the DSN they call for in the same transaction.

A failure (or a delay warning) and its report commit together: after a crash either both
exist or neither, so the sender is told exactly once.  The DSN (RFC 3464, built by dsn.py)
comes from ``MAILER-DAEMON@<HOSTNAME>`` with the null reverse-path; it goes straight into a
local sender's INBOX, or into the queue for a remote sender.  Never for a null-sender message
or one from MAILER-DAEMON (dsn.should_bounce), never when NOTIFY asked for silence
(RFC 3461 §4.1).  A success report ("relayed") only for NOTIFY=SUCCESS recipients handed to a
server that does not advertise DSN (RFC 3461 §5.2.2); local deliveries report "delivered"
from the SMTP pipeline (smtp/pipeline/process.py).  Reports are sealed and filed through the
mail service's one local-delivery path (mail/delivery.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional, Sequence

from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailgosend.counters import NULL as NULL_COUNTERS
from mailgosend.crypto import KeyRing
from mailgosend.db.runner import DatabaseRunner
from mailgosend.delivery import dsn
from mailgosend.delivery.policy import (reply_status, split_reply_text, wants_delay_dsn,
                                        wants_failure_dsn, wants_success_dsn)
from mailgosend.events import (ChangeBatch, Events, QueueChanged, SubmissionChanged,
                               new_message_batches)
from mailgosend.mail.delivery import Envelope, LocalDelivery, Placement, Sealed
from mailgosend.store import accounts, jmapdata
from mailgosend.store import queue as queue_store
from mailgosend.store.queue import QUEUE_OWNER
from mailgosend.store.blobs import BlobStore
from mailgosend.store.messages import Delivered

log = Logger()

HEADER_LIMIT = 256 * 1024   # read at most this much of the original for its header block


@dataclass(frozen=True)
class _Report:
    kind: dsn.Kind
    recipients: tuple[dsn.RecipientStatus, ...]


@dataclass
class _SealedReport:
    sealed: Sealed  # a copy per local user, or one for the queue (remote sender)
    users: tuple[accounts.User, ...]
    remote_address: Optional[str]  # the sender, when the report goes out through the queue
    smtputf8: bool


class Bouncer:
    """Writes outcomes; builds, seals and stores the DSNs they need."""

    def __init__(self, *, runner: DatabaseRunner, keyring: KeyRing, blob_store: BlobStore,
                 local: LocalDelivery, workers: Any, events: Events, hostname: str,
                 delay_warning_hours: float, max_age: timedelta) -> None:
        self._runner = runner
        self._keyring = keyring  # reads the original's headers (the queue's copy)
        self._blobs = blob_store
        self._local = local
        self._workers = workers
        self._events = events
        self._hostname = hostname
        self._delay_hours = delay_warning_hours
        self._max_age = max_age
        self._batch = OutcomeBatch(runner, events)
        self.counters: Any = NULL_COUNTERS   # counters.py, set by the service

    async def record(self, claim: queue_store.Claim, outcomes: Sequence[queue_store.Outcome],
                     now: datetime, *, delay_warning: bool = False,
                     peer_dsn: bool = True) -> None:
        """Store ``outcomes`` for ``claim``'s recipients, and the DSN(s) they call for.

        ``peer_dsn``: the server that took the delivered recipients advertised DSN, so the
        NOTIFY parameters went on with them and any success report is its to send; when it
        did not, NOTIFY=SUCCESS recipients get a "relayed" report here (RFC 3461 §5.2.2).
        """
        reports = self._reports(claim, outcomes, now, delay_warning, peer_dsn)
        self.counters.delivery_outcomes(outcomes, sum(r.kind == "failure" for r in reports))
        if not reports:
            await self._batch.add(outcomes, now)
            return
        headers = await self._workers.run(self._read_headers, claim.message.blob_id)
        sealed = []
        try:
            target = await self._runner.read(accounts.resolve_recipient, claim.message.sender)
            for report in reports:
                raw = dsn.build_dsn(
                    reporting_mta=self._hostname, original_envelope_id=claim.message.envid,
                    arrival_date=claim.message.created_at, original_sender=claim.message.sender,
                    recipients=report.recipients, original_headers=headers, kind=report.kind,
                    now=now, message_id_domain=self._hostname)
                sealed.append(await self._workers.run(self._seal, raw, target,
                                                      claim.message.sender))
        except BaseException:
            for item in sealed:
                self._local.abandon(item.sealed, refused=True)
            raise
        try:
            delivered, submissions = await self._runner.write(
                self._commit, list(outcomes), sealed, now, claim.message.id,
                any(r.kind == "delay" for r in reports))
        except BaseException:
            for item in sealed:
                self._local.abandon(item.sealed, refused=False)
            raise
        for item, results in zip(sealed, delivered):
            self._local.settle(item.sealed, results, queued=item.remote_address is not None,
                               publish=False)
        publish_submissions(self._events, submissions)
        self._events.publish_all(new_message_batches(
            [d for results in delivered for d in results if isinstance(d, Delivered)]))
        if any(item.remote_address is not None for item in sealed):
            self._events.publish_queued(QueueChanged())

    # --- which reports --------------------------------------------------------------------
    def _reports(self, claim: queue_store.Claim, outcomes: Sequence[queue_store.Outcome],
                 now: datetime, delay_warning: bool, peer_dsn: bool = True) -> list[_Report]:
        if not dsn.should_bounce(claim.message.sender):
            return []
        by_id = {r.id: r for r in claim.recipients}
        failed, delayed, relayed = [], [], []
        for outcome in outcomes:
            rcpt = by_id.get(outcome.recipient_id)
            if rcpt is None:
                continue
            code = outcome.code or (451 if outcome.status in ("deferred", "expired") else 550)
            enhanced = split_reply_text(outcome.text)[1]   # our texts start with it
            if outcome.status == "failed" and wants_failure_dsn(rcpt.notify):
                failed.append(self._status(rcpt, outcome, "failed",
                                           _failure_status(code, enhanced), now))
            elif outcome.status == "expired" and wants_failure_dsn(rcpt.notify):
                # RFC 3463 X.4.7 "delivery time expired", reported as a failure.
                failed.append(self._status(rcpt, outcome, "failed", "5.4.7", now))
            elif outcome.status == "deferred" and delay_warning and wants_delay_dsn(rcpt.notify):
                delayed.append(self._status(rcpt, outcome, "delayed",
                                            reply_status(code, enhanced) if code // 100 == 4
                                            else "4.0.0", now,
                                            retry_until=claim.message.started_at + self._max_age))
            elif outcome.status == "delivered" and not peer_dsn \
                    and wants_success_dsn(rcpt.notify):
                relayed.append(self._status(rcpt, outcome, "relayed", "2.0.0", now))
        reports = []
        if failed:
            reports.append(_Report("failure", tuple(failed)))
        if relayed:
            reports.append(_Report("success", tuple(relayed)))
        if delayed:
            reports.append(_Report("delay", tuple(delayed)))
        return reports

    @staticmethod
    def _status(rcpt: queue_store.QueuedRecipient, outcome: queue_store.Outcome, action: str,
                status: str, now: datetime,
                retry_until: Optional[datetime] = None) -> dsn.RecipientStatus:
        return dsn.RecipientStatus(
            recipient=rcpt.recipient, original_recipient=rcpt.orcpt, action=action,
            status=status, remote_mta=outcome.mx_host,
            diagnostic=(f"{outcome.code} {outcome.text}" if outcome.code else outcome.text) or None,
            last_attempt=now, will_retry_until=retry_until)

    # --- worker threads -------------------------------------------------------------------
    def _read_headers(self, blob_id: str) -> bytes:
        """The original's header block (the DSN returns headers, never the body: RFC 3462)."""
        with self._blobs.open_blob(self._runner, self._keyring, QUEUE_OWNER,
                                   blob_id) as reader:
            data = b""
            for chunk in reader.iter_plaintext(0, min(reader.size, HEADER_LIMIT)):
                data += chunk
                end = data.find(b"\r\n\r\n")
                if end >= 0:
                    return data[:end + 2]
            return data

    def _seal(self, raw: bytes, target: accounts.Resolution, sender: str) -> _SealedReport:
        """Worker thread: a copy per local user the sender reaches, or, for a sender of a
        domain that is not ours, one for the queue."""
        remote = not target.local_domain and not target.users
        owners = [QUEUE_OWNER] if remote else [user.uuid for user in target.users]
        return _SealedReport(self._local.seal(raw, owners), tuple(target.users),
                             sender if remote else None, not raw.isascii())

    # --- the transaction ------------------------------------------------------------------
    def _commit(self, conn: Connection, outcomes: list[queue_store.Outcome],
                reports: list[_SealedReport], now: datetime, queue_id: int,
                delay_warned: bool) -> tuple[list[list[Any]], list[tuple[int, int]]]:
        """One transaction: each report filed for its local users (a full mailbox gets
        none) or queued for a remote sender, and the outcomes it reports on."""
        delivered = []
        for report in reports:
            placements = [Placement(user, "inbox") for user in report.users]
            delivered.append(self._local.file(conn, report.sealed, placements, now,
                                              refused="skip",
                                              about=f"delivery report for queue id {queue_id}"))
            if report.remote_address is not None:
                envelope = Envelope(sender="", recipients=(report.remote_address,),
                                    smtputf8=report.smtputf8, body_8bit=report.smtputf8)
                self._local.queue_copy(conn, envelope, [report.remote_address],
                                       report.sealed[QUEUE_OWNER][0], now)
        if delay_warned:
            queue_store.mark_delay_warned(conn, queue_id)
        return delivered, record_outcomes(conn, outcomes, now)


def record_outcomes(conn: Connection, outcomes: Sequence[queue_store.Outcome], now: datetime
                    ) -> list[tuple[int, int]]:
    """The outcomes stored, and the JMAP submissions they were sent for moved to a new state
    in the same transaction (their deliveryStatus changes): (user id, submission id)."""
    touched = jmapdata.touch_queued_submissions(conn, sorted({o.queue_id for o in outcomes}))
    queue_store.record_outcomes(conn, outcomes, now)
    return touched


def publish_submissions(events: Optional[Events], touched: Sequence[tuple[int, int]]) -> None:
    """After the commit: each user's submissions whose deliveryStatus changed, on the change
    feed (JMAP push announces EmailSubmission, RFC 8620 §7.1)."""
    if events is None:
        return
    by_user: dict[int, list[SubmissionChanged]] = {}
    for user_id, submission_id in touched:
        by_user.setdefault(user_id, []).append(SubmissionChanged(submission_id))
    events.publish_all(ChangeBatch(u, tuple(c)) for u, c in by_user.items())


class OutcomeBatch:
    """Outcomes without a report, committed together: while one write is in flight, the
    outcomes that arrive wait for the next, so N sessions finishing at once cost one
    transaction of four statements instead of N (group commit, DESIGN.md §2).  Each caller
    still resumes only once its own outcomes are committed."""

    def __init__(self, runner: DatabaseRunner, events: Optional[Events] = None) -> None:
        self._runner = runner
        self._events = events
        self._waiting: list[tuple[list[queue_store.Outcome], datetime, Deferred[None]]] = []
        self._busy = False

    def add(self, outcomes: Sequence[queue_store.Outcome], now: datetime) -> Deferred[None]:
        done: Deferred[None] = Deferred()
        self._waiting.append((list(outcomes), now, done))
        if not self._busy:
            self._flush()
        return done

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        self._busy = True
        everything = [o for outcomes, _, _ in batch for o in outcomes]
        now = max(when for _, when, _ in batch)
        d = self._runner.write(record_outcomes, everything, now)

        def finished(result: Any) -> None:
            self._busy = False
            if not isinstance(result, Failure) and self._events is not None:
                publish_submissions(self._events, result)
            if self._waiting:
                self._flush()
            for _, _, waiter in batch:
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(None)
        d.addBoth(finished)


def _failure_status(code: int, enhanced: Optional[str]) -> str:
    """A failed recipient's status must be 5.x.x (RFC 3464 §2.3.4)."""
    if enhanced and enhanced.startswith("5."):
        return enhanced
    return reply_status(code, enhanced) if code // 100 == 5 else "5.0.0"
