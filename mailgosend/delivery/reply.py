"""SMTP replies as the outbound client sees them (RFC 5321 §4.2, RFC 2034, RFC 3463).

Pure: :class:`ReplyParser` turns reply lines into :class:`Reply` values and
knows nothing about sockets.  It is lenient where Postfix is lenient
(``smtp_chat.c``): a line that does not start with a reply code is skipped,
a multi-line reply whose lines disagree on the code takes the last line's
code.  It is strict where a hostile peer could make us spin or hoard memory:
the number of lines in one reply and the text kept from it are capped, and a
reply code outside 2xx-5xx ends the session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_REPLY_LINES = 200        # a reply with more lines is a protocol error
MAX_GARBAGE_LINES = 50       # non-reply lines tolerated in a row
MAX_TEXT = 1000              # characters of human text kept per reply (for logs and DSNs)
MAX_KEPT_LINES = 100         # lines kept for EHLO keyword parsing

_LINE_RE = re.compile(rb"^([0-9]{3})([ -]|$)(.*)$", re.DOTALL)
_ENHANCED_RE = re.compile(r"^([245])\.([0-9]{1,3})\.([0-9]{1,3})(?:\s+|$)")
_CONTROLS_RE = re.compile(r"[\x00-\x1f\x7f]")


class ReplyError(Exception):
    """The peer's reply stream is unusable (not a temporary condition of the message)."""


@dataclass(frozen=True)
class Reply:
    """A complete SMTP reply, or one this client made up (``local``) to report
    a timeout, a lost connection or a pre-flight refusal in the same shape.

    ``text`` is the human text of every line joined with ``"; "``, enhanced
    codes and control characters removed, capped: safe for logs and for the
    Diagnostic-Code of a DSN.
    """

    code: int
    enhanced: str | None
    text: str
    local: bool = False
    lines: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def positive(self) -> bool:
        """2xx or 3xx: the command was accepted (RFC 5321 §4.2.1)."""
        return 200 <= self.code < 400

    @property
    def temporary(self) -> bool:
        """4xx: try again later (RFC 5321 §4.2.1)."""
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        """5xx: do not repeat the same request (RFC 5321 §4.2.1)."""
        return self.code >= 500

    def __str__(self) -> str:
        parts = [str(self.code)] + ([self.enhanced] if self.enhanced else []) + [self.text]
        return " ".join(p for p in parts if p)


def local_reply(code: int, enhanced: str, text: str) -> Reply:
    """A reply this client reports on the peer's behalf (timeouts, refusals before sending)."""
    return Reply(code, enhanced, _clean(text), local=True)


def _clean(text: str) -> str:
    text = " ".join(_CONTROLS_RE.sub(" ", text).split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


class ReplyParser:
    """Accumulates lines (without CRLF) until a reply is complete."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget a partial reply (after STARTTLS, RFC 3207 §4.2)."""
        self._codes: list[int] = []
        self._texts: list[str] = []
        self._count = 0
        self._garbage = 0

    def feed(self, line: bytes) -> Reply | None:
        """The complete reply this line ends, or None; raises ReplyError when the stream is bad."""
        match = _LINE_RE.match(line)
        if match is None:
            # Postfix skips such lines too; a stream of them is not a mail server.
            self._garbage += 1
            if self._garbage > MAX_GARBAGE_LINES:
                raise ReplyError("too many lines that are not SMTP replies")
            return None
        self._garbage = 0
        code = int(match.group(1))
        self._count += 1
        if self._count > MAX_REPLY_LINES:
            raise ReplyError(f"reply longer than {MAX_REPLY_LINES} lines")
        self._codes.append(code)
        if len(self._texts) < MAX_KEPT_LINES:
            self._texts.append(match.group(3).decode("utf-8", "replace"))
        if match.group(2) == b"-":
            return None
        texts = self._texts
        self.reset()
        if not 200 <= code <= 599:
            raise ReplyError(f"reply code {code} out of range")
        return _build(code, texts)


def _build(code: int, texts: list[str]) -> Reply:
    enhanced = None
    found = _ENHANCED_RE.match(texts[0]) if texts else None
    if found and found.group(1) == str(code)[0]:
        # RFC 3463 §2: the class must agree with the reply code; RFC 2034 §4: every line has it.
        enhanced = ".".join(found.groups())
        texts = [_ENHANCED_RE.sub("", t, count=1) if t.startswith(enhanced) else t for t in texts]
    lines = tuple(_clean(t) for t in texts)
    return Reply(code, enhanced, _clean("; ".join(t for t in lines if t)), lines=lines)


def parse_ehlo(reply: Reply) -> dict[str, str]:
    """EHLO keywords (upper case) to their parameters (RFC 5321 §4.1.1.1); line 1 is the greeting."""
    extensions: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.partition(" ")
        if keyword and keyword.replace("-", "").isalnum():
            extensions[keyword.upper()] = params.strip()
    return extensions
