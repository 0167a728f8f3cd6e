"""Delivery status notifications: building and parsing RFC 3464 reports (RFC 6522, RFC 6533).

A DSN is sent with the null reverse-path ``MAIL FROM:<>`` (RFC 5321 §4.5.5),
so nobody ever answers it with another DSN.  Pure functions over plain data:
the queue worker supplies the clock (``now``) and the addresses.

Non-ASCII addresses (RFC 6533) — the choice made here:
- Original sender ASCII: the whole DSN stays 7-bit so it can travel over any
  SMTP server.  Non-ASCII recipients use the ``utf-8`` address type in its
  ``utf-8-addr-xtext`` form (``\\x{F6}``, RFC 6533 §3) inside an ordinary
  ``message/delivery-status``; non-ASCII text is quoted-printable.
- Original sender non-ASCII: the DSN can only reach it over SMTPUTF8 anyway,
  so the To field is UTF-8 (RFC 6532), addresses appear raw, and parts that
  contain UTF-8 use ``message/global-delivery-status`` and
  ``message/global-headers`` (RFC 6533 §6).  The worker must send such a DSN
  with the SMTPUTF8 parameter: :func:`build_dsn` output is then not ASCII.
"""

from __future__ import annotations

import base64
import quopri
import re
import secrets
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime
from typing import Literal

Kind = Literal["failure", "delay", "success"]
# The actions a report of each kind is about (RFC 3464 §2.3.3).
_KIND_ACTIONS = {"failure": {"failed"}, "delay": {"delayed"},
                 "success": {"delivered", "relayed", "expanded"}}

# RFC 3464 §2.3.4: the status class must agree with the action.
_ACTION_CLASS = {"failed": "5", "delayed": "4", "delivered": "2", "relayed": "2",
                 "expanded": "2"}
_STATUS_RE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_TYPED_RE = re.compile(r"^([A-Za-z0-9-]+);\s*(.*)$", re.S)
_MESSAGE_ID_RE = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+>")
_CONTROLS_RE = re.compile(r"[\x00-\x1f\x7f]+")
_ESCAPE_RE = re.compile(r"\\x\{([0-9A-Fa-f]{2,6})\}")
_SUBJECTS = {"failure": "Undelivered Mail Returned to Sender",
             "delay": "Delayed Mail (still being retried)",
             "success": "Successful Mail Delivery Report"}
_MAX_LINE = 998          # RFC 5322 §2.1.1, octets without CRLF
_MAX_TOKEN = 900         # an unbreakable word must fit on one line with its field name
_XTEXT_SPECIALS = " +=\\"  # RFC 6533 §3: outside QCHAR, so escaped too


class DSNParseError(ValueError):
    """The bytes are not a delivery status notification we can read."""


@dataclass(frozen=True)
class RecipientStatus:
    """The outcome for one recipient, as the per-recipient fields report it (RFC 3464 §2.3).

    ``diagnostic`` is the remote server's reply (all lines) or our own reply
    text; ``remote_mta`` the host that gave it.  ``original_recipient`` is the
    ORCPT address (plain, or already typed as ``type;address``).
    """

    recipient: str
    original_recipient: str | None
    action: str
    status: str
    remote_mta: str | None
    diagnostic: str | None
    last_attempt: datetime | None
    will_retry_until: datetime | None = None   # delayed only (RFC 3464 §2.3.8)

    def __post_init__(self) -> None:
        if self.action not in _ACTION_CLASS:
            raise ValueError(f"unknown DSN action {self.action!r}")
        if not _STATUS_RE.fullmatch(self.status) or self.status[0] != _ACTION_CLASS[self.action]:
            raise ValueError(f"status {self.status!r} does not fit action {self.action!r}")
        if self.will_retry_until is not None and self.action != "delayed":
            raise ValueError("Will-Retry-Until is only for delayed recipients")


def should_bounce(original_sender: str) -> bool:
    """Whether a failure may be reported to ``original_sender`` at all.

    Never to the null reverse-path (RFC 5321 §6.1, RFC 3464 §2: a DSN must not
    cause another), nor to MAILER-DAEMON, which is how other systems' bounces
    often arrive when they forget ``<>``: answering them is how loops start.
    """
    sender = original_sender.strip()
    if sender.startswith("<") and sender.endswith(">"):
        sender = sender[1:-1].strip()
    if not sender:
        return False
    local = sender.rpartition("@")[0] if "@" in sender else sender
    return local.strip('"').lower() != "mailer-daemon"


# --- field text -----------------------------------------------------------------

def _escape(text: str, special: str = "") -> str:
    """RFC 6533 §3 EmbeddedUnicodeChar for non-ASCII and ``special`` characters."""
    return "".join(f"\\x{{{ord(c):02X}}}" if ord(c) > 0x7e or c in special else c
                   for c in text)


