"""Store a received message: a copy per local user, a queue row per remote
recipient, all in ONE transaction, so the 250 that follows it covers every
recipient (DESIGN.md §3).

The filing itself is the mail service's one local-delivery path
(mail/delivery.py: seal in the worker pool, file in the transaction, settle
after it); this module adds what is SMTP's: the recipients resolved at RCPT,
the session turned into a neutral ``Envelope`` for the queue row, and the
mapping of a refusal to its reply (from the codes the exceptions carry).  A local recipient whose quota no longer
has room at this point fails the whole message with ``452 4.2.2`` and nothing
is stored for anybody, so a retry by the client never duplicates mail for the
others.

Each user's copy is sealed separately anyway, so a copy may start with its own
first header lines (the per-user spam verdict of the Bayesian classifier): a
*variant prefix* replaces the stored file's shared prefix for that owner, and
that copy's structure is analysed from its own bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import IO, AbstractSet, Any, Mapping, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from mailgosend.db.runner import DatabaseRunner
from mailgosend.events import Events, QueueChanged
from mailgosend.mail.delivery import (Envelope, LocalDelivery, Placement, RecipientGone, Sealed,
                                      Targets, canonical_recipient, merge_targets)
from mailgosend.smtp.replies import SMTPReply
from mailgosend.smtp.session import SMTPSession
from mailgosend.store.messages import QuotaExceeded
from mailgosend.store.queue import QUEUE_OWNER

log = Logger()


def mailbox_full(text: str) -> SMTPReply:
    """A full mailbox, at RCPT or at the end of DATA: the code QuotaExceeded carries."""
    return SMTPReply(QuotaExceeded.smtp_code, QuotaExceeded.enhanced_code, text)


def envelope_of(session: SMTPSession) -> Envelope:
    """The session's transaction as the mail service sees it."""
    params = session.mail_params
    # RFC 3461: what the client asked of each recipient travels with the queue row (an
    # address reached only through a local alias has no RCPT of its own).
    notify = {rcpt.lower(): (p.notify, p.orcpt) for rcpt, p in session.rcpt_params.items()}
    return Envelope(sender=session.mail_from or "", recipients=tuple(session.recipients),
                    smtputf8=params.smtputf8,
                    body_8bit=params.body == "8BITMIME" or session.body_8bit,
                    authenticated=session.authenticated, peer=session.peer_ip,
                    envid=params.envid, ret=params.ret, notify=notify,
                    release_at=params.release_at)


class Delivery:
    def __init__(self, *, runner: DatabaseRunner, local: LocalDelivery, events: Events,
                 default_domain: str) -> None:
        self._runner = runner
        self._local = local
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
        d = self._local.resolve(session.recipients, self._default_domain)

        def gone(failure: Any) -> Any:
            failure.trap(RecipientGone)
            exc = failure.value
            raise SMTPReply(exc.smtp_code, exc.enhanced_code,
                            f"<{exc.address}>: recipient changed during the transaction; "
                            "try again")

        return d.addErrback(gone)

    def discard(self, sealed: Sealed) -> None:
        """The message was refused before its transaction: nothing references these."""
        self._local.abandon(sealed, refused=True)

    async def commit(self, session: SMTPSession, targets: Targets, sealed: Sealed,
                     junk: AbstractSet[int], now: datetime) -> str:
        """One transaction for every copy and queue row; returns the id quoted in the 250:
        the outbound queue id when the message was queued (what ``mailgosend queue show``
        takes and the queue worker logs), else the transaction id (in the log lines and
        the Received header of the stored copies).

        ``junk``: the ids of the local users whose copy is filed in Junk (the spam verdict
        is per user: the shared score plus that user's Bayesian points)."""
        placements = [Placement(user, "junk" if user.id in junk else "inbox")
                      for user in targets.local]
        try:
            _delivered, queue_id = await self._local.commit(
                envelope_of(session), placements, sealed, targets.remote, now)
        except QuotaExceeded:
            raise mailbox_full("Mailbox full: the message does not fit "
                               "in a recipient's quota") from None
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
        return await self._local.deliver_report(raw, sender, now, f"for {sender}")

    def seal_all(self, handle: IO[bytes], targets: Targets,
                 variants: Optional[Mapping[str, bytes]] = None, shared_prefix: int = 0,
                 spool_dir: Optional[str] = None) -> Sealed:
        """Worker thread: a copy per local user and one for the queue, each under its
        owner's key (mail/delivery.py ``LocalDelivery.seal``, variants included)."""
        owners = [user.uuid for user in targets.local]
        if targets.remote:
            owners.append(QUEUE_OWNER)
        return self._local.seal(handle, owners, variants=variants,
                                shared_prefix=shared_prefix, spool_dir=spool_dir)
