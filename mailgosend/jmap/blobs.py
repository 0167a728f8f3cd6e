# -*- test-case-name: tests.test_jmap_core_blobs -*-
"""Blobs (RFC 8620 §6): what a blob id names, opened for its owner only.

``Blobs.open(mail, blob_id)`` is the one resolution every user of blob ids calls: the
download route (transfer.py), Email/import and attachments of Email/set.  Ids (ids.py):

- ``U<token>``: an upload of this user (store/uploads.py), until it expires;
- ``G<email>``: a whole message, its RFC 5322 bytes (type message/rfc822);
- ``G<email>.<partId>``: one part, transfer-decoded (jmap/parts.py of the Email work).

Another user's id, an expired upload, a malformed id: None, so callers answer notFound
(RFC 8620 §5.1) and nobody learns whether the blob exists.  Bytes are decrypted in worker
threads, a segment at a time (``Blob.chunks``), never held whole unless asked (``read``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, BinaryIO, Optional, Union

from mailgosend.jmap.ids import parse_blob_id, upload_blob_id

__all__ = ["Blob", "Blobs", "CHUNK"]

CHUNK = 256 * 1024
MESSAGE_TYPE = "message/rfc822"


@dataclass
class Blob:
    """An opened blob: its size and, when known, type and name; bytes from ``data`` or a
    BlobReader read in the worker pool.  Close it when done (``close``)."""

    size: int
    media_type: Optional[str]
    name: Optional[str]
    data: Optional[bytes] = None
    reader: Any = None         # store.blobs.BlobReader
    workers: Any = None

    async def chunks(self, size: int = CHUNK) -> AsyncIterator[bytes]:
        if self.data is not None:
            for offset in range(0, len(self.data), size):
                yield self.data[offset:offset + size]
            return
        offset = 0
        while offset < self.size:
            chunk = await self.workers.run(self.reader.read_range, offset, size)
            if not chunk:
                break
            offset += len(chunk)
            yield chunk

    async def read(self) -> bytes:
        """The whole blob (Email/import: a message is at most MAX_MESSAGE_SIZE)."""
        if self.data is not None:
            return self.data
        return b"".join([chunk async for chunk in self.chunks()])

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None


class Blobs:
    def __init__(self, *, mail: Any, clock: Any) -> None:
        self._service = mail          # mail.MailService
        self._clock = clock

    async def upload(self, mail: Any, source: Union[BinaryIO, bytes],
                     media_type: str) -> dict[str, Any]:
        """Store an upload (RFC 8620 §6.1); the response object without accountId.
        ``QuotaExceeded`` from the store when it does not fit."""
        upload = await mail.add_upload(source, media_type)
        return {"blobId": upload_blob_id(upload.token), "type": upload.media_type,
                "size": upload.size}

    async def open(self, mail: Any, blob_id: object) -> Optional[Blob]:
        """The blob ``blob_id`` of ``mail``'s user, or None (see the module docstring)."""
        ref = parse_blob_id(blob_id)
        if ref is None:
            return None
        if ref.upload is not None:
            upload = await mail.find_upload(ref.upload)
            if upload is None:
                return None
            reader = await mail.open_blob(upload.blob_id)
            return Blob(upload.size, upload.media_type, None, reader=reader,
                        workers=self._service.workers)
        emails = getattr(mail, "email_records", None)  # UserMail.email_records (jmap-email)
        if emails is None or ref.email_id is None:
            return None
        if ref.part is None:
            found = (await emails([ref.email_id])).get(ref.email_id)
            if found is None:
                return None
            reader = await mail.open_blob(found.row.blob_id)
            return Blob(reader.size, MESSAGE_TYPE, None, reader=reader,
                        workers=self._service.workers)
        from mailgosend.jmap import parts

        found = (await emails([ref.email_id], raw=True)).get(ref.email_id)
        if found is None or found.raw is None:
            return None
        part = parts.part_blob(found.info, found.raw, ref.part)
        if part is None:
            return None
        return Blob(len(part.data), part.type, part.name, data=part.data)

    async def read(self, mail: Any, blob_id: object) -> Optional[bytes]:
        """The whole blob, or None: for Email/import and attachments."""
        blob = await self.open(mail, blob_id)
        if blob is None:
            return None
        try:
            return await blob.read()
        finally:
            blob.close()
