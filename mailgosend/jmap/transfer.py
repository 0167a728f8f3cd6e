# -*- test-case-name: tests.test_jmap_core_blobs -*-
"""Blob upload and download over HTTP (RFC 8620 §6.1, §6.2), for http.py's routes.

Upload: twisted.web has already spooled the body to a temporary file (above 100 KB), the
Site cut it off at maxSizeUpload (web/request.py ``body_limits``); the file is sealed in a
worker thread (blobs.py, mail/uploads.py), never read whole into memory.

Download: streamed from the encrypted blob a chunk at a time, paced by the connection
(an IPushProducer), with the type the client asked for (``?type=``), ``Content-Disposition:
attachment`` with the name as RFC 6266 ``filename*`` and an ASCII ``filename`` fallback,
``nosniff`` and a ``sandbox`` CSP: an HTML blob opened from our origin runs no script and
reaches nothing of ours.
"""

from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import quote, unquote

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from mailgosend.jmap.auth import Caller
from mailgosend.jmap.blobs import Blob, Blobs
from mailgosend.jmap.errors import RequestError
from mailgosend.jmap.methods import Limits
from mailgosend.jmap.replies import json_reply
from mailgosend.jmap.session import DOWNLOAD_PATH, UPLOAD_PATH
from mailgosend.jmap.slots import Slots
from mailgosend.store.messages import QuotaExceeded
from mailgosend.web.request import WebRequest

__all__ = ["BlobRoutes", "content_disposition", "media_type"]

DEFAULT_TYPE = "application/octet-stream"
# RFC 9110 §8.3.1 media-type with optional parameters; anything else is not echoed back.
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}"
                         r"(?:\s*;\s*[A-Za-z0-9!#$&^_.+-]{1,64}=(?:[A-Za-z0-9!#$&^_.+-]{1,128}"
                         r"|\"[^\"\\\r\n]{0,128}\"))*\Z")
DOWNLOAD_CSP = b"sandbox; default-src 'none'; frame-ancestors 'none'"


def media_type(value: Optional[str]) -> str:
    """A well-formed media type, lower-cased where the RFC says case does not matter, or
    application/octet-stream."""
    if not value:
        return DEFAULT_TYPE
    value = value.strip()
    if not _MEDIA_TYPE.match(value):
        return DEFAULT_TYPE
    kind, _, params = value.partition(";")
    return kind.strip().lower() + (";" + params if params else "")


def content_disposition(name: str) -> str:
    """RFC 6266 §4.3: ``attachment`` with ``filename*`` (RFC 8187, UTF-8) and an ASCII
    ``filename`` for old clients (non-ASCII, quotes, backslashes and controls replaced)."""
    name = name.replace("\r", "").replace("\n", "").strip() or "download"
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return (f"attachment; filename=\"{fallback}\"; "
            f"filename*=UTF-8''{quote(name, safe='')}")


def _not_found() -> RequestError:
    return RequestError("notFound", "no such blob in this account", status=404)


@implementer(IPushProducer)
class _Pacer:
    """Pauses the download loop while the connection's send buffer is full."""

    def __init__(self) -> None:
        self.stopped = False
        self._paused = False
        self._waiting: Optional[Deferred[None]] = None

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def stopProducing(self) -> None:
        self.stopped = True
        self.resumeProducing()

    async def ready(self) -> None:
        if self._paused and not self.stopped:
            self._waiting = Deferred()
            await self._waiting


class BlobRoutes:
    def __init__(self, blobs: Blobs, limits: Limits) -> None:
        self.blobs = blobs
        self.limits = limits
        self.uploading = Slots(limits.max_concurrent_upload, "maxConcurrentUpload", "uploads")

    async def upload(self, request: WebRequest, caller: Caller) -> bytes:
        """POST /jmap/upload/{accountId}/ (RFC 8620 §6.1)."""
        account = request.path.decode("latin-1")[len(UPLOAD_PATH):].rstrip("/")
        if request.body_too_large:
            request.setHeader(b"Connection", b"close")
            raise RequestError("limit", f"the upload is larger than maxSizeUpload "
                                        f"({self.limits.max_size_upload} octets)",
                               status=413, limit="maxSizeUpload")
        if unquote(account) != caller.account_id:
            raise RequestError("notFound", "no such account", status=404)
        with self.uploading.taken(caller.user.id):
            assert request.content is not None
            request.content.seek(0)
            kind = media_type(request.getHeader("content-type"))
            try:
                stored = await self.blobs.upload(caller.mail, request.content, kind)
            except QuotaExceeded:
                raise RequestError("overQuota", "the upload does not fit in the account's "
                                                "quota", status=413) from None
        return json_reply(request, {"accountId": caller.account_id, **stored}, 201)

    async def download(self, request: WebRequest, caller: Caller) -> Any:
        """GET /jmap/download/{accountId}/{blobId}/{name}?type= (RFC 8620 §6.2)."""
        rest = request.path.decode("latin-1")[len(DOWNLOAD_PATH):]
        pieces = rest.split("/", 2)
        if len(pieces) != 3 or unquote(pieces[0]) != caller.account_id:
            raise _not_found()
        blob_id, name = unquote(pieces[1]), unquote(pieces[2], errors="replace")
        blob = await self.blobs.open(caller.mail, blob_id)
        if blob is None:
            raise _not_found()
        try:
            query: dict[bytes, list[bytes]] = request.args or {}
            asked = query.get(b"type", [b""])[0].decode("utf-8", "replace")
            request.setHeader(b"Content-Type", media_type(asked or blob.media_type).encode())
            request.setHeader(b"Content-Disposition",
                              content_disposition(name).encode("ascii"))
            request.setHeader(b"Content-Security-Policy", DOWNLOAD_CSP)
            request.setHeader(b"X-Content-Type-Options", b"nosniff")
            # The bytes behind a blob id never change (RFC 8620 §6); only its owner sees it.
            request.setHeader(b"Cache-Control", b"private, max-age=604800, immutable")
            request.setHeader(b"Content-Length", str(blob.size).encode())
            if request.method == b"HEAD":
                return b""
            await self._stream(request, blob)
        finally:
            blob.close()
        return NOT_DONE_YET

    async def _stream(self, request: WebRequest, blob: Blob) -> None:
        pacer = _Pacer()
        request.notifyFinish().addErrback(lambda _: pacer.stopProducing())
        request.registerProducer(pacer, True)
        try:
            async for chunk in blob.chunks():
                await pacer.ready()
                if pacer.stopped:
                    return
                request.write(chunk)
        finally:
            request.unregisterProducer()
        if not pacer.stopped:
            request.finish()
