"""Stored messages as Twisted's IMessage, loading each layer only when it is asked for.

Three layers, from cheap to dear:

1. the ``messages`` row (UID, flags, INTERNALDATE, RFC822.SIZE): plain columns, no crypto;
2. the sealed structure (``MessageSource.load_info``, mail/source.py): envelope, MIME tree
   and byte offsets, decrypted from ``messages.meta`` without touching the message blob;
3. the blob, through a ``BlobReader`` opened on first need, which decrypts only the segments a
   byte range touches.  BODY[2] reads the second part's range.  The top-level header block
   (BODY[HEADER], HEADER.FIELDS, SEARCH HEADER) is kept in the structure since it existed;
   for older messages it is read from the blob once and the structure re-sealed with it.

The accessors that reach layers 2 and 3 block (database and AES): these objects live in worker
or database threads only (fetch.py, search.py) and are never handed to the reactor thread.
"""

from __future__ import annotations

import email.utils
import io
from typing import IO, Any, Iterable, Optional

from twisted.mail import imap4
from zope.interface import implementer

from mailgosend.mail.headers import parse_header_block
from mailgosend.mail.source import MessageSource
from mailgosend.store.blobs import BlobReader
from mailgosend.store.messages import MessageRow
from mailgosend.store.mimeinfo import HEADER_KEEP_LIMIT, MessageInfo, Part

__all__ = ["StoredMessage", "StoredPart", "filter_header_block"]


_ROOT_HEADER_SECTIONS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"})


def filter_header_block(block: bytes, names: Iterable[str], negate: bool) -> bytes:
    """BODY[HEADER.FIELDS (...)] / HEADER.FIELDS.NOT: the chosen fields byte for byte, then the
    blank line (RFC 3501 §6.4.5)."""
    wanted = {name.lower() for name in names}
    kept = [raw for name, raw in parse_header_block(block) if (name in wanted) != negate]
    body = b"".join(kept)
    if body and not body.endswith(b"\n"):
        body += b"\r\n"
    return body + b"\r\n"


def _header_dict(block: bytes, negate: bool, names: tuple[str, ...]) -> dict[str, str]:
    wanted = {name.lower() for name in names}
    found: dict[str, str] = {}
    for name, raw in parse_header_block(block):
        if wanted and (name in wanted) == negate:
            continue
        if name not in found:
            value = raw.partition(b":")[2].replace(b"\r\n", b"").replace(b"\n", b"")
            found[name] = value.decode("utf-8", "surrogateescape").strip()
    return found


class _Layered:
    """Shared by a message and its parts: the blob reader, opened once and closed by the job."""

    _reader: Optional[BlobReader] = None

    def __init__(self, row: MessageRow, source: MessageSource) -> None:
        self.row = row
        self.source = source
        self._info: Optional[MessageInfo] = None
        self.blob_opens = 0

    @property
    def info(self) -> MessageInfo:
        if self._info is None:
            self._info = self.source.load_info(self.row)
        return self._info

    def read(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        if self._reader is None:
            self._reader = self.source.open_blob(self.row.blob_id)
            self.blob_opens += 1
        return self._reader.read_range(start, end - start)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


@implementer(imap4.IMessagePart)
class StoredPart:
    """One MIME part of a stored message (IMessagePart)."""

    def __init__(self, message: StoredMessage, part: Part) -> None:
        self.message, self.part = message, part

    def getHeaders(self, negate: bool, *names: str) -> dict[str, str]:
        block = self.message.read(self.part.header_start, self.part.body_start)
        return _header_dict(block, negate, names)

    def getBodyFile(self) -> IO[bytes]:
        return io.BytesIO(self.message.read(self.part.body_start, self.part.body_end))

    def getSize(self) -> int:
        return self.part.size

    def isMultipart(self) -> bool:
        return self.part.is_multipart

    def getSubPart(self, part: int) -> StoredPart:
        if not self.part.parts or not 0 <= part < len(self.part.parts):
            raise IndexError(part)
        return StoredPart(self.message, self.part.parts[part])


@implementer(imap4.IMessage)
class StoredMessage(_Layered):
    """A message of the selected mailbox; see the module docstring for what each call costs."""

    def getUID(self) -> int:
        return self.row.uid

    def getFlags(self) -> tuple[str, ...]:
        return self.row.flags

    def getInternalDate(self) -> str:
        return email.utils.format_datetime(self.row.internal_date)

    def getSize(self) -> int:
        return self.row.size

    def header_block(self) -> bytes:
        """The top-level header block: from the structure when stored there at delivery;
        else read from the blob once and kept in the (cached) structure, and the message
        noted in ``source.upgraded`` so the caller can store it (``store_header_blocks``)."""
        source = self.source
        block = source.cached_header(self.row)
        if block is not None:
            return block
        info = self.info
        block = info.header_bytes()
        if block is None:
            root = info.root
            block = self.read(root.header_start, root.body_start)
            if len(block) <= HEADER_KEEP_LIMIT:
                info.header = block.decode("utf-8", "surrogateescape")
                source.upgraded.append((self.row.id, self.row.blob_id, info))
        if source.headers is not None and len(block) <= HEADER_KEEP_LIMIT:
            # bytes: a cache of them costs the garbage collector nothing (see InfoCache)
            source.headers.put(source._key(self.row), block)
        return block

    def getHeaders(self, negate: bool, *names: str) -> dict[str, str]:
        return _header_dict(self.header_block(), negate, names)

    def getBodyFile(self) -> IO[bytes]:
        root = self.info.root
        return io.BytesIO(self.read(root.body_start, root.body_end))

    def isMultipart(self) -> bool:
        return self.info.root.is_multipart

    def getSubPart(self, part: int) -> StoredPart:
        return StoredPart(self, self.info.root).getSubPart(part)

    def section(self, spec: str, fields: Optional[list[str]] = None,
                negate: bool = False) -> bytes:
        """The bytes of BODY[spec]; ``fields`` filters a HEADER.FIELDS section."""
        if spec in _ROOT_HEADER_SECTIONS:
            data = self.header_block()
        else:
            start, end = self.info.section_range(spec)
            data = self.read(start, min(end, self.row.size))
        if fields is not None:
            return filter_header_block(data, fields, negate)
        return data

    def __enter__(self) -> StoredMessage:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
