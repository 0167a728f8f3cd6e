"""The admin panel's user and alias pages (web/admin_users.py) over HTTP: list per domain,
search and pages; create (random password shown once, or set); bad input (an invalid
address, a duplicate user, a weak password, a bad quota) naming the field and changing
nothing; display name, quota with the usage bar, enable/disable, password reset, MFA reset,
administrator rights, app passwords revoked, deletion after a confirmation page; aliases and
catch-alls; every change audited."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer

from mailgosend import audit, passwords
from mailgosend.admin import AccountAdmin, AccountPolicy
from mailgosend.store import accounts
from tests.support.adminpanel import ADMIN, ALICE, OpsTestCase, submit
from tests.support.mailserver import PASSWORD

NEW = "carol@example.com"
STRONG = "correct-Horse-battery-77"


class UserPageTests(OpsTestCase):
    def emails(self) -> list[str]:
        return [u.email for u in self.read(accounts.list_users)]

    @defer.inlineCallbacks
    def test_list_search_and_pages(self) -> Any:
        for n in range(55):
            self.server.add_user(f"user{n:02d}@example.com")
        web = yield self.admin_client()
        page = yield web.get("/admin/users?domain=example.com")
        self.assertEqual(page.status_code, 200)
        shown = re.findall(r'href="/admin/users/([^"]+)"', page.text)
        self.assertEqual(len(shown), 50)
        following = re.search(r'rel="next" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
        page = yield web.get(following)
        rest = re.findall(r'href="/admin/users/([^"]+)"', page.text)
        self.assertEqual(len(rest), 57 - 50)
        self.assertNotIn('rel="next"', page.text)
        page = yield web.get("/admin/users?q=user0")
        self.assertEqual(len(re.findall(r'href="/admin/users/user0', page.text)), 10)

    @defer.inlineCallbacks
    def test_create_with_a_random_password_shown_once(self) -> Any:
        web = yield self.admin_client()
        answer = yield submit(web, "/admin/users", "/admin/users", {"email": NEW, "quota": "1M"})
        self.assertEqual(answer.status_code, 200)
        shown = re.search(r'aria-label="New password">([^<]+)<', answer.text).group(1)
        user = self.read(accounts.get_user, NEW)
        self.assertTrue(passwords.verify_password(shown, user.password_hash))
        self.assertEqual(user.quota_bytes, 1024 * 1024)
        page = yield web.get(f"/admin/users/{NEW}")
        self.assertNotIn(shown, page.text)                   # shown only once
        (entry,) = self.read(audit.search, audit.AuditQuery(action="user.add"))
        self.assertNotIn(shown, entry.detail + entry.target)

    @defer.inlineCallbacks
    def test_create_with_a_password(self) -> Any:
        web = yield self.admin_client()
        answer = yield submit(web, "/admin/users", "/admin/users",
                              {"email": NEW, "password": STRONG})
        self.assertEqual(answer.headers["Location"], f"/admin/users/{NEW}?done=created")
        self.assertTrue(passwords.verify_password(STRONG, self.read(accounts.get_user, NEW)
                                                  .password_hash))

    @defer.inlineCallbacks
    def test_bad_input_names_the_field_and_changes_nothing(self) -> Any:
        web = yield self.admin_client()
        before = self.emails()
        for data, field, says in (
                ({"email": "not an address", "password": STRONG}, "email", "invalid address"),
                ({"email": ALICE, "password": STRONG}, "email", "already"),
                ({"email": "x@nowhere.example", "password": STRONG}, "email", "unknown domain"),
                ({"email": NEW, "password": "password"}, "password", "Password refused"),
                ({"email": NEW, "password": STRONG, "quota": "lots"}, "quota", "quota")):
            answer = yield submit(web, "/admin/users", "/admin/users", data)
            self.assertEqual(answer.status_code, 400, data)
            note = answer.text.split(f'id="{field}-error"')
            self.assertEqual(len(note), 2, (data, field))
            self.assertIn(says.lower(), note[1][:300].lower(), data)
        self.assertEqual(self.emails(), before)
        self.assertEqual(self.read(audit.search, audit.AuditQuery(action="user.add")), [])

    @defer.inlineCallbacks
    def test_edit_a_user(self) -> Any:
        web = yield self.admin_client()
        base = f"/admin/users/{ALICE}"
        answer = yield submit(web, base, base + "/profile", {"display_name": "Alice  Liddell"})
        self.assertEqual(answer.status_code, 303)
        self.assertEqual(self.read(accounts.get_display_name,
                                   self.read(accounts.get_user, ALICE).id), "Alice Liddell")
        answer = yield submit(web, base, base + "/quota", {"quota": "2K"})
        self.assertEqual(self.read(accounts.get_user, ALICE).quota_bytes, 2048)
        self.write(lambda conn: conn.execute(
            accounts.users.update().values(used_bytes=1024)).rowcount)
        page = yield web.get(base)
        self.assertIn('<progress max="100" value="50" aria-label="Storage used"', page.text)
        answer = yield submit(web, base, base + "/quota", {"quota": "-5"})
        self.assertEqual(answer.status_code, 400)
        self.assertIn('id="quota-error"', answer.text)
        self.assertEqual(self.read(accounts.get_user, ALICE).quota_bytes, 2048)
        yield submit(web, base, base + "/disable")
        self.assertFalse(self.read(accounts.get_user, ALICE).enabled)
        yield submit(web, base, base + "/enable")
        self.assertTrue(self.read(accounts.get_user, ALICE).enabled)
        yield submit(web, base, base + "/admin", {"admin": "yes"})
        self.assertTrue(self.read(accounts.get_user, ALICE).is_admin)
        yield submit(web, base, base + "/admin", {"admin": "no"})
        self.assertFalse(self.read(accounts.get_user, ALICE).is_admin)
        actions = [e.action for e in self.read(audit.search, audit.AuditQuery())]
        for action in ("user.display_name", "user.quota", "user.disable", "user.enable",
                       "user.admin", "user.unadmin"):
            self.assertIn(action, actions)

    @defer.inlineCallbacks
    def test_password_reset_set_weak_and_random(self) -> Any:
        web = yield self.admin_client()
        base = f"/admin/users/{ALICE}"
        answer = yield submit(web, base, base + "/password", {"password": "12345678"})
        self.assertEqual(answer.status_code, 400)
        self.assertIn('id="password-error"', answer.text)
        self.assertTrue(passwords.verify_password(
            PASSWORD, self.read(accounts.get_user, ALICE).password_hash))
        answer = yield submit(web, base, base + "/password", {"password": STRONG})
        self.assertEqual(answer.status_code, 303)
        self.assertTrue(passwords.verify_password(
            STRONG, self.read(accounts.get_user, ALICE).password_hash))
        answer = yield submit(web, base, base + "/password", {"password": ""})
        shown = re.search(r'aria-label="New password">([^<]+)<', answer.text).group(1)
        self.assertTrue(passwords.verify_password(
            shown, self.read(accounts.get_user, ALICE).password_hash))

    @defer.inlineCallbacks
    def test_mfa_reset_and_app_passwords(self) -> Any:
        web = yield self.admin_client()
        admin = AccountAdmin(AccountPolicy(bcrypt_cost=4))
        new = admin.make_app_password("Phone", ["imap"])
        now = datetime.now(timezone.utc)
        self.write(admin.add_app_password, ALICE, new, now)
        base = f"/admin/users/{ALICE}"
        page = yield web.get(base)
        self.assertIn("Phone", page.text)
        self.assertIn(new.prefix, page.text)
        self.assertNotIn(new.password, page.text)
        answer = yield submit(web, base, base + "/app-passwords/revoke", {"name": "Phone"})
        self.assertEqual(answer.status_code, 303)
        self.assertEqual(self.read(admin.list_app_passwords, ALICE), [])
        answer = yield submit(web, base, base + "/mfa-reset")
        self.assertEqual(answer.status_code, 303)
        self.assertIn("user.mfa_reset",
                      [e.action for e in self.read(audit.search, audit.AuditQuery())])

    @defer.inlineCallbacks
    def test_delete_after_confirmation(self) -> Any:
        web = yield self.admin_client()
        base = f"/admin/users/{ALICE}"
        page = yield web.get(base + "/delete")
        self.assertIn(f"Delete {ALICE}?", page.text)
        self.assertIn(ALICE, self.emails())                      # nothing yet
        answer = yield submit(web, base + "/delete", base + "/delete")   # no confirm field
        self.assertEqual(answer.headers["Location"], base + "/delete")
        self.assertIn(ALICE, self.emails())
        answer = yield submit(web, base + "/delete", base + "/delete", {"confirm": "yes"})
        self.assertEqual(answer.status_code, 303)
        self.assertNotIn(ALICE, self.emails())
        page = yield web.get(base)
        self.assertEqual(page.status_code, 404)
        answer = yield submit(web, f"/admin/users/{ADMIN}/delete", f"/admin/users/{ADMIN}/delete",
                              {"confirm": "yes"})
        self.assertEqual(answer.status_code, 400)
        self.assertIn(ADMIN, self.emails())


class AliasPageTests(OpsTestCase):
    @defer.inlineCallbacks
    def test_aliases_and_catch_all(self) -> Any:
        web = yield self.admin_client()
        page = "/admin/aliases?domain=example.com"
        answer = yield submit(web, page, "/admin/aliases",
                              {"source": "info@example.com", "destination": ALICE})
        self.assertEqual(answer.status_code, 303)
        answer = yield submit(web, page, "/admin/aliases",
                              {"source": "@example.com", "destination": ALICE})
        shown = yield web.get(page)
        self.assertIn("info@example.com", shown.text)
        self.assertIn("catch-all", shown.text)
        self.assertEqual({(a.source, a.destination) for a in
                          self.read(accounts.list_aliases, "example.com")},
                         {("info@example.com", ALICE), ("@example.com", ALICE)})
        for data, field in (({"source": "info@example.com", "destination": ALICE}, "destination"),
                            ({"source": "bad source", "destination": ALICE}, "source"),
                            ({"source": "x@example.com", "destination": "ghost@example.com"},
                             "destination")):
            answer = yield submit(web, page, "/admin/aliases", data)
            self.assertEqual(answer.status_code, 400, data)
            self.assertIn(f'id="{field}-error"', answer.text, data)
        self.assertEqual(len(self.read(accounts.list_aliases, "example.com")), 2)
        answer = yield submit(web, page, "/admin/aliases/remove",
                              {"source": "@example.com", "destination": ALICE})
        self.assertEqual([a.source for a in self.read(accounts.list_aliases, "example.com")],
                         ["info@example.com"])
