"""The settings and first-administrator pages in a real browser (Playwright with Debian's
Chromium), controls found by role and accessible name: a password change signs another
browser out and the old password stops working on IMAP; the display name is saved; the setup
token from the log creates the first administrator, who then signs in on the admin port."""

from __future__ import annotations

import imaplib
import os
from typing import Any

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.support.mailserver import PASSWORD
from tests.support.web import CHROMIUM
from tests.test_web_browser import ALICE, BrowserTestCase, sync_playwright
from tests.test_web_setup import ROOT, ROOT_PASSWORD, SetupTestBase

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the [test] extra installs it
    pass

NEW_PASSWORD = "my new long passphrase"


class SettingsBrowserTests(BrowserTestCase):
    def imap_login(self, password: str) -> Any:
        def run() -> str:
            client = imaplib.IMAP4_SSL("127.0.0.1", self.server.ports["IMAPS"],
                                       ssl_context=self.server.client_tls(), timeout=30)
            try:
                return str(client.login(ALICE, password)[0])
            except imaplib.IMAP4.error:
                return "NO"
            finally:
                try:
                    client.logout()
                except (imaplib.IMAP4.abort, OSError):
                    pass
        return threads.deferToThread(run)

    @defer.inlineCallbacks
    def test_password_change_ends_another_browsers_session(self) -> Any:
        base = self.web_base
        self.assertEqual((yield self.imap_login(PASSWORD)), "OK")

        def scenario(browser: Any, errors: list[str]) -> None:
            other = self.watch(browser.new_context().new_page(), errors)
            page = self.watch(browser.new_context().new_page(), errors)
            self.sign_in(other, base, ALICE, PASSWORD)
            self.sign_in(page, base, ALICE, PASSWORD)
            page.get_by_role("link", name="Account settings").click()
            expect(page.get_by_role("heading", name="Account settings")).to_be_visible()
            page.get_by_label("Current password").fill("not my password")
            page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
            page.get_by_label("New password again").fill(NEW_PASSWORD)
            page.get_by_role("button", name="Change password").click()
            expect(page.get_by_role("alert")).to_have_text(
                "The current password is not correct.")
            page.get_by_label("Current password").fill(PASSWORD)
            page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
            page.get_by_label("New password again").fill(NEW_PASSWORD)
            page.get_by_role("button", name="Change password").click()
            expect(page.get_by_role("status")).to_contain_text("Password changed.")
            other.reload()
            expect(other.get_by_role("heading", name="Sign in")).to_be_visible()
            page.goto(base + "/")
            expect(page.get_by_role("row")).to_have_count(2)   # header and this session

        yield self.in_browser(scenario)
        self.assertEqual((yield self.imap_login(PASSWORD)), "NO")
        self.assertEqual((yield self.imap_login(NEW_PASSWORD)), "OK")

    @defer.inlineCallbacks
    def test_display_name_saved_and_mail_client_settings_shown(self) -> Any:
        base = self.web_base
        self.server.add_alias("sales@example.com", ALICE)
        imaps = str(self.server.ports["IMAPS"])

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(), errors)
            self.sign_in(page, base, ALICE, PASSWORD)
            page.goto(base + "/settings")
            page.get_by_role("textbox", name="Display name").fill("Alice Liddell")
            page.get_by_role("button", name="Save display name").click()
            expect(page.get_by_role("status")).to_have_text("Display name saved.")
            page.reload()
            expect(page.get_by_role("textbox", name="Display name")).to_have_value(
                "Alice Liddell")
            expect(page.get_by_role("list", name="Your aliases")).to_have_text(
                "sales@example.com")
            table = page.get_by_role("table", name="Mail client settings")
            expect(table.get_by_role("row", name=f"IMAP {self.server.hostname} {imaps} SSL/TLS",
                                     exact=True)).to_be_visible()

        yield self.in_browser(scenario)


class SetupBrowserTests(SetupTestBase, BrowserTestCase):
    users = ()

    def setUp(self):  # type: ignore[no-untyped-def]
        # BrowserTestCase makes root@example.com an administrator; here none may exist.
        if sync_playwright is None or not os.path.exists(CHROMIUM):
            raise unittest.SkipTest("needs playwright and /usr/bin/chromium")
        return SetupTestBase.setUp(self)

    @defer.inlineCallbacks
    def test_setup_with_the_token_then_sign_in_on_the_admin_port(self) -> Any:
        base = self.admin_base
        token = self.token_from_log()

        def fill(page: Any, given: str) -> None:
            page.get_by_label("Setup token").fill(given)
            page.get_by_role("textbox", name="Email").fill(ROOT)
            page.get_by_label("Password", exact=True).fill(ROOT_PASSWORD)
            page.get_by_label("Password again").fill(ROOT_PASSWORD)
            page.get_by_role("button", name="Create administrator").click()

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(), errors)
            page.goto(base + "/setup")
            expect(page.get_by_role("heading", name="Create the first administrator")
                   ).to_be_visible()
            fill(page, "wrong-token")
            expect(page.get_by_role("alert")).to_contain_text("The setup token is not correct.")
            fill(page, token)
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            self.sign_in(page, base, ROOT, ROOT_PASSWORD)
            expect(page.get_by_text(f"Signed in as {ROOT} (administrator).")).to_be_visible()
            response = page.goto(base + "/setup")
            assert response is not None and response.status == 404, response
            expect(page.get_by_role("heading", name="Page not found")).to_be_visible()

        yield self.in_browser(scenario)
