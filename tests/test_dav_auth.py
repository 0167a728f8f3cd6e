"""DAV sign-in and isolation: Basic auth through the Portal (service "dav"): no or wrong
credentials get 401 and count as failures; an MFA user's account password is refused with
the app-password hint while a "dav" app password works and an IMAP-only one does not;
repeated logins cost one bcrypt (the verified-login cache); and a user reaches nothing of
another user's, by any URL form and method, and changes nothing there."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pyotp
from sqlalchemy import func, select
from twisted.internet import defer

from mailgosend import passwords
from mailgosend.admin import AccountAdmin, AccountPolicy
from mailgosend.auth.mfa import SecondFactor
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import login_attempts
from tests.support.dav import DavServerTestCase

ALICE, BOB = "alice@example.com", "bob@example.com"
EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
         "DTSTAMP:20261201T000000Z\r\nDTSTART:20270101T100000Z\r\nDTEND:20270101T110000Z\r\n"
         "SUMMARY:Bob's secret\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bc\r\nFN:Bob Contact\r\nEND:VCARD\r\n"


class DavAuthTests(DavServerTestCase):
    def write(self, fn: Any, *args: Any) -> Any:
        return run_sync(self.server.engine, fn, *args, write=True)

    @defer.inlineCallbacks
    def test_no_or_wrong_credentials(self) -> Any:
        answer = yield self.dav("PROPFIND", "/caldav/alice@example.com/", "", user=None,
                                Depth="0")
        self.assertEqual(answer.status_code, 401)
        self.assertIn("Basic", answer.headers["WWW-Authenticate"])
        answer = yield self.dav("PROPFIND", "/caldav/alice@example.com/", "",
                                password="wrong", Depth="0")
        self.assertEqual(answer.status_code, 401)
        failures = run_sync(self.server.engine, lambda c: c.execute(
            select(func.count()).select_from(login_attempts).where(
                login_attempts.c.service == "dav")).scalar_one(), write=False)
        self.assertGreaterEqual(failures, 1)

    @defer.inlineCallbacks
    def test_mfa_user_needs_a_dav_app_password(self) -> Any:
        mfa = SecondFactor(self.server.root.components["keyring"])
        enrolment = self.write(mfa.start_enrolment, ALICE)
        now = datetime.now(timezone.utc)
        self.write(mfa.confirm_enrolment, ALICE, pyotp.TOTP(enrolment.secret).at(now), now)
        admin = AccountAdmin(AccountPolicy(bcrypt_cost=4))
        shown = {}
        for name, protocols in (("phone", ("dav",)), ("mail", ("imap",))):
            new = admin.make_app_password(name, protocols)
            self.write(admin.add_app_password, ALICE, new, now)
            shown[name] = new.shown
        answer = yield self.dav("PROPFIND", "/", "", Depth="0")
        self.assertEqual(answer.status_code, 401)
        self.assertIn("app password", answer.text)
        answer = yield self.dav("PROPFIND", "/", "", password=shown["mail"], Depth="0")
        self.assertEqual(answer.status_code, 401)
        answer = yield self.dav("PROPFIND", "/", "", password=shown["phone"], Depth="0")
        self.assertEqual(answer.status_code, 207)

    @defer.inlineCallbacks
    def test_repeated_logins_cost_one_bcrypt(self) -> Any:
        calls = []
        real = passwords.verify_password

        def counting(password: str, stored: str) -> bool:
            calls.append(1)
            return real(password, stored)

        self.patch(passwords, "verify_password", counting)
        for _ in range(20):
            answer = yield self.dav("PROPFIND", "/caldav/alice@example.com/", "", Depth="1")
            self.assertEqual(answer.status_code, 207)
        self.assertEqual(len(calls), 1)

    @defer.inlineCallbacks
    def test_another_users_urls(self) -> Any:
        answer = yield self.dav("PUT", "/caldav/bob@example.com/calendar/b.ics",
                                EVENT.format(uid="b"), user=BOB)
        self.assertEqual(answer.status_code, 201)
        answer = yield self.dav("PUT", "/carddav/bob@example.com/contacts/c.vcf", CARD,
                                user=BOB)
        self.assertEqual(answer.status_code, 201)

        @defer.inlineCallbacks
        def bobs_view() -> Any:
            seen = []
            for path in ("/caldav/bob@example.com/calendar/", "/carddav/bob@example.com/"
                         "contacts/", "/caldav/bob@example.com/", "/carddav/bob@example.com/"):
                listed = yield self.dav("PROPFIND", path, "", user=BOB, Depth="1")
                seen.append(listed.text)
            return seen

        before = yield bobs_view()
        paths = []
        for base, cal, card in ((self.web_base, "/caldav/", "/carddav/"),
                                (self.dav_base, "/dav/calendars/", "/dav/contacts/")):
            for user in ("bob@example.com", "bob%40example.com", "bob", "BOB@Example.com"):
                paths += [(base, f"{cal}{user}/"), (base, f"{cal}{user}/calendar/"),
                          (base, f"{cal}{user}/calendar/b.ics"), (base, f"{cal}{user}/new/"),
                          (base, f"{card}{user}/"), (base, f"{card}{user}/contacts/"),
                          (base, f"{card}{user}/contacts/c.vcf")]
        bodies = {"PUT": EVENT.format(uid="evil"),
                  "PROPPATCH": '<propertyupdate xmlns="DAV:"><set><prop><displayname>x'
                               '</displayname></prop></set></propertyupdate>',
                  "REPORT": '<sync-collection xmlns="DAV:"><sync-token/><sync-level>1'
                            '</sync-level><prop><getetag/></prop></sync-collection>'}
        for base, path in paths:
            for method in ("PROPFIND", "GET", "HEAD", "PUT", "DELETE", "PROPPATCH", "REPORT",
                           "MKCOL", "MKCALENDAR", "MOVE", "COPY"):
                answer = yield self.dav(method, path, bodies.get(method, ""), base=base,
                                        Depth="1", Destination=base + path + "x")
                self.assertIn(answer.status_code, (403, 404), f"{method} {path}")
                self.assertNotIn("Bob", answer.text)
        # moving one's own object into another user's collection is refused too
        own = yield self.dav("PUT", "/caldav/alice@example.com/calendar/a.ics",
                             EVENT.format(uid="a").replace("Bob's secret", "Alice's"))
        self.assertEqual(own.status_code, 201)
        for method in ("MOVE", "COPY"):
            answer = yield self.dav(method, "/caldav/alice@example.com/calendar/a.ics",
                                    Destination=self.web_base +
                                    "/caldav/bob@example.com/calendar/a.ics")
            self.assertEqual(answer.status_code, 403)
        after = yield bobs_view()
        self.assertEqual(after, before)
        self.assertIn("b.ics", after[0])
        self.assertNotIn("a.ics", after[0])
