"""The web and admin ports over raw HTTP (requests): security headers on every kind of
response, cookie attributes, CSRF refusals that change nothing, session fixation, rate
limits, bans shared with IMAP, Host checking, body limits, sign-in rules."""

from __future__ import annotations

import imaplib
import json
from typing import Any

import requests
from twisted.internet import defer, threads

from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from tests.support.mailserver import PASSWORD
from tests.support.web import WebClient, WebServerTestCase, csrf_from

ALICE = "alice@example.com"
ADMIN = "root@example.com"

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def plant(client: WebClient, name: str, value: str) -> None:
    """A cookie as the server's own would be stored (host-only, Path=/)."""
    client.http.cookies.set(name, value, domain="127.0.0.1", path="/")


def session_id_of(html: str) -> list[str]:
    """The ids in the page's "End session" forms (the other sessions)."""
    import re
    return re.findall(r'action="/sessions/(\d+)/end"', html)


class HeaderTests(WebServerTestCase):
    def assert_security_headers(self, response: Any, https: bool = False) -> None:
        for name, value in HEADERS.items():
            self.assertEqual(response.headers.get(name), value, name)
        csp = response.headers["Content-Security-Policy"]
        self.assertIn("default-src 'none'", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertNotIn("http", csp)        # no remote origin
        self.assertIn("camera=()", response.headers["Permissions-Policy"])
        if https:
            self.assertEqual(response.headers["Strict-Transport-Security"], "max-age=31536000")
        else:
            self.assertNotIn("Strict-Transport-Security", response.headers)

    @defer.inlineCallbacks
    def test_every_kind_of_response_carries_the_security_headers(self) -> Any:
        web, admin = self.client(), self.client(admin=True)
        page = yield web.get("/login")
        self.assertEqual(page.status_code, 200)
        self.assertTrue(page.headers["Content-Type"].startswith("text/html"))
        health = yield admin.get("/healthz")
        self.assertEqual(json.loads(health.text)["status"], "ok")
        missing = yield web.get("/no/such/page")
        self.assertEqual(missing.status_code, 404)
        self.assertIn("Page not found", missing.text)
        self.assertNotIn("Traceback", missing.text)
        css = yield web.get("/static/css/app.css")
        self.assertEqual(css.status_code, 200)
        refused = yield web.post("/logout", {})
        self.assertEqual(refused.status_code, 403)
        wrong_method = yield web.post("/static/css/app.css", {})
        self.assertIn(wrong_method.status_code, (403, 405))
        for response in (page, health, missing, css, refused, wrong_method):
            self.assert_security_headers(response)

    @defer.inlineCallbacks
    def test_static_files_have_a_hash_url_a_year_of_cache_and_an_etag(self) -> Any:
        web = self.client()
        page = yield web.get("/login")
        import re
        url = re.search(r'href="(/static/css/app\.css\?v=[0-9a-f]+)"', page.text).group(1)
        hashed = yield web.get(url)
        self.assertEqual(hashed.headers["Cache-Control"], "public, max-age=31536000, immutable")
        self.assertTrue(hashed.headers["Content-Type"].startswith("text/css"))
        etag = hashed.headers["ETag"]
        again = yield web.get("/static/css/app.css", headers={"If-None-Match": etag})
        self.assertEqual(again.status_code, 304)
        self.assertEqual(again.headers["Cache-Control"], "no-cache")
        self.assertEqual((yield web.get("/static/../setup.py")).status_code, 404)

    @defer.inlineCallbacks
    def test_unknown_host_header_is_refused(self) -> Any:
        web = self.client()
        for host, status in [("evil.example", 421), ("mx.mailgo.test", 200),
                             ("localhost:1234", 200), ("127.0.0.1", 200),
                             ("[::1]:8080", 200)]:
            response = yield web.get("/login", headers={"Host": host})
            self.assertEqual(response.status_code, status, host)

    @defer.inlineCallbacks
    def test_a_body_over_the_form_limit_gets_413(self) -> Any:
        web = self.client()
        response = yield web.post("/login", data={"email": "x" * 100_000})
        self.assertEqual(response.status_code, 413)


class SignInTests(WebServerTestCase):
    users = (ALICE, ADMIN)

    def setUp(self):  # type: ignore[no-untyped-def]
        d = super().setUp()
        d.addCallback(lambda _: run_sync(self.server.engine, accounts.set_user_admin, ADMIN,
                                         True, write=True))
        return d

    @defer.inlineCallbacks
    def test_sign_in_sets_a_strict_httponly_cookie_and_shows_the_account(self) -> Any:
        web = self.client()
        response = yield web.sign_in(ALICE, PASSWORD)
        self.assertEqual((response.status_code, response.headers["Location"]), (303, "/"))
        cookie = response.headers["Set-Cookie"]
        self.assertIn("mailgosend-web-session=", cookie)
        for attribute in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age=604800"):
            self.assertIn(attribute, cookie)
        self.assertNotIn("Secure", cookie)     # plain HTTP, SECURE_COOKIE off
        home = yield web.get("/")
        self.assertEqual(home.status_code, 200)
        self.assertIn(f"Signed in as <strong class=\"font-semibold\">{ALICE}</strong>",
                      home.text)

    @defer.inlineCallbacks
    def test_wrong_password_and_unknown_account_get_the_same_answer(self) -> Any:
        answers = []
        for email, password in [(ALICE, "wrong"), ("nobody@example.com", "wrong"),
                                ("not an address", "wrong")]:
            response = yield self.client().sign_in(email, password)
            answers.append((response.status_code, "The email address or password is not "
                            "correct." in response.text, "Set-Cookie" in response.headers
                            and "-session=" in response.headers["Set-Cookie"]))
        self.assertEqual(answers, [(403, True, False)] * 3)

    @defer.inlineCallbacks
    def test_the_admin_port_takes_administrators_only(self) -> Any:
        refused = yield self.client(admin=True).sign_in(ALICE, PASSWORD)
        self.assertEqual(refused.status_code, 403)
        self.assertIn("The email address or password is not correct.", refused.text)
        admin = self.client(admin=True)
        accepted = yield admin.sign_in(ADMIN, PASSWORD)
        self.assertEqual(accepted.status_code, 303)
        self.assertIn("mailgosend-admin-session=", accepted.headers["Set-Cookie"])
        home = yield admin.get("/")
        self.assertIn("(administrator)", home.text)

    @defer.inlineCallbacks
    def test_sign_ins_are_recorded_as_login_attempts_and_security_events(self) -> Any:
        from sqlalchemy import select

        from mailgosend.db.schema import login_attempts, security_events
        yield self.client().sign_in(ALICE, "wrong")
        yield self.client().sign_in(ALICE, PASSWORD)
        yield self.client(admin=True).sign_in(ALICE, PASSWORD)
        yield self.client(admin=True).sign_in(ADMIN, PASSWORD)
        attempts = run_sync(self.server.engine, lambda c: [tuple(r) for r in c.execute(
            select(login_attempts.c.username, login_attempts.c.service,
                   login_attempts.c.success).order_by(login_attempts.c.id))], write=False)
        self.assertEqual(attempts, [(ALICE, "web", False), (ALICE, "web", True),
                                    (ALICE, "admin", True), (ADMIN, "admin", True)])
        events = run_sync(self.server.engine, lambda c: [tuple(r) for r in c.execute(
            select(security_events.c.kind, security_events.c.username,
                   security_events.c.service))], write=False)
        self.assertIn(("login_refused_not_admin", ALICE, "admin"), events)

    @defer.inlineCallbacks
    def test_admin_and_web_sessions_are_separate(self) -> Any:
        # One cookie jar for both ports, as a browser has (cookies ignore ports).
        web = self.client()
        yield web.sign_in(ADMIN, PASSWORD)
        admin = WebClient(self.admin_base)
        admin.http = web.http
        self.assertEqual((yield admin.get("/")).headers["Location"], "/login")
        session = web.http.cookies.get("mailgosend-web-session")
        plant(admin, "mailgosend-admin-session", session)
        self.assertEqual((yield admin.get("/")).headers["Location"], "/login")

    @defer.inlineCallbacks
    def test_a_planted_session_cookie_is_replaced_at_sign_in(self) -> Any:
        web = self.client()
        planted = "ab" * 32
        plant(web, "mailgosend-web-session", planted)
        yield web.sign_in(ALICE, PASSWORD)
        self.assertNotEqual(web.http.cookies.get("mailgosend-web-session"), planted)
        attacker = self.client()
        plant(attacker, "mailgosend-web-session", planted)
        self.assertEqual((yield attacker.get("/")).headers["Location"], "/login")

    @defer.inlineCallbacks
    def test_signing_in_again_issues_a_new_token(self) -> Any:
        web = self.client()
        yield web.sign_in(ALICE, PASSWORD)
        first = web.http.cookies.get("mailgosend-web-session")
        thief = self.client()
        plant(thief, "mailgosend-web-session", first)
        web.http.cookies.clear()
        yield web.sign_in(ALICE, PASSWORD)
        self.assertNotEqual(web.http.cookies.get("mailgosend-web-session"), first)
        self.assertEqual((yield thief.get("/")).status_code, 200)   # its own, older session

    @defer.inlineCallbacks
    def test_sign_out_ends_the_session_on_the_server(self) -> Any:
        web = self.client()
        yield web.sign_in(ALICE, PASSWORD)
        token = web.http.cookies.get("mailgosend-web-session")
        home = yield web.get("/")
        response = yield web.post("/logout", {"csrf_token": csrf_from(home.text)})
        self.assertEqual((response.status_code, response.headers["Location"]), (303, "/login"))
        replay = self.client()
        plant(replay, "mailgosend-web-session", token)
        self.assertEqual((yield replay.get("/")).headers["Location"], "/login")

    @defer.inlineCallbacks
    def test_a_user_ends_another_of_their_sessions_but_not_someone_elses(self) -> Any:
        phone, laptop, bob = self.client(), self.client(), self.client(admin=False)
        yield phone.sign_in(ALICE, PASSWORD)
        yield laptop.sign_in(ALICE, PASSWORD)
        yield bob.sign_in(ADMIN, PASSWORD)
        home = yield laptop.get("/")
        others = session_id_of(home.text)
        self.assertEqual(len(others), 1)
        bob_home = yield bob.get("/")
        refused = yield bob.post(f"/sessions/{others[0]}/end",
                                 {"csrf_token": csrf_from(bob_home.text)})
        self.assertEqual(refused.status_code, 303)
        self.assertEqual((yield phone.get("/")).status_code, 200)    # not Bob's to end
        yield laptop.post(f"/sessions/{others[0]}/end", {"csrf_token": csrf_from(home.text)})
        self.assertEqual((yield phone.get("/")).headers["Location"], "/login")
        self.assertEqual((yield laptop.get("/")).status_code, 200)

    @defer.inlineCallbacks
    def test_csrf_refusals_change_nothing(self) -> Any:
        phone, laptop, other = self.client(), self.client(), self.client()
        yield phone.sign_in(ALICE, PASSWORD)
        yield laptop.sign_in(ALICE, PASSWORD)
        yield other.sign_in(ADMIN, PASSWORD)
        home = yield laptop.get("/")
        target = session_id_of(home.text)[0]
        token = csrf_from(home.text)
        others_token = csrf_from((yield other.get("/")).text)
        attempts = [({}, "same"), ({"csrf_token": "forged"}, "same"),
                    ({"csrf_token": others_token}, "same"),
                    ({"csrf_token": token}, "https://evil.example"),
                    ({"csrf_token": token}, "null")]
        for data, origin in attempts:
            response = yield laptop.post(f"/sessions/{target}/end", data, origin=origin)
            self.assertEqual(response.status_code, 403, (data, origin))
            response = yield laptop.post("/logout", data, origin=origin)
            self.assertEqual(response.status_code, 403, (data, origin))
        self.assertEqual((yield phone.get("/")).status_code, 200)
        self.assertEqual((yield laptop.get("/")).status_code, 200)
        # The token of the pre-sign-in form is not valid for the signed-in session either.
        fresh = self.client()
        form = yield fresh.get("/login")
        yield fresh.post("/login", {"csrf_token": csrf_from(form.text), "email": ALICE,
                                    "password": PASSWORD})
        response = yield fresh.post("/logout", {"csrf_token": csrf_from(form.text)})
        self.assertEqual(response.status_code, 403)
        # JSON-style requests carry the token in X-CSRF-Token.
        response = yield laptop.post("/logout", headers={"X-CSRF-Token": token})
        self.assertEqual(response.status_code, 303)

    @defer.inlineCallbacks
    def test_sign_in_without_the_form_token_is_refused(self) -> Any:
        web = self.client()
        yield web.get("/login")
        response = yield web.post("/login", {"email": ALICE, "password": PASSWORD})
        self.assertEqual(response.status_code, 403)
        self.assertNotIn("-session=", response.headers.get("Set-Cookie", ""))


class ProxyTests(WebServerTestCase):
    settings = {"TRUSTED_PROXIES": "127.0.0.0/8"}

    def through_proxy(self, method: str, path: str, cookies: dict[str, str],
                      **kwargs: Any) -> Any:
        """A request as a TLS-terminating proxy on 127.0.0.1 forwards it."""
        headers = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https",
                   "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
        return threads.deferToThread(requests.request, method, self.web_base + path,
                                     headers=headers, timeout=30, allow_redirects=False,
                                     **kwargs)

    @defer.inlineCallbacks
    def test_a_trusted_proxy_names_the_client_and_its_scheme(self) -> Any:
        from twisted.logger import formatEvent, globalLogPublisher

        lines: list[str] = []
        observer = lambda event: lines.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        form = yield self.through_proxy("GET", "/login", {})
        self.assertIn('"198.51.100.7" - - [', "\n".join(lines))
        self.assertEqual(form.headers["Strict-Transport-Security"], "max-age=31536000")
        cookies = {"__Host-mailgosend-web-pre": form.cookies["__Host-mailgosend-web-pre"]}
        response = yield self.through_proxy(
            "POST", "/login", cookies, data={"csrf_token": csrf_from(form.text),
                                             "email": ALICE, "password": PASSWORD})
        self.assertEqual(response.status_code, 303)
        cookie = response.headers["Set-Cookie"]
        self.assertIn("__Host-mailgosend-web-session=", cookie)
        self.assertIn("Secure", cookie)
        cookies["__Host-mailgosend-web-session"] = response.cookies[
            "__Host-mailgosend-web-session"]
        home = yield self.through_proxy("GET", "/", cookies)
        self.assertIn("198.51.100.7", home.text)


class UntrustedProxyTests(WebServerTestCase):
    @defer.inlineCallbacks
    def test_forwarded_headers_are_ignored_without_trusted_proxies(self) -> Any:
        web = self.client()
        form = yield web.get("/login", headers={"X-Forwarded-For": "198.51.100.7",
                                                "X-Forwarded-Proto": "https"})
        self.assertNotIn("Strict-Transport-Security", form.headers)
        response = yield web.post("/login", {"csrf_token": csrf_from(form.text),
                                             "email": ALICE, "password": PASSWORD},
                                  headers={"X-Forwarded-For": "198.51.100.7"})
        self.assertNotIn("Secure", response.headers["Set-Cookie"])
        home = yield web.get("/")
        self.assertNotIn("198.51.100.7", home.text)
        self.assertIn("127.0.0.1", home.text)


class RateLimitTests(WebServerTestCase):
    settings = {"ADMIN_RATE_PER_MIN": "5", "BRUTE_MAX_TRIES": "1000"}

    @defer.inlineCallbacks
    def test_a_script_meets_429_with_retry_after_and_pages_stay_readable(self) -> Any:
        admin = self.client(admin=True)
        form = yield admin.get("/login")
        statuses = []
        for _ in range(6):
            response = yield admin.post("/login", {"csrf_token": csrf_from(form.text),
                                                   "email": ALICE, "password": "wrong"})
            statuses.append(response.status_code)
        self.assertEqual(statuses, [403] * 5 + [429])
        self.assertGreaterEqual(int(response.headers["Retry-After"]), 1)
        self.assertEqual((yield admin.get("/login")).status_code, 200)
        self.assertEqual((yield admin.get("/static/css/app.css")).status_code, 200)
        # The web port has its own, larger budget (WEB_RATE_PER_MIN).
        web = self.client()
        self.assertEqual((yield web.sign_in(ALICE, PASSWORD)).status_code, 303)


class SharedBanTests(WebServerTestCase):
    settings = {"BRUTE_MAX_TRIES": "3"}

    def imap_login(self, password: str) -> None:
        client = imaplib.IMAP4_SSL("127.0.0.1", self.server.ports["IMAPS"],
                                   ssl_context=self.server.client_tls(), timeout=20)
        try:
            client.login(ALICE, password)
        finally:
            try:
                client.logout()
            except imaplib.IMAP4.error:
                pass

    @defer.inlineCallbacks
    def test_an_address_banned_over_imap_is_refused_on_the_web(self) -> Any:
        for _ in range(3):
            yield self.assertFailure(threads.deferToThread(self.imap_login, "wrong"),
                                     imaplib.IMAP4.error)
        response = yield self.client().get("/login")
        self.assertEqual(response.status_code, 403)
        self.assertIn("Too many failed sign-ins", response.text)

    @defer.inlineCallbacks
    def test_an_address_banned_on_the_web_is_refused_over_imap(self) -> Any:
        for _ in range(3):
            response = yield self.client().sign_in(ALICE, "wrong")
            self.assertEqual(response.status_code, 403)
        yield self.assertFailure(threads.deferToThread(self.imap_login, PASSWORD),
                                 imaplib.IMAP4.error)
        self.assertEqual((yield self.client().get("/login")).status_code, 403)


class HTTPSTests(WebServerTestCase):
    settings = {"WEB_TLS": "true"}

    def setUp(self):  # type: ignore[no-untyped-def]
        d = super().setUp()
        self.web_base = self.web_base.replace("http://", "https://")
        self.admin_base = self.admin_base.replace("http://", "https://")
        return d

    def client(self, admin: bool = False) -> WebClient:
        return WebClient(self.admin_base if admin else self.web_base,
                         verify=self.server.ca.cert_path)

    @defer.inlineCallbacks
    def test_https_brings_hsts_and_host_prefixed_secure_cookies(self) -> Any:
        web = self.client()
        page = yield web.get("/login")
        self.assertEqual(page.headers["Strict-Transport-Security"], "max-age=31536000")
        response = yield web.sign_in(ALICE, PASSWORD)
        cookie = response.headers["Set-Cookie"]
        self.assertTrue(cookie.startswith("__Host-mailgosend-web-session="), cookie)
        self.assertIn("Secure", cookie)
        self.assertEqual((yield web.get("/")).status_code, 200)
        health = yield self.client(admin=True).get("/healthz")
        self.assertEqual(health.status_code, 200)
