# -*- test-case-name: tests.test_web_settings -*-
"""The account settings page on the web port (issue 11 item 9), mounted at ``/settings``:

  GET  /settings            display name, password change, the user's aliases (read-only)
                            and where to point a mail client (web/mailclients.py)
  GET  /settings/mail-profile.mobileconfig
                            the user's Apple configuration profile (web/autoconfig.py)
  POST /settings/profile    save the display name
  POST /settings/password   change the password: the current one is checked through the
                            Portal (bans and failure counters shared with IMAP/SMTP/POP3),
                            the new one by the one password policy (AccountAdmin, as the
                            CLI), hashed in the worker pool; every other session of the user
                            ends and this one gets a new token.
Every POST passes the CSRF and Origin check of web/account.py.  Account rules are
AccountAdmin's (mailgosend/admin.py); this module only shows them.
"""

from __future__ import annotations

from typing import Any, Optional

from klein import Klein
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from werkzeug.exceptions import HTTPException

from mailgosend.admin import AccountAdmin
from mailgosend.auth.checker import LoginBanned
from mailgosend.auth.credentials import ClientCredentials
from mailgosend.auth.portal import IUser
from mailgosend.store.accounts import AccountError
from mailgosend.web.account import AccountPages
from mailgosend.web.forms import changes_state, form_field
from mailgosend.web.autoconfig import ClientSetup
from mailgosend.web.mailclients import ClientEndpoint
from mailgosend.web.replies import see_other
from mailgosend.web.request import WebRequest
from mailgosend.web.sessions import Session

log = Logger()

NOTICES = {
    "profile": "Display name saved.",
    "password": "Password changed. Every other session of your account was signed out.",
}
WRONG_CURRENT = "The current password is not correct."


def _sentence(error: AccountError) -> str:
    text = str(error)
    text = text[len("password refused: "):] if text.startswith("password refused: ") else text
    return text[:1].upper() + text[1:] + "."


