"""Run one received message through the pipeline and produce the final reply.

The ``250`` comes only from here and only after delivery.py reports every
copy and queue row committed (DESIGN.md §3).  Anything unexpected becomes a
temporary ``451``: the client keeps the message and retries, so nothing we
failed to store is ever lost.

The spam verdict is per local recipient: the message's shared score (rules,
SPF/DKIM/DMARC, DNSBL) plus the points of that recipient's Bayesian classifier
(DESIGN.md §6), once the recipient has trained it (BAYES_MIN_TRAINED).  Only
those recipients cost anything: one query finds them; the message is
tokenised once, in the worker job that runs the checks; their statistics are
read in one database job; and each of their copies gets its own X-Spam-*
lines (delivery.py seals every user's copy separately anyway).  A failed
lookup only means the message is scored without Bayes.
"""

from __future__ import annotations

import mmap
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AbstractSet, Any, Mapping, Optional, Sequence

from twisted.internet import defer
from twisted.logger import Logger

from mailgosend.counters import NULL as NULL_COUNTERS
from mailgosend.delivery import dsn
from mailgosend.delivery.policy import wants_success_dsn
from mailgosend.mail.service import MailService
from mailgosend.mail.submission import author_check
from mailgosend.smtp.pipeline.author import author_refusal
from mailgosend.smtp.pipeline.checks import (
    FULL_CHECK_MAX_SIZE,
    CheckInput,
    CheckOutcome,
    CheckSettings,
    run_checks,
)
from mailgosend.smtp.pipeline.delivery import Delivery, Targets, canonical_recipient
from mailgosend.smtp.pipeline.received import received_header
from mailgosend.smtp.pipeline.spool import SpooledMessage
from mailgosend.smtp.pipeline.submission import missing_fields
from mailgosend.smtp.replies import SMTPReply
from mailgosend.smtp.session import SMTPSession
from mailgosend.spam import bayes
from mailgosend.spam.rules import Hit
from mailgosend.store import bayes as bayes_stats
from mailgosend.store.accounts import User
from mailgosend.store.mimeinfo import MessageInfo, analyse

log = Logger()


@dataclass
class Prepared:
    """The message as it will be stored (our trace headers on top of the received bytes),
    the checks' outcome, and one sealed copy per owner, ready for the transaction."""

    size: int
    junk: AbstractSet[int]          # ids of the local users whose copy goes to Junk
    outcome: Optional[CheckOutcome]
    sealed: dict[str, Any]


@dataclass(frozen=True)
class Checked:
    """What the checks found, and the Bayes tokens when a recipient has a classifier."""

    outcome: Optional[CheckOutcome]
    tokens: tuple[str, ...] = ()


def _structure(message: SpooledMessage) -> MessageInfo:
    handle = message.handle
    if message.size == 0:
        return analyse(b"")
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        return analyse(mapped)  # type: ignore[arg-type]


def check(session: SMTPSession, message: SpooledMessage, settings: CheckSettings,
          resolver: Any, now: datetime, want_tokens: bool = False) -> Checked:
    """Worker thread: mail authentication and the shared spam score (inbound only), and the
    message's Bayes tokens if ``want_tokens`` (tokenised once for every recipient)."""
    if session.listener != "inbound":
        return Checked(None)
    full = (lambda: message.read_all() if message.size <= FULL_CHECK_MAX_SIZE else None)
    outcome = run_checks(CheckInput(session.peer_ip, session.helo or "",
                                    session.mail_from or "", message.header_block(),
                                    _structure(message), now, full),
                         settings, resolver)
    tokens: tuple[str, ...] = ()
    if want_tokens and not refused(outcome, settings):
        message.handle.seek(0)
        tokens = tuple(bayes.tokenize(message.handle.read(bayes.MAX_SCAN)))
    return Checked(outcome, tokens)


def refused(outcome: Optional[CheckOutcome], settings: CheckSettings) -> bool:
    return outcome is not None and bool(outcome.reject) and settings.check_dmarc


