# -*- test-case-name: tests.test_dav_discovery -*-
"""The DAV front door on a twisted.web Site: Basic authentication through the Portal
(service "dav", so bans, security events and app passwords apply, and the checker's
verified-login cache spares a bcrypt per request), ownership of the URL, then the core.

``DavResource`` is a leaf: it routes on the whole request path with its ``Mount``.
``DavRoot`` wraps a listener's root resource so that ``/.well-known/caldav`` and
``/.well-known/carddav`` (RFC 6764 §5) redirect to the DAV root, and PROPFIND on ``/``
(iOS/macOS ask there first) reaches DAV, while everything else goes where it went before.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Optional
from urllib.parse import unquote

from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web import server
from twisted.web.resource import Resource

from mailgosend.auth.checker import LoginBanned, refusal_text
from mailgosend.auth.credentials import ClientCredentials
from mailgosend.auth.portal import IUser
from mailgosend.dav import webdav
from mailgosend.dav.caldav import CalDAV
from mailgosend.dav.carddav import CardDAV
from mailgosend.dav.paths import Mount
from mailgosend.mail.dav import DavService

__all__ = ["DavResource", "DavRoot"]

log = Logger()

REALM = b'Basic realm="mailgosend", charset="UTF-8"'
FLAVOURS: dict[str, Any] = {"calendar": CalDAV(), "addressbook": CardDAV()}
WELL_KNOWN = (b"/.well-known/caldav", b"/.well-known/carddav")
DAV_METHODS = (b"PROPFIND", b"PROPPATCH", b"REPORT", b"MKCOL", b"MKCALENDAR", b"MOVE",
               b"COPY", b"PUT", b"DELETE")


def _credentials(request: Any) -> Optional[tuple[str, str]]:
    header = request.getHeader("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if "@" not in user and "%40" in user.lower():
        user = unquote(user)   # iOS 18 sends the address percent-encoded (Radicale #1865)
    return (user, password) if sep else None


class DavResource(Resource):
    isLeaf = True

    def __init__(self, *, dav: DavService, portal: Any, workers: Any, mount: Mount,
                 default_domain: str) -> None:
        super().__init__()
        self._dav = dav
        self._portal = portal
        self._workers = workers
        self.mount = mount
        self._default_domain = default_domain

    @property
    def service(self) -> DavService:
        """The storage this front end serves (the webmail's contacts and calendar use it too)."""
        return self._dav

    def render(self, request: Any) -> Any:
        d = Deferred.fromCoroutine(self._serve(request))
        d.addErrback(self._failed, request)
        d.addCallback(self._write, request)
        return server.NOT_DONE_YET

    def _failed(self, failure: Any, request: Any) -> webdav.Reply:
        log.failure("DAV request failed", failure)
        return webdav.text_reply(500, "The server could not carry out this request.")

    def _write(self, reply: webdav.Reply, request: Any) -> None:
        if request._disconnected:
            return
        request.setResponseCode(reply.code)
        for name, value in reply.headers.items():
            request.setHeader(name, value)
        if reply.content_type is not None:
            request.setHeader(b"Content-Type", reply.content_type)
        request.setHeader(b"DAV", webdav.COMPLIANCE.encode())
        request.setHeader(b"Cache-Control", b"no-store")
        if request.method == b"HEAD":
            request.finish()
            return
        if reply.chunks is not None:
            request.setHeader(b"Content-Length",
                              str(sum(len(c) for c in reply.chunks)).encode())
            for chunk in reply.chunks:
                request.write(chunk)
        elif reply.body:
            request.setHeader(b"Content-Length", str(len(reply.body)).encode())
            request.write(reply.body)
        request.finish()

    async def _serve(self, request: Any) -> webdav.Reply:
        method = request.method.decode("ascii", "replace").upper()
        path = request.path.decode("utf-8", "replace")
        if request.path in WELL_KNOWN or request.path.rstrip(b"/") in WELL_KNOWN:
            # RFC 6764 §5: the context path; a PROPFIND there answers the principal.  An
            # absolute URL: some older clients do not resolve a relative Location.
            where = self.mount.calendars if b"caldav" in request.path else \
                self.mount.contacts
            return webdav.Reply(301, headers={b"Location": (request.own_origin() +
                                                            where).encode()})
        if method == "OPTIONS":   # RFC 4918 §10.1; no login needed to learn the classes
            return webdav.Reply(200, headers={b"Allow": webdav.ALLOW.encode()})
        target = self.mount.target(path)
        if target is None:
            return webdav.text_reply(404, "No such DAV resource.")
        user = await self._login(request)
        if isinstance(user, webdav.Reply):
            return user
        if target.level != "root" and not webdav.user_segment_matches(
                target.user or "", user.email, self._default_domain):
            # Another user's URLs: the same answer whether or not they exist.
            return webdav.text_reply(403, "You can reach only your own calendars and "
                                          "address books.")
        request.content.seek(0)
        body = request.content.read()
        headers = {k.decode("latin-1").lower(): v[-1].decode("latin-1")
                   for k, v in request.requestHeaders.getAllRawHeaders()}
        ctx = webdav.Context(dav=self._dav.for_user(user), mount=self.mount,
                             flavours=FLAVOURS, path=path, workers=self._workers,
                             headers=headers, default_domain=self._default_domain)
        return await webdav.handle(ctx, method, target, body)

    async def _login(self, request: Any) -> Any:
        given = _credentials(request)
        if given is None:
            return webdav.Reply(401, b"Sign in with your address and password (or app "
                                     b"password).\n",
                                headers={b"WWW-Authenticate": REALM},
                                content_type=b"text/plain; charset=utf-8")
        credentials = ClientCredentials(given[0], given[1], request.client_ip, "dav")
        try:
            _, user, _ = await self._portal.login(credentials, None, IUser)
        except LoginBanned:
            return webdav.text_reply(403, "Too many failed sign-ins: wait a while, then try "
                                          "again.")
        except UnauthorizedLogin as error:
            reply = webdav.text_reply(401, refusal_text(error, "Wrong address or password."))
            reply.headers[b"WWW-Authenticate"] = REALM
            return reply
        return user


class DavRoot(Resource):
    """A listener's root with DAV discovery added (see the module docstring)."""

    def __init__(self, inner: Any, dav: DavResource) -> None:
        super().__init__()
        self._inner = inner
        self._dav = dav

    def _is_dav(self, request: Any) -> bool:
        path = request.path.rstrip(b"/")
        if path in WELL_KNOWN:
            return True
        return request.method in DAV_METHODS and request.path == b"/"

    def getChildWithDefault(self, name: bytes, request: Any) -> Any:
        if self._is_dav(request):
            return self._dav
        if getattr(self._inner, "isLeaf", False):   # a Klein app routes on the whole path
            request.postpath.insert(0, request.prepath.pop())
            return self._inner
        return self._inner.getChildWithDefault(name, request)

    def render(self, request: Any) -> Any:
        if self._is_dav(request):
            return self._dav.render(request)
        return self._inner.render(request)
