# -*- test-case-name: tests.test_web_mfa -*-
"""The two-factor pages of a signed-in user, mounted under /account/mfa/ (web/account.py):

  GET  /account/mfa/                 whether MFA is on, and the forms below
  POST /account/mfa/start            a new secret: the QR code (inline SVG made by segno,
                                     which the CSP allows) and the secret as text
  POST /account/mfa/confirm          a code from the app turns MFA on; the 10 recovery
                                     codes are shown this once (a wrong code shows the
                                     same secret again)
  POST /account/mfa/recovery-codes   a code from the app; new recovery codes, old ones void
  POST /account/mfa/disable          the password and a code turn MFA off

The rules are auth/mfa.py's (SecondFactor).  Every POST passes the CSRF and Origin check of
web/account.py; turning MFA on or off is a privilege change, so the session gets a new
token (web/sessions.py ``start``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from klein import Klein
from twisted.internet import defer

from mailgosend.auth.mfa import MFAError, SecondFactor
from mailgosend.db.runner import DatabaseRunner
from mailgosend.store import accounts
from mailgosend.web.account import AccountPages
from mailgosend.web.forms import changes_state, form_field, signed_in
from mailgosend.web.replies import see_other, sentence
from mailgosend.web.request import WebRequest
from mailgosend.web.sessions import Session

HOME = "/account/mfa/"


class MFAPages:
    app = Klein()

    def __init__(self, pages: AccountPages, runner: DatabaseRunner, factor: SecondFactor,
                 workers: Any) -> None:
        self._factor = factor
        self._workers = workers
        self._runner = runner
        self.sessions = pages.sessions          # what changes_state needs
        self.render = pages.render

    def resource(self) -> Any:
        return self.app.resource()

    def _now(self) -> datetime:
        return self.sessions.now()

    @defer.inlineCallbacks
    def _overview(self, request: WebRequest, session: Session, error: str = "",
                  notice: str = "") -> Any:
        enabled = yield self._runner.read(self._factor.is_enabled, session.email)
        left = 0
        if enabled:
            left = yield self._runner.read(self._factor.recovery_codes_left, session.email)
        if error:
            request.setResponseCode(400)
        return self.render(request, "account/mfa.html", session, enabled=enabled,
                           recovery_left=left, error=error, notice=notice)

    @app.route("/", methods=["GET", "HEAD"])
    @defer.inlineCallbacks
    def overview(self, request: WebRequest) -> Any:
        session = yield self.sessions.load(request)
        if session is None or not session.signed_in:
            return see_other(request, "/login")
        page = yield self._overview(request, session)
        return page

    @app.route("/start", methods=["POST"])
    @changes_state
    @signed_in
    @defer.inlineCallbacks
    def start(self, request: WebRequest, session: Session) -> Any:
        try:
            enrolment = yield self._runner.write(self._factor.start_enrolment, session.email)
        except MFAError as exc:
            page = yield self._overview(request, session, error=sentence(exc))
            return page
        return self.render(request, "account/mfa_enrol.html", session,
                           qr_svg=enrolment.qr_svg, secret=enrolment.secret, error="")

    @app.route("/confirm", methods=["POST"])
    @changes_state
    @signed_in
    @defer.inlineCallbacks
    def confirm(self, request: WebRequest, session: Session) -> Any:
        try:
            codes = yield self._runner.write(self._factor.confirm_enrolment, session.email,
                                             form_field(request, "code").strip(), self._now())
        except MFAError as exc:
            # The app may already hold the secret: show the same one again.
            pending = yield self._runner.read(self._factor.pending_enrolment, session.email)
            if pending is None:
                page = yield self._overview(request, session, error=sentence(exc))
                return page
            request.setResponseCode(400)
            return self.render(request, "account/mfa_enrol.html", session,
                               qr_svg=pending.qr_svg, secret=pending.secret,
                               error=sentence(exc))
        session = yield self.sessions.start(request, session.user_id, session.email, None)
        return self.render(request, "account/mfa_codes.html", session, codes=codes,
                           enabled_now=True)

    @app.route("/recovery-codes", methods=["POST"])
    @changes_state
    @signed_in
    @defer.inlineCallbacks
    def recovery_codes(self, request: WebRequest, session: Session) -> Any:
        try:
            codes = yield self._runner.write(self._factor.new_recovery_codes, session.email,
                                             form_field(request, "code").strip(), self._now())
        except MFAError as exc:
            page = yield self._overview(request, session, error=sentence(exc))
            return page
        return self.render(request, "account/mfa_codes.html", session, codes=codes,
                           enabled_now=False)

    @app.route("/disable", methods=["POST"])
    @changes_state
    @signed_in
    @defer.inlineCallbacks
    def disable(self, request: WebRequest, session: Session) -> Any:
        user = yield self._runner.read(accounts.get_user, session.email)
        try:
            # bcrypt runs in the worker pool, outside the transaction (auth/mfa.py note 4).
            proof = yield self._workers.run(self._factor.prove_password, user,
                                            form_field(request, "password"))
            yield self._runner.write(self._factor.disable, proof,
                                     form_field(request, "code").strip(), self._now())
        except MFAError as exc:
            page = yield self._overview(request, session, error=sentence(exc))
            return page
        session = yield self.sessions.start(request, session.user_id, session.email, None)
        page = yield self._overview(request, session,
                                    notice="Two-factor authentication is now off.")
        return page

