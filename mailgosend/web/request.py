# -*- test-case-name: tests.test_web_http -*-
"""The Request every web listener uses: security headers (headers.py), the real client
behind trusted proxies (proxy.py), Host checking and request-body limits.

The checks run in ``process`` before any resource sees the request, so no route can
forget them.  Bodies above twisted.web's 100 KB threshold are already streamed to a
temporary file; past the route's limit (FORM_BODY_LIMIT, or MAX_MESSAGE_SIZE under the
Site's ``upload_prefixes``) the rest is discarded, never kept.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.web import http

from mailgosend.web.headers import SecureRequest
from mailgosend.web.proxy import ClientOrigin, client_origin
from mailgosend.web.settings import FORM_BODY_LIMIT, WebSettings

# Sign-ins and changes (every non-safe method) count toward the rate limit; reading pages
# and static files does not.
SAFE_METHODS = (b"GET", b"HEAD", b"OPTIONS")


def _text(request: http.Request, name: bytes) -> list[str]:
    return [v.decode("latin-1") for v in request.requestHeaders.getRawHeaders(name, [])]


class WebRequest(SecureRequest):
    origin: Optional[ClientOrigin] = None
    # The session found for this request (web/sessions.py), looked up once.
    web_session_loaded = False
    web_session: Any = None
    # Set by a response that never ends by itself (server-sent events): ends it at shutdown.
    end_stream: Optional[Callable[[], None]] = None
    _body_limit = FORM_BODY_LIMIT
    _body_seen = 0
    _too_large = False

    @property
    def settings(self) -> WebSettings:
        return self.channel.site.web_settings  # type: ignore[attr-defined, no-any-return]

    def gotLength(self, length: Optional[int]) -> None:
        # The channel has parsed the request line by now; the path picks the limit.
        path = getattr(self.channel, "_path", b"") or b""
        site = self.channel.site  # type: ignore[attr-defined]
        uploads = site.upload_prefixes
        if any(path.startswith(prefix) for prefix in uploads):
            self._body_limit = self.settings.max_upload
        for prefix, limit in site.body_limits:
            if path.startswith(prefix):
                self._body_limit = limit
                break
        if length is not None and length > self._body_limit:
            self._too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self._body_seen += len(data)
        if self._body_seen > self._body_limit:
            self._too_large = True
        if not self._too_large:
            super().handleContentChunk(data)

    @property
    def body_too_large(self) -> bool:
        """The body passed its route's limit and was discarded (routes in the Site's
        ``body_limits`` answer this themselves, e.g. JMAP's problem document)."""
        return self._too_large

    @property
    def client_ip(self) -> str:
        return self.origin.ip if self.origin is not None else self._peer_ip()

    def _peer_ip(self) -> str:
        return getattr(self.getClientAddress(), "host", "") or "unknown"

    def isSecure(self) -> bool:
        if self.origin is not None:
            return self.origin.secure
        return bool(super().isSecure())

    def host_name(self) -> str:
        raw = (self.getHeader("host") or "").strip()
        if raw.startswith("["):
            return raw[1:raw.find("]")] if "]" in raw else raw
        return raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw

    def own_origin(self) -> str:
        return f"{'https' if self.isSecure() else 'http'}://{self.getHeader('host') or ''}"

    def process(self) -> Any:
        settings = self.settings
        self.origin = client_origin(self._peer_ip(), bool(super().isSecure()),
                                    _text(self, b"x-forwarded-for"),
                                    _text(self, b"x-forwarded-proto"),
                                    settings.trusted_proxies)
        site = self.channel.site  # type: ignore[attr-defined]
        if self._too_large and not any(self.path.startswith(prefix)
                                       for prefix, _ in site.body_limits):
            return self._refuse(413, "The request is too large.", close=True)
        if not settings.host_allowed(self.host_name(), self.path):
            # RFC 9110 §15.5.20: 421, this server does not answer for that name.
            return self._refuse(421, "This server does not answer for that host name.")
        if site.web_bans.is_banned(self.client_ip):
            return self._refuse(403, "Too many failed sign-ins from your address. Wait a "
                                     "while, then try again.")
        if self.method not in SAFE_METHODS and not self._unmetered():
            wait = site.limiter_for(self.path).take(self.client_ip)
            if wait is not None:
                self.setHeader(b"Retry-After", str(wait).encode())
                return self._refuse(429, "Too many requests. Wait a moment, then try "
                                         "again.")
        return super().process()

    def _unmetered(self) -> bool:
        """DAV clients send PROPFIND/REPORT/PUT by the hundred and sign in with Basic auth on
        each: their logins are counted by the checker's brute-force rules instead."""
        site = self.channel.site  # type: ignore[attr-defined]
        prefixes = getattr(site, "unmetered_prefixes", ())
        return any(self.path.startswith(prefix) for prefix in prefixes)

    def _refuse(self, code: int, message: str, close: bool = False) -> None:
        self.setResponseCode(code)
        self.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        self.setHeader(b"Cache-Control", b"no-store")
        if close:
            self.setHeader(b"Connection", b"close")
        self.write(message.encode() + b"\n")
        self.finish()
