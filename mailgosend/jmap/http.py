# -*- test-case-name: tests.test_jmap_core -*-
"""The JMAP endpoint on the web port (RFC 8620): one twisted.web resource for

    GET  /.well-known/jmap                                  the Session (§2)
    POST /jmap/api                                          method calls (§3)
    POST /jmap/upload/{accountId}/                          a blob upload (§6.1)
    GET  /jmap/download/{accountId}/{blobId}/{name}?type=   a blob download (§6.2)
    GET  /jmap/eventsource/?types=&closeafter=&ping=        push (§7.3)

Every route authenticates first (auth.py).  Request-level errors are RFC 7807 problem
documents (§3.6.1); bodies above the limits are refused before they are read whole: the
Site sends them here flagged (web/request.py ``body_too_large``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from mailgosend.jmap.api import Dispatcher
from mailgosend.jmap.auth import Authenticator, Caller, Forbidden, Unauthorized
from mailgosend.jmap.catalog import Catalog
from mailgosend.jmap.errors import RequestError
from mailgosend.jmap.methods import Limits
from mailgosend.jmap.replies import json_reply, problem
from mailgosend.jmap.session import (API_PATH, CAPABILITIES, DOWNLOAD_PATH, EVENTSOURCE_PATH,
                                     UPLOAD_PATH, session_resource)
from mailgosend.jmap.slots import Slots
from mailgosend.web.request import WebRequest

__all__ = ["Context", "Services", "JMAPResource", "WELL_KNOWN"]

log = Logger()

WELL_KNOWN = "/.well-known/jmap"
REALM = b'Basic realm="mailgosend JMAP", charset="UTF-8"'


@dataclass
class Services:
    """What the endpoint shares across requests (built once in service.py).  ``extra``
    holds services other JMAP modules need (submission, vacation...), by name."""

    mail: Any                    # mail.MailService
    events: Any = None           # events.Events
    clock: Any = None
    blobs: Any = None            # jmap/blobs.py Blobs
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """``Call.context``: the services, the caller, and this request's session state."""

    services: Services
    caller: Caller
    session_state: str

    @property
    def user(self) -> Any:
        return self.caller.user


class JMAPResource(Resource):
    isLeaf = True

    def __init__(self, *, services: Services, authenticator: Authenticator, catalog: Catalog,
                 limits: Limits, uploads: Any = None, push: Any = None) -> None:
        super().__init__()
        self.services = services
        self.auth = authenticator
        self.catalog = catalog
        self.limits = limits
        self.dispatcher = Dispatcher(catalog.methods, dict.fromkeys(CAPABILITIES), limits)
        self.uploads = uploads   # jmap/blobs.py BlobRoutes (upload, download)
        self.push = push         # jmap/push.py EventSourceRoute
        self.in_flight = Slots(limits.max_concurrent_requests, "maxConcurrentRequests",
                               "requests")

    # --- routing ----------------------------------------------------------------------
    def render(self, request: WebRequest) -> Any:  # type: ignore[override]
        path = request.path.decode("latin-1")
        method = request.method
        route: Optional[Callable[[WebRequest, Caller], Awaitable[Any]]] = None
        allowed = b"GET, HEAD"
        if path == WELL_KNOWN:
            route = self._session if method in (b"GET", b"HEAD") else None
        elif path == API_PATH:
            allowed = b"POST"
            route = self._api if method == b"POST" else None
        elif path.startswith(UPLOAD_PATH) and self.uploads is not None:
            allowed = b"POST"
            route = self.uploads.upload if method == b"POST" else None
        elif path.startswith(DOWNLOAD_PATH) and self.uploads is not None:
            route = self.uploads.download if method in (b"GET", b"HEAD") else None
        elif path == EVENTSOURCE_PATH and self.push is not None:
            route = self.push.stream if method == b"GET" else None
        else:
            return json_reply(request, {"type": "about:blank", "status": 404,
                                        "detail": "no such JMAP resource"}, 404)
        if route is None:
            request.setHeader(b"Allow", allowed)
            return json_reply(request, {"type": "about:blank", "status": 405,
                                        "detail": "method not allowed"}, 405)
        Deferred.fromCoroutine(self._serve(request, route))
        return NOT_DONE_YET

    async def _serve(self, request: WebRequest,
                     route: Callable[[WebRequest, Caller], Awaitable[Any]]) -> None:
        try:
            try:
                caller = await self.auth.caller(request)
            except Unauthorized as exc:
                request.setHeader(b"WWW-Authenticate", REALM)
                body = json_reply(request, {"type": "about:blank", "status": 401,
                                            "detail": exc.detail}, 401)
            except Forbidden as exc:
                body = json_reply(request, {"type": "about:blank", "status": 403,
                                            "detail": exc.detail}, 403)
            else:
                body = await route(request, caller)
        except RequestError as exc:
            body = problem(request, exc)
        except Exception as exc:
            log.error("jmap: {path} failed with {kind}", path=request.path.decode("latin-1"),
                      kind=type(exc).__name__)
            if request.startedWriting:  # a download cut short: the client sees it end early
                if request.channel is not None and request.channel.transport is not None:
                    request.channel.transport.loseConnection()
                return
            body = problem(request, RequestError("serverFail", "the server could not answer "
                                                               "this request", status=500))
        if body is NOT_DONE_YET or request.finished or getattr(request, "_disconnected",
                                                                 False):
            return
        if body:
            request.write(body)
        request.finish()

    # --- the session resource ---------------------------------------------------------
    def session_for(self, request: WebRequest, caller: Caller) -> dict[str, Any]:
        return session_resource(base=request.own_origin(), username=caller.user.email,
                                account_id=caller.account_id, limits=self.limits,
                                extra=self.catalog.account_capabilities)

    async def _session(self, request: WebRequest, caller: Caller) -> bytes:
        return json_reply(request, self.session_for(request, caller))

    # --- the API ----------------------------------------------------------------------
    async def _api(self, request: WebRequest, caller: Caller) -> bytes:
        if getattr(request, "body_too_large", False):
            request.setHeader(b"Connection", b"close")
            raise RequestError("limit", f"the request is larger than maxSizeRequest "
                                        f"({self.limits.max_size_request} octets)",
                               limit="maxSizeRequest")
        with self.in_flight.taken(caller.user.id):
            assert request.content is not None
            request.content.seek(0)
            body = request.content.read(self.limits.max_size_request + 1)
            context = Context(self.services, caller,
                              self.session_for(request, caller)["state"])
            answer = await self.dispatcher.run(body, account_id=caller.account_id,
                                               mail=caller.mail, context=context,
                                               origin=context)
        return json_reply(request, answer)
