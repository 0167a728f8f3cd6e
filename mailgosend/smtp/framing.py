"""Command-mode input framing: cut lines, enforce line limits, judge line endings.

Pure (no transport). Replaces ``LineOnlyReceiver``, whose framing (library notes §1, and
reproduced again for this module) keeps every octet of an endless line (6.5 MB after 100
reads, answered once per read), silently drops the commands pipelined after an over-long line,
and iterates lines it already split after STARTTLS.

RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF; MAIL FROM may carry
extension parameters that raise it: AUTH= +500 (RFC 4954 §5), SIZE= +26 (RFC 1870 §3),
BODY= +16 (RFC 6152 §2) and " SMTPUTF8" (+10); AUTH lines and SASL responses may be 12,288
octets (RFC 4954 §4).
"""

from __future__ import annotations

from mailgosend.smtp.auth import MAX_AUTH_LINE
from mailgosend.smtp.replies import AUTH_LINE_TOO_LONG, LINE_TOO_LONG, SMTPReply

MAX_COMMAND_LINE = 512
MAX_MAIL_LINE = 512 + 500 + 26 + 16 + 10

BARE_NEWLINE_COMMAND = SMTPReply(500, "5.5.2", "Syntax error: bare <CR> or <LF> received")
NUL_COMMAND = SMTPReply(500, "5.5.2", "Syntax error: NUL character in command")


class LineBuffer:
    """Buffered client input in command mode.

    A bytearray, so cutting a line from the front is O(1) and a segment full of pipelined
    commands is not copied once per command. An over-long line is dropped as it streams in and
    reported once, when its end arrives, so there is still exactly one reply per line.
    """

    def __init__(self) -> None:
        self._data = bytearray()
        self._discarding = False
        self._too_long = LINE_TOO_LONG

    def __len__(self) -> int:
        return len(self._data)

    def append(self, data: bytes) -> None:
        self._data += data

    def push_front(self, data: bytes) -> None:
        """Put back octets that followed the end of a message (the next pipelined command)."""
        self._data[0:0] = data

    def take_all(self) -> bytes:
        data = bytes(self._data)
        self._data.clear()
        return data

    def clear(self) -> None:
        """Forget everything, including a line being discarded (after STARTTLS: RFC 3207 §4.2)."""
        self._data.clear()
        self._discarding = False

    def _limit(self, in_auth: bool) -> int:
        if in_auth:
            return MAX_AUTH_LINE
        verb = self._data[:5].upper()
        if verb == b"AUTH ":
            return MAX_AUTH_LINE
        if verb == b"MAIL ":
            return MAX_MAIL_LINE
        return MAX_COMMAND_LINE

    def next_line(self, in_auth: bool = False) -> bytes | SMTPReply | None:
        """The next complete line without its CRLF, a refusal for a bad line, or None.

        Refusals: over-long line (``500 5.5.2``, ``500 5.5.6`` in AUTH), a line ending in a bare
        LF or holding a bare CR (RFC 5321 §2.3.8: lenient line endings are how SMTP smuggling
        starts), a NUL octet.
        """
        data = self._data
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                data.clear()
                return None
            del data[: newline + 1]
            self._discarding = False
            return self._too_long
        limit = self._limit(in_auth)
        newline = data.find(b"\n", 0, limit)
        if newline < 0:
            if len(data) < limit:
                return None
            self._discarding = True
            self._too_long = AUTH_LINE_TOO_LONG if limit == MAX_AUTH_LINE else LINE_TOO_LONG
            return self.next_line(in_auth)
        line = bytes(data[: newline + 1])
        del data[: newline + 1]
        if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
            return BARE_NEWLINE_COMMAND
        content = line[:-2]
        if b"\x00" in content:
            return NUL_COMMAND
        return content
