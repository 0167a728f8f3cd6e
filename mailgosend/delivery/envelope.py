"""One outbound mail transaction as data: the envelope, its per-recipient
results, and the MAIL/RCPT commands a given peer should get (pure).

:func:`plan_transaction` decides, from the envelope and the peer's EHLO
keywords, which recipients can be attempted at all and with which ESMTP
parameters:

- RFC 1870 SIZE: declared; a message above the peer's limit is refused here
  (``552 5.3.4``) rather than sent and refused after the upload.
- RFC 6152 8BITMIME: ``BODY=8BITMIME`` when offered; an 8-bit message goes to
  a peer without it anyway, with a note (Postfix does the same; nobody
  downgrades to quoted-printable any more).
- RFC 6531 SMTPUTF8: the parameter when the message or an address needs it.
  Without the extension at the peer (§3.2, §3.5): a non-ASCII sender refuses
  everything with ``550 5.6.7``, a non-ASCII recipient is refused with
  ``553 5.6.7``, a message that itself needs SMTPUTF8 is refused for all with
  ``554 5.6.9``.  ASCII recipients of an ASCII message still go out.
- RFC 3461 DSN: RET/ENVID on MAIL and NOTIFY/ORCPT on RCPT, only when offered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailgosend.delivery.reply import Reply, local_reply

_NOTIFY_RE = re.compile(r"^(NEVER|(SUCCESS|FAILURE|DELAY)(,(SUCCESS|FAILURE|DELAY))*)$", re.I)
_BAD_ADDRESS_CHARS = re.compile(r"[\x00-\x1f\x7f<>]")
_TYPED_RE = re.compile(r"^([A-Za-z0-9-]+);(.*)$", re.DOTALL)  # RFC 3461 §4.2 addr-type


@dataclass(frozen=True)
class Recipient:
    """One RCPT.  ``orcpt`` is the RFC 3461 §4.2 original recipient, decoded
    (``"rfc822;bob@example.org"`` or ``"utf-8;..."``, as ``dsn.typed_address``
    makes it); this module encodes it."""

    address: str
    notify: str | None = None
    orcpt: str | None = None


@dataclass(frozen=True)
class Envelope:
    """What the worker knows about one message for one destination host.

    ``size`` is what will be sent, prefix (DKIM-Signature) included: it is
    declared with SIZE= and checked against the peer's limit.  ``smtputf8`` says the
    message itself needs SMTPUTF8 (UTF-8 header fields, RFC 6532); non-ASCII
    addresses are detected here.  Domains must already be A-labels when the
    peer may lack SMTPUTF8.
    """

    sender: str  # '' is the null reverse-path <>
    recipients: tuple[Recipient, ...]
    size: int = 0
    smtputf8: bool = False
    body_8bit: bool = False
    envid: str | None = None
    ret: str | None = None  # FULL or HDRS


@dataclass(frozen=True)
class RecipientResult:
    recipient: Recipient
    reply: Reply  # the RCPT refusal, or the reply to DATA / the final dot


@dataclass(frozen=True)
class TransactionResult:
    """Per-recipient outcome, in envelope order.

    ``session_lost``: the connection ended inside the transaction; recipients
    without a final answer carry a temporary (4xx) reply explaining why.
    When it was lost after the final dot, the peer may have the message
    (RFC 1047): retrying then risks a duplicate, never a loss.
    """

    results: tuple[RecipientResult, ...]
    session_lost: bool = False
    notes: tuple[str, ...] = ()

    @property
    def recipients(self) -> dict[str, Reply]:
        """Reply by recipient address (the last one, should an address repeat)."""
        return {r.recipient.address: r.reply for r in self.results}

    @property
    def delivered(self) -> tuple[Recipient, ...]:
        return tuple(r.recipient for r in self.results if r.reply.code < 300)


@dataclass(frozen=True)
class Plan:
    """Commands for the recipients that may be attempted; the rest refused already."""

    mail: str | None  # None when nothing is left to attempt
    rcpts: tuple[tuple[int, str], ...]  # (index in envelope.recipients, RCPT command)
    refused: dict[int, Reply] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def xtext(value: str) -> str:
    """RFC 3461 §4: '+' and '=' and anything outside '!'..'~' as +HH (of the UTF-8 bytes)."""
    out = []
    for byte in value.encode("utf-8"):
        char = chr(byte)
        out.append(char if 0x21 <= byte <= 0x7E and char not in "+=" else f"+{byte:02X}")
    return "".join(out)


def orcpt_parameter(orcpt: str) -> str | None:
    """ORCPT value: rfc822 in xtext, utf-8 as utf-8-addr-xtext (RFC 6533 §3).

    A bare address (no ``type;``) is typed here: rfc822 when ASCII, else utf-8.
    """
    typed = _TYPED_RE.match(orcpt.strip())
    if typed:
        kind, address = typed.group(1).lower(), typed.group(2)
    else:
        address = orcpt.strip()
        kind = "rfc822" if address.isascii() else "utf-8"
    if not address or _BAD_ADDRESS_CHARS.search(address):
        return None
    if kind == "utf-8":
        # QCHAR excludes '+', '=', '\\'; they and non-ASCII go as \x{HEX} (RFC 6533 §3).
        escaped = "".join(c if 0x21 <= ord(c) <= 0x7E and c not in "+=\\" else f"\\x{{{ord(c):X}}}"
                          for c in address)
        return f"utf-8;{escaped}"
    return f"{kind};{xtext(address)}"


def declared_limit(extensions: dict[str, str]) -> int | None:
    """The peer's SIZE limit, None for none (RFC 1870 §4: absent or 0 means no fixed limit)."""
    if "SIZE" not in extensions:
        return None
    value = extensions["SIZE"].strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def plan_transaction(envelope: Envelope, extensions: dict[str, str], size: int) -> Plan:
    """Decide what to send to a peer with these EHLO ``extensions``; ``size`` as sent."""
    count = len(envelope.recipients)
    notes: list[str] = []

    def refuse_all(reply: Reply) -> Plan:
        return Plan(None, (), {i: reply for i in range(count)}, tuple(notes))

    if _BAD_ADDRESS_CHARS.search(envelope.sender):
        return refuse_all(local_reply(550, "5.1.7", "sender address contains forbidden characters"))
    limit = declared_limit(extensions)
    if limit is not None and size > limit:
        return refuse_all(local_reply(552, "5.3.4", f"message size {size} exceeds the limit of "
                                                    f"{limit} the receiving server announced"))
    utf8 = "SMTPUTF8" in extensions
    if not utf8:
        # RFC 6531 §3.2: never send an internationalized message or address to this peer.
        if envelope.smtputf8:
            return refuse_all(local_reply(554, "5.6.9", "message needs SMTPUTF8, which the "
                                                        "receiving server does not support"))
        if not envelope.sender.isascii():
            return refuse_all(local_reply(550, "5.6.7", "non-ASCII sender address, and the "
                                                        "receiving server lacks SMTPUTF8"))
    dsn = "DSN" in extensions
    refused: dict[int, Reply] = {}
    rcpts: list[tuple[int, str]] = []
    for index, recipient in enumerate(envelope.recipients):
        address = recipient.address
        if not address or _BAD_ADDRESS_CHARS.search(address):
            refused[index] = local_reply(553, "5.1.3", "recipient address contains forbidden "
                                                       "characters")
        elif not utf8 and not address.isascii():
            refused[index] = local_reply(553, "5.6.7", "non-ASCII recipient address, and the "
                                                       "receiving server lacks SMTPUTF8")
        else:
            rcpts.append((index, f"RCPT TO:<{address}>" + _rcpt_params(recipient, dsn, notes)))
    if not rcpts:
        return Plan(None, (), refused, tuple(notes))
    return Plan(_mail_command(envelope, extensions, size, notes), tuple(rcpts), refused,
                tuple(notes))


