# -*- test-case-name: tests.test_web_account -*-
"""What every page module needs of a form: its fields, the guard that refuses a state
change without our Origin and the session's CSRF token (403, nothing changed), and the one
way dates are shown."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger

from mailgosend.web.csrf import csrf_valid, origin_allowed
from mailgosend.web.replies import see_other
from mailgosend.web.request import WebRequest

log = Logger()


def form_args(request: WebRequest) -> dict[bytes, list[bytes]]:
    return request.args or {}


def form_field(request: WebRequest, name: str) -> str:
    values = form_args(request).get(name.encode(), [])
    return values[0].decode("utf-8", "replace") if values else ""


def change_allowed(sessions: Any, request: WebRequest, session: Any) -> bool:
    """The one CSRF rule for a state change by a browser: our Origin (or Referer) when one
    is sent, and the CSRF token bound to ``session`` (form field ``csrf_token`` or the
    ``X-CSRF-Token`` header).  The JMAP endpoint applies it to cookie-authenticated POSTs."""
    origin_ok = origin_allowed(request.getHeader("origin"), request.getHeader("referer"),
                               [request.own_origin()])
    given = form_field(request, "csrf_token") or request.getHeader("x-csrf-token")
    binding = sessions.csrf_binding(request, session)
    return origin_ok and csrf_valid(sessions.settings.secret, binding, given)


def changes_state(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse a state change without our Origin and the session's CSRF token (403)."""
    @functools.wraps(handler)
    @defer.inlineCallbacks
    def guarded(self: Any, request: WebRequest, **kwargs: Any) -> Any:
        session = yield self.sessions.load(request)
        if not change_allowed(self.sessions, request, session):
            log.info("web: refused a {method} to {path} from {ip}: bad CSRF token or Origin",
                     method=request.method.decode(), path=request.path.decode("latin-1"),
                     ip=request.client_ip)
            request.setResponseCode(403)
            return self.render(request, "error.html", session=None,
                               title="Request refused",
                               message="This form has expired or did not come from this "
                                       "site. Go back, reload the page and try again.")
        result = yield handler(self, request, session, **kwargs)
        return result
    return guarded



def when_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def signed_in(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Below ``changes_state``: a state change by a browser that is not (fully) signed in
    goes to the sign-in page, and the handler is not called."""
    @functools.wraps(handler)
    def guarded(self: Any, request: WebRequest, session: Any, **kwargs: Any) -> Any:
        if session is None or not session.signed_in:
            return see_other(request, "/login")
        return handler(self, request, session, **kwargs)
    return guarded
