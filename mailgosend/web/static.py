# -*- test-case-name: tests.test_web_static -*-
"""Static files with content hashes: pages link ``/static/<name>?v=<hash>``, and such a URL
is cached for a year (immutable); without the current hash the answer must be revalidated
(ETag).  The files are read once at start-up: they are small and never change at run time.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Optional

from twisted.web.server import Request

TYPES = {".css": b"text/css; charset=utf-8", ".js": b"text/javascript; charset=utf-8",
         ".mjs": b"text/javascript; charset=utf-8",
         ".svg": b"image/svg+xml", ".ico": b"image/x-icon", ".woff2": b"font/woff2",
         ".png": b"image/png", ".txt": b"text/plain; charset=utf-8"}
YEAR = 365 * 24 * 3600


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    digest: str
    content_type: bytes


class StaticFiles:
    def __init__(self, root: str) -> None:
        self._files: dict[str, StaticFile] = {}
        for top, _dirs, names in os.walk(root):
            for name in names:
                kind = TYPES.get(os.path.splitext(name)[1])
                if kind is None:
                    continue
                path = os.path.join(top, name)
                with open(path, "rb") as handle:
                    body = handle.read()
                relative = os.path.relpath(path, root).replace(os.sep, "/")
                self._files[relative] = StaticFile(
                    body, hashlib.sha256(body).hexdigest()[:20], kind)

    def url(self, name: str) -> str:
        """The URL a template uses; KeyError for a file that does not exist."""
        return f"/static/{name}?v={self._files[name].digest}"

    def serve(self, request: Request, name: str) -> Optional[bytes]:
        """The body to send, or None after a 404 was set up by the caller's check."""
        found = self._files.get(name)
        if found is None:
            return None
        etag = f'"{found.digest}"'.encode()
        request.setHeader(b"Content-Type", found.content_type)
        request.setHeader(b"ETag", etag)
        args: dict[bytes, list[bytes]] = request.args or {}
        versions = args.get(b"v", [])
        if versions and versions[0].decode("latin-1") == found.digest:
            request.setHeader(b"Cache-Control", b"public, max-age=%d, immutable" % YEAR)
        else:
            request.setHeader(b"Cache-Control", b"no-cache")
        if etag in [t.strip() for t in (request.getHeader(b"if-none-match") or b"").split(b",")]:
            request.setResponseCode(304)
            return b""
        return found.body
