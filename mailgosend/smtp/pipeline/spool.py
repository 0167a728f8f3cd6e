"""Hold the message on disk while DATA streams in, so memory stays flat
whatever the message size (library-notes §1: 50 MB at constant RSS)."""

from __future__ import annotations

import os
import tempfile
from typing import IO, Callable, Iterator, Optional

from twisted.internet.defer import Deferred
from zope.interface import implementer

from mailgosend.smtp.interfaces import IMessageSink
from mailgosend.smtp.replies import SMTPReply

HEADER_LIMIT = 1024 * 1024     # a header block larger than this is treated as all header
READ_CHUNK = 256 * 1024


class SpooledMessage:
    """The received bytes, exactly as the client sent them (after dot-unstuffing)."""

    def __init__(self, handle: IO[bytes], size: int) -> None:
        self._handle = handle
        self.size = size

    @property
    def handle(self) -> IO[bytes]:
        """The spool file (for mmap); positions move: seek before reading."""
        return self._handle

    def read_all(self) -> bytes:
        self._handle.seek(0)
        return self._handle.read()

    def header_block(self) -> bytes:
        """The header section including the blank line that ends it (RFC 5322 §2.1)."""
        self._handle.seek(0)
        head = self._handle.read(min(self.size, HEADER_LIMIT))
        for separator in (b"\r\n\r\n", b"\n\n"):
            end = head.find(separator)
            if end >= 0:
                return head[:end + len(separator)]
        if head.startswith((b"\r\n", b"\n")):   # no headers at all
            return b""
        return head

    def chunks(self, start: int = 0) -> Iterator[bytes]:
        self._handle.seek(start)
        while True:
            chunk = self._handle.read(READ_CHUNK)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self._handle.close()


@implementer(IMessageSink)
class SpoolSink:
    """IMessageSink writing to an anonymous temporary file (gone when closed or on crash)."""

    def __init__(self, spool_dir: Optional[str],
                 on_finish: Callable[[SpooledMessage], "Deferred[SMTPReply]"]) -> None:
        if spool_dir:
            os.makedirs(spool_dir, mode=0o700, exist_ok=True)
        self._file: Optional[IO[bytes]] = tempfile.TemporaryFile(dir=spool_dir or None)
        self._size = 0
        self._on_finish = on_finish

    def write(self, chunk: bytes) -> None:
        assert self._file is not None
        self._file.write(chunk)
        self._size += len(chunk)

    def finish(self) -> "Deferred[SMTPReply]":
        assert self._file is not None
        self._file.flush()
        message = SpooledMessage(self._file, self._size)
        self._file = None  # the pipeline owns it now and closes it

        def done(result: object) -> object:
            message.close()
            return result
        return self._on_finish(message).addBoth(done)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
