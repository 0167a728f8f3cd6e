"""ESMTP parameters of MAIL FROM and RCPT TO (RFC 5321 §4.1.2 Mail-parameters).

Supported on MAIL: SIZE (RFC 1870), BODY=7BIT|8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), AUTH
(RFC 4954 §5, accepted and ignored: we never relay it on); with ``dsn=True`` (submission and
smtps, where DSN is advertised) also RFC 3461's RET and ENVID on MAIL and NOTIFY and ORCPT on
RCPT. Elsewhere those get 555 like any unknown parameter. Pure functions; errors carry their
reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from mailgosend.smtp.replies import SMTPReply

_KEYWORD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
# esmtp-value = 1*(%d33-60 / %d62-126), RFC 6531 §3.3 adds UTF8-non-ascii.
_VALUE_RE = re.compile(r"^[\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+$")
_XTEXT_RE = re.compile(r"^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})+$")  # RFC 3461 §4


def _unsupported(keyword: str) -> SMTPReply:
    # RFC 5321 §4.1.1.11: unrecognised or unimplementable parameters get 555.
    return SMTPReply(555, "5.5.4", f"Unsupported option: {keyword}")


def _bad_value(keyword: str) -> SMTPReply:
    return SMTPReply(501, "5.5.4", f"Bad {keyword} syntax")


@dataclass(frozen=True)
class MailParams:
    """What MAIL FROM declared. ``size`` is the client's estimate, not a measurement."""

    size: int | None = None
    body: str = "7BIT"  # "7BIT" or "8BITMIME"; RFC 6152 §3: 7BIT when BODY is absent
    smtputf8: bool = False
    auth: str | None = None  # RFC 4954 §5 AUTH=<mailbox>; kept for logging only
    ret: str | None = None  # RFC 3461 §4.3: "FULL" or "HDRS"
    envid: str | None = None  # RFC 3461 §4.4, xtext decoded
    # RFC 4865 HOLDFOR/HOLDUNTIL as given (checked by mail/submission.py release_time)
    hold: dict[str, str | None] = field(default_factory=dict)
    release_at: datetime | None = None  # send later: what ``hold`` came to

    @property
    def allows_8bit(self) -> bool:
        """RFC 6152 §3 / RFC 6531 §3.1: an 8-bit body is allowed only when declared."""
        return self.body == "8BITMIME" or self.smtputf8


@dataclass(frozen=True)
class RcptParams:
    """RCPT TO parameters (RFC 3461): ``notify`` as "NEVER" or a comma list of SUCCESS,
    FAILURE, DELAY (None: the default, failures only); ``orcpt`` as "type;address", xtext
    decoded (what the queue stores and delivery/envelope.py sends on)."""

    notify: str | None = None
    orcpt: str | None = None


NOTIFY_WORDS = ("SUCCESS", "FAILURE", "DELAY")
MAX_ENVID = 100   # RFC 3461 §4.4
MAX_ORCPT = 500   # RFC 3461 §4.2


def decode_xtext(value: str) -> str:
    """RFC 3461 §4: ``+HH`` is the octet HH; the result is read as UTF-8."""
    if not _XTEXT_RE.match(value):
        raise ValueError("not xtext")
    raw = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "+":
            raw.append(int(value[i + 1:i + 3], 16))
            i += 3
        else:
            raw += value[i].encode("ascii")
            i += 1
    return raw.decode("utf-8", "replace")


def split_params(text: str) -> dict[str, str | None]:
    """Split ``KEY=VALUE KEY ...`` into an upper-cased dict; malformed or repeated keys refused."""
    result: dict[str, str | None] = {}
    for token in text.split(" "):
        if not token:
            continue  # tolerate runs of spaces, as Postfix does
        keyword, sep, value = token.partition("=")
        if not _KEYWORD_RE.match(keyword):
            raise SMTPReply(501, "5.5.4", "Bad parameter syntax")
        key = keyword.upper()
        if key in result:
            raise SMTPReply(555, "5.5.4", f"Duplicate option: {key}")
        if sep:
            if not _VALUE_RE.match(value):
                raise _bad_value(key)
            result[key] = value
        else:
            result[key] = None
    return result


def parse_mail_params(text: str, max_size: int, dsn: bool = False,
                      future_release: bool = False) -> MailParams:
    """Parse MAIL FROM parameters; refuse unknown ones and a declared SIZE above ``max_size``.
    ``dsn``: RET and ENVID are understood (RFC 3461 §4.3, §4.4); ``future_release``:
    HOLDFOR and HOLDUNTIL are kept in ``hold`` (RFC 4865 §3)."""
    raw = split_params(text)
    size: int | None = None
    body = "7BIT"
    smtputf8 = False
    auth: str | None = None
    ret: str | None = None
    envid: str | None = None
    hold: dict[str, str | None] = {}
    for key, value in raw.items():
        if future_release and key in ("HOLDFOR", "HOLDUNTIL"):
            hold[key] = value
            continue
        if dsn and key == "RET":
            if value is None or value.upper() not in ("FULL", "HDRS"):
                raise _bad_value(key)
            ret = value.upper()
            continue
        if dsn and key == "ENVID":
            try:
                envid = decode_xtext(value or "")
            except ValueError:
                raise _bad_value(key) from None
            if not envid or len(envid) > MAX_ENVID:
                raise _bad_value(key)
            continue
        if key == "SIZE":
            # RFC 1870 §3: size-value = 1*20DIGIT
            if value is None or not value.isascii() or not value.isdigit() or len(value) > 20:
                raise _bad_value(key)
            size = int(value)
        elif key == "BODY":
            if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                raise _unsupported(f"BODY={value}" if value else key)
            body = value.upper()
        elif key == "SMTPUTF8":
            if value is not None:
                raise _bad_value(key)  # RFC 6531 §3.4: the parameter takes no value
            smtputf8 = True
        elif key == "AUTH":
            if value is None or (value != "<>" and not _XTEXT_RE.match(value)):
                raise _bad_value(key)
            auth = value
        else:
            raise _unsupported(key)
    if size is not None and size > max_size:
        # RFC 1870 §6.2: refuse at MAIL, before the client sends the data.
        raise SMTPReply(552, "5.3.4", "Message size exceeds fixed maximum message size")
    return MailParams(size=size, body=body, smtputf8=smtputf8, auth=auth, ret=ret,
                      envid=envid, hold=hold)


def parse_rcpt_params(text: str, dsn: bool = False) -> RcptParams:
    """Parse RCPT TO parameters: NOTIFY and ORCPT when ``dsn`` (RFC 3461 §4.1, §4.2), else
    none."""
    notify: str | None = None
    orcpt: str | None = None
    for key, value in split_params(text).items():
        if dsn and key == "NOTIFY":
            words = [word.strip().upper() for word in (value or "").split(",")]
            # "NEVER" alone, or any of SUCCESS, FAILURE, DELAY, each once.
            if words != ["NEVER"] and (not all(w in NOTIFY_WORDS for w in words)
                                       or len(set(words)) != len(words)):
                raise _bad_value(key)
            notify = ",".join(words)
        elif dsn and key == "ORCPT":
            kind, semicolon, address = (value or "").partition(";")
            try:
                decoded = decode_xtext(address) if address else ""
            except ValueError:
                raise _bad_value(key) from None
            if not semicolon or not _KEYWORD_RE.match(kind) or not decoded \
                    or len(decoded) > MAX_ORCPT:
                raise _bad_value(key)
            orcpt = f"{kind.lower()};{decoded}"
        else:
            raise _unsupported(key)
    return RcptParams(notify=notify, orcpt=orcpt)
