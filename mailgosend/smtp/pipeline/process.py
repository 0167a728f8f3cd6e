"""Run one received message through the pipeline and produce the final reply.

The ``250`` comes only from here and only after delivery.py reports every
copy and queue row committed (DESIGN.md §3).  Anything unexpected becomes a
temporary ``451``: the client keeps the message and retries, so nothing we
failed to store is ever lost.
"""

from __future__ import annotations

import mmap
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from twisted.internet import defer
from twisted.logger import Logger

from mailgosend.smtp.pipeline.author import check_author
from mailgosend.smtp.pipeline.checks import (
    FULL_CHECK_MAX_SIZE,
    CheckInput,
    CheckOutcome,
    CheckSettings,
    run_checks,
)
from mailgosend.smtp.pipeline.delivery import Delivery, Targets
from mailgosend.smtp.pipeline.received import received_header
from mailgosend.smtp.pipeline.spool import SpooledMessage
from mailgosend.smtp.replies import SMTPReply
from mailgosend.smtp.session import SMTPSession
from mailgosend.store.mimeinfo import MessageInfo, analyse

log = Logger()


@dataclass
class Prepared:
    """The message as it will be stored (our trace headers on top of the received bytes),
    the checks' outcome, and one sealed copy per owner, ready for the transaction."""

    size: int
    is_spam: bool
    outcome: Optional[CheckOutcome]
    sealed: dict[str, Any]


def _structure(message: SpooledMessage) -> MessageInfo:
    handle = message.handle
    if message.size == 0:
        return analyse(b"")
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        return analyse(mapped)  # type: ignore[arg-type]


def prepare(session: SMTPSession, message: SpooledMessage, settings: CheckSettings,
            resolver: Any, now: datetime, spool_dir: Optional[str], delivery: Delivery,
            targets: Targets) -> Prepared:
    """Checks, headers and sealing in ONE worker-thread job (blocking DNS, AES, disk I/O)."""
    header_block = message.header_block()
    outcome: Optional[CheckOutcome] = None
    if session.listener == "inbound":
        full = (lambda: message.read_all() if message.size <= FULL_CHECK_MAX_SIZE else None)
        outcome = run_checks(CheckInput(session.peer_ip, session.helo or "",
                                        session.mail_from or "", header_block,
                                        _structure(message), now, full),
                             settings, resolver)
        if outcome.reject and settings.check_dmarc:
            return Prepared(message.size, False, outcome, {})
    recipient = session.recipients[0] if len(session.recipients) == 1 else None
    lines = [received_header(session, settings.hostname, now, recipient)]
    if outcome is not None:
        lines += outcome.new_headers()
    prefix = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    stored_headers = outcome.header_block if outcome is not None else header_block
    with tempfile.TemporaryFile(dir=spool_dir or None) as out:
        out.write(prefix)
        out.write(stored_headers)
        for chunk in message.chunks(len(header_block)):
            out.write(chunk)
        size = out.tell()
        out.flush()
        sealed = delivery.seal_all(out, targets)
    return Prepared(size, outcome.verdict.is_spam if outcome else False, outcome, sealed)


class ReceivePipeline:
    def __init__(self, *, settings: CheckSettings, resolver: Any, workers: Any,
                 delivery: Delivery, runner: Any, clock: Any,
                 spool_dir: Optional[str] = None) -> None:
        self._runner = runner
        self._settings = settings
        self._resolver = resolver
        self._workers = workers
        self._delivery = delivery
        self._clock = clock
        self._spool_dir = spool_dir

    def process(self, session: SMTPSession, message: SpooledMessage) -> "defer.Deferred[SMTPReply]":
        return defer.ensureDeferred(self._process(session, message)).addErrback(self._failed,
                                                                                session)

    async def _process(self, session: SMTPSession, message: SpooledMessage) -> SMTPReply:
        now = datetime.fromtimestamp(self._clock.seconds(), timezone.utc)
        if session.listener != "inbound" and session.authenticated:
            refusal = await self._runner.read(check_author, session.authenticated,
                                              message.header_block())
            if refusal is not None:
                raise refusal
        targets = await self._delivery.targets(session)
        prepared: Prepared = await self._workers.run(
            prepare, session, message, self._settings, self._resolver, now, self._spool_dir,
            self._delivery, targets)
        outcome = prepared.outcome
        if outcome is not None and outcome.reject and self._settings.check_dmarc:
            self._delivery.discard(prepared.sealed)
            log.info("{id}: refused by DMARC policy ({domain})", id=session.transaction_id,
                     domain=outcome.dmarc.header_from if outcome.dmarc else "")
            raise SMTPReply(550, "5.7.1", outcome.reject)
        queue_id = await self._delivery.commit(session, targets, prepared.sealed,
                                               prepared.is_spam, now)
        log.info("{id}: accepted {size} bytes from {ip} for {count} recipient(s){spam}",
                 id=queue_id, size=prepared.size, ip=session.peer_ip,
                 count=len(session.recipients), spam=" (spam)" if prepared.is_spam else "")
        return SMTPReply(250, "2.0.0", f"Ok: queued as {queue_id}")

    def _failed(self, failure: Any, session: SMTPSession) -> Any:
        if failure.check(SMTPReply):
            return failure
        log.failure("{id}: receive pipeline failed; answered 451", failure,
                    id=session.transaction_id)
        return defer.fail(SMTPReply(451, "4.3.0", "Temporary local problem; please try "
                                                  "again later"))
