# -*- test-case-name: tests.test_admin_dash_pages -*-
"""The admin panel's shell (issue 14): the ``/admin/...`` router, the page-group base class
and the guard every admin route passes.

Routing.  build_site mounts :class:`AdminRouter` at ``/admin`` on the admin port; it sends a
request to the group registered under the path's second segment (``/admin/users/7`` →
``groups[b"users"]``), else to the dashboard.  Each group is a Klein app bound to an
instance (:class:`AdminGroup` subclass) that routes on the full path.

The guard.  The admin port's sign-in already admits only users with admin rights, after the
same password and second steps (TOTP, passkeys) as any sign-in (web/login.py), in admin-port
sessions (web/sessions.py).  On every request :func:`admin_page` / :func:`admin_action`
load the session and ask ``AccountAdmin.rights`` again, so a demoted or disabled
administrator loses access at the next click.  ``full=True`` routes (settings, TLS, logs,
metrics, ...) refuse domain administrators with a 403; ``full=False`` routes let them in and
must check each target with ``actor.require(domain)`` (``NotPermitted`` → 403 page).
State changes pass the CSRF and Origin check of web/forms.py first.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Optional

from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from werkzeug.exceptions import HTTPException

from mailgosend.admin import AccountAdmin, Actor, NotPermitted
from mailgosend.web.account import AccountPages
from mailgosend.web.forms import changes_state
from mailgosend.web.replies import see_other, sentence
from mailgosend.web.request import WebRequest

log = Logger()

# (path, label, full administrators only)
NAVIGATION: tuple[tuple[str, str, bool], ...] = (
    ("/admin", "Dashboard", True),
    ("/admin/domains", "Domains", True),
    ("/admin/users", "Users", False),
    ("/admin/queue", "Queue", True),
    ("/admin/deliveries", "Delivery log", True),
    ("/admin/security", "Security", True),
    ("/admin/settings", "Settings", True),
    ("/admin/tls", "TLS", True),
    ("/admin/logs", "Logs", True),
    ("/admin/audit", "Audit", False),
)

NOT_ALLOWED = "Your account may not use this page of the administration panel."


class AdminPanel:
    """What every admin page group shares: the account pages (rendering, sessions), the
    account rules, the database runner, the clock, the configuration and the service's
    components (``components["delivery"]``, ``["counters"]``, ...)."""

    def __init__(self, *, pages: AccountPages, admin: AccountAdmin, runner: Any, clock: Any,
                 workers: Any = None, config: Any = None,
                 components: Optional[Mapping[str, Any]] = None) -> None:
        self.pages = pages
        self.sessions = pages.sessions
        self.admin = admin
        self.runner = runner
        self.clock = clock
        self.workers = workers
        self.config = config
        self.components: Mapping[str, Any] = components if components is not None else {}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    def rights(self, user_id: int) -> "defer.Deferred[Optional[Actor]]":
        return self.runner.read(self.admin.rights, user_id)  # type: ignore[no-any-return]


class AdminGroup:
    """Base of a page group: subclasses set ``app = Klein()``, route on full paths
    (``/admin/settings``) and call :func:`install_error_pages` on their app."""

    app: Klein

    def __init__(self, panel: AdminPanel) -> None:
        self.panel = panel
        self.sessions = panel.sessions
        self.rights = panel.rights

    def resource(self) -> Any:
        return self.app.resource()

    def render(self, request: WebRequest, template: str, actor: Optional[Actor] = None,
               session: Any = None, **context: Any) -> bytes:
        """A page in the panel's layout (``session``: accepted for web/forms.py's refusal
        page; the request's own session is used)."""
        nav = [{"path": path, "label": label, "current": _current(request, path)}
               for path, label, full in NAVIGATION if actor is None or actor.full or not full]
        return self.panel.pages.render(request, template, request.web_session, actor=actor,
                                       nav=nav, **context)

    def refuse(self, request: WebRequest, actor: Optional[Actor], message: str) -> bytes:
        request.setResponseCode(403)
        return self.panel.pages.render(request, "error.html", request.web_session,
                                       title="Not allowed", message=message)


def _current(request: WebRequest, path: str) -> bool:
    here = request.path.decode("latin-1").rstrip("/") or "/"
    return here == path if path == "/admin" else here == path or here.startswith(path + "/")


@defer.inlineCallbacks
def _actor_or_reply(group: AdminGroup, request: WebRequest, full: bool) -> Any:
    """The request's Actor, or the reply that stops it (a redirect to sign in, a 403)."""
    session = yield group.sessions.load(request)
    if session is None or not session.signed_in:
        return see_other(request, "/login" if session is None else "/login/step")
    actor = yield group.rights(session.user_id)
    if actor is None or (full and not actor.full):
        log.info("web: {email} refused {path} on the admin port (no rights) from {ip}",
                 email=session.email, path=request.path.decode("latin-1"),
                 ip=request.client_ip)
        return group.refuse(request, actor, NOT_ALLOWED)
    return actor


def admin_page(full: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A GET route of the panel: ``handler(self, request, actor, **route_args)``."""
    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        @defer.inlineCallbacks
        def guarded(self: AdminGroup, request: WebRequest, **kwargs: Any) -> Any:
            actor = yield _actor_or_reply(self, request, full)
            if not isinstance(actor, Actor):
                return actor
            result = yield defer.maybeDeferred(handler, self, request, actor, **kwargs)
            return result
        return guarded
    return wrap


def admin_action(full: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A state-changing route (POST): the CSRF/Origin check, then as :func:`admin_page`."""
    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        @defer.inlineCallbacks
        def guarded(self: AdminGroup, request: WebRequest, _session: Any,
                    **kwargs: Any) -> Any:
            actor = yield _actor_or_reply(self, request, full)
            if not isinstance(actor, Actor):
                return actor
            result = yield defer.maybeDeferred(handler, self, request, actor, **kwargs)
            return result
        return changes_state(guarded)
    return wrap


def _not_permitted(self: AdminGroup, request: WebRequest, failure: Failure) -> Any:
    return self.refuse(request, None, sentence(failure.value))


def _http_error(self: AdminGroup, request: WebRequest, failure: Failure) -> Any:
    return self.panel.pages.http_error(request, failure)


def _server_error(self: AdminGroup, request: WebRequest, failure: Failure) -> Any:
    return self.panel.pages.server_error(request, failure)


def install_error_pages(app: Klein) -> None:
    """The site's error pages for a group's app: 403 for NotPermitted, 404/405, 500."""
    app.handle_errors(NotPermitted)(_not_permitted)  # type: ignore[arg-type]
    app.handle_errors(HTTPException)(_http_error)  # type: ignore[arg-type]
    app.handle_errors(Exception)(_server_error)  # type: ignore[arg-type]


class AdminRouter(Resource):
    """``/admin/<group>/...`` → the group's resource; ``/admin`` and unknown → ``default``
    (the dashboard group, whose app answers 404 for what it does not route)."""

    def __init__(self, default: Any, groups: Optional[Mapping[bytes, Any]] = None) -> None:
        super().__init__()
        self.default = default
        self.groups: dict[bytes, Any] = dict(groups or {})

    def getChildWithDefault(self, name: bytes, request: Any) -> Any:
        second = request.postpath[0] if request.postpath else b""
        # Undo the traversal step: the group's Klein app routes on the whole path.
        request.postpath.insert(0, request.prepath.pop())
        return self.groups.get(second, self.default)

    def render(self, request: Any) -> Any:
        return self.default.render(request)