class SettingsPages:
    app = Klein()

    def __init__(self, *, pages: AccountPages, admin: AccountAdmin, portal: Any,
                 workers: Any, endpoints: tuple[ClientEndpoint, ...],
                 client_setup: Optional[ClientSetup] = None) -> None:
        self._client_setup = client_setup
        self._pages = pages
        self.sessions = pages.sessions
        self._runner = pages._runner
        self._admin = admin
        self._portal = portal
        self._workers = workers
        self._endpoints = endpoints

    def resource(self) -> Any:
        return self.app.resource()

    def render(self, request: WebRequest, template: str, session: Optional[Session],
               **context: Any) -> bytes:
        return self._pages.render(request, template, session, **context)

    @defer.inlineCallbacks
    def _page(self, request: WebRequest, session: Session, *, notice: str = "",
              profile_error: str = "", password_error: str = "",
              display_name: Optional[str] = None) -> Any:
        email = session.email
        stored = yield self._runner.read(self._admin.display_name, email)
        aliases = yield self._runner.read(self._admin.aliases_of, email)
        return self.render(request, "account/settings.html", session, notice=notice,
                           profile_error=profile_error, password_error=password_error,
                           display_name=stored if display_name is None else display_name,
                           aliases=aliases, endpoints=self._endpoints,
                           apple_profile=self._client_setup is not None)

    def _signed_in(self, request: WebRequest, session: Optional[Session]) -> Optional[bytes]:
        """None when signed in, else the redirect to the sign-in step owed."""
        if session is not None and session.signed_in:
            return None
        return see_other(request, "/login" if session is None else "/login/step")

    @app.route("/settings", methods=["GET", "HEAD"])
    @defer.inlineCallbacks
    def settings(self, request: WebRequest) -> Any:
        session = yield self.sessions.load(request)
        away = self._signed_in(request, session)
        if away is not None:
            return away
        done = form_field(request, "done")
        page = yield self._page(request, session, notice=NOTICES.get(done, ""))
        return page

    @app.route("/settings/mail-profile.mobileconfig", methods=["GET", "HEAD"])
    @defer.inlineCallbacks
    def apple_profile(self, request: WebRequest) -> Any:
        """The signed-in user's Apple configuration profile (mail, calendars, contacts);
        it holds no password."""
        session = yield self.sessions.load(request)
        away = self._signed_in(request, session)
        if away is not None:
            return away
        if self._client_setup is None:
            request.setResponseCode(404)
            return self._pages.render(request, "error.html", None, title="Page not found",
                                      message="There is nothing at this address.")
        name = yield self._runner.read(self._admin.display_name, session.email)
        request.setHeader(b"Content-Type", b"application/x-apple-aspen-config")
        request.setHeader(b"Cache-Control", b"no-store")
        filename = session.email.replace("@", "-at-").encode("ascii", "replace")
        request.setHeader(b"Content-Disposition",
                          b'attachment; filename="' + filename + b'.mobileconfig"')
        return self._client_setup.mobileconfig(session.email, name)

    @app.route("/settings/profile", methods=["POST"])
    @changes_state
    @defer.inlineCallbacks
    def profile(self, request: WebRequest, session: Optional[Session]) -> Any:
        away = self._signed_in(request, session)
        if away is not None:
            return away
        assert session is not None
        name = form_field(request, "display_name")
        try:
            moved: set[int] = set()  # the JMAP identities renamed with it
            yield self._runner.write(self._admin.set_display_name, session.email, name, moved)
            self._admin.announce(moved)
        except AccountError as exc:
            request.setResponseCode(400)
            page = yield self._page(request, session, profile_error=_sentence(exc),
                                    display_name=name)
            return page
        return see_other(request, "/settings?done=profile")

    @app.route("/settings/password", methods=["POST"])
    @changes_state
    @defer.inlineCallbacks
    def password(self, request: WebRequest, session: Optional[Session]) -> Any:
        away = self._signed_in(request, session)
        if away is not None:
            return away
        assert session is not None
        current = form_field(request, "current_password")
        new = form_field(request, "new_password")
        error = ""
        if new != form_field(request, "new_password_again"):
            error = "The two new passwords differ."
        else:
            try:
                self._admin.check_password(new, session.email)
            except AccountError as exc:
                error = _sentence(exc)
        if not error:
            ok = yield self._current_password_ok(session, current, request.client_ip)
            error = "" if ok else WRONG_CURRENT
        if error:
            request.setResponseCode(403 if error == WRONG_CURRENT else 400)
            page = yield self._page(request, session, password_error=error)
            return page
        password_hash = yield self._workers.run(self._admin.hash_password, new)
        now = self.sessions.now()
        yield self._runner.write(self._admin.change_password, session.email, password_hash,
                                 now, keep_session=session.id)
        # A privilege change: this browser keeps going with a new token.
        yield self.sessions.start(request, session.user_id, session.email, None)
        log.info("web: {email} changed their password from {ip}; other sessions ended",
                 email=session.email, ip=request.client_ip)
        return see_other(request, "/settings?done=password")

    @defer.inlineCallbacks
    def _current_password_ok(self, session: Session, password: str, client_ip: str) -> Any:
        """Through the Portal, as a sign-in: a wrong guess counts toward the bans."""
        credentials = ClientCredentials(session.email, password, client_ip,
                                        self._pages.kind)
        try:
            _iface, user, _logout = yield self._portal.login(credentials, None, IUser)
        except (UnauthorizedLogin, LoginBanned):
            return False
        return bool(user.id == session.user_id)

    @app.handle_errors(HTTPException)  # type: ignore[arg-type]
    def http_error(self, request: WebRequest, failure: Failure) -> Any:
        return self._pages.http_error(request, failure)

    @app.handle_errors(Exception)  # type: ignore[arg-type]
    def server_error(self, request: WebRequest, failure: Failure) -> Any:
        return self._pages.server_error(request, failure)
