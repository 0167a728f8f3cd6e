"""The message as the SMTP client streams it: where its chunks come from.

They are made safe for DATA (RFC 5321 §4.5.2, §4.1.1.4) one at a time by
``mailgosend.dotstuff.DotStuffer``, the stuffer POP3 uses too, so a message is
never whole in memory.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet import defer


class MessageSource(Protocol):
    """A message read in chunks, e.g. a BlobReader driven in a thread.

    ``read_chunk`` returns ``b""`` at the end.  The client never closes the
    source: the caller owns it and closes it once ``send`` has answered.  An
    optional ``prefix`` attribute (bytes) is sent before the first chunk
    (the DKIM-Signature header fields).
    """

    def read_chunk(self) -> defer.Deferred[bytes]: ...


class BytesSource:
    """An in-memory :class:`MessageSource` (tests, bounces built in memory)."""

    def __init__(self, data: bytes, chunk_size: int = 64 * 1024, prefix: bytes = b"") -> None:
        self.data = data
        self.prefix = prefix
        self.chunk_size = chunk_size
        self.offset = 0
        self.reads = 0

    def read_chunk(self) -> defer.Deferred[bytes]:
        self.reads += 1
        chunk = self.data[self.offset:self.offset + self.chunk_size]
        self.offset += len(chunk)
        return defer.succeed(chunk)


def source_prefix(source: MessageSource) -> bytes:
    """The optional prefix of a source (empty when it has none)."""
    prefix = getattr(source, "prefix", b"")
    return prefix if isinstance(prefix, bytes) else b""
