# -*- test-case-name: tests.test_jmap_vacation -*-
"""The vacation response applied to incoming mail (RFC 8621 §8, RFC 3834).

``VacationResponder.delivered`` is told by the one local-delivery path (mail/delivery.py
``LocalDelivery.commit``: SMTP receive, local submissions) of every copy filed in an INBOX,
after the COMMIT.  For a user whose vacation response is on (and within its dates), it
answers once per sender per ``interval`` (``VACATION_REPLY_DAYS``; tracked by keyed hash,
store/jmapdata.py), following RFC 3834:

- never to a null reverse-path, an ``Auto-Submitted`` message (other than "no"), mailing
  lists (``List-Id`` and the other ``List-*`` fields, ``Precedence: bulk/list/junk``), nor
  to addresses such as mailer-daemon, postmaster, noreply, owner-*, *-request (§2);
- only when one of the user's addresses is in To/Cc (§2: a personal responder);
- to the envelope sender (the Return-Path, §4), with ``Auto-Submitted: auto-replied``,
  ``In-Reply-To``/``References`` (§3.1.3, §3.1.5), and a null envelope sender (§3.3) so
  nothing answers the answer; sent through the same submission rules and queue as the user's
  own mail (mail/submission.py).

A failure here is logged and never affects the delivery it follows.
"""

from __future__ import annotations

import email.header
import email.utils
import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any, Optional, Sequence

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from mailgosend.db.runner import DatabaseStopped
from mailgosend.mail.accountdata import AccountData, Vacation
from mailgosend.mail.emails import load_emails
from mailgosend.mail.submission import SubmissionRefused, submit
from mailgosend.store import accounts, jmapdata
from mailgosend.store.accounts import User

__all__ = ["VacationResponder", "should_reply", "vacation_active"]

log = Logger()

_NO_REPLY = re.compile(r"^(mailer-daemon|postmaster|listserv|majordomo|owner-.*|.*-request|"
                       r"no-?reply|do-?not-?reply|bounces?(\+.*)?|.*-bounces?)$", re.I)
_LIST_FIELDS = ("list-id", "list-help", "list-unsubscribe", "list-subscribe", "list-post",
                "list-owner", "list-archive")
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$")
_POLICY = SMTP.clone(cte_type="7bit", max_line_length=78)


def vacation_active(vacation: Vacation, now: datetime) -> bool:
    """isEnabled, and now within [fromDate, toDate) (RFC 8621 §8)."""
    if not vacation.is_enabled:
        return False
    if vacation.from_date is not None and now < vacation.from_date:
        return False
    return vacation.to_date is None or now < vacation.to_date


def _fields(header_block: bytes) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    name: Optional[str] = None
    for line in header_block.splitlines():
        if line[:1] in (b" ", b"\t") and name is not None:
            found[name][-1] += " " + line.strip().decode("utf-8", "replace")
            continue
        match = _FIELD.match(line)
        if match is None:
            name = None
            continue
        name = match.group(1).decode("ascii").lower()
        found.setdefault(name, []).append(match.group(2).strip().decode("utf-8", "replace"))
    return found


def should_reply(sender: str, header_block: bytes, own: Sequence[str]) -> bool:
    """RFC 3834 §2: whether this message may get an automatic reply."""
    if not sender or "@" not in sender:
        return False  # the null reverse-path: a bounce or another automatic message
    if _NO_REPLY.match(sender.rsplit("@", 1)[0]):
        return False
    fields = _fields(header_block)
    if any(v.split(";")[0].strip().lower() != "no" for v in fields.get("auto-submitted", [])):
        return False
    if any(v.strip().lower() in ("bulk", "list", "junk") for v in fields.get("precedence", [])):
        return False
    if any(name in fields for name in _LIST_FIELDS):
        return False
    addressed = email.utils.getaddresses(fields.get("to", []) + fields.get("cc", []))
    mine = {a.lower() for a in own}
    return any(address.lower() in mine for _, address in addressed)


def _reply(user: User, display: str, vacation: Vacation, fields: dict[str, list[str]],
           sender: str, now: datetime) -> bytes:
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = email.utils.formataddr((display, user.email)) if display else user.email
    msg["To"] = sender
    original = fields.get("subject", [""])[-1]
    try:
        original = str(email.header.make_header(email.header.decode_header(original)))
    except Exception:
        pass
    msg["Subject"] = vacation.subject or f"Auto: {original}".strip()
    msg["Date"] = email.utils.format_datetime(now)
    msg["Message-ID"] = email.utils.make_msgid(domain=user.domain)
    message_id = fields.get("message-id", [""])[-1].strip()
    if message_id:  # RFC 3834 §3.1.5
        msg["In-Reply-To"] = message_id
        references = " ".join(fields.get("references", [])[-1:] + [message_id]).strip()
        msg["References"] = references
    msg["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5
    text = vacation.text_body
    if text is None and vacation.html_body:
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", vacation.html_body)).strip()
    msg.set_content((text or "").replace("\r\n", "\n"), charset="utf-8")
    if vacation.html_body:
        msg.add_alternative(vacation.html_body, subtype="html", charset="utf-8")
    return msg.as_bytes()


class VacationResponder:
    """One per mail service (``MailService.vacation``)."""

    def __init__(self, service: Any, interval: timedelta = timedelta(days=7)) -> None:
        self.service = service
        self.interval = interval
        self.pending: list[Deferred[None]] = []  # tests wait on these

    def delivered(self, sender: str, copies: Sequence[tuple[User, int]]) -> None:
        """After a COMMIT: ``copies`` are (user, email id) filed in an INBOX."""
        if not sender or not copies:
            return
        d = Deferred.fromCoroutine(self._respond(sender, list(copies)))
        d.addErrback(lambda f: log.failure("vacation response failed", f))
        self.pending.append(d)
        d.addBoth(lambda _: self.pending.remove(d))

    async def _respond(self, sender: str, copies: list[tuple[User, int]]) -> None:
        runner = self.service.runner
        try:  # one plain read for the usual case: nobody is away
            away = await runner.read(jmapdata.enabled_vacations, [u.id for u, _ in copies])
        except DatabaseStopped:  # shutting down after the delivery: no reply then
            return
        for user, email_id in copies:
            now = self.service.now()
            if user.id not in away:
                continue
            data = AccountData(self.service, user)
            vacation = await data.vacation()
            if not vacation_active(vacation, now):
                continue
            mail = self.service.for_user(user)
            records = await mail.read_messages(load_emails, [email_id])
            record = records.get(email_id)
            if record is None:
                continue
            header = record.info.header_bytes()
            if header is None:
                continue
            own = [user.email] + await runner.read(accounts.aliases_to, user.email)
            if sender.lower() in {a.lower() for a in own} or not should_reply(
                    sender, header, own):
                continue
            if not await data.reply_due(sender, self.interval):
                continue
            display = await runner.read(accounts.get_display_name, user.id)
            raw = _reply(user, display, vacation, _fields(header), sender, now)
            try:
                await submit(self.service, user, raw, "", [sender], now, automatic=True)
            except SubmissionRefused as refused:
                log.info("vacation reply for {user} not sent: {why}", user=user.email,
                         why=refused.kind)
