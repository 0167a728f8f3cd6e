"""The sign-in pages in a real browser (Playwright driving Debian's Chromium): controls found
by role and accessible name, as a screen reader would; keyboard only where a person could;
no CSP violation; nothing wider than a phone screen."""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Optional

from twisted.internet import defer, threads
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from tests.support.mailserver import PASSWORD
from tests.support.web import CHROMIUM, WebServerTestCase

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the [test] extra installs it
    sync_playwright = None

ALICE = "alice@example.com"
ADMIN = "root@example.com"
SIGN_IN_MS = 20000  # a page after a password check (hashed in the worker pool) on a busy machine


class BrowserTestCase(WebServerTestCase):
    users = (ALICE, ADMIN)

    def setUp(self):  # type: ignore[no-untyped-def]
        if sync_playwright is None or not os.path.exists(CHROMIUM):
            raise unittest.SkipTest("needs playwright and /usr/bin/chromium (scripts/run-tests "
                                    "installs both)")
        d = super().setUp()
        d.addCallback(lambda _: run_sync(self.server.engine, accounts.set_user_admin, ADMIN,
                                         True, write=True))
        return d

    def in_browser(self, scenario: Callable[[Any, list[str]], None]) -> Any:
        """Run ``scenario(browser, csp_errors)`` in a thread: Playwright's sync API blocks."""
        def run() -> None:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM)
                errors: list[str] = []
                try:
                    scenario(browser, errors)
                finally:
                    browser.close()
                assert not errors, errors
        return threads.deferToThread(run)

    @staticmethod
    def watch(page: Any, errors: list[str]) -> Any:
        page.on("console", lambda m: errors.append(m.text)
                if "Content Security Policy" in m.text else None)
        return page

    def sign_in(self, page: Any, base: str, email: str, password: str,
                totp: Optional[Callable[[], str]] = None) -> None:
        """Sign in on ``base``; with ``totp``, also pass the two-factor step with the code
        it gives, asked for only once that step's page shows (fresh under load)."""
        page.goto(base + "/")
        page.get_by_role("textbox", name="Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        if totp is not None:
            expect(page.get_by_role("heading", name="Two-factor authentication")
                   ).to_be_visible(timeout=SIGN_IN_MS)
            page.get_by_role("textbox", name="Authentication code").fill(totp())
            page.get_by_role("button", name="Verify").click()


class SignInPageTests(BrowserTestCase):
    @defer.inlineCallbacks
    def test_sign_in_with_the_keyboard_then_sign_out(self) -> Any:
        base = self.web_base

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(), errors)
            page.goto(base + "/")
            expect(page).to_have_url(base + "/login")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            # Email has the focus (autofocus); Tab reaches Password, Enter submits.
            page.keyboard.type(ALICE)
            page.keyboard.press("Tab")
            page.keyboard.type(PASSWORD)
            page.keyboard.press("Enter")
            expect(page.get_by_role("heading", name="Your account")).to_be_visible()
            expect(page.get_by_text(f"Signed in as {ALICE}")).to_be_visible()
            expect(page.get_by_role("cell", name="This session")).to_be_visible()
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            page.goto(base + "/")
            expect(page).to_have_url(base + "/login")

        yield self.in_browser(scenario)

    @defer.inlineCallbacks
    def test_wrong_password_shows_one_generic_alert(self) -> Any:
        base = self.web_base

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(), errors)
            self.sign_in(page, base, ALICE, "not the password")
            expect(page.get_by_role("alert")).to_have_text(
                "The email address or password is not correct.")
            expect(page.get_by_role("textbox", name="Email")).to_have_value(ALICE)
            self.sign_in(page, base, "nobody@example.com", "not the password")
            expect(page.get_by_role("alert")).to_have_text(
                "The email address or password is not correct.")
            self.sign_in(page, base, ALICE, PASSWORD)
            expect(page.get_by_role("heading", name="Your account")).to_be_visible()

        yield self.in_browser(scenario)

    @defer.inlineCallbacks
    def test_ending_another_session_from_the_session_list(self) -> Any:
        base = self.web_base

        def scenario(browser: Any, errors: list[str]) -> None:
            phone = browser.new_context(user_agent="Mozilla/5.0 (Linux; Android 14) "
                                        "AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36")
            laptop = browser.new_context()
            phone_page = self.watch(phone.new_page(), errors)
            laptop_page = self.watch(laptop.new_page(), errors)
            self.sign_in(phone_page, base, ALICE, PASSWORD)
            self.sign_in(laptop_page, base, ALICE, PASSWORD)
            rows = laptop_page.get_by_role("row")
            expect(rows).to_have_count(3)      # the header and two sessions
            laptop_page.get_by_role("button", name=re.compile(
                r"^End session: Chrome on Android")).click()
            expect(laptop_page.get_by_role("row")).to_have_count(2)
            phone_page.reload()
            expect(phone_page.get_by_role("heading", name="Sign in")).to_be_visible()
            expect(laptop_page.get_by_role("cell", name="This session")).to_be_visible()

        yield self.in_browser(scenario)

    @defer.inlineCallbacks
    def test_dark_by_default_light_on_request_and_fits_a_phone(self) -> Any:
        base = self.web_base

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(viewport={"width": 360, "height": 740}), errors)
            page.goto(base + "/login")
            expect(page.locator("html")).to_have_class("dark")
            dark_background = page.evaluate(
                "getComputedStyle(document.body).backgroundColor")
            page.get_by_role("button", name="Light theme").click()
            expect(page.locator("html")).to_have_class("light")
            expect(page.get_by_role("button", name="Dark theme")).to_be_visible()
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") \
                != dark_background
            self.sign_in(page, base, ALICE, PASSWORD)
            expect(page.locator("html")).to_have_class("light")
            for path in ("/", "/login", "/no/such/page"):
                page.goto(base + path)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 360, (path, width)

        yield self.in_browser(scenario)

    @defer.inlineCallbacks
    def test_administrators_sign_in_on_the_admin_port(self) -> Any:
        base = self.admin_base

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(), errors)
            self.sign_in(page, base, ALICE, PASSWORD)
            expect(page.get_by_role("alert")).to_have_text(
                "The email address or password is not correct.")
            self.sign_in(page, base, ADMIN, PASSWORD)
            expect(page.get_by_text(f"Signed in as {ADMIN} (administrator).")).to_be_visible()

        yield self.in_browser(scenario)
