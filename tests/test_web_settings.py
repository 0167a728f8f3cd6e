"""The account settings page (web/settings_pages.py) over raw HTTP against a whole server:
display name, password change (rules, the current password, other sessions ended, the old
password refused on IMAP at once), aliases and mail-client settings shown, and CSRF refusals
that change nothing."""

from __future__ import annotations

import imaplib
from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer, threads

from mailgosend.admin import AccountAdmin, AccountPolicy
from mailgosend.db.runner import run_sync
from mailgosend.store import accounts, jmapdata
from tests.support.mailserver import PASSWORD
from tests.support.web import WebClient, WebServerTestCase, csrf_from

ALICE = "alice@example.com"
NEW_PASSWORD = "a brand new passphrase"


class SettingsTestBase(WebServerTestCase):
    users = (ALICE, "bob@example.com")

    def read(self, fn: Any, *args: Any) -> Any:
        return run_sync(self.server.engine, fn, *args, write=False)

    @property
    def admin(self) -> AccountAdmin:
        return AccountAdmin(AccountPolicy(bcrypt_cost=4))

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
    def signed_in(self) -> Any:
        web = self.client()
        response = yield web.sign_in(ALICE, PASSWORD)
        self.assertEqual(response.headers["Location"], "/")
        return web

    @defer.inlineCallbacks
    def form(self, web: WebClient) -> Any:
        page = yield web.get("/settings")
        self.assertEqual(page.status_code, 200)
        return csrf_from(page.text)


class SettingsPageTests(SettingsTestBase):
    @defer.inlineCallbacks
    def test_display_name_moves_the_jmap_identity_state(self) -> Any:
        """Regression: the default identity's name is the display name, so Identity/changes
        (RFC 8621 §6) must report it updated when the settings page changes it."""
        user = self.read(accounts.get_user, ALICE)
        run_sync(self.server.engine, jmapdata.follow_account, user.id, ALICE,
                 datetime.now(timezone.utc), write=True)  # as a first JMAP listing does
        before = self.read(jmapdata.state, jmapdata.IDENTITIES, user.id)
        web = yield self.signed_in()
        token = yield self.form(web)
        saved = yield web.post("/settings/profile", {"csrf_token": token,
                                                     "display_name": "Alice Liddell"})
        self.assertEqual(saved.status_code, 303)
        changes = self.read(jmapdata.changes, jmapdata.IDENTITIES, user.id, before)
        self.assertEqual((len(changes.created), len(changes.updated), changes.destroyed),
                         (0, 1, []))

    @defer.inlineCallbacks
    def test_signed_out_visitors_are_sent_to_sign_in(self) -> Any:
        response = yield self.client().get("/settings")
        self.assertEqual((response.status_code, response.headers["Location"]), (303, "/login"))
        # The admin port has no settings page.
        self.assertEqual((yield self.client(admin=True).get("/settings")).status_code, 404)

    @defer.inlineCallbacks
    def test_the_page_shows_aliases_and_where_to_point_a_mail_client(self) -> Any:
        self.server.add_alias("sales@example.com", ALICE)
        self.server.add_alias("info@example.com", "bob@example.com")
        web = yield self.signed_in()
        page = yield web.get("/settings")
        self.assertIn("sales@example.com", page.text)
        self.assertNotIn("info@example.com", page.text)
        ports = self.server.ports
        for port in (ports["IMAPS"], ports["IMAP"], ports["SUBMIT"], ports["SMTPS"],
                     ports["POP3S"]):
            self.assertIn(f">{port}<", page.text)
        self.assertIn(self.server.hostname, page.text)
        self.assertIn("STARTTLS", page.text)
        self.assertIn("Content-Security-Policy", page.headers)

    @defer.inlineCallbacks
    def test_display_name_saved(self) -> Any:
        web = yield self.signed_in()
        token = yield self.form(web)
        saved = yield web.post("/settings/profile", {"csrf_token": token,
                                                     "display_name": " Alice  Liddell "})
        self.assertEqual(saved.headers["Location"], "/settings?done=profile")
        self.assertEqual(self.read(self.admin.display_name, ALICE), "Alice Liddell")
        page = yield web.get("/settings?done=profile")
        self.assertIn('value="Alice Liddell"', page.text)
        self.assertIn("Display name saved.", page.text)
        refused = yield web.post("/settings/profile", {"csrf_token": token,
                                                       "display_name": "x" * 101})
        self.assertEqual(refused.status_code, 400)
        self.assertIn("at most 100", refused.text)
        self.assertEqual(self.read(self.admin.display_name, ALICE), "Alice Liddell")

    @defer.inlineCallbacks
    def test_password_rules_and_the_current_password(self) -> Any:
        web = yield self.signed_in()
        token = yield self.form(web)
        cases = [
            # (current, new, again, status, message)
            (PASSWORD, "short", "short", 400, "at least 8 characters"),
            (PASSWORD, "sunshine", "sunshine", 400, "most commonly used"),
            (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", 400, "The two new passwords differ."),
            ("not my password", NEW_PASSWORD, NEW_PASSWORD, 403,
             "The current password is not correct."),
        ]
        for current, new, again, status, message in cases:
            response = yield web.post("/settings/password", {
                "csrf_token": token, "current_password": current, "new_password": new,
                "new_password_again": again})
            self.assertEqual(response.status_code, status, message)
            self.assertIn(message, response.text)
        self.assertEqual((yield self.imap_login(PASSWORD)), "OK")

    @defer.inlineCallbacks
    def test_password_change_ends_other_sessions_and_the_old_password(self) -> Any:
        other = yield self.signed_in()
        web = yield self.signed_in()
        self.assertEqual((yield self.imap_login(PASSWORD)), "OK")   # now in the login cache
        before = web.http.cookies.get("mailgosend-web-session")
        token = yield self.form(web)
        changed = yield web.post("/settings/password", {
            "csrf_token": token, "current_password": PASSWORD, "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD})
        self.assertEqual(changed.headers["Location"], "/settings?done=password")
        self.assertNotEqual(web.http.cookies.get("mailgosend-web-session"), before)
        page = yield web.get("/settings?done=password")
        self.assertIn("Password changed.", page.text)
        self.assertEqual((yield other.get("/")).headers["Location"], "/login")
        self.assertEqual((yield self.imap_login(PASSWORD)), "NO")
        self.assertEqual((yield self.imap_login(NEW_PASSWORD)), "OK")
        self.assertEqual((yield self.client().sign_in(ALICE, PASSWORD)).status_code, 403)
        self.assertEqual((yield self.client().sign_in(ALICE, NEW_PASSWORD)).status_code, 303)

    @defer.inlineCallbacks
    def test_csrf_refusals_change_nothing(self) -> Any:
        web = yield self.signed_in()
        token = yield self.form(web)
        someone = yield self.signed_in()
        their_token = yield self.form(someone)
        password_form = {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                         "new_password_again": NEW_PASSWORD}
        for path, form in (("/settings/profile", {"display_name": "Mallory"}),
                           ("/settings/password", password_form)):
            for fields, origin in (({}, "same"), ({"csrf_token": "forged"}, "same"),
                                   ({"csrf_token": their_token}, "same"),
                                   ({"csrf_token": token}, "https://evil.example")):
                response = yield web.post(path, {**form, **fields}, origin=origin)
                self.assertEqual(response.status_code, 403, (path, fields, origin))
        self.assertEqual(self.read(self.admin.display_name, ALICE), "")
        self.assertEqual((yield self.imap_login(PASSWORD)), "OK")
        self.assertEqual((yield someone.get("/")).status_code, 200)