def _clean(text: str, utf8: bool) -> str:
    """One line of field text: controls (CR, LF first) folded into spaces, 7-bit unless utf8."""
    line = " ".join(_CONTROLS_RE.sub(" ", text).split())
    return line if utf8 else _escape(line)


def typed_address(address: str, utf8: bool) -> str:
    """``rfc822;`` for ASCII, else ``utf-8;`` raw (utf8) or as utf-8-addr-xtext (RFC 6533 §3)."""
    address = _CONTROLS_RE.sub("", address.strip())
    if address.isascii():
        return f"rfc822;{address}"
    return f"utf-8;{address}" if utf8 else f"utf-8;{_escape(address, _XTEXT_SPECIALS)}"


def decode_address(value: str) -> tuple[str, str]:
    """(address type, address) of a typed address field, RFC 6533 escapes undone."""
    match = _TYPED_RE.match(value.strip())
    if not match:
        return "", value.strip()
    kind, address = match.group(1).lower(), match.group(2).strip()
    if kind == "utf-8":
        address = _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), address)
    return kind, address


def _fold(name: str, value: str) -> str:
    """``Name: value`` folded before spaces to keep lines near 78 (RFC 5322 §2.2.3), LF-joined."""
    words = [w[:_MAX_TOKEN] for w in value.split(" ")]
    lines: list[str] = []
    current = f"{name}: {words[0]}"
    for word in words[1:]:
        if len(current) + 1 + len(word) > 78:
            lines.append(current)
            current = " " + word
        else:
            current += " " + word
    lines.append(current)
    return "\n".join(lines)


