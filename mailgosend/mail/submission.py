# -*- test-case-name: tests.test_jmap_submission -*-
"""Submitting a message as a signed-in user, whatever the front end (SMTP port 587, JMAP).

The rules of RFC 6409 §8 the SMTP submission listener applies, in protocol-neutral form:
the From: addresses must be the user's (``from_addresses`` + ``accounts.first_not_owned``),
the envelope sender too (``accounts.may_send_as``); then the message goes through the one
delivery path (mail/delivery.py ``LocalDelivery.commit``): a copy per local recipient and
the outbound queue's copy for the others, in ONE transaction.  The queue worker signs the
queued copy with the domain's DKIM key when it sends it (delivery/worker.py), so JMAP
submissions are signed exactly like port-587 ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
import re
import secrets
from email import policy
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from typing import Any, Mapping, Optional, Sequence

from mailgosend.events import QueueChanged
from mailgosend.mailauth.headers import header_fields
from mailgosend.mail.delivery import Envelope, Placement, RecipientGone, Targets
from mailgosend.store import accounts
from mailgosend.store import queue as queue_store
from mailgosend.store.accounts import User
from mailgosend.store.addresses import AddressError, parse_address

__all__ = ["HOLD_PARAMETERS", "ReleaseRefused", "future_release_keyword", "release_time",
           "SubmissionRefused", "Submitted", "author_check", "check", "from_addresses",
           "missing_fields", "submit", "without_bcc"]


def from_addresses(header_block: bytes) -> list[str]:
    """The addresses of the From: field(s); empty when missing or unparsable."""
    try:
        headers = BytesHeaderParser(policy=policy.default).parsebytes(header_block)
        values = headers.get_all("From") or []
        return [a.addr_spec for value in values for a in value.addresses if a.addr_spec]
    except Exception:
        return []


async def author_check(runner: Any, user_email: str, header_block: bytes
                       ) -> tuple[list[str], Optional[str]]:
    """The From: addresses of a message and the first the user may not send as (None: all
    are theirs), in one read job; SMTP submission and JMAP both ask here (RFC 6409 §8)."""
    authors = from_addresses(header_block)
    if not authors:
        return authors, None
    return authors, await runner.read(accounts.first_not_owned, user_email, authors)


def missing_fields(header_block: bytes, now: datetime, hostname: str, unique: str) -> list[str]:
    """The ``Date:``/``Message-ID:`` lines (no CRLF) that ``header_block`` lacks: RFC 6409
    §8.2/§8.3 let a submission server add them (receivers score mail without them as spam,
    replies cannot thread without a Message-ID).  Date from the injected clock; the
    Message-ID's right side is our HOSTNAME, its left side the time and ``unique``."""
    present = {field.name.lower() for field in header_fields(header_block) if field.name}
    lines = []
    if b"date" not in present:
        lines.append(f"Date: {format_datetime(now)}")                        # RFC 6409 §8.3
    if b"message-id" not in present:
        lines.append(f"Message-ID: <{now:%Y%m%d%H%M%S}.{unique}@{hostname}>")  # §8.2
    return lines


# --- send later (RFC 4865 FUTURERELEASE), one rule for SMTP MAIL FROM and JMAP envelopes ---

HOLD_PARAMETERS = ("HOLDFOR", "HOLDUNTIL")
# RFC 4865 §3: future-release-integer = 1*9DIGIT; date-time of RFC 3339 §5.6 (erratum 2040)
_INTERVAL_RE = re.compile(r"^[0-9]{1,9}$")
_DATE_TIME_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
                           r"(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$")


class ReleaseRefused(ValueError):
    """A HOLDFOR/HOLDUNTIL the server will not honour: ``over_limit`` when the value is
    well formed but beyond the limit (SMTP 554 5.3.4, RFC 4865 §4), else a bad value (501
    5.5.4); ``parameter`` names the one at fault."""

    def __init__(self, parameter: str, detail: str, *, over_limit: bool = False) -> None:
        super().__init__(detail)
        self.parameter = parameter
        self.detail = detail
        self.over_limit = over_limit


def future_release_keyword(now: datetime, max_seconds: int) -> str:
    """The EHLO line's arguments, ``<max-future-release-interval> <max-future-release-
    date-time>`` (RFC 4865 §3), for a limit of ``max_seconds`` from ``now``."""
    latest = (now + timedelta(seconds=max_seconds)).astimezone(timezone.utc)
    return f"{max_seconds} {latest:%Y-%m-%dT%H:%M:%SZ}"


