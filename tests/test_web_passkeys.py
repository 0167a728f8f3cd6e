"""Passkeys (WebAuthn) end to end: enrolment from the account page, the sign-in step "Use
your passkey", removal; raw HTTP with a software authenticator for what a browser would
never send (a wrong origin, a replayed answer); and a real Chromium with the DevTools
virtual authenticator (CTAP2, internal transport, resident key, user verification)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.admin import AccountAdmin, AccountPolicy
from mailgosend.auth.passkeys import rp_id_for
from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from mailgosend.store import passkeys as store
from tests.support.authenticator import SoftAuthenticator, b64url
from tests.support.mailserver import PASSWORD
from tests.support.web import WebClient, WebServerTestCase, csrf_from
from tests.test_mfa_clients import HINT, MFAClientTestBase
from tests.test_web_browser import BrowserTestCase

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the [test] extra installs it
    expect = None

ALICE = "alice@example.com"
EVIL = "http://evil.example"


class RelyingPartyIdTests(unittest.TestCase):
    def test_rp_id_is_the_host_name_never_an_ip_literal(self) -> None:
        for host, expected in [("mail.example.com", "mail.example.com"),
                               ("Mail.Example.COM.", "mail.example.com"),
                               ("localhost", "localhost"), ("127.0.0.1", None),
                               ("::1", None), ("", None)]:
            self.assertEqual(rp_id_for(host), expected, host)


class PasskeyHTTPTests(WebServerTestCase):
    """Raw HTTP against a whole server on localhost (an RP ID must be a host name)."""

    def setUp(self):  # type: ignore[no-untyped-def]
        d = super().setUp()
        self.base = self.web_base.replace("127.0.0.1", "localhost")
        return d

    def web(self) -> WebClient:
        made = WebClient(self.base)
        self.addCleanup(made.http.close)
        return made

    def passkeys_of(self, email: str) -> Any:
        def read(conn: Any) -> Any:
            user = accounts.find_user(conn, email)
            return store.list_for(conn, user.id)
        return run_sync(self.server.engine, read, write=False)

    @defer.inlineCallbacks
    def json_post(self, web: WebClient, path: str, token: str, body: Any = None,
                  origin: str = "same") -> Any:
        answer = yield web.post(path, data=json.dumps(body or {}), origin=origin,
                                headers={"Content-Type": "application/json",
                                         "X-CSRF-Token": token})
        return answer

    @defer.inlineCallbacks
    def enrol(self, web: WebClient, key: SoftAuthenticator, name: str = "Laptop",
              origin: str = "") -> Any:
        page = yield web.get("/passkeys")
        self.assertEqual(page.status_code, 200)
        token = csrf_from(page.text)
        options = yield self.json_post(web, "/passkeys/register/options", token)
        self.assertEqual(options.status_code, 200, options.text)
        self.assertEqual(options.json()["rp"]["id"], "localhost")
        self.assertEqual(options.json()["authenticatorSelection"]["userVerification"],
                         "required")
        answer = key.create(options.json(), origin or self.base)
        done = yield self.json_post(web, "/passkeys/register", token,
                                    {"name": name, "credential": answer})
        return done

    @defer.inlineCallbacks
    def signed_in(self, key: SoftAuthenticator) -> Any:
        web = self.web()
        answer = yield web.sign_in(ALICE, PASSWORD)
        self.assertEqual(answer.headers["Location"], "/")
        done = yield self.enrol(web, key)
        self.assertEqual(done.status_code, 200, done.text)
        return web

    @defer.inlineCallbacks
    def password_step(self) -> Any:
        """A new client past the password: the passkey step is pending."""
        web = self.web()
        answer = yield web.sign_in(ALICE, PASSWORD)
        self.assertEqual(answer.headers["Location"], "/login/step")
        page = yield web.get("/login/step")
        self.assertIn("Use your passkey", page.text)
        return web, csrf_from(page.text)

    @defer.inlineCallbacks
    def assertion(self, web: WebClient, token: str, key: SoftAuthenticator,
                  origin: str = "") -> Any:
        options = yield self.json_post(web, "/passkeys/login/options", token)
        self.assertEqual(options.status_code, 200, options.text)
        self.assertEqual([c["id"] for c in options.json()["allowCredentials"]],
                         [b64url(key.credential_id)])
        return key.get(options.json(), origin or self.base)

    @defer.inlineCallbacks
    def test_enrol_then_sign_in_with_password_and_passkey(self) -> Any:
        key = SoftAuthenticator()
        yield self.signed_in(key)
        rows = yield self.passkeys_of(ALICE)
        self.assertEqual([(p.name, p.credential_id, p.sign_count) for p in rows],
                         [("Laptop", key.credential_id, 0)])
        web, token = yield self.password_step()
        home = yield web.get("/")
        self.assertEqual(home.headers["Location"], "/login/step")
        credential = yield self.assertion(web, token, key)
        done = yield web.post("/login/step", {"csrf_token": token,
                                              "credential": json.dumps(credential)})
        self.assertEqual(done.status_code, 303)
        self.assertEqual(done.headers["Location"], "/")
        home = yield web.get("/")
        self.assertEqual(home.status_code, 200)
        self.assertIn("Signed in as <strong", home.text)
        rows = yield self.passkeys_of(ALICE)
        self.assertEqual(rows[0].sign_count, 1)
        self.assertIsNotNone(rows[0].last_used_at)

    @defer.inlineCallbacks
    def test_wrong_origin_is_refused_at_sign_in(self) -> Any:
        key = SoftAuthenticator()
        yield self.signed_in(key)
        web, token = yield self.password_step()
        credential = yield self.assertion(web, token, key, origin=EVIL)
        refused = yield web.post("/login/step", {"csrf_token": token,
                                                 "credential": json.dumps(credential)})
        self.assertEqual(refused.status_code, 403)
        self.assertIn("could not be verified", refused.text)
        home = yield web.get("/")
        self.assertEqual(home.headers["Location"], "/login/step")

    @defer.inlineCallbacks
    def test_replayed_answer_is_refused(self) -> Any:
        key = SoftAuthenticator()
        yield self.signed_in(key)
        web, token = yield self.password_step()
        credential = yield self.assertion(web, token, key)
        done = yield web.post("/login/step", {"csrf_token": token,
                                              "credential": json.dumps(credential)})
        self.assertEqual(done.headers["Location"], "/")
        # The same signed answer from another sign-in: its challenge was used up.
        other, other_token = yield self.password_step()
        replayed = yield other.post("/login/step", {"csrf_token": other_token,
                                                    "credential": json.dumps(credential)})
        self.assertEqual(replayed.status_code, 403)
        home = yield other.get("/")
        self.assertEqual(home.headers["Location"], "/login/step")

    @defer.inlineCallbacks
    def test_registration_from_a_wrong_origin_stores_nothing(self) -> Any:
        web = self.web()
        yield web.sign_in(ALICE, PASSWORD)
        refused = yield self.enrol(web, SoftAuthenticator(), origin=EVIL)
        self.assertEqual(refused.status_code, 400)
        rows = yield self.passkeys_of(ALICE)
        self.assertEqual(rows, [])

    @defer.inlineCallbacks
    def test_json_requests_without_the_csrf_header_change_nothing(self) -> Any:
        web = self.web()
        yield web.sign_in(ALICE, PASSWORD)
        refused = yield self.json_post(web, "/passkeys/register/options", "wrong")
        self.assertEqual(refused.status_code, 403)
        page = yield web.get("/passkeys")
        refused = yield self.json_post(web, "/passkeys/register/options",
                                       csrf_from(page.text), origin=EVIL)
        self.assertEqual(refused.status_code, 403)

    @defer.inlineCallbacks
    def test_removed_passkey_is_no_longer_asked_for(self) -> Any:
        key = SoftAuthenticator()
        web = yield self.signed_in(key)
        rows = yield self.passkeys_of(ALICE)
        page = yield web.get("/passkeys")
        self.assertIn("Laptop", page.text)
        removed = yield web.post(f"/passkeys/{rows[0].id}/remove",
                                 {"csrf_token": csrf_from(page.text)})
        self.assertEqual(removed.headers["Location"], "/passkeys")
        rows = yield self.passkeys_of(ALICE)
        self.assertEqual(rows, [])
        fresh = self.web()
        answer = yield fresh.sign_in(ALICE, PASSWORD)
        self.assertEqual(answer.headers["Location"], "/")

    @defer.inlineCallbacks
    def test_mfa_reset_removes_the_passkeys_of_a_locked_out_user(self) -> Any:
        yield self.signed_in(SoftAuthenticator())
        admin = AccountAdmin(AccountPolicy(bcrypt_cost=4))
        was_on = run_sync(self.server.engine, admin.reset_mfa, ALICE, write=True)
        self.assertTrue(was_on)
        rows = yield self.passkeys_of(ALICE)
        self.assertEqual(rows, [])
        answer = yield self.web().sign_in(ALICE, PASSWORD)
        self.assertEqual(answer.headers["Location"], "/")

    @defer.inlineCallbacks
    def test_unknown_paths_and_methods_get_our_error_pages(self) -> Any:
        web = self.web()
        missing = yield web.get("/passkeys/no/such/page")
        self.assertEqual(missing.status_code, 404)
        self.assertIn("There is nothing at this address.", missing.text)
        wrong = yield web.get("/passkeys/register")
        self.assertEqual(wrong.status_code, 405)
        self.assertEqual(wrong.headers["Allow"], "POST")
        self.assertNotIn("Traceback", wrong.text)

    @defer.inlineCallbacks
    def test_an_ip_address_cannot_be_a_relying_party(self) -> Any:
        web = self.client()        # http://127.0.0.1:port
        yield web.sign_in(ALICE, PASSWORD)
        page = yield web.get("/passkeys")
        self.assertIn("not by an IP address", page.text)
        refused = yield self.json_post(web, "/passkeys/register/options",
                                       csrf_from(page.text))
        self.assertEqual(refused.status_code, 400)


class PasskeyBrowserTests(BrowserTestCase):
    """Chromium with a virtual authenticator, as a person with a phone or laptop passkey."""

    def setUp(self):  # type: ignore[no-untyped-def]
        d = super().setUp()
        self.base = self.web_base.replace("127.0.0.1", "localhost")
        return d

    @staticmethod
    def authenticator(page: Any) -> Any:
        cdp = page.context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
            "hasUserVerification": True, "isUserVerified": True}})
        return cdp

    @defer.inlineCallbacks
    def test_enrol_sign_out_sign_in_with_the_passkey_then_remove_it(self) -> Any:
        base = self.base

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(), errors)
            self.authenticator(page)
            self.sign_in(page, base, ALICE, PASSWORD)
            page.get_by_role("link", name="Passkeys and security keys").click()
            expect(page.get_by_role("heading", name="Passkeys", exact=True)).to_be_visible()
            expect(page.get_by_text("You have no passkeys yet.")).to_be_visible()
            page.get_by_label("Passkey name").fill("Work laptop")
            page.get_by_role("button", name="Add a passkey").click()
            expect(page.get_by_role("cell", name="Work laptop", exact=True)).to_be_visible()
            page.get_by_role("button", name="Sign out").click()
            self.sign_in(page, base, ALICE, PASSWORD)
            expect(page.get_by_role("heading", name="Use your passkey")).to_be_visible()
            page.get_by_role("button", name="Use your passkey").click()
            expect(page.get_by_role("heading", name="Your account")).to_be_visible()
            expect(page.get_by_text(f"Signed in as {ALICE}")).to_be_visible()
            page.goto(base + "/passkeys")
            expect(page.get_by_role("cell", name=re.compile(r"^\d{4}-"))).to_have_count(2)
            page.get_by_role("button", name="Remove passkey: Work laptop").click()
            expect(page.get_by_text("You have no passkeys yet.")).to_be_visible()
            page.get_by_role("button", name="Sign out").click()
            self.sign_in(page, base, ALICE, PASSWORD)
            expect(page.get_by_role("heading", name="Your account")).to_be_visible()

        yield self.in_browser(scenario)

    @defer.inlineCallbacks
    def test_sign_in_step_without_an_authenticator_shows_an_alert(self) -> Any:
        base = self.base
        key = SoftAuthenticator()

        def enrolled(conn: Any) -> None:
            user = accounts.find_user(conn, ALICE)
            store.add(conn, user.id, "Key", key.credential_id, b"\xa0", 0, (), "localhost",
                      datetime.now(timezone.utc))
        yield run_sync(self.server.engine, enrolled, write=True)

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(), errors)
            self.authenticator(page)   # present, but without that credential
            self.sign_in(page, base, ALICE, PASSWORD)
            page.get_by_role("button", name="Use your passkey").click()
            expect(page.get_by_role("alert")).to_contain_text("The passkey was not used",
                                                              timeout=20000)
            page.goto(base + "/")
            expect(page).to_have_url(base + "/login/step")

        yield self.in_browser(scenario)


class PasskeyProtectsTheMailboxTests(MFAClientTestBase):
    """A passkey is a second factor like TOTP: once a user has one, the account password
    alone no longer opens the mailbox over IMAP (MFA_PROTECTS_PROTOCOLS)."""

    @defer.inlineCallbacks
    def test_account_password_refused_on_imap_once_a_passkey_exists(self) -> Any:
        said = yield self.imap(PASSWORD)
        self.assertTrue(said.startswith("OK"), said)

        def enrolled(conn: Any) -> None:
            user = accounts.find_user(conn, ALICE)
            store.add(conn, user.id, "Key", SoftAuthenticator().credential_id, b"\xa0", 0,
                      (), "localhost", datetime.now(timezone.utc))
        self.write(enrolled)
        said = yield self.imap(PASSWORD)
        self.assertTrue(said.startswith("NO"), said)
        self.assertIn(HINT, said)
        shown = self.app_password("laptop", "imap")
        said = yield self.imap(shown)
        self.assertTrue(said.startswith("OK"), said)