def _date(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("DSN dates must be timezone-aware")
    return format_datetime(when)


# --- building ---------------------------------------------------------------------

def _status_part(reporting_mta: str, envelope_id: str | None, arrival: datetime,
                 recipients: Sequence[RecipientStatus], utf8: bool) -> str:
    """The machine-readable report: per-message block, then one block per recipient."""
    blocks = [[("Reporting-MTA", f"dns; {_clean(reporting_mta, False)}")]]
    if envelope_id:
        blocks[0].append(("Original-Envelope-Id", _clean(envelope_id, False)))  # §2.2.1
    blocks[0].append(("Arrival-Date", _date(arrival)))
    for r in recipients:
        fields: list[tuple[str, str]] = []
        if r.original_recipient:
            orcpt = r.original_recipient.strip()
            fields.append(("Original-Recipient", _clean(orcpt, utf8) if _TYPED_RE.match(orcpt)
                           else typed_address(orcpt, utf8)))
        fields += [("Final-Recipient", typed_address(r.recipient, utf8)),
                   ("Action", r.action), ("Status", r.status)]
        if r.remote_mta:
            fields.append(("Remote-MTA", f"dns; {_clean(r.remote_mta, False)}"))
        if r.diagnostic:
            fields.append(("Diagnostic-Code", f"smtp; {_clean(r.diagnostic, utf8)}"))
        if r.last_attempt:
            fields.append(("Last-Attempt-Date", _date(r.last_attempt)))
        if r.will_retry_until:
            fields.append(("Will-Retry-Until", _date(r.will_retry_until)))
        blocks.append(fields)
    return "\n\n".join("\n".join(_fold(n, v) for n, v in block) for block in blocks) + "\n"


def _human_text(kind: Kind, reporting_mta: str, recipients: Sequence[RecipientStatus]) -> str:
    """What a person reads first: who did not get the message, and what their server said."""
    if kind == "failure":
        intro = ("Your message could not be delivered to one or more recipients. "
                 "The mail system has given up on them; the reasons are below.")
    elif kind == "success":
        # RFC 3461 §5.2.2: "relayed" means no further report will come from there.
        intro = ("Your message was delivered to the recipients below, as you asked to be "
                 "told. \"delivered\" means it reached the mailbox; \"expanded\" that it "
                 "reached the addresses of an alias; \"relayed\" that it was handed to a "
                 "server that sends no delivery reports, so you will hear nothing more "
                 "about it unless it fails there.")
    else:
        intro = ("Your message has not been delivered yet to the recipients below. "
                 "The mail system will keep trying; you do not need to send it again.")
    lines = [f"This is the mail system at {reporting_mta}.", "", *textwrap.wrap(intro, 72), ""]
    for r in recipients:
        state = {"failed": "delivery failed", "delayed": "delivery delayed",
                 "delivered": "delivered to the mailbox",
                 "relayed": "relayed to a server without delivery reports",
                 "expanded": "delivered to the addresses of an alias"}.get(
            r.action, r.action)
        lines.append(f"<{r.recipient}>: {state} (status {r.status})")
        if r.diagnostic:
            lines.append(f"    {r.remote_mta} said:" if r.remote_mta else "    Reason:")
            for reply in r.diagnostic.splitlines():
                lines += textwrap.wrap(_CONTROLS_RE.sub(" ", reply), 76, initial_indent=" " * 8,
                                       subsequent_indent=" " * 8, break_long_words=False,
                                       break_on_hyphens=False)
        if r.will_retry_until:
            lines.append(f"    Retrying until {_date(r.will_retry_until)}.")
        lines.append("")
    lines.append("The headers of your message are attached; its body is not.")
    return "\n".join(_CONTROLS_RE.sub(" ", line).rstrip() for line in lines) + "\n"


def _header_block(raw: bytes) -> list[bytes]:
    """The original header lines only: everything before the first empty line."""
    lines = []
    for line in raw.splitlines():
        if not line.strip(b" \t"):
            break
        lines.append(line)
    return lines


def _encode_body(lines: list[bytes], allow_8bit: bool) -> tuple[str, bytes]:
    """(transfer encoding, CRLF body): identity when it is legal (RFC 2045 §2.7), else QP."""
    ascii_only = all(line.isascii() for line in lines)
    if all(len(line) <= _MAX_LINE for line in lines) and (ascii_only or allow_8bit):
        return ("7bit" if ascii_only else "8bit"), b"\r\n".join(lines) + b"\r\n"
    encoded = quopri.encodestring(b"\n".join(lines) + b"\n")
    return "quoted-printable", encoded.replace(b"\n", b"\r\n")


def build_dsn(*, reporting_mta: str, original_envelope_id: str | None, arrival_date: datetime,
              original_sender: str, recipients: Sequence[RecipientStatus],
              original_headers: bytes, kind: Kind, now: datetime,
              message_id_domain: str) -> bytes:
    """A complete RFC 5322 message reporting ``recipients`` to ``original_sender``.

    ``multipart/report; report-type=delivery-status`` (RFC 6522 §3) with a
    text part, the RFC 3464 report and the original header fields — never the
    body (``original_headers`` may be the whole message: it is cut at the
    first empty line).  Lines end in CRLF.  Raises ValueError when no DSN may
    be sent (see :func:`should_bounce`) or the recipients do not fit ``kind``.
    """
    if not should_bounce(original_sender):
        raise ValueError("no DSN for the null sender or MAILER-DAEMON (RFC 3464 §2)")
    wanted = _KIND_ACTIONS[kind]
    if not any(r.action in wanted for r in recipients):
        raise ValueError(f"a {kind} DSN needs at least one {' or '.join(sorted(wanted))} "
                         "recipient")
    sender = original_sender.strip().removeprefix("<").removesuffix(">")
    utf8 = not sender.isascii()

    header_lines = _header_block(original_headers)
    message_id = BytesHeaderParser(policy=compat32).parsebytes(
        b"\r\n".join(header_lines) + b"\r\n\r\n").get("Message-ID", "")
    text = _human_text(kind, reporting_mta, recipients).encode("utf-8")
    status = _status_part(reporting_mta, original_envelope_id, arrival_date, recipients, utf8)

    text_cte, text_body = _encode_body(text.splitlines(), utf8)
    status_type = "message/delivery-status" if status.isascii() else \
        "message/global-delivery-status"
    status_body = status.encode("utf-8").replace(b"\n", b"\r\n")
    headers_cte, headers_body = _encode_body(header_lines, utf8)
    headers_type = "message/global-headers" if headers_cte == "8bit" else "text/rfc822-headers"
    parts = [
        (f"text/plain; charset={'us-ascii' if text.isascii() else 'utf-8'}", text_cte, text_body),
        (status_type, "7bit" if status.isascii() else "8bit", status_body),
        (headers_type, headers_cte, headers_body),
    ]
    boundary = f"=_{secrets.token_hex(16)}"
    while any(boundary.encode() in body for _t, _c, body in parts):
        boundary = f"=_{secrets.token_hex(16)}"

    top = [("From", f"Mail Delivery System <MAILER-DAEMON@{_clean(reporting_mta, False)}>"),
           ("To", _clean(sender, utf8=True)),
           ("Subject", _SUBJECTS[kind]),
           ("Date", _date(now)),
           ("Message-ID", f"<{secrets.token_hex(16)}@{_clean(message_id_domain, False)}>")]
    if isinstance(message_id, str) and _MESSAGE_ID_RE.fullmatch(message_id.strip()):
        # RFC 3834 §3.1.5: tie the response to the message it is about.
        top += [("In-Reply-To", message_id.strip()), ("References", message_id.strip())]
    top += [("Auto-Submitted", "auto-replied"),   # RFC 3834 §5
            ("MIME-Version", "1.0"),
            ("Content-Type", f'multipart/report; report-type=delivery-status; '
                             f'boundary="{boundary}"')]
    out = [_fold(name, value).replace("\n", "\r\n").encode("utf-8") for name, value in top]
    out += [b"", b"This is a MIME-encapsulated delivery status notification.", b""]
    for content_type, cte, body in parts:
        out += [f"--{boundary}".encode(), f"Content-Type: {content_type}".encode(),
                f"Content-Transfer-Encoding: {cte}".encode(), b"", body.removesuffix(b"\r\n")]
    out.append(f"--{boundary}--".encode())
    return b"\r\n".join(out) + b"\r\n"


# --- parsing ----------------------------------------------------------------------

@dataclass(frozen=True)
class ParsedDSN:
    """A received or built DSN, fields keyed by lower-case name with values unfolded."""

    report_type: str
    status_type: str
    human_text: str
    per_message: Mapping[str, str]
    recipients: tuple[Mapping[str, str], ...]
    returned_type: str | None      # text/rfc822-headers, message/rfc822, …; None if absent
    returned: bytes                # that part, transfer encoding undone


def _split_multipart(body: bytes, boundary: str) -> list[bytes]:
    """Body parts between ``--boundary`` lines (RFC 2046 §5.1.1), preamble and epilogue dropped."""
    delimiter = b"--" + boundary.encode("ascii", "replace")
    parts: list[bytes] = []
    current: list[bytes] | None = None
    for line in body.split(b"\n"):
        line = line.removesuffix(b"\r")
        if line.startswith(delimiter) and not line[len(delimiter):].strip(b" \t-"):
            if current is not None:
                parts.append(b"\r\n".join(current))
            if line[len(delimiter):].startswith(b"--"):
                return parts
            current = []
        elif current is not None:
            current.append(line)
    if current is not None:
        parts.append(b"\r\n".join(current))
    return parts


def _decoded_part(part: bytes) -> tuple[str, str, bytes]:
    """(content type, charset, body with the transfer encoding undone) of one body part."""
    head, _sep, body = (b"\r\n" + part).partition(b"\r\n\r\n")
    headers = BytesHeaderParser(policy=compat32).parsebytes(head.lstrip(b"\r\n") + b"\r\n\r\n")
    cte = str(headers.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if cte == "base64":
        body = base64.b64decode(body, validate=False)
    elif cte == "quoted-printable":
        body = quopri.decodestring(body)
    charset = headers.get_content_charset("us-ascii")
    return headers.get_content_type(), charset, body


def _decode_text(data: bytes, charset: str) -> str:
    """Text in its declared charset; US-ASCII read as UTF-8, which it is a subset of."""
    try:
        return data.decode("utf-8" if charset == "us-ascii" else charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def parse_status_fields(text: str) -> list[dict[str, str]]:
    """RFC 3464 §2.1 blocks of ``Name: value`` fields, unfolded; blank lines separate blocks."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    name = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, name = {}, ""
        elif line[0] in " \t" and name:
            current[name] += " " + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            current.setdefault(name, "")
            current[name] = (current[name] + " " + value.strip()).strip()
    if current:
        blocks.append(current)
    return blocks


def parse_dsn(raw: bytes) -> ParsedDSN:
    """Read a ``multipart/report`` DSN: the text, the report's fields and the returned part.

    Tolerant of what other MTAs send (LF line ends, encoded parts, a returned
    ``message/rfc822``); raises DSNParseError when there is no report in it.
    """
    head, _sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    top = BytesHeaderParser(policy=compat32).parsebytes(head + b"\n\n")
    boundary = top.get_param("boundary")
    if top.get_content_type() != "multipart/report" or not isinstance(boundary, str):
        raise DSNParseError(f"not a multipart/report message ({top.get_content_type()})")
    report_type = str(top.get_param("report-type") or "").lower()
    human, status_type, fields, returned_type, returned = "", "", [], None, b""
    for part in _split_multipart(body.replace(b"\n", b"\r\n"), boundary):
        ctype, charset, data = _decoded_part(part)
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            status_type, fields = ctype, parse_status_fields(data.decode("utf-8", "replace"))
        elif ctype.startswith("text/") and ctype != "text/rfc822-headers" and not status_type:
            human = _decode_text(data, charset).replace("\r\n", "\n")
        elif status_type and returned_type is None:
            returned_type, returned = ctype, data
    if not fields:
        raise DSNParseError("no delivery-status part")
    return ParsedDSN(report_type, status_type, human, fields[0], tuple(fields[1:]),
                     returned_type, returned)
