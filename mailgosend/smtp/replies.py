"""SMTP replies: one exception type that carries a reply, and the one place that writes it.

Every refusal in the SMTP layer (and in the backend behind it) is an :class:`SMTPReply`. The
protocol catches it and writes it with :func:`format_reply`, so reply syntax (RFC 5321 §4.2) and
enhanced status codes (RFC 2034, RFC 3463) are handled here and nowhere else.
"""

from __future__ import annotations

import re

_STATUS_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


class SMTPReply(Exception):
    """An SMTP reply; raised by anything that refuses a command, returned for successes.

    ``status`` is the RFC 3463 enhanced status code (``"5.7.8"``), or ``None`` for the replies
    RFC 2034 §3 exempts: the greeting, replies to HELO/EHLO, and 3xx intermediate replies.
    """

    def __init__(self, code: int, status: str | None, text: str) -> None:
        if not 200 <= code <= 599:
            raise ValueError(f"SMTP reply code out of range: {code}")
        if status is not None:
            if not _STATUS_RE.match(status) or status[0] != str(code)[0]:
                # RFC 3463 §2: the class digit of the enhanced code matches the reply's.
                raise ValueError(f"enhanced status {status!r} does not fit reply {code}")
        super().__init__(code, status, text)
        self.code = code
        self.status = status
        self.text = text

    @property
    def is_success(self) -> bool:
        return self.code < 400

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        if self.status:
            return f"{self.code} {self.status} {self.text}"
        return f"{self.code} {self.text}"

    def __repr__(self) -> str:
        return f"SMTPReply({self.code!r}, {self.status!r}, {self.text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SMTPReply):
            return NotImplemented
        return (self.code, self.status, self.text) == (other.code, other.status, other.text)

    def __hash__(self) -> int:
        return hash((self.code, self.status, self.text))


def format_reply(reply: SMTPReply) -> bytes:
    """Encode a reply for the wire, CRLF-terminated, multi-line if the text has several lines.

    RFC 5321 §4.2.1: every line but the last carries ``code-``; RFC 2034 §3: the enhanced code is
    repeated on every line. CR and LF cannot reach the wire from the text, so a reply text built
    from client input cannot inject a second reply.
    """
    lines = [line for line in reply.text.replace("\r", "\n").split("\n")] or [""]
    out = []
    last = len(lines) - 1
    for index, line in enumerate(lines):
        sep = " " if index == last else "-"
        prefix = f"{reply.code}{sep}"
        if reply.status:
            prefix += reply.status + (" " if line else "")
        out.append(prefix.encode("ascii") + line.encode("utf-8", "replace") + b"\r\n")
    return b"".join(out)


def default_status(code: int) -> str | None:
    """The generic enhanced code for a basic reply code (RFC 3463 §3.1: X.0.0 = undefined)."""
    if 200 <= code < 300:
        return "2.0.0"
    if 400 <= code < 500:
        return "4.0.0"
    if 500 <= code < 600:
        return "5.0.0"
    return None


# Replies used in more than one place. Texts follow Postfix where a client or an operator
# might recognise them; codes follow RFC 5321 §4.2.2 / RFC 3463 / the extension RFCs.
OK = SMTPReply(250, "2.0.0", "OK")
LOCAL_ERROR = SMTPReply(451, "4.3.0", "Requested action aborted: local error in processing")
BAD_SEQUENCE_HELO = SMTPReply(503, "5.5.1", "Error: send HELO/EHLO first")
UNKNOWN_COMMAND = SMTPReply(500, "5.5.2", "Error: command not recognized")
LINE_TOO_LONG = SMTPReply(500, "5.5.2", "Line too long")
AUTH_LINE_TOO_LONG = SMTPReply(500, "5.5.6", "Authentication Exchange line is too long")
MESSAGE_TOO_BIG = SMTPReply(552, "5.3.4", "Message size exceeds fixed maximum message size")


def printable(text: str, limit: int = 300) -> str:
    """Client-supplied text made safe for one log line (no control characters, bounded)."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])