def _header_bytes(lines: Sequence[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def store(session: SMTPSession, message: SpooledMessage, settings: CheckSettings,
          now: datetime, spool_dir: Optional[str], delivery: Delivery, targets: Targets,
          checked: Checked, bayes_hits: Mapping[int, Hit]) -> Prepared:
    """Worker thread: our headers on top of the message, and a sealed copy per owner.

    The stored file carries the shared verdict; a recipient with a Bayes hit gets a copy
    whose X-Spam-* lines show its own verdict (delivery.py's variant prefix).
    """
    header_block = message.header_block()
    outcome = checked.outcome
    recipient = session.recipients[0] if len(session.recipients) == 1 else None
    lines = [received_header(session, settings.hostname, now, recipient)]
    if session.listener != "inbound":
        lines += missing_fields(header_block, now, settings.hostname,
                                session.transaction_id or session.session_id)
    junk: set[int] = set()
    variants: dict[str, bytes] = {}
    if outcome is not None:
        for user in targets.local:
            hit = bayes_hits.get(user.id)
            verdict = outcome.verdict if hit is None else outcome.verdict.plus([hit])
            if verdict.is_spam:
                junk.add(user.id)
            if hit is not None:
                variants[user.uuid] = _header_bytes(lines + outcome.new_headers(verdict))
        lines += outcome.new_headers()
    prefix = _header_bytes(lines)
    stored_headers = outcome.header_block if outcome is not None else header_block
    with tempfile.TemporaryFile(dir=spool_dir or None) as out:
        out.write(prefix)
        out.write(stored_headers)
        for chunk in message.chunks(len(header_block)):
            out.write(chunk)
        size = out.tell()
        out.flush()
        sealed = delivery.seal_all(out, targets, variants, len(prefix), spool_dir)
    return Prepared(size, frozenset(junk), outcome, sealed)


def prepare(session: SMTPSession, message: SpooledMessage, settings: CheckSettings,
            resolver: Any, now: datetime, spool_dir: Optional[str], delivery: Delivery,
            targets: Targets) -> Prepared:
    """Checks, headers and sealing in ONE worker-thread job (blocking DNS, AES, disk I/O),
    for messages no recipient's classifier scores."""
    checked = check(session, message, settings, resolver, now)
    if refused(checked.outcome, settings):
        return Prepared(message.size, frozenset(), checked.outcome, {})
    return store(session, message, settings, now, spool_dir, delivery, targets, checked, {})


class ReceivePipeline:
    def __init__(self, *, settings: CheckSettings, resolver: Any, workers: Any,
                 delivery: Delivery, runner: Any, clock: Any,
                 spool_dir: Optional[str] = None, mail: Optional[MailService] = None
                 ) -> None:
        self._runner = runner
        self._mail = mail  # per-user Bayes scoring through the mail service; None: none
        self._settings = settings
        self._resolver = resolver
        self._workers = workers
        self._delivery = delivery
        self._clock = clock
        self._spool_dir = spool_dir
        self.counters: Any = NULL_COUNTERS   # counters.py, set by the service

    def apply_config(self, config: Any) -> None:
        """Spam, DNSBL, Bayes and DMARC settings saved on the settings page apply to the
        next message."""
        self._settings = CheckSettings.from_config(config)

    def process(self, session: SMTPSession, message: SpooledMessage) -> "defer.Deferred[SMTPReply]":
        return defer.ensureDeferred(self._process(session, message)).addErrback(self._failed,
                                                                                session)

    async def _process(self, session: SMTPSession, message: SpooledMessage) -> SMTPReply:
        now = datetime.fromtimestamp(self._clock.seconds(), timezone.utc)
        if session.listener != "inbound" and session.authenticated:
            authors, not_owned = await author_check(self._runner, session.authenticated,
                                                    message.header_block())
            refusal = author_refusal(session.authenticated, authors, not_owned)
            if refusal is not None:
                raise refusal
        targets = await self._delivery.targets(session)
        trained = await self._trained(session, targets)
        if trained:
            prepared = await self._prepare_with_bayes(session, message, now, targets, trained)
        else:
            prepared = await self._workers.run(
                prepare, session, message, self._settings, self._resolver, now,
                self._spool_dir, self._delivery, targets)
        outcome = prepared.outcome
        if outcome is not None and outcome.reject and self._settings.check_dmarc:
            self._delivery.discard(prepared.sealed)
            log.info("{id}: refused by DMARC policy ({domain})", id=session.transaction_id,
                     domain=outcome.dmarc.header_from if outcome.dmarc else "")
            raise SMTPReply(550, "5.7.1", outcome.reject)
        queue_id = await self._delivery.commit(session, targets, prepared.sealed,
                                               prepared.junk, now)
        self.counters.add("messages_received", session.listener)
        junk = len(prepared.junk)
        queued = f", queue id {queue_id}" if targets.remote else ""
        log.info("{tid}: accepted {size} bytes from {ip} for {count} recipient(s){spam}"
                 "{queued}", tid=session.transaction_id, size=prepared.size,
                 ip=session.peer_ip, count=len(session.recipients),
                 spam=f" (spam for {junk} of {len(targets.local)})" if junk else "",
                 queued=queued)
        if session.rcpt_params:
            await self._report_delivered(session, message, now)
        return SMTPReply(250, "2.0.0", f"Ok: queued as {queue_id}")

    async def _report_delivered(self, session: SMTPSession, message: SpooledMessage,
                                now: datetime) -> None:
        """RFC 3461 §4.1 NOTIFY=SUCCESS for recipients delivered here: one report with
        Action "delivered" (a single mailbox) or "expanded" (an alias that reached several,
        or went on elsewhere; RFC 3464 §2.3.3), sent to the sender once the message is
        committed.  It never costs the sender the 250: a failure here is only logged."""
        statuses = []
        for rcpt in session.recipients:
            params = session.rcpt_params.get(rcpt)
            resolved = session.resolved.get(
                canonical_recipient(rcpt, self._delivery.default_domain))
            if params is None or not wants_success_dsn(params.notify) or resolved is None \
                    or not resolved.local:
                continue
            single = len(resolved.local) == 1 and not resolved.remote
            statuses.append(dsn.RecipientStatus(
                recipient=rcpt, original_recipient=params.orcpt,
                action="delivered" if single else "expanded", status="2.0.0",
                remote_mta=None, diagnostic=None, last_attempt=now))
        if not statuses or not dsn.should_bounce(session.mail_from or ""):
            return
        try:
            raw = dsn.build_dsn(
                reporting_mta=self._settings.hostname,
                original_envelope_id=session.mail_params.envid, arrival_date=now,
                original_sender=session.mail_from or "", recipients=statuses,
                original_headers=message.header_block(), kind="success", now=now,
                message_id_domain=self._settings.hostname)
            await self._delivery.deliver_report(raw, session.mail_from or "", now)
        except Exception:
            log.failure("{tid}: success report not stored", tid=session.transaction_id)

    async def _trained(self, session: SMTPSession, targets: Targets) -> list[User]:
        """The local recipients whose classifier has an opinion (usually none)."""
        settings = self._settings
        if (session.listener != "inbound" or self._mail is None or not targets.local
                or settings.bayes_max_points <= 0):
            return []
        try:
            ids: set[int] = await self._runner.read(
                bayes_stats.trained_users, [u.id for u in targets.local],
                settings.bayes_min_trained)
        except Exception:
            log.failure("{id}: Bayes totals lookup failed; scoring without Bayes",
                        id=session.transaction_id)
            return []
        return [user for user in targets.local if user.id in ids]

    async def _prepare_with_bayes(self, session: SMTPSession, message: SpooledMessage,
                                  now: datetime, targets: Targets, trained: list[User]
                                  ) -> Prepared:
        """Checks and tokens in one worker job, the recipients' statistics in one database
        job, then headers and sealing in a second worker job."""
        settings = self._settings
        checked: Checked = await self._workers.run(check, session, message, settings,
                                                   self._resolver, now, True)
        if refused(checked.outcome, settings):
            return Prepared(message.size, frozenset(), checked.outcome, {})
        hits: dict[int, Hit] = {}
        try:
            assert self._mail is not None
            found = await self._mail.spam_probabilities(trained, checked.tokens,
                                                        min_messages=settings.bayes_min_trained)
        except Exception:
            log.failure("{id}: Bayes lookup failed; scoring without Bayes",
                        id=session.transaction_id)
            found = {}
        for user_id, probability in found.items():
            hit = bayes.bayes_hit(probability, settings.bayes_max_points)
            if hit is not None:
                hits[user_id] = hit
        prepared: Prepared = await self._workers.run(
            store, session, message, settings, now, self._spool_dir, self._delivery, targets,
            checked, hits)
        return prepared

    def _failed(self, failure: Any, session: SMTPSession) -> Any:
        if failure.check(SMTPReply):
            return failure
        log.failure("{id}: receive pipeline failed; answered 451", failure,
                    id=session.transaction_id)
        return defer.fail(SMTPReply(451, "4.3.0", "Temporary local problem; please try "
                                                  "again later"))
