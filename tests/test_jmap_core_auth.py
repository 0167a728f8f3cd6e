"""Who may call the JMAP endpoint (jmap/auth.py): the web session cookie with the web
layer's CSRF rule, HTTP Basic and Bearer with app passwords of the "jmap" scope, through
the Portal, so wrong passwords count toward bans and MFA users need app passwords."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from twisted.internet import defer

from mailgosend.admin import AccountAdmin, AccountPolicy
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import login_attempts, security_events
from mailgosend.jmap.methods import CORE
from mailgosend.store import accounts
from mailgosend.store import mfa as mfa_store
from tests.support.mailserver import PASSWORD
from tests.support.web import csrf_from
from tests.test_jmap_core import ALICE, BOB, JMAPTestCase

ECHO = {"using": [CORE], "methodCalls": [["Core/echo", {"ok": 1}, "c"]]}


class AuthTests(JMAPTestCase):
    settings = {"BRUTE_MAX_TRIES": "4"}

    def app_password(self, *protocols: str, email: str = ALICE, name: str = "app") -> str:
        admin = AccountAdmin(AccountPolicy(bcrypt_cost=4))
        new = admin.make_app_password(name, protocols)
        run_sync(self.server.engine, admin.add_app_password, email, new,
                 datetime.now(timezone.utc), write=True)
        return str(new.shown)

    def mfa_on(self, email: str = ALICE) -> None:
        user = run_sync(self.server.engine, accounts.get_user, email, write=False)
        run_sync(self.server.engine, mfa_store.begin_enrolment, user.id, b"sealed", write=True)
        run_sync(self.server.engine, mfa_store.enable, user.id, datetime.now(timezone.utc),
                 [], write=True)

    def failures(self) -> int:
        return int(run_sync(self.server.engine, lambda c: c.execute(
            select(func.count()).select_from(login_attempts).where(
                login_attempts.c.success.is_(False),
                login_attempts.c.service == "jmap")).scalar_one(), write=False))

    def events(self) -> list[str]:
        return [r.kind for r in run_sync(self.server.engine, lambda c: list(c.execute(
            select(security_events))), write=False)]

    def echo(self, **kwargs: Any) -> Any:
        return self.http("POST", "/jmap/api", json=ECHO, **kwargs)

    @defer.inlineCallbacks
    def test_no_credentials_is_401_with_basic_challenge(self) -> Any:
        for method, path in (("GET", "/.well-known/jmap"), ("POST", "/jmap/api"),
                             ("GET", "/jmap/eventsource/"),
                             ("GET", "/jmap/download/Ax/Uxxxxxxxxxxxxxxxxxxx/f")):
            reply = yield self.http(method, path, auth=None)
            self.assertEqual(reply.status_code, 401, path)
            self.assertEqual(reply.headers["WWW-Authenticate"],
                             'Basic realm="mailgosend JMAP", charset="UTF-8"')
        reply = yield self.http("GET", "/.well-known/jmap", auth=None,
                                headers={"Authorization": "Digest x"})
        self.assertEqual(reply.status_code, 401)

    @defer.inlineCallbacks
    def test_basic_with_an_app_password(self) -> Any:
        shown = self.app_password("jmap")
        reply = yield self.echo(auth=(ALICE, shown))
        self.assertEqual(reply.status_code, 200, reply.text)
        self.assertEqual(reply.json()["methodResponses"][0][1], {"ok": 1})
        # Typed with spaces instead of dashes, as people do: the same password.
        reply = yield self.echo(auth=(ALICE, shown.replace("-", " ").upper()))
        self.assertEqual(reply.status_code, 200)

    @defer.inlineCallbacks
    def test_app_password_of_another_scope_is_refused(self) -> Any:
        shown = self.app_password("imap")
        reply = yield self.echo(auth=(ALICE, shown))
        self.assertEqual(reply.status_code, 401)
        self.assertIn("not allowed for JMAP", reply.json()["detail"])
        self.assertIn("login_refused_app_password_scope", self.events())

    @defer.inlineCallbacks
    def test_bearer_with_an_app_password(self) -> Any:
        shown = self.app_password("jmap")
        bob = self.app_password("jmap", email=BOB)
        reply = yield self.http("GET", "/.well-known/jmap", auth=None,
                                headers={"Authorization": f"Bearer {shown}"})
        self.assertEqual(reply.status_code, 200, reply.text)
        self.assertEqual(reply.json()["username"], ALICE)
        reply = yield self.http("GET", "/.well-known/jmap", auth=None,
                                headers={"Authorization": f"Bearer {bob}"})
        self.assertEqual(reply.json()["username"], BOB)
        reply = yield self.http("POST", "/jmap/api", auth=None, json=ECHO,
                                headers={"Authorization": f"Bearer {shown}"})
        self.assertEqual(reply.status_code, 200)
        before = self.failures()
        for wrong in ("abcd" + shown[4:].replace("a", "b"), "not-an-app-password"):
            reply = yield self.http("GET", "/.well-known/jmap", auth=None,
                                    headers={"Authorization": f"Bearer {wrong}"})
            self.assertEqual(reply.status_code, 401)
        self.assertEqual(self.failures(), before + 2)

    @defer.inlineCallbacks
    def test_wrong_password_is_401_and_counts_toward_a_ban(self) -> Any:
        for _ in range(3):
            reply = yield self.echo(auth=(ALICE, "wrong"))
            self.assertEqual(reply.status_code, 401)
            self.assertIn("WWW-Authenticate", reply.headers)
        self.assertEqual(self.failures(), 3)
        reply = yield self.echo()
        self.assertEqual(reply.status_code, 200)
        reply = yield self.echo(auth=(ALICE, "wrong"))
        self.assertEqual(reply.status_code, 401)
        # The fourth failure banned the address: now even the right password is refused,
        # on the whole web port, before any password work.
        reply = yield self.echo()
        self.assertEqual(reply.status_code, 403)
        self.assertEqual(self.failures(), 4)

    @defer.inlineCallbacks
    def test_malformed_basic_is_401(self) -> Any:
        for value in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()):
            reply = yield self.http("GET", "/.well-known/jmap", auth=None,
                                    headers={"Authorization": value})
            self.assertEqual(reply.status_code, 401, value)

    @defer.inlineCallbacks
    def test_mfa_user_needs_an_app_password(self) -> Any:
        self.mfa_on()
        reply = yield self.echo()
        self.assertEqual(reply.status_code, 401)
        self.assertIn("app password", reply.json()["detail"])
        self.assertIn("login_refused_mfa_password", self.events())
        shown = self.app_password("jmap")
        reply = yield self.echo(auth=(ALICE, shown))
        self.assertEqual(reply.status_code, 200)

    @defer.inlineCallbacks
    def test_web_session_cookie_and_csrf(self) -> Any:
        web = self.client()
        signed = yield web.sign_in(ALICE, PASSWORD)
        self.assertEqual(signed.status_code, 303)
        # Reading needs only the cookie.
        session = yield web.get("/.well-known/jmap")
        self.assertEqual(session.status_code, 200, session.text)
        self.assertEqual(session.json()["username"], ALICE)
        home = yield web.get("/")
        token = csrf_from(home.text)
        ok = yield web.post("/jmap/api", json=ECHO, headers={"X-CSRF-Token": token})
        self.assertEqual(ok.status_code, 200, ok.text)
        self.assertEqual(ok.json()["methodResponses"][0][1], {"ok": 1})
        # Another site making the signed-in browser post: refused, with or without a token.
        for origin, headers in (("https://evil.example", {"X-CSRF-Token": token}),
                                ("same", {}), ("same", {"X-CSRF-Token": "forged"})):
            refused = yield web.post("/jmap/api", json=ECHO, origin=origin, headers=headers)
            self.assertEqual(refused.status_code, 403, (origin, headers))
        # A signed-out cookie opens nothing.
        yield web.post("/logout", {"csrf_token": token})
        gone = yield web.get("/.well-known/jmap")
        self.assertEqual(gone.status_code, 401)


class RateLimitTests(JMAPTestCase):
    settings = {"JMAP_RATE_PER_MIN": "3", "WEB_RATE_PER_MIN": "2", "BRUTE_MAX_TRIES": "100"}

    @defer.inlineCallbacks
    def test_jmap_posts_have_their_own_rate_limit(self) -> Any:
        statuses = []
        for _ in range(4):
            reply = yield self.http("POST", "/jmap/api", json=ECHO)
            statuses.append(reply.status_code)
        self.assertEqual(statuses, [200, 200, 200, 429])
        self.assertIn("Retry-After", reply.headers)
        # Reading is not limited, and the sign-in pages keep their own budget.
        reply = yield self.http("GET", "/.well-known/jmap")
        self.assertEqual(reply.status_code, 200)
        web = self.client()
        signed = yield web.sign_in(ALICE, PASSWORD)
        self.assertEqual(signed.status_code, 303)