def _needs_utf8(envelope: Envelope) -> bool:
    return (envelope.smtputf8 or not envelope.sender.isascii()
            or any(not r.address.isascii() for r in envelope.recipients))


def _mail_command(envelope: Envelope, extensions: dict[str, str], size: int,
                  notes: list[str]) -> str:
    params = []
    if "SIZE" in extensions:
        params.append(f"SIZE={size}")
    if envelope.body_8bit:
        if "8BITMIME" in extensions:
            params.append("BODY=8BITMIME")
        else:
            notes.append("8-bit message sent to a server without 8BITMIME")
    if "SMTPUTF8" in extensions and _needs_utf8(envelope):
        params.append("SMTPUTF8")  # RFC 6531 §3.4: only when needed
    if "DSN" in extensions:
        if envelope.ret:
            if envelope.ret.upper() in ("FULL", "HDRS"):
                params.append(f"RET={envelope.ret.upper()}")
            else:
                notes.append(f"invalid RET value dropped: {envelope.ret[:20]!r}")
        if envelope.envid:
            params.append(f"ENVID={xtext(envelope.envid)}")
    return f"MAIL FROM:<{envelope.sender}>" + "".join(f" {p}" for p in params)


def _rcpt_params(recipient: Recipient, dsn: bool, notes: list[str]) -> str:
    if not dsn:
        return ""  # RFC 3461 §4: never without the extension
    params = []
    if recipient.notify:
        if _NOTIFY_RE.match(recipient.notify.replace(" ", "")):
            params.append(f"NOTIFY={recipient.notify.replace(' ', '').upper()}")
        else:
            notes.append(f"invalid NOTIFY value dropped: {recipient.notify[:40]!r}")
    if recipient.orcpt:
        value = orcpt_parameter(recipient.orcpt)
        if value:
            params.append(f"ORCPT={value}")
    return "".join(f" {p}" for p in params)
