"""A stored message as the body of a multi-line response (RFC 1939 §3, §7 TOP).

Pure, chunk-at-a-time transforms: a 50 MB message passes through them one chunk at a time and
the result never depends on where the chunks were cut.  That is exactly what twisted.mail.pop3
gets wrong: its ``transformChunk`` works per 16 KiB chunk, so a line starting with "." right
after a chunk boundary is not stuffed (the client takes it as the end of the message and reads
the rest of the body as server replies), and it turns every CRLF into CR CR LF.

Line ends: messages are stored exactly as received, normally with CRLF.  CRLF and a bare LF
both end a line and are sent as CRLF, because the response is line-oriented and clients split
on LF; other bytes (a bare CR, NUL, 8-bit) pass through unchanged.  LIST and STAT report the
stored size, so only a message stored with bare LFs (none arrive that way over SMTP) is sent
with more octets than LIST announced.
"""

from __future__ import annotations

__all__ = ["DotStuffer", "TopFilter", "TERMINATOR"]

TERMINATOR = b".\r\n"


class DotStuffer:
    """RFC 1939 §3 byte-stuffing: a line that starts with "." gets one more, lines end in CRLF,
    and :meth:`finish` closes the response with "." CRLF."""

    def __init__(self) -> None:
        self._line_start = True
        self._held_cr = False  # a CR at the end of a chunk: its LF may start the next one

    def feed(self, chunk: bytes) -> bytes:
        if self._held_cr:
            chunk = b"\r" + chunk
        self._held_cr = chunk.endswith(b"\r")
        if self._held_cr:
            chunk = chunk[:-1]
        if not chunk:
            return b""
        data = chunk.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
        if self._line_start and data.startswith(b"."):
            data = b"." + data
        self._line_start = data.endswith(b"\r\n")
        return data

    def finish(self) -> bytes:
        """The end of the response.  A message whose last line has no line end gets CRLF, so
        the terminator is on a line of its own."""
        tail = b"\r" if self._held_cr else b""
        if tail or not self._line_start:
            tail += b"\r\n"
        self._held_cr, self._line_start = False, True
        return tail + TERMINATOR


class TopFilter:
    """RFC 1939 §7 TOP: the header, the blank line after it and the first ``body_lines`` lines
    of the body.  Feed raw message bytes; it returns the part to send and sets :attr:`done` once
    nothing more is wanted, so the caller stops reading the blob."""

    def __init__(self, body_lines: int) -> None:
        if body_lines < 0:
            raise ValueError("body_lines must not be negative")
        self._remaining = body_lines
        self._in_header = True
        # The start of the current header line, cut to 2 bytes: enough to tell "" or "\r"
        # (a blank line) from anything else.
        self._partial = b""
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        start = 0
        while self._in_header:
            newline = chunk.find(b"\n", start)
            if newline < 0:
                self._partial = (self._partial + chunk[start:start + 2])[:2]
                return chunk
            line_start = self._partial + chunk[start:min(newline, start + 2)]
            self._partial = b""
            start = newline + 1
            if line_start in (b"", b"\r"):
                self._in_header = False
        if self._remaining == 0:
            self.done = True
            return chunk[:start]
        lines = chunk.count(b"\n", start)
        if lines < self._remaining:
            self._remaining -= lines
            return chunk
        end = start
        for _ in range(self._remaining):
            end = chunk.find(b"\n", end) + 1
        self._remaining = 0
        self.done = True
        return chunk[:end]