def release_time(parameters: Mapping[str, Optional[str]], now: datetime,
                 max_seconds: int) -> Optional[datetime]:
    """When a message given these MAIL parameters may go out (None: at once), or
    ``ReleaseRefused``.  Keys are upper-case; other parameters are ignored here.  A
    HOLDUNTIL in the past releases at once.  ``max_seconds`` 0: send later is off, so a
    hold parameter is refused like any unknown one would be."""
    given = [key for key in HOLD_PARAMETERS if key in parameters]
    if not given:
        return None
    if max_seconds <= 0:
        raise ReleaseRefused(given[0], f"{given[0]}: send later is not enabled here")
    if len(given) > 1:  # RFC 4865 §3: one hold-param, either HOLDFOR or HOLDUNTIL
        raise ReleaseRefused(given[1], "HOLDFOR and HOLDUNTIL cannot be used together")
    key = given[0]
    value = parameters[key]
    if key == "HOLDFOR":
        if value is None or not _INTERVAL_RE.match(value):
            raise ReleaseRefused(key, "HOLDFOR must be a number of seconds (1 to 9 digits)")
        seconds = int(value)
        release = now + timedelta(seconds=seconds)
    else:
        if value is None or not _DATE_TIME_RE.match(value):
            raise ReleaseRefused(key, "HOLDUNTIL must be an RFC 3339 date-time such as "
                                      "2026-12-05T17:00:00Z")
        try:
            release = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            raise ReleaseRefused(key, "HOLDUNTIL is not a valid date-time") from None
        seconds = int((release - now).total_seconds())
    if seconds > max_seconds:  # RFC 4865 §4: beyond max-future-release-interval
        raise ReleaseRefused(key, f"{key}: the release may be at most {max_seconds} seconds "
                                  "ahead", over_limit=True)
    return release.astimezone(timezone.utc) if release > now else None


class SubmissionRefused(Exception):
    """A submission refused before anything was stored; ``kind`` is the RFC 8621 §7.5
    SetError type (forbiddenFrom, forbiddenMailFrom, noRecipients, invalidRecipients,
    invalidEmail), ``addresses`` the addresses at fault."""

    def __init__(self, kind: str, detail: str, addresses: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.addresses = list(addresses)


@dataclass(frozen=True)
class Submitted:
    queue_id: Optional[int]  # None: every recipient was local
    local: int  # copies filed for local recipients


def _header_block(raw: bytes) -> bytes:
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end >= 0:
            return raw[:end + len(separator)]
    return raw


async def check(service: Any, user: User, raw: bytes, sender: str,
                recipients: Sequence[str], *, automatic: bool = False) -> Targets:
    """The submission rules, before anything is stored: where the message would go, or
    ``SubmissionRefused``.  ``automatic``: a message the server writes for the user (a
    vacation reply), sent with the null reverse-path (RFC 3834 §3.3)."""
    runner = service.runner
    authors, not_owned = await author_check(runner, user.email, _header_block(raw))
    if not authors:
        raise SubmissionRefused("invalidEmail", "the message has no valid From: header")
    if not_owned is not None:  # RFC 6409 §8: the author must be the user
        raise SubmissionRefused("forbiddenFrom", f"From: <{not_owned}> is not "
                                                 f"{user.email}'s address", [not_owned])
    if automatic and not sender:
        pass
    elif not sender or not await runner.read(accounts.may_send_as, user.email, sender):
        raise SubmissionRefused("forbiddenMailFrom", f"envelope sender <{sender}> is not "
                                                     f"{user.email}'s address", [sender])
    if not recipients:
        raise SubmissionRefused("noRecipients", "no recipients")
    bad = []
    for rcpt in recipients:
        try:
            parse_address(rcpt)
        except AddressError:
            bad.append(rcpt)
    if bad:
        raise SubmissionRefused("invalidRecipients", "invalid recipient addresses", bad)
    try:
        targets: Targets = await service.delivery.resolve(list(recipients), user.domain)
    except RecipientGone as gone:
        raise SubmissionRefused("invalidRecipients", str(gone), [gone.address]) from None
    return targets


async def submit(service: Any, user: User, raw: bytes, sender: str,
                 recipients: Sequence[str], now: datetime, *, automatic: bool = False,
                 hostname: Optional[str] = None) -> Submitted:
    """Check (``check``) and send one message for ``user`` (a MailService's runner,
    delivery, workers and events); ``SubmissionRefused`` leaves nothing stored or queued.
    With ``hostname``, a missing Date/Message-ID is added as on port 587."""
    targets = await check(service, user, raw, sender, recipients, automatic=automatic)
    if hostname:
        added = missing_fields(_header_block(raw), now, hostname, secrets.token_hex(6))
        raw = "".join(line + "\r\n" for line in added).encode() + raw
    delivery = service.delivery
    owners = [u.uuid for u in targets.local]
    if targets.remote:
        owners.append(queue_store.QUEUE_OWNER)
    sealed = await service.workers.run(delivery.seal, raw, owners)
    smtputf8 = any(not a.isascii() for a in [sender, *recipients])
    envelope = Envelope(sender=sender, recipients=tuple(recipients), smtputf8=smtputf8,
                        body_8bit=any(b > 127 for b in raw), authenticated=user.email)
    delivered, queue_id = await delivery.commit(
        envelope, [Placement(u, "inbox") for u in targets.local], sealed, targets.remote, now)
    if queue_id is not None and service.events is not None:
        service.events.publish_queued(QueueChanged(queue_id))
    return Submitted(queue_id, len(delivered))


def without_bcc(raw: bytes) -> bytes:
    """The message without its Bcc: field(s) (RFC 8621 §7.5: the server MUST remove them
    before sending; RFC 5322 §3.6.3)."""
    block = _header_block(raw)
    lines = block.splitlines(keepends=True)
    kept: list[bytes] = []
    dropping = False
    for line in lines:
        if line[:1] in (b" ", b"\t") and dropping:
            continue
        dropping = line[:4].lower() == b"bcc:" or line.lower().startswith(b"bcc ")
        if not dropping:
            kept.append(line)
    return b"".join(kept) + raw[len(block):]
