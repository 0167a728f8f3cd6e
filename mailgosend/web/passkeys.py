# -*- test-case-name: tests.test_web_passkeys -*-
"""The passkey pages, mounted under /passkeys by web/account.py (auth/passkeys.py holds the
WebAuthn rules, static/js/passkeys.js the browser side).

Routes:
  GET  /passkeys                     the user's passkeys, "Add a passkey", Remove (routed
                                     by web/account.py, the rest by this module's app)
  POST /passkeys/register/options    JSON: options for navigator.credentials.create
  POST /passkeys/register            JSON {name, credential}: verify and store
  POST /passkeys/<id>/remove         form: remove one of the user's own passkeys
  POST /passkeys/login/options       JSON: options for navigator.credentials.get, for a
                                     sign-in whose pending step is "passkey"
Every POST passes the same CSRF and Origin check as the other pages (``X-CSRF-Token`` for
the JSON requests); the sign-in itself completes through POST /login/step (web/login.py).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from werkzeug.exceptions import HTTPException

from mailgosend.auth import passkeys as rules
from mailgosend.db.runner import DatabaseRunner
from mailgosend.store import accounts
from mailgosend.store import passkeys as store
from mailgosend.web.forms import changes_state, signed_in
from mailgosend.web.replies import see_other
from mailgosend.web.request import WebRequest
from mailgosend.web.sessions import Session

log = Logger()

NAME_MAX = 64
NO_HOST_NAME = ("Passkeys work only when this site is opened by its host name, not by an IP "
                "address.")


class PasskeyPages:
    app = Klein()

    def __init__(self, *, pages: Any, runner: DatabaseRunner, step: rules.PasskeyStep,
                 clock: Any) -> None:
        self._pages = pages
        self.sessions = pages.sessions
        self._runner = runner
        self._step = step
        self._clock = clock

    def resource(self) -> Any:
        return self.app.resource()

    def render(self, request: WebRequest, template: str, session: Optional[Session],
               **context: Any) -> bytes:
        return self._pages.render(request, template, session, **context)  # type: ignore

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), timezone.utc)

    @staticmethod
    def _json(request: WebRequest, code: int, value: Any) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps(value).encode()

    def _refuse(self, request: WebRequest, code: int, message: str) -> bytes:
        return self._json(request, code, {"error": message})

    @staticmethod
    def _body(request: WebRequest) -> dict[str, Any]:
        if request.content is None:
            return {}
        try:
            request.content.seek(0)
            value = json.loads(request.content.read() or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    # --- the list ------------------------------------------------------------
    @defer.inlineCallbacks
    def list_page(self, request: WebRequest) -> Any:
        session = yield self.sessions.load(request)
        if session is None or not session.signed_in:
            return see_other(request, "/login")
        return (yield self._list(request, session))

    @defer.inlineCallbacks
    def _list(self, request: WebRequest, session: Session, error: str = "",
              notice: str = "") -> Any:
        rows = yield self._runner.read(store.list_for, session.user_id)
        listed = [{"id": p.id, "name": p.name, "created": when_text(p.created_at),
                   "last_used": when_text(p.last_used_at) if p.last_used_at else "never"}
                  for p in rows]
        usable = rules.rp_id_for(request.host_name()) is not None
        return self.render(request, "account/passkeys.html", session, passkeys=listed,
                           usable=usable, no_host_name=NO_HOST_NAME, error=error,
                           notice=notice)

    # --- registration --------------------------------------------------------
    @app.route("/register/options", methods=["POST"])
    @changes_state
    @defer.inlineCallbacks
    def register_options(self, request: WebRequest, session: Optional[Session]) -> Any:
        if session is None or not session.signed_in:
            return self._refuse(request, 403, "Sign in first.")
        rp_id = rules.rp_id_for(request.host_name())
        if rp_id is None:
            return self._refuse(request, 400, NO_HOST_NAME)
        user = yield self._runner.read(accounts.find_user_by_id, session.user_id)
        existing = yield self._runner.read(store.list_for, session.user_id, rp_id)
        challenge = rules.new_challenge()
        now = self._now()
        yield self._runner.write(store.put_challenge, challenge, session.id, session.user_id,
                                 "register", rp_id, request.own_origin(),
                                 now + timedelta(seconds=rules.CHALLENGE_SECONDS), now)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return rules.registration_options(challenge, rp_id, user, existing).encode()

    @app.route("/register", methods=["POST"])
    @changes_state
    @defer.inlineCallbacks
    def register(self, request: WebRequest, session: Optional[Session]) -> Any:
        if session is None or not session.signed_in:
            return self._refuse(request, 403, "Sign in first.")
        body = self._body(request)
        name = " ".join(str(body.get("name", "")).split())
        if not name or len(name) > NAME_MAX or not name.isprintable():
            return self._refuse(request, 400, f"Give the passkey a name of 1 to {NAME_MAX} "
                                              "characters.")
        credential = body.get("credential")
        try:
            if not isinstance(credential, dict):
                raise rules.PasskeyRefused("no credential")
            challenge = rules.challenge_of(credential)
            stored = yield self._runner.write(store.take_challenge, challenge, "register",
                                              self._now(), user_id=session.user_id,
                                              session_id=session.id)
            if stored is None:
                raise rules.PasskeyRefused("unknown, expired or already used challenge")
            new = rules.verify_registration(credential, challenge, stored.rp_id,
                                            stored.origin)
        except rules.PasskeyRefused as exc:
            log.info("web: passkey registration for {user} from {ip} refused: {why}",
                     user=session.email, ip=request.client_ip, why=str(exc))
            return self._refuse(request, 400, "The passkey could not be verified. Try "
                                              "again.")
        try:
            yield self._runner.write(store.add, session.user_id, name, new.credential_id,
                                     new.public_key, new.sign_count, new.transports,
                                     stored.rp_id, self._now())
        except store.NameTaken:
            return self._refuse(request, 409, "You already have a passkey with this name, "
                                              "or this passkey is already registered.")
        log.info("web: {user} added a passkey", user=session.email)
        return self._json(request, 200, {"ok": True})

    @app.route("/<int:passkey_id>/remove", methods=["POST"])
    @changes_state
    @signed_in
    @defer.inlineCallbacks
    def remove(self, request: WebRequest, session: Session,
               passkey_id: int) -> Any:
        removed = yield self._runner.write(store.remove, session.user_id, passkey_id)
        if removed:
            log.info("web: {user} removed a passkey", user=session.email)
        return see_other(request, "/passkeys")

    # --- sign-in -------------------------------------------------------------
    @app.route("/login/options", methods=["POST"])
    @changes_state
    @defer.inlineCallbacks
    def login_options(self, request: WebRequest, session: Optional[Session]) -> Any:
        if session is None or session.pending_step != self._step.name:
            return self._refuse(request, 403, "Sign in with your password first.")
        rp_id = rules.rp_id_for(request.host_name())
        if rp_id is None:
            return self._refuse(request, 400, NO_HOST_NAME)
        user = yield self._runner.read(accounts.find_user_by_id, session.user_id)
        if user is None:
            return self._refuse(request, 403, "Sign in with your password first.")
        options = yield self._step.begin(user, session.id, rp_id, request.own_origin())
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return options.encode()

    # --- errors --------------------------------------------------------------
    @app.handle_errors(HTTPException)  # type: ignore[arg-type]
    def http_error(self, request: WebRequest, failure: Failure) -> Any:
        return self._pages.http_error(request, failure)

    @app.handle_errors(Exception)  # type: ignore[arg-type]
    def server_error(self, request: WebRequest, failure: Failure) -> Any:
        return self._pages.server_error(request, failure)


def when_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")

