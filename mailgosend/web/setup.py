# -*- test-case-name: tests.test_web_setup -*-
"""The first administrator, created from the admin port (issue 11 item 10), at ``/setup``:

  GET  /setup    the form (setup token, email, password twice)
  POST /setup    creates the administrator through AccountAdmin.add_first_admin

Only while no administrator exists.  At start-up (``FirstAdminAnnouncer``) the server looks;
when there is none it makes a one-time token from ``secrets`` and prints it in its log: only
someone who can read the server's log (the operator) can finish the setup, not whoever
reaches the port first.  Only the token's SHA-256 is kept, in memory: it is good until used
or until the next start.  Once an administrator exists (made here or with ``mailgosend
create-admin``) both routes answer 404 and the token is forgotten.  The POST passes the CSRF
and Origin check of web/account.py and the admin port's rate limit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Optional

from klein import Klein
from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from werkzeug.exceptions import HTTPException, NotFound

from mailgosend.admin import AccountAdmin
from mailgosend.store.accounts import AccountError
from mailgosend.web.account import AccountPages
from mailgosend.web.forms import changes_state, form_field
from mailgosend.web.replies import see_other
from mailgosend.web.request import WebRequest
from mailgosend.web.sessions import Session

log = Logger()

WRONG_TOKEN = ("The setup token is not correct. The server prints it in its log when it "
               "starts without an administrator.")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


class SetupToken:
    """The one-time token: its hash only, in memory."""

    def __init__(self) -> None:
        self._hash: Optional[bytes] = None

    @property
    def open(self) -> bool:
        return self._hash is not None

    def issue(self) -> str:
        token = secrets.token_urlsafe(24)
        self._hash = _digest(token)
        return token

    def matches(self, given: str) -> bool:
        return self._hash is not None and hmac.compare_digest(self._hash, _digest(given.strip()))

    def forget(self) -> None:
        self._hash = None


class SetupPages:
    app = Klein()

    def __init__(self, *, pages: AccountPages, admin: AccountAdmin, workers: Any,
                 token: SetupToken) -> None:
        self._pages = pages
        self.sessions = pages.sessions
        self._runner = pages._runner
        self._admin = admin
        self._workers = workers
        self.token = token

    def resource(self) -> Any:
        return self.app.resource()

    def render(self, request: WebRequest, template: str, session: Optional[Session],
               **context: Any) -> bytes:
        return self._pages.render(request, template, session, **context)

    @defer.inlineCallbacks
    def _still_open(self) -> Any:
        """Open while the token lives and no administrator exists; else it closes for good."""
        if not self.token.open:
            return False
        exists = yield self._runner.read(self._admin.has_admin)
        if exists:
            self.token.forget()
        return not exists

    @defer.inlineCallbacks
    def announce(self, url: str) -> Any:
        """At start-up: a token, printed in the log, when no administrator exists."""
        exists = yield self._runner.read(self._admin.has_admin)
        if exists:
            return None
        token = self.token.issue()
        # The one secret this server logs, on purpose: reading the log proves to be the
        # operator.  It opens nothing but this page, once, until the next start.
        log.warn("no administrator exists: create the first one at {url} with the setup "
                 "token {token} (good until used or until the server restarts; "
                 "'mailgosend create-admin' works too)", url=url, token=token)
        return token

    @app.route("/setup", methods=["GET", "HEAD"])
    @defer.inlineCallbacks
    def setup_page(self, request: WebRequest) -> Any:
        is_open = yield self._still_open()
        if not is_open:
            raise NotFound()
        session = yield self.sessions.load(request)
        return self.render(request, "admin/setup.html", session, error="", email="")

    @app.route("/setup", methods=["POST"])
    @changes_state
    @defer.inlineCallbacks
    def setup(self, request: WebRequest, session: Optional[Session]) -> Any:
        is_open = yield self._still_open()
        if not is_open:
            raise NotFound()
        email = form_field(request, "email").strip()
        password = form_field(request, "password")
        if not self.token.matches(form_field(request, "setup_token")):
            log.info("web: wrong first-administrator setup token from {ip}",
                     ip=request.client_ip)
            request.setResponseCode(403)
            return self.render(request, "admin/setup.html", session, error=WRONG_TOKEN,
                               email=email)
        try:
            address = yield self._runner.read(self._admin.check_new_user, email,
                                              create_domain=True)
            if password != form_field(request, "password_again"):
                raise AccountError("the two passwords differ", "password")
            self._admin.check_password(password, address)
            password_hash = yield self._workers.run(self._admin.hash_password, password)
            user = yield self._runner.write(self._admin.add_first_admin, address,
                                            password_hash, self.sessions.now())
        except AccountError as exc:
            request.setResponseCode(400)
            text = str(exc)
            return self.render(request, "admin/setup.html", session,
                               error=text[:1].upper() + text[1:] + ".", email=email)
        self.token.forget()
        log.info("web: first administrator {email} created from {ip}", email=user.email,
                 ip=request.client_ip)
        return see_other(request, "/login")

    @app.handle_errors(HTTPException)  # type: ignore[arg-type]
    def http_error(self, request: WebRequest, failure: Failure) -> Any:
        return self._pages.http_error(request, failure)

    @app.handle_errors(Exception)  # type: ignore[arg-type]
    def server_error(self, request: WebRequest, failure: Failure) -> Any:
        return self._pages.server_error(request, failure)


class FirstAdminAnnouncer(Service):
    """Started after the database: prints the setup token when no administrator exists."""

    def __init__(self, pages: SetupPages, url: str) -> None:
        self._pages = pages
        self._url = url
        self.announced: "defer.Deferred[Any]" = defer.Deferred()

    def startService(self) -> None:
        super().startService()
        d = self._pages.announce(self._url)
        d.addErrback(lambda f: log.failure("first-administrator check failed", f))
        d.chainDeferred(self.announced)
