"""The DATA phase as a chunk scanner: find ``CRLF.CRLF``, undo dot-stuffing, judge the octets.

Why not the stock per-line path: a Python call per line is what makes pure-Python servers slow on
100 KB mail (library notes §1, bench BASELINE), and the stock line reader drops back to command
mode on a line over 16 KB, which lets a body smuggle commands. Here line length is irrelevant,
work per chunk is a few C-level ``bytes`` scans, and the only end of data is ``CRLF.CRLF``
(RFC 5321 §4.1.1.4) -- never ``LF.LF`` or ``LF.CRLF`` (SMTP smuggling, CVE-2023-51764).

Pure: no reactor, no sink. :meth:`DataReader.feed` returns what to store and what is left over.
"""

from __future__ import annotations

from dataclasses import dataclass

TERMINATOR = b"\r\n.\r\n"


@dataclass(frozen=True)
class Feed:
    """Result of one :meth:`DataReader.feed`.

    ``body``: unstuffed message octets to store (empty once the message is being discarded).
    ``done``: the terminator was seen. ``rest``: octets after the terminator, which belong to the
    next (pipelined) command.
    """

    body: bytes
    done: bool
    rest: bytes = b""


class DataReader:
    """Scans one message. Octets are counted as they stream; nothing is buffered beyond the
    few bytes of a terminator or dot-stuffing prefix that may straddle two chunks.

    Findings, checked by the caller after ``done``: ``bare_newline`` (a CR or LF that is not
    part of CRLF, RFC 5321 §2.3.8), ``nul`` (NUL octet, RFC 5321 §4.5.2 / RFC 5322 §2.3),
    ``eight_bit`` (an octet above 127), ``oversize`` (more than ``max_size`` octets),
    ``header_oversize`` (a header section, up to and including the empty line that ends
    it, of more than ``max_header_size`` octets; None: no limit).
    """

    def __init__(self, max_size: int, max_header_size: int | None = None) -> None:
        self.max_size = max_size
        self.max_header_size = max_header_size
        self.header_size = 0
        self.header_oversize = False
        self._in_header = True
        # The last octets of the header seen so far; the message starts at a line start,
        # so an empty header section (data starting with CRLF) is found as CRLF CRLF too.
        self._header_tail = b"\r\n"
        self.size = 0
        self.bare_newline = False
        self.nul = False
        self.eight_bit = False
        self.oversize = False
        self.discarding = False
        # The message starts at a line start: pretend the DATA command's CRLF precedes it, so a
        # leading "." (stuffed, or the terminator of an empty message) is found by one search.
        self._carry = b"\r\n"
        self._skip = 2  # leading octets of _carry that are not message content

    @property
    def rejected(self) -> bool:
        """A finding that refuses the message whatever the sink says."""
        return self.bare_newline or self.nul or self.oversize or self.header_oversize

    def discard(self) -> None:
        """Stop returning body octets (the sink refused); scanning for the end goes on."""
        self.discarding = True

    def feed(self, data: bytes) -> Feed:
        buf = self._carry + data if self._carry else data
        pos = self._skip  # next octet not yet emitted
        pieces: list[bytes] = []
        index = buf.find(b"\r\n.", 0)
        end = len(buf)
        done = False
        rest = b""
        content_end = end  # octets before this are judged now; the carry is judged next time
        while index >= 0:
            tail = buf[index + 3 : index + 5]
            if tail == b"\r\n":
                if index + 2 > pos:
                    pieces.append(buf[pos : index + 2])
                content_end = index + 2  # the CRLF before "." ends the last line (§4.1.1.4)
                rest = buf[index + 5 :]
                done = True
                break
            if index + 5 > end and TERMINATOR.startswith(buf[index:end]):
                content_end = index  # undecided until more octets arrive
                break
            # RFC 5321 §4.5.2: a line starting with "." had a "." prepended; drop it.
            if index + 2 > pos:
                pieces.append(buf[pos : index + 2])
            pos = index + 3
            index = buf.find(b"\r\n.", pos)
        else:
            # Keep a trailing "\r" or "\r\n": with the next chunk it may start "\r\n.".
            if buf.endswith(b"\r\n"):
                content_end = end - 2
            elif buf.endswith(b"\r"):
                content_end = end - 1
        if not done:
            if content_end > pos:
                pieces.append(buf[pos:content_end])
            self._skip = max(0, pos - content_end)
            self._carry = buf[content_end:]
        else:
            self._carry = b""
            self._skip = 0
        self._judge(buf, content_end)
        body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self.size += len(body)
        if self.size > self.max_size:
            self.oversize = True
        if self._in_header and body:
            self._count_header(body)
        if self.rejected or self.discarding:
            body = b""
        return Feed(body, done, rest)

    def _count_header(self, body: bytes) -> None:
        """Add the octets of ``body`` that belong to the header section (RFC 5322 §2.1)."""
        probe = self._header_tail + body
        end = probe.find(b"\r\n\r\n")
        if end >= 0:
            self.header_size += max(0, end + 4 - len(self._header_tail))
            self._in_header = False
        else:
            self.header_size += len(body)
            self._header_tail = probe[-3:]
        if self.max_header_size is not None and self.header_size > self.max_header_size:
            self.header_oversize = True

    def _judge(self, buf: bytes, content_end: int) -> None:
        """Check the octets before ``content_end`` (each octet is judged exactly once)."""
        region = buf[:content_end] if content_end < len(buf) else buf
        if not region:
            return
        crlf = region.count(b"\r\n")
        if region.count(b"\n") != crlf or region.count(b"\r") != crlf:
            self.bare_newline = True
        if b"\x00" in region:
            self.nul = True
        if not self.eight_bit and not region.isascii():
            self.eight_bit = True
