"""The message as the SMTP client streams it: where chunks come from and how
they are made safe for DATA (RFC 5321 §4.5.2, §4.1.1.4).

:class:`DotStuffer` is pure and incremental, so a message is never whole in
memory: each chunk is line-ending-normalised and dot-stuffed as it passes.
Every line ending becomes CRLF, bare CR and bare LF included: a next hop that
takes ``<LF>.<CR><LF>`` or ``<CR>.<CR><LF>`` for the end of data would
otherwise see a second message smuggled inside ours (CVE-2023-51764 and
relatives), and RFC 5321 §2.3.8 forbids bare CR and LF in SMTP anyway.
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


class DotStuffer:
    """Incremental CRLF normalisation and dot-stuffing of DATA content."""

    def __init__(self) -> None:
        self._line_start = True   # the output so far ends with CRLF (or is empty)
        self._held_cr = False     # the last input byte was CR; its LF may come next

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to send for ``chunk`` (possibly fewer: a trailing CR waits)."""
        if self._held_cr:
            chunk = b"\r" + chunk
            self._held_cr = False
        if chunk.endswith(b"\r"):
            self._held_cr = True
            chunk = chunk[:-1]
        if not chunk:
            return b""
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        data = chunk.replace(b"\n", b"\r\n")
        # RFC 5321 §4.5.2: a line that starts with "." gets another "." in front.
        data = data.replace(b"\r\n.", b"\r\n..")
        if self._line_start and data.startswith(b"."):
            data = b"." + data
        self._line_start = data.endswith(b"\r\n")
        return data

    def finish(self) -> bytes:
        """What ends the DATA: a held CR's line end, a missing final CRLF, then ``.CRLF``."""
        tail = b""
        if self._held_cr:
            self._held_cr = False
            tail = b"\r\n"
        elif not self._line_start:
            tail = b"\r\n"  # RFC 5321 §4.1.1.4: the message ends with CRLF before the dot
        self._line_start = True
        return tail + b".\r\n"
