# -*- test-case-name: tests.test_web_account -*-
"""The sign-in pages and the signed-in landing page, shared by the web and admin ports.

Routes (one Klein app bound to each instance, so the two ports run side by side):
  GET  /                     who is signed in, Sign out, the session list (else → /login)
  GET  /login, POST /login   the password step (web/login.py)
  GET  /login/step, POST     a second step, when one is registered and required
  POST /logout               ends this session on the server
  POST /sessions/<id>/end    ends one of the user's own sessions
  POST /theme                dark (default) or light
  /passkeys/...              passkeys, when that step is wired (web/passkeys.py)
  GET  /static/<name>        hashed static files (web/static.py)
  GET  /healthz              admin port only (web/health.py)
  /account/<section>/...     a section mounted by build_site (e.g. web/mfa_pages.py)
Every POST passes ``changes_state``: the rate limit is the Request's; here the Origin
check and the CSRF token bound to the session (web/csrf.py), else 403 and nothing changes.
"""

from __future__ import annotations

from typing import Any, Optional

from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from werkzeug.exceptions import HTTPException, NotFound

from mailgosend.db.runner import DatabaseRunner
from mailgosend.store import accounts
from mailgosend.web.csrf import csrf_token
from mailgosend.web.forms import changes_state, form_args, form_field, signed_in, when_text
from mailgosend.web.device import device_label
from mailgosend.web.login import LoginFlow
from mailgosend.web.replies import see_other
from mailgosend.web.request import WebRequest
from mailgosend.web.sessions import Session, SessionManager
from mailgosend.web.static import StaticFiles

log = Logger()

THEMES = ("dark", "light")


