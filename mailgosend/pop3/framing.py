"""Input framing: bytes in, command lines out, with bounded memory.

The protocol owns its input buffer instead of inheriting ``LineOnlyReceiver`` because that class
hands out lines from a list it already split (``twisted/protocols/basic.py``), so lines that
arrived in the same segment as ``STLS`` would still run inside the TLS session (the
CVE-2011-0411 class of bug); :meth:`LineReader.clear` really drops them.  It also silently drops
the connection on a line over 16 KiB, where we answer ``-ERR`` and go on.

Lines end with CRLF (RFC 1939 §3); a bare LF is accepted, as most servers do.  A line longer than
``max_length`` is discarded as it arrives (never buffered whole) and reported once, in order, as
:data:`TOO_LONG`.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Union

__all__ = ["TOO_LONG", "LineReader", "TooLong"]


class TooLong:
    """Marker for "a line longer than the limit was received and discarded here"."""

    def __repr__(self) -> str:
        return "TOO_LONG"


TOO_LONG: Final = TooLong()

Item = Union[bytes, TooLong]


class LineReader:
    """Splits received bytes into lines (terminator removed), oldest first."""

    def __init__(self, max_length: int) -> None:
        if max_length < 1:
            raise ValueError("max_length must be positive")
        self._max = max_length
        self._partial = bytearray()
        self._discarding = False
        self._items: deque[Item] = deque()
        self._queued_bytes = 0

    def feed(self, data: bytes) -> None:
        start = 0
        while start < len(data):
            newline = data.find(b"\n", start)
            if newline < 0:
                self._keep_partial(data[start:])
                return
            piece = data[start:newline]
            start = newline + 1
            if self._discarding:
                self._discarding = False
                self._push(TOO_LONG)
                continue
            line = bytes(self._partial) + piece
            self._partial.clear()
            if line.endswith(b"\r"):
                line = line[:-1]
            self._push(TOO_LONG if len(line) > self._max else line)

    def _keep_partial(self, piece: bytes) -> None:
        if self._discarding:
            return
        self._partial += piece
        # +1: the CR of a CRLF split across segments is not part of the line.
        if len(self._partial) > self._max + 1:
            self._partial.clear()
            self._discarding = True

    def _push(self, item: Item) -> None:
        self._items.append(item)
        if isinstance(item, bytes):
            self._queued_bytes += len(item)

    def next_line(self) -> Item | None:
        """The oldest complete line (or TOO_LONG), or None if no complete line is buffered."""
        if not self._items:
            return None
        item = self._items.popleft()
        if isinstance(item, bytes):
            self._queued_bytes -= len(item)
        return item

    def clear(self) -> None:
        """Forget everything received so far (RFC 2595 §4: nothing sent before the TLS
        handshake may be acted on after it)."""
        self._items.clear()
        self._partial.clear()
        self._discarding = False
        self._queued_bytes = 0

    @property
    def buffered(self) -> int:
        """Bytes held: queued lines plus the unfinished line (for input flow control)."""
        return self._queued_bytes + len(self._partial) + len(self._items)
