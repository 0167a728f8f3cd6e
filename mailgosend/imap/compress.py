# -*- test-case-name: tests.test_imap_compress -*-
"""COMPRESS=DEFLATE (RFC 4978): raw DEFLATE (RFC 1951) both ways once the client asks.

RFC 4978 §3: COMPRESS is valid once authenticated; the tagged OK is the last uncompressed
response, and the server compresses "starting immediately after the CRLF that ends the tagged
OK"; a second COMPRESS gets ``NO [COMPRESSIONACTIVE]``, an unknown mechanism BAD.  Like
Dovecot, it is offered with or without TLS (compressing plaintext reveals nothing the plaintext
did not; the login has happened before COMPRESS is allowed).

Flushing.  A DEFLATE stream buffers: bytes given to the compressor may stay inside it until a
flush.  mox turned COMPRESS off because responses stayed stuck behind partial flushes and
clients waited for them.  Here every reactor turn that wrote anything ends with a
``Z_SYNC_FLUSH`` (RFC 4978 §4 asks for a flush after each response burst): the flush is
scheduled with ``callLater(0)`` on the first write of a turn, and nothing waits for the client
without first going back to the reactor, so every response reaches the socket whole.  The
untagged responses of IDLE and the chunks of a streamed FETCH are flushed the same way.
Closing the connection flushes first (BYE arrives).

Compressing runs in the reactor thread, at level 1 (see ``LEVEL``).  Input is inflated at
most ``INFLATE_CHUNK`` octets at a time and no further while the command reader holds more
than its high-water mark, so a small compressed flood cannot expand into memory (a DEFLATE
stream can expand about 1000:1).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any, Optional

from twisted.logger import Logger

from mailgosend.imap.errors import bad, no
from mailgosend.imap.server import INPUT_HIGH_WATER, Reply
from mailgosend.imap.tokens import Args

__all__ = ["CompressCommand", "DeflateTransport"]

log = Logger()

INFLATE_CHUNK = 64 * 1024
_WBITS = -15  # raw DEFLATE, no zlib header (RFC 4978 §4)
# Compression runs in the reactor thread: level 1 deflates mail text about 3x faster than
# level 6 (measured ~490 vs ~150 MB/s) for a ratio within 5% of it.
LEVEL = 1


class DeflateTransport:
    """Wraps a transport: writes go through one DEFLATE stream, flushed once per reactor
    turn (see the module docstring); everything else is the wrapped transport's."""

    def __init__(self, transport: Any, clock: Any) -> None:
        self.wrapped = transport
        self._clock = clock
        self._deflater = zlib.compressobj(LEVEL, zlib.DEFLATED, _WBITS)
        self._flush_call: Optional[Any] = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def write(self, data: bytes) -> None:
        if not data:
            return
        out = self._deflater.compress(data)
        if out:
            self.wrapped.write(out)
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self.flush)

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def flush(self) -> None:
        """Z_SYNC_FLUSH: everything written so far becomes decodable by the client."""
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        out = self._deflater.flush(zlib.Z_SYNC_FLUSH)
        if out:
            self.wrapped.write(out)

    def loseConnection(self) -> None:
        self.flush()
        self.wrapped.loseConnection()

    def abortConnection(self) -> None:
        self.cancel_flush()
        self.wrapped.abortConnection()

    def cancel_flush(self) -> None:
        """The connection is gone: no flush is due any more."""
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None


if TYPE_CHECKING:
    from mailgosend.imap.server import SessionCore

    _Session = SessionCore
else:
    _Session = object


class CompressCommand(_Session):
    """Mixin for the session class (factory.IMAPServerProtocol)."""

    _inflater: Optional[Any] = None
    _compressed_in = b""

    async def cmd_COMPRESS(self, tag: bytes, args: Args) -> Reply:
        mechanism = args.atom("compression mechanism").upper()
        args.end()
        if mechanism != "DEFLATE":
            raise bad(f"Unknown compression mechanism {mechanism[:20]}")
        if self._inflater is not None:
            raise no("DEFLATE is already active", "COMPRESSIONACTIVE")
        self.send_tagged(tag, "OK", "DEFLATE active")
        # RFC 4978 §3: compressed from the octet after that CRLF, in both directions.
        self.transport = DeflateTransport(self.transport, self.factory.clock)
        self._inflater = zlib.decompressobj(_WBITS)
        return Reply(None)

    def dataReceived(self, data: bytes) -> None:
        if self._inflater is None:
            super().dataReceived(data)
            return
        self._compressed_in += data
        self._inflate_more()

    def _inflate_more(self) -> None:
        """Inflate buffered input while the command reader has room for it."""
        inflater = self._inflater
        while inflater is not None and self._compressed_in and not self.closing \
                and self.reader.buffered < INPUT_HIGH_WATER:
            try:
                chunk = inflater.decompress(self._compressed_in, INFLATE_CHUNK)
            except zlib.error:
                log.info("IMAP client {ip} sent corrupt DEFLATE data", ip=self.peer_ip)
                self._compressed_in = b""
                self.send_untagged(b"BYE Corrupt compressed data")
                self.close()
                return
            self._compressed_in = inflater.unconsumed_tail
            if chunk:
                super().dataReceived(chunk)
        if self._compressed_in and not self._input_paused and not self.lost:
            self._input_paused = True  # the reader is full: stop reading the socket too
            self.transport.pauseProducing()

    def connectionLost(self, reason: Any = None) -> None:
        if isinstance(self.transport, DeflateTransport):
            self.transport.cancel_flush()
        super().connectionLost(reason)

    def _resume_input(self) -> None:
        if self._inflater is not None and self._compressed_in:
            self._inflate_more()
        super()._resume_input()
