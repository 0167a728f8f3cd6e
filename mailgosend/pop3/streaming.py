"""RETR and TOP: one message streamed as a multi-line response, with flow control.

The sender is a push producer on the transport: when the client reads slowly the transport
pauses it and no further range is read or decrypted until it resumes, so a session holds at
most one chunk of a message however large the message is.  (twisted.mail.pop3 reads its file
synchronously on the reactor thread and transforms it per 16 KiB chunk; see multiline.py.)

The first range is read before anything is written, so a message that cannot be read gets a
clean ``-ERR``.  A failure after the ``+OK`` line aborts the connection: the only honest way
to tell a client that a message is incomplete is never to send the terminating ".".
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from mailgosend.dotstuff import DotStuffer
from mailgosend.pop3.multiline import TopFilter

__all__ = ["MessageSender", "ReadRange"]

ReadRange = Callable[[int, int], "Deferred[bytes]"]  # (offset, length) -> plaintext octets


@implementer(IPushProducer)
class MessageSender:
    """Sends ``size`` octets read through ``read`` (all of them, or TOP's part)."""

    def __init__(self, transport: Any, read: ReadRange, size: int, *, chunk_size: int,
                 top_lines: Optional[int] = None,
                 on_progress: Callable[[], None] = lambda: None) -> None:
        self._transport = transport
        self._read = read
        self._size = size
        self._chunk_size = chunk_size
        self._top = TopFilter(top_lines) if top_lines is not None else None
        self._on_progress = on_progress
        self._paused = False
        self._resume: Optional[Deferred[None]] = None
        self._stopped = False
        self.started = False  # the status line is out: failures can no longer be -ERR

    def send(self, status: bytes) -> Deferred[None]:
        """Write ``status`` and the message; fires after the final "." was written."""
        return Deferred.fromCoroutine(self._run(status))

    async def _run(self, status: bytes) -> None:
        offset = 0
        chunk = await self._next(offset)
        stuffer = DotStuffer()
        self._transport.registerProducer(self, True)
        try:
            self.started = True
            self._transport.write(status)
            while True:
                offset += len(chunk)
                wanted = self._top.feed(chunk) if self._top is not None else chunk
                data = stuffer.feed(wanted)
                if data:
                    self._transport.write(data)
                    self._on_progress()
                if not chunk or offset >= self._size or (self._top is not None and self._top.done):
                    break
                if self._paused:
                    self._resume = Deferred()
                    await self._resume
                chunk = await self._next(offset)
            self._check_stopped()
            self._transport.write(stuffer.finish())
        finally:
            if not self._stopped:
                self._transport.unregisterProducer()

    async def _next(self, offset: int) -> bytes:
        self._check_stopped()
        length = min(self._chunk_size, self._size - offset)
        chunk = await self._read(offset, length) if length > 0 else b""
        self._check_stopped()
        return chunk

    def _check_stopped(self) -> None:
        if self._stopped:
            raise ConnectionDone("the client went away during the transfer")

    # -- IPushProducer ----------------------------------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        waiter, self._resume = self._resume, None
        if waiter is not None:
            waiter.callback(None)

    def stopProducing(self) -> None:
        """The connection is gone: stop after the read in flight (its result is dropped)."""
        self._stopped = True
        self.resumeProducing()
