"""TOP (RFC 1939 §7) as a pure, chunk-at-a-time filter over a stored message.

The body of a multi-line response is dot-stuffed by ``mailgosend.dotstuff.DotStuffer``, the
stuffer the SMTP client uses too: chunk at a time, so a 50 MB message passes through in
pieces and the result never depends on where the chunks were cut.  That is exactly what
twisted.mail.pop3 gets wrong: its ``transformChunk`` works per 16 KiB chunk, so a line
starting with "." right after a chunk boundary is not stuffed (the client takes it as the end
of the message and reads the rest of the body as server replies), and it turns every CRLF
into CR CR LF.  Line ends (CRLF, bare LF, bare CR) are all sent as CRLF; see dotstuff.py.
"""

from __future__ import annotations

__all__ = ["TopFilter"]


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
