"""Framing: bytes from the client into complete commands (RFC 3501 §2.2, §4.3; RFC 7888).

Twisted's IMAP4Server parses arguments one at a time while lines arrive, so a literal can only
appear where its per-command parser expects one (not in SEARCH or STATUS lists), LITERAL+ is
unknown, a literal's size is never checked before it is read, and lines already read behind
STARTTLS are executed after the handshake.  Here a command is assembled whole first:

* a line ending in ``{n}`` (synchronizing) or ``{n+}`` (LITERAL+, RFC 7888) announces a
  literal; the handler decides *before any literal byte is read* whether it is acceptable (a
  quota lookup may make that asynchronous).  A refused synchronizing literal is answered at
  once and never sent by the client; a refused non-synchronizing one is read and thrown away,
  with the rest of its command, so the connection stays usable;
* literals up to ``memory_limit`` stay in memory, larger ones are spooled to a file;
* an over-long line is discarded up to its end and reported, without closing the connection;
* the reader can be paused (one command runs at a time) and its buffer dropped (STARTTLS).

A frame is a list alternating text segments (``bytes``, the line without its literal marker)
and :class:`Literal` objects; it starts and ends with text.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Callable, Optional, Protocol, Union

from twisted.internet.defer import Deferred

from mailgosend.imap.errors import ImapError

__all__ = ["CommandReader", "Frame", "FrameHandler", "Literal"]

_LITERAL_MARKER = re.compile(rb"\{(\d{1,20})(\+?)\}\Z")
MAX_LITERAL = 2**32 - 1  # RFC 3501 number


class Literal:
    """One literal's octets, in memory or in a spool file the owner must ``discard()``."""

    def __init__(self, size: int, memory_limit: int, spool_dir: Optional[str]) -> None:
        self.size = size
        self.received = 0
        self.path: Optional[str] = None
        self._memory: Optional[bytearray] = None
        self._file = None
        if size <= memory_limit:
            self._memory = bytearray()
        else:
            fd, self.path = tempfile.mkstemp(prefix=".mailgosend-imap-", dir=spool_dir)
            self._file = os.fdopen(fd, "wb")

    @property
    def complete(self) -> bool:
        return self.received >= self.size

    def write(self, data: bytes) -> None:
        self.received += len(data)
        if self._memory is not None:
            self._memory += data
        else:
            assert self._file is not None
            self._file.write(data)
            if self.complete:
                self._file.close()
                self._file = None

    def read_bytes(self) -> bytes:
        """The whole literal; for spooled literals this reads the file (small ones only)."""
        if self._memory is not None:
            return bytes(self._memory)
        assert self.path is not None
        with open(self.path, "rb") as f:
            return f.read()

    def source(self) -> Union[bytes, str]:
        """What the store's delivery takes: the bytes, or the spool file's path."""
        return bytes(self._memory) if self._memory is not None else str(self.path)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = None
        self._memory = None


Frame = list  # list[bytes | Literal]


class FrameHandler(Protocol):
    def command_received(self, frame: Frame) -> None: ...

    def literal_requested(self, frame: Frame, size: int, sync: bool
                          ) -> Union[Optional[ImapError], Deferred]: ...

    def command_refused(self, frame: Frame, error: ImapError) -> None: ...

    def send_continuation(self) -> None: ...


