"""The app-passwords page (web/apppasswords_pages.py): an app password made in a real
browser (Playwright with Debian's Chromium) works in imaplib, is refused by POP3 when not in
its scope, shows its last use, and stops working once revoked in the page; the forms are
refused without the CSRF token (raw HTTP)."""

from __future__ import annotations

import imaplib
import poplib
import re
from typing import Any

from twisted.internet import defer

from mailgosend.admin import AccountAdmin, AccountPolicy
from mailgosend.db.runner import run_sync
from tests.support.mailserver import PASSWORD
from tests.support.web import WebServerTestCase, csrf_from
from tests.test_web_browser import ALICE, BrowserTestCase

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the [test] extra installs it
    expect = None


class AppPasswordBrowserTests(BrowserTestCase):
    def imap_login(self, password: str) -> None:
        client = imaplib.IMAP4_SSL("127.0.0.1", self.server.ports["IMAPS"],
                                   ssl_context=self.server.client_tls(), timeout=20)
        try:
            client.login(ALICE, password)
        except imaplib.IMAP4.error:
            client.shutdown()
            raise
        client.logout()

    def pop_login(self, password: str) -> None:
        client = poplib.POP3_SSL("127.0.0.1", self.server.ports["POP3S"],
                                 context=self.server.client_tls(), timeout=20)
        try:
            client.user(ALICE)
            client.pass_(password)
        finally:
            client.close()

    @defer.inlineCallbacks
    def test_create_use_and_revoke_an_app_password(self) -> Any:
        base = self.web_base

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.watch(browser.new_page(), errors)
            self.sign_in(page, base, ALICE, PASSWORD)
            page.get_by_role("link", name="App passwords").click()
            expect(page.get_by_text("None yet.")).to_be_visible()

            page.get_by_role("textbox", name="Name").fill("Phone")
            page.get_by_role("button", name="Create app password").click()
            expect(page.get_by_role("alert")).to_have_text(
                re.compile(r"^Choose at least one protocol"))
            expect(page.get_by_role("textbox", name="Name")).to_have_value("Phone")

            page.get_by_role("checkbox", name="IMAP").check()
            page.get_by_role("checkbox", name="SMTP submission").check()
            page.get_by_role("button", name="Create app password").click()
            expect(page.get_by_role("status")).to_contain_text("shown only this once")
            shown = page.get_by_label("Your new app password").inner_text().strip()
            assert re.fullmatch(r"(?:[a-z0-9]{4}-){4}[a-z0-9]{4}", shown), shown
            row = page.get_by_role("row", name=re.compile(r"^Phone"))
            expect(row).to_contain_text("IMAP, SMTP submission")
            expect(row).to_contain_text("Never")

            self.imap_login(shown)
            try:
                self.pop_login(shown)
            except poplib.error_proto as exc:
                assert b"not allowed for POP3" in exc.args[0], exc.args
            else:
                raise AssertionError("POP3 accepted an IMAP/SMTP app password")

            page.reload()
            expect(page.get_by_label("Your new app password")).to_have_count(0)  # shown once
            row = page.get_by_role("row", name=re.compile(r"^Phone"))
            expect(row).to_contain_text("127.0.0.1")
            expect(row).not_to_contain_text("Never")

            page.get_by_role("button", name="Revoke app password: Phone").click()
            expect(page.get_by_text("None yet.")).to_be_visible()
            try:
                self.imap_login(shown)
            except imaplib.IMAP4.error:
                pass
            else:
                raise AssertionError("IMAP accepted a revoked app password")

        yield self.in_browser(scenario)


class AppPasswordFormsOverHTTPTests(WebServerTestCase):
    def names(self) -> list[str]:
        admin = AccountAdmin(AccountPolicy.from_config(self.server.config))
        rows = run_sync(self.server.engine, admin.list_app_passwords, ALICE, write=False)
        return [r.name for r in rows]

    @defer.inlineCallbacks
    def test_forms_refused_without_token_or_with_foreign_origin(self) -> Any:
        client = self.client()
        yield client.sign_in(ALICE, PASSWORD)
        page = yield client.get("/account/app-passwords/")
        token = csrf_from(page.text)
        fields = {"name": "Laptop", "protocol": "imap"}
        for data, origin in ((fields, "same"),
                             ({**fields, "csrf_token": "0" * len(token)}, "same"),
                             ({**fields, "csrf_token": token}, "https://evil.example")):
            answer = yield client.post("/account/app-passwords/create", data, origin=origin)
            self.assertEqual(answer.status_code, 403)
        self.assertEqual(self.names(), [])

        answer = yield client.post("/account/app-passwords/create",
                                   {**fields, "csrf_token": token})
        self.assertEqual(answer.status_code, 200)
        self.assertEqual(self.names(), ["Laptop"])
        for data, origin in (({"name": "Laptop"}, "same"),
                             ({"name": "Laptop", "csrf_token": token}, "https://evil.example")):
            answer = yield client.post("/account/app-passwords/revoke", data, origin=origin)
            self.assertEqual(answer.status_code, 403)
        self.assertEqual(self.names(), ["Laptop"])
        answer = yield client.post("/account/app-passwords/revoke",
                                   {"name": "Laptop", "csrf_token": token})
        self.assertEqual((answer.status_code, answer.headers["Location"]),
                         (303, "/account/app-passwords/"))
        self.assertEqual(self.names(), [])

    @defer.inlineCallbacks
    def test_only_on_the_web_port_and_only_signed_in(self) -> Any:
        answer = yield self.client().get("/account/app-passwords/")
        self.assertEqual((answer.status_code, answer.headers["Location"]), (303, "/login"))
        answer = yield self.client(admin=True).get("/account/app-passwords/")
        self.assertEqual(answer.status_code, 404)
