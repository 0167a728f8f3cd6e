# -*- test-case-name: tests.test_web_apppasswords -*-
"""The app-passwords page of a signed-in user, mounted under /account/app-passwords/
(web/account.py) on the web port:

  GET  /account/app-passwords/          the list (name, protocols, created, last used and
                                        from where) and the form for a new one
  POST /account/app-passwords/create    a named app password for the protocols ticked,
                                        shown this once
  POST /account/app-passwords/revoke    revoke one, by name

Mail clients sign in with these once MFA is on (auth/checker.py); the rules and storage
are mailgosend.admin's (AccountAdmin), the same the CLI uses.  Every POST passes the CSRF
and Origin check of web/account.py.
"""

from __future__ import annotations

from typing import Any, Optional

from klein import Klein
from twisted.internet import defer

from mailgosend.admin import AccountAdmin
from mailgosend.auth.apppasswords import PROTOCOLS
from mailgosend.db.runner import DatabaseRunner
from mailgosend.store.accounts import AccountError
from mailgosend.web.account import AccountPages
from mailgosend.web.forms import changes_state, form_args, form_field, signed_in, when_text
from mailgosend.web.replies import see_other, sentence
from mailgosend.web.request import WebRequest
from mailgosend.web.sessions import Session

# How each scope is called on the page (the checkbox labels).
PROTOCOL_LABELS = {"imap": "IMAP", "pop3": "POP3", "submission": "SMTP submission",
                   "dav": "DAV", "jmap": "JMAP (mail apps over HTTP)"}
assert set(PROTOCOL_LABELS) == set(PROTOCOLS)


class AppPasswordPages:
    app = Klein()

    def __init__(self, pages: AccountPages, runner: DatabaseRunner, admin: AccountAdmin,
                 workers: Any) -> None:
        self._runner = runner
        self._admin = admin
        self._workers = workers
        self.sessions = pages.sessions          # what changes_state needs
        self.render = pages.render

    def resource(self) -> Any:
        return self.app.resource()

    @defer.inlineCallbacks
    def _page(self, request: WebRequest, session: Session, error: str = "",
              created: Optional[dict[str, str]] = None, name: str = "",
              chosen: tuple[str, ...] = ()) -> Any:
        rows = yield self._runner.read(self._admin.list_app_passwords, session.email)
        listed = [{"name": r.name, "prefix": r.prefix,
                   "protocols": ", ".join(PROTOCOL_LABELS[p] for p in r.protocols),
                   "created": when_text(r.created_at),
                   "last_used": when_text(r.last_used_at) if r.last_used_at else "Never",
                   "last_ip": r.last_ip or ""} for r in rows]
        if error:
            request.setResponseCode(400)
        return self.render(request, "account/app_passwords.html", session, listed=listed,
                           protocols=PROTOCOL_LABELS, error=error, created=created,
                           name=name, chosen=chosen)

    @app.route("/", methods=["GET", "HEAD"])
    @defer.inlineCallbacks
    def overview(self, request: WebRequest) -> Any:
        session = yield self.sessions.load(request)
        if session is None or not session.signed_in:
            return see_other(request, "/login")
        page = yield self._page(request, session)
        return page

    @app.route("/create", methods=["POST"])
    @changes_state
    @signed_in
    @defer.inlineCallbacks
    def create(self, request: WebRequest, session: Session) -> Any:
        name = form_field(request, "name")
        chosen = tuple(v.decode("utf-8", "replace")
                       for v in form_args(request).get(b"protocol", []))
        try:
            # bcrypt in the worker pool, outside the transaction (admin.py note 2).
            new = yield self._workers.run(self._admin.make_app_password, name, chosen)
            yield self._runner.write(self._admin.add_app_password, session.email, new,
                                     self.sessions.now())
        except AccountError as exc:
            page = yield self._page(request, session, error=sentence(exc), name=name,
                                    chosen=chosen)
            return page
        page = yield self._page(request, session,
                                created={"name": new.name, "password": new.shown})
        return page

    @app.route("/revoke", methods=["POST"])
    @changes_state
    @signed_in
    @defer.inlineCallbacks
    def revoke(self, request: WebRequest, session: Session) -> Any:
        try:
            yield self._runner.write(self._admin.revoke_app_password, session.email,
                                     form_field(request, "name"))
        except AccountError:
            page = yield self._page(request, session,
                                    error="That app password does not exist (any more).")
            return page
        return see_other(request, "/account/app-passwords/")