class CommandReader:
    """See the module docstring.  ``feed`` bytes; complete commands go to the handler."""

    def __init__(self, handler: FrameHandler, *, max_line: int = 65536,
                 memory_limit: int = 1 << 20, spool_dir: Optional[str] = None) -> None:
        self._handler = handler
        self._max_line = max_line
        self._memory_limit = memory_limit
        self._spool_dir = spool_dir
        self._buffer = bytearray()
        self._frame: Frame = []
        self._literal: Optional[Literal] = None
        self._discard_bytes = 0
        self._refusal: Optional[ImapError] = None
        self._overlong_prefix: Optional[bytes] = None
        self._paused = False
        self._deciding = False
        self._processing = False  # _process is on the stack: resume() must not re-enter it
        self._line_handler: Optional[Callable[[bytes], None]] = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data
        self._process()

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._process()

    def take_lines(self, handler: Optional[Callable[[bytes], None]]) -> None:
        """Deliver whole lines to ``handler`` (IDLE's DONE, SASL responses) instead of
        assembling commands; None goes back to commands."""
        self._line_handler = handler

    def drop_buffer(self) -> None:
        """Forget everything received but not yet processed (RFC 3501 §6.2.1 STARTTLS)."""
        self._buffer.clear()

    def close(self) -> None:
        """The connection is gone: remove any spool file of a half-read command."""
        for segment in self._frame:
            if isinstance(segment, Literal):
                segment.discard()
        if self._literal is not None:
            self._literal.discard()
        self._frame, self._literal = [], None

    def _process(self) -> None:
        """Consume the buffer.  Not re-entrant: a command that completes synchronously
        resumes the reader from inside this loop, and the loop simply goes on (a pipelined
        flood of NOOPs must not become a recursion)."""
        if self._processing:
            return
        self._processing = True
        try:
            self._consume()
        finally:
            self._processing = False

    def _consume(self) -> None:
        while not self._paused and not self._deciding:
            if self._literal is not None and self._literal.complete:  # also size 0
                self._frame.append(self._literal)
                self._literal = None
                continue
            if not self._buffer:
                return
            if self._discard_bytes:
                taken = min(self._discard_bytes, len(self._buffer))
                del self._buffer[:taken]
                self._discard_bytes -= taken
                continue
            if self._literal is not None:
                taken = min(self._literal.size - self._literal.received, len(self._buffer))
                self._literal.write(bytes(self._buffer[:taken]))
                del self._buffer[:taken]
                continue
            end = self._buffer.find(b"\n")
            if end < 0:
                if self._overlong_prefix is not None:
                    self._buffer.clear()
                elif len(self._buffer) > self._max_line:
                    self._overlong_prefix = bytes(self._buffer[:200])
                    self._buffer.clear()
                return
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[:end + 1]
            if self._overlong_prefix is not None or len(line) > self._max_line:
                prefix = self._overlong_prefix if self._overlong_prefix is not None else line
                self._overlong_prefix = None
                self._too_long(prefix)
                continue
            if self._line_handler is not None and not self._frame and self._refusal is None:
                self._line_handler(line)
                continue
            self._line(line)

    def _too_long(self, prefix: bytes) -> None:
        first = self._frame[0] if self._frame else prefix
        self.close()
        self._refusal = None
        self._handler.command_refused([first], ImapError("BAD", "Command line too long"))

    def _line(self, line: bytes) -> None:
        marker = _LITERAL_MARKER.search(line)
        if self._refusal is not None:  # eating the rest of a refused command
            if marker is not None and marker.group(2):
                self._discard_bytes = int(marker.group(1))
                return
            error, self._refusal = self._refusal, None
            frame, self._frame = self._frame, []
            self._handler.command_refused(frame, error)
            return
        if marker is None:
            self._frame.append(line)
            frame, self._frame = self._frame, []
            self._handler.command_received(frame)
            return
        size, sync = int(marker.group(1)), not marker.group(2)
        self._frame.append(line[:marker.start()])
        if size > MAX_LITERAL:
            self._decided(ImapError("BAD", "Literal size out of range"), size, sync)
            return
        decision = self._handler.literal_requested(self._frame, size, sync)
        if isinstance(decision, Deferred):
            self._deciding = True
            decision.addCallback(self._decided, size, sync)
        else:
            self._decided(decision, size, sync)

    def _decided(self, error: Optional[ImapError], size: int, sync: bool) -> None:
        self._deciding = False
        if error is None:
            self._literal = Literal(size, self._memory_limit, self._spool_dir)
            if sync:
                self._handler.send_continuation()
        elif sync:  # the client waits for "+" and will not send the literal
            frame, self._frame = self._frame, []
            for segment in frame:
                if isinstance(segment, Literal):
                    segment.discard()
            self._handler.command_refused(frame, error)
        else:
            for segment in self._frame:
                if isinstance(segment, Literal):
                    segment.discard()
            self._frame = [s for s in self._frame if not isinstance(s, Literal)][:1]
            self._discard_bytes, self._refusal = size, error
        self._process()
