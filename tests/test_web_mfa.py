"""TOTP on the web pages (web/mfa_pages.py, web/totp_step.py): enrolment, the second step
of sign-in, single-use codes, recovery codes and disabling, in a real browser (Playwright
with Debian's Chromium; pyotp computes the codes from the secret the page shows), and the
CSRF refusal of every new POST over raw HTTP."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer

from mailgosend.auth.mfa import SecondFactor
from mailgosend.auth.totp import STEP_SECONDS, code_at, time_step
from mailgosend.db.runner import run_sync
from mailgosend.store import mfa as mfa_store
from mailgosend.store import accounts
from tests.support.mailserver import PASSWORD
from tests.support.web import WebServerTestCase, csrf_from
from tests.test_web_browser import ADMIN, ALICE, BrowserTestCase

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the [test] extra installs it
    expect = None


class Codes:
    """Codes from the app, each for a time step later than the last one used: the server
    accepts a step once (no replay), and any step within ±1 of its clock.

    A code of the previous step is used only early in the current step: late in it, the
    step may change before the browser's request reaches the server and the code would be
    two steps old (a flake under load).  A step more than one ahead waits for its time."""

    FRESH_SECONDS = 15  # a previous-step code stays usable at least this long

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.last = time_step(time.time()) - 2

    def next(self) -> str:
        while True:
            now = time.time()
            current = time_step(now)
            step = max(self.last + 1, current - 1)
            if step == current - 1 and now % STEP_SECONDS > STEP_SECONDS - self.FRESH_SECONDS:
                step = current
            if step <= current + 1:
                break
            time.sleep(0.5)
        self.last = step
        return code_at(self.secret, self.last)

    def again(self) -> str:
        return code_at(self.secret, self.last)


class MFABrowserTests(BrowserTestCase):
    def sign_out(self, page: Any) -> None:
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    def recovery_codes(self, page: Any) -> list[str]:
        items = page.get_by_role("list", name="Recovery codes").get_by_role("listitem")
        expect(items).to_have_count(10)
        codes: list[str] = items.all_inner_texts()
        return codes

    def second_step(self, page: Any, code: str) -> None:
        expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
        page.get_by_role("textbox", name="Authentication code").fill(code)
        page.get_by_role("button", name="Verify").click()

    @defer.inlineCallbacks
    def test_enrol_sign_in_with_codes_once_each_then_disable(self) -> Any:
        base = self.web_base

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(), errors)
            self.sign_in(page, base, ALICE, PASSWORD)
            page.get_by_role("link", name="Two-factor authentication").click()
            page.get_by_role("button", name="Set up two-factor authentication").click()
            expect(page.get_by_role("img", name="TOTP QR code")).to_be_visible()
            secret = page.get_by_label("Secret").inner_text().strip()
            codes = Codes(secret)
            page.get_by_role("textbox", name="Authentication code").fill("12345")
            page.get_by_role("button", name="Verify").click()
            expect(page.get_by_role("alert")).to_have_text(
                "The authentication code is wrong or was already used.")
            expect(page.get_by_label("Secret")).to_have_text(secret)   # the same secret
            page.get_by_role("textbox", name="Authentication code").fill(codes.next())
            page.get_by_role("button", name="Verify").click()
            recovery = self.recovery_codes(page)
            page.get_by_role("link", name="Done").click()
            expect(page.get_by_text("You have 10 unused recovery codes.",
                                    exact=False)).to_be_visible()
            self.sign_out(page)

            # The password alone no longer signs in; the code used at enrolment is spent.
            self.sign_in(page, base, ALICE, PASSWORD)
            self.second_step(page, codes.again())
            expect(page.get_by_role("alert")).to_have_text("That code is not correct.")
            self.second_step(page, codes.next())
            expect(page.get_by_role("heading", name="Your account")).to_be_visible()
            self.sign_out(page)

            # A recovery code signs in once.
            self.sign_in(page, base, ALICE, PASSWORD)
            self.second_step(page, recovery[0])
            expect(page.get_by_role("heading", name="Your account")).to_be_visible()
            self.sign_out(page)
            self.sign_in(page, base, ALICE, PASSWORD)
            self.second_step(page, recovery[0])
            expect(page.get_by_role("alert")).to_have_text("That code is not correct.")
            self.second_step(page, recovery[1])
            expect(page.get_by_role("heading", name="Your account")).to_be_visible()

            # New recovery codes void the old ones.
            page.get_by_role("link", name="Two-factor authentication").click()
            expect(page.get_by_text("You have 8 unused recovery codes.",
                                    exact=False)).to_be_visible()
            page.get_by_role("textbox", name="Authentication code").first.fill(codes.next())
            page.get_by_role("button", name="New recovery codes").click()
            fresh = self.recovery_codes(page)
            assert not set(fresh) & set(recovery), (fresh, recovery)
            page.get_by_role("link", name="Done").click()

            # Disabling needs the password and a code.
            page.get_by_label("Password").fill("not the password")
            page.get_by_role("textbox", name="Authentication code").last.fill(fresh[0])
            page.get_by_role("button", name="Disable two-factor authentication").click()
            expect(page.get_by_role("alert")).to_have_text("The password is wrong.")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("textbox", name="Authentication code").last.fill(fresh[0])
            page.get_by_role("button", name="Disable two-factor authentication").click()
            expect(page.get_by_role("status")).to_have_text(
                "Two-factor authentication is now off.")
            expect(page.get_by_role("button", name="Set up two-factor authentication")) \
                .to_be_visible()
            self.sign_out(page)
            self.sign_in(page, base, ALICE, PASSWORD)
            expect(page.get_by_role("heading", name="Your account")).to_be_visible()

        yield self.in_browser(scenario)

    @defer.inlineCallbacks
    def test_administrators_get_the_second_step_on_the_admin_port(self) -> Any:
        base = self.admin_base
        codes = enable_mfa(self.server, ADMIN)

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(), errors)
            self.sign_in(page, base, ADMIN, PASSWORD)
            self.second_step(page, codes.again())      # spent at enrolment
            expect(page.get_by_role("alert")).to_have_text("That code is not correct.")
            self.second_step(page, codes.next())
            expect(page.get_by_text(f"Signed in as {ADMIN} (administrator).")).to_be_visible()

        yield self.in_browser(scenario)


def enable_mfa(server: Any, email: str) -> Codes:
    """MFA on for ``email`` as the enrolment page leaves it (one code spent)."""
    factor = SecondFactor(server.root.components["keyring"])
    enrolment = run_sync(server.engine, factor.start_enrolment, email, write=True)
    codes = Codes(enrolment.secret)
    run_sync(server.engine, factor.confirm_enrolment, email, codes.next(),
             datetime.now(timezone.utc), write=True)
    return codes


SECRET_SHOWN = re.compile(r'aria-label="Secret">([A-Z2-7]+)<')
SESSION_COOKIE = "mailgosend-web-session"


class MFAFormsOverHTTPTests(WebServerTestCase):
    """Raw HTTP: every MFA form is refused (403) without the session's CSRF token or with a
    foreign Origin, and changes nothing; turning MFA on or off issues a new session token."""

    def state(self) -> mfa_store.MFAState:
        def read(conn: Any) -> mfa_store.MFAState:
            return mfa_store.state(conn, accounts.get_user(conn, ALICE).id)
        return run_sync(self.server.engine, read, write=False)

    @defer.inlineCallbacks
    def signed_in(self) -> Any:
        client = self.client()
        answer = yield client.sign_in(ALICE, PASSWORD)
        self.assertEqual(answer.status_code, 303)
        page = yield client.get("/account/mfa/")
        self.assertEqual(page.status_code, 200)
        return client, csrf_from(page.text)

    @defer.inlineCallbacks
    def assert_refused(self, client: Any, path: str, token: str,
                       fields: dict[str, str]) -> Any:
        for data, origin in (({**fields}, "same"),
                             ({**fields, "csrf_token": "0" * len(token)}, "same"),
                             ({**fields, "csrf_token": token}, "https://evil.example")):
            answer = yield client.post(path, data, origin=origin)
            self.assertEqual(answer.status_code, 403, (path, origin, data.keys()))
            self.assertIn("Request refused", answer.text)

    @defer.inlineCallbacks
    def test_forms_refused_without_token_or_with_foreign_origin(self) -> Any:
        client, token = yield self.signed_in()
        yield self.assert_refused(client, "/account/mfa/start", token, {})
        self.assertIsNone(self.state().sealed_secret)

        page = yield client.post("/account/mfa/start", {"csrf_token": token})
        self.assertEqual(page.status_code, 200)
        codes = Codes(SECRET_SHOWN.search(page.text).group(1))
        token = csrf_from(page.text)
        code = codes.next()
        yield self.assert_refused(client, "/account/mfa/confirm", token, {"code": code})
        self.assertFalse(self.state().enabled)

        before = client.http.cookies.get(SESSION_COOKIE)
        page = yield client.post("/account/mfa/confirm", {"csrf_token": token, "code": code})
        self.assertEqual(page.status_code, 200)
        self.assertTrue(self.state().enabled)
        after = client.http.cookies.get(SESSION_COOKIE)
        self.assertNotEqual(before, after)       # a privilege change: a new token
        stale = self.client()
        stale.http.cookies.set(SESSION_COOKIE, before)
        answer = yield stale.get("/")
        self.assertEqual(answer.headers["Location"], "/login")

        token = csrf_from(page.text)
        yield self.assert_refused(client, "/account/mfa/recovery-codes", token,
                                  {"code": codes.next()})
        left = run_sync(self.server.engine, SecondFactor(
            self.server.root.components["keyring"]).recovery_codes_left, ALICE, write=False)
        self.assertEqual(left, 10)
        last_step = self.state().last_step
        code = codes.next()
        yield self.assert_refused(client, "/account/mfa/disable", token,
                                  {"password": PASSWORD, "code": code})
        self.assertTrue(self.state().enabled)
        self.assertEqual(self.state().last_step, last_step)

        page = yield client.post("/account/mfa/disable", {
            "csrf_token": token, "password": PASSWORD, "code": code})
        self.assertEqual(page.status_code, 200, page.text)
        self.assertFalse(self.state().enabled)
        self.assertNotEqual(client.http.cookies.get(SESSION_COOKIE), after)

    @defer.inlineCallbacks
    def test_mfa_pages_need_a_signed_in_session(self) -> Any:
        client = self.client()
        answer = yield client.get("/account/mfa/")
        self.assertEqual((answer.status_code, answer.headers["Location"]), (303, "/login"))
        answer = yield client.get("/account/nothing/")
        self.assertEqual(answer.status_code, 404)
        # A state change with a valid (pre-sign-in) token but no signed-in session goes to
        # the sign-in page and changes nothing (forms.signed_in, below changes_state).
        page = yield client.get("/login")
        token = csrf_from(page.text)
        for path in ("/account/mfa/start", "/account/mfa/disable",
                     "/account/app-passwords/create"):
            answer = yield client.post(path, {"csrf_token": token, "name": "x",
                                              "protocol": "imap"})
            self.assertEqual((answer.status_code, answer.headers["Location"]), (303, "/login"),
                             path)
        self.assertFalse(self.state().enabled)