class AccountPages:
    app = Klein()

    def __init__(self, *, kind: str, runner: DatabaseRunner, sessions: SessionManager,
                 flow: LoginFlow, static: StaticFiles, templates: Any,
                 health: Any = None) -> None:
        self.passkeys: Any = None       # web/passkeys.py, set by build_site
        self.kind = kind
        self._runner = runner
        self.sessions = sessions
        self.flow = flow
        self.static = static
        self._templates = templates
        self._health = health
        self.sections: dict[str, Any] = {}      # name -> object with .resource()

    def resource(self) -> Any:
        return self.app.resource()

    # --- rendering -----------------------------------------------------------
    def render(self, request: WebRequest, template: str, session: Optional[Session],
               **context: Any) -> bytes:
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        theme = (request.getCookie(b"mailgosend-theme") or b"dark").decode("ascii", "replace")
        token = csrf_token(self.sessions.settings.secret,
                           self.sessions.csrf_binding(request, session))
        page = self._templates.get_template(template).render(
            kind=self.kind, theme=theme if theme in THEMES else "dark", csrf_token=token,
            session=session, path=request.path.decode("latin-1"), **context)
        return page.encode("utf-8")

    # --- pages ---------------------------------------------------------------
    @app.route("/", methods=["GET", "HEAD"])
    @defer.inlineCallbacks
    def home(self, request: WebRequest) -> Any:
        session = yield self.sessions.load(request)
        if session is None or not session.signed_in:
            return see_other(request, "/login" if session is None else "/login/step")
        rows = yield self.sessions.list_for(session)
        listed = [{"id": r.id, "device": device_label(r.user_agent or ""),
                   "ip": r.ip or "", "last_seen": when_text(r.last_seen_at),
                   "current": r.id == session.id} for r in rows]
        return self.render(request, "account/home.html", session, sessions=listed,
                           passkeys=self.passkeys is not None)

    @app.route("/login", methods=["GET", "HEAD"])
    @defer.inlineCallbacks
    def login_page(self, request: WebRequest) -> Any:
        session = yield self.sessions.load(request)
        if session is not None:
            return see_other(request, "/" if session.signed_in else "/login/step")
        return self.render(request, "account/login.html", None, error="", email="")

    @app.route("/login", methods=["POST"])
    @changes_state
    @defer.inlineCallbacks
    def login(self, request: WebRequest, session: Optional[Session]) -> Any:
        email = form_field(request, "email").strip()
        outcome = yield self.flow.password(email, form_field(request, "password"),
                                           request.client_ip)
        if outcome.user is None:
            request.setResponseCode(403)
            return self.render(request, "account/login.html", session, error=outcome.error,
                               email=email)
        yield self.sessions.start(request, outcome.user.id, outcome.user.email,
                                  outcome.next_step)
        return see_other(request, "/" if outcome.next_step is None else "/login/step")

    @app.route("/login/step", methods=["GET", "HEAD"])
    @defer.inlineCallbacks
    def step_page(self, request: WebRequest) -> Any:
        session = yield self.sessions.load(request)
        if session is None or session.signed_in:
            return see_other(request, "/" if session else "/login")
        step = self.flow.steps[session.pending_step]  # type: ignore[index]
        return self.render(request, step.template, session, error="")

    @app.route("/login/step", methods=["POST"])
    @changes_state
    @defer.inlineCallbacks
    def step(self, request: WebRequest, session: Optional[Session]) -> Any:
        if session is None or session.signed_in:
            return see_other(request, "/" if session else "/login")
        user = yield self._runner.read(accounts.find_user_by_id, session.user_id)
        if user is None or not user.can_log_in:
            yield self.sessions.end(request)
            return see_other(request, "/login")
        name = session.pending_step
        assert name is not None
        form = {k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace")
                for k, v in form_args(request).items() if v}
        outcome = yield self.flow.step(user, name, form, request.client_ip)
        if outcome.user is None:
            request.setResponseCode(403)
            return self.render(request, self.flow.steps[name].template, session,
                               error=outcome.error)
        yield self.sessions.start(request, user.id, user.email, outcome.next_step)
        return see_other(request, "/" if outcome.next_step is None else "/login/step")

    @app.route("/logout", methods=["POST"])
    @changes_state
    @defer.inlineCallbacks
    def logout(self, request: WebRequest, session: Optional[Session]) -> Any:
        yield self.sessions.end(request)
        return see_other(request, "/login")

    @app.route("/sessions/<int:session_id>/end", methods=["POST"])
    @changes_state
    @signed_in
    @defer.inlineCallbacks
    def end_session(self, request: WebRequest, session: Session,
                    session_id: int) -> Any:
        if session_id == session.id:
            yield self.sessions.end(request)
            return see_other(request, "/login")
        yield self.sessions.end_other(session, session_id)
        return see_other(request, "/")

    @app.route("/theme", methods=["POST"])
    @changes_state
    def theme(self, request: WebRequest, session: Optional[Session]) -> Any:
        theme = form_field(request, "theme")
        if theme in THEMES:
            request.addCookie(b"mailgosend-theme", theme.encode(), path=b"/",
                              max_age=str(365 * 24 * 3600).encode(),
                              secure=request.isSecure() or None, httpOnly=True,
                              sameSite="strict")
        back = form_field(request, "next")
        return see_other(request, back if back in ("/", "/login") else "/")

    @app.route("/account/<section>/", branch=True)
    def section(self, request: WebRequest, section: str) -> Any:
        mounted = self.sections.get(section)
        if mounted is None:
            raise NotFound()
        return mounted.resource()

    @app.route("/passkeys", methods=["GET", "HEAD"])
    def passkey_list(self, request: WebRequest) -> Any:
        if self.passkeys is None:
            raise NotFound()
        return self.passkeys.list_page(request)

    @app.route("/passkeys/", branch=True)
    def passkey_pages(self, request: WebRequest) -> Any:
        if self.passkeys is None or not any(request.postpath or ()):
            raise NotFound()
        return self.passkeys.resource()

    @app.route("/static/<path:name>", methods=["GET", "HEAD"])
    def static_file(self, request: WebRequest, name: str) -> Any:
        body = self.static.serve(request, name)
        if body is None:
            raise NotFound()
        return body

    @app.route("/healthz", methods=["GET", "HEAD"])
    def healthz(self, request: WebRequest) -> Any:
        if self._health is None:
            raise NotFound()
        return self._health

    # --- errors: our page, never a traceback ---------------------------------
    @app.handle_errors(HTTPException)  # type: ignore[arg-type]
    def http_error(self, request: WebRequest, failure: Failure) -> Any:
        error = failure.value
        request.setResponseCode(error.code)
        if error.code == 405:
            request.setHeader(b"Allow", ", ".join(error.valid_methods or []).encode())
        title = "Page not found" if error.code == 404 else error.name
        return self.render(request, "error.html", None, title=title,
                           message="There is nothing at this address." if error.code == 404
                           else error.description)

    @app.handle_errors(Exception)  # type: ignore[arg-type]
    def server_error(self, request: WebRequest, failure: Failure) -> Any:
        log.failure("web: {method} {path} failed", failure, method=request.method.decode(),
                    path=request.path.decode("latin-1"))
        request.setResponseCode(500)
        return self.render(request, "error.html", None, title="Something went wrong",
                           message="The server could not complete this request. It has "
                                   "been logged; try again in a moment.")
