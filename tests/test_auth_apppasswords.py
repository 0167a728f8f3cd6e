"""App passwords: their shape and scopes (tables), and the checker through the one Portal:
scoped acceptance, revocation through the cache, bans, MFA refusing the account password."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.admin import AccountAdmin, AccountPolicy, UnknownAppPassword
from mailgosend.auth import apppasswords as app
from mailgosend.auth.checker import (
    AppPasswordOutOfScope,
    AppPasswordRequired,
    LoginBanned,
    LoginRefused,
)
from mailgosend.auth.credentials import ClientCredentials
from mailgosend.auth.portal import IUser
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import login_attempts, security_events
from mailgosend.store import accounts
from mailgosend.store import mfa as mfa_store
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.test_auth import PASSWORD, PortalFixture, settings


class AppPasswordShapeTests(unittest.TestCase):
    def test_new_passwords_are_20_characters_of_the_alphabet_and_differ(self) -> None:
        made = {app.new_app_password() for _ in range(20)}
        self.assertEqual(len(made), 20)
        for password in made:
            self.assertEqual(app.normalize_app_password(password), password)

    def test_normalisation_table(self) -> None:
        cases = [
            ("abcd-efgh-jkmn-pqrs-tuvw", "abcdefghjkmnpqrstuvw"),
            ("ABCD EFGH JKMN PQRS TUVW", "abcdefghjkmnpqrstuvw"),
            ("abcdefghjkmnpqrstuvw", "abcdefghjkmnpqrstuvw"),
            ("abcd-efgh-jkmn-pqrs-tuv", None),              # too short
            ("abcd-efgh-jkmn-pqrs-tuv0", None),             # 0 is not in the alphabet
            ("correct horse battery staple", None),         # an ordinary password
            ("", None),
        ]
        for given, expected in cases:
            with self.subTest(given):
                self.assertEqual(app.normalize_app_password(given), expected)

    def test_format_groups_by_four(self) -> None:
        self.assertEqual(app.format_app_password("abcdefghjkmnpqrstuvw"),
                         "abcd-efgh-jkmn-pqrs-tuvw")


class ScopeTests(unittest.TestCase):
    def test_service_to_protocol_table(self) -> None:
        cases = [("imap", "imap"), ("pop3", "pop3"), ("submission", "submission"),
                 ("smtps", "submission"), ("dav", "dav"), ("web", None), ("admin", None),
                 ("inbound", None), ("unknown", None)]
        for service, expected in cases:
            with self.subTest(service):
                self.assertEqual(app.protocol_of_service(service), expected)

    def test_parse_protocols_table(self) -> None:
        cases = [(["imap"], ("imap",)), (["smtp,imap"], ("imap", "submission")),
                 (["dav pop3", "IMAP"], ("imap", "pop3", "dav")),
                 (["imap,imap"], ("imap",))]
        for given, expected in cases:
            with self.subTest(given):
                self.assertEqual(app.parse_protocols(given), expected)
        for bad, why in [([""], "at least one"), (["web"], "unknown protocol 'web'")]:
            with self.subTest(bad):
                with self.assertRaises(ValueError) as raised:
                    app.parse_protocols(bad)
                self.assertIn(why, str(raised.exception))


# --- the checker: app passwords and MFA through the one Portal (both back ends) ------------

ALICE = "alice@example.com"


class CheckerFixture(PortalFixture):
    """The portal plus helpers for app passwords and MFA; no tests of its own."""

    def setUp(self):  # type: ignore[no-untyped-def]
        result = super().setUp()
        self.admin = AccountAdmin(AccountPolicy(bcrypt_cost=4))
        return result

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    def sign_in(self, password: str, service: str = "imap", ip: str = "192.0.2.1",
                user: str = ALICE) -> defer.Deferred:
        return self.portal.login(ClientCredentials(user, password, ip, service), None, IUser)

    def app_password(self, name: str, *protocols: str) -> str:
        new = self.admin.make_app_password(name, protocols)
        run_sync(self.engine, self.admin.add_app_password, ALICE, new, self.now(), write=True)
        return new.shown

    def revoke(self, name: str) -> None:
        run_sync(self.engine, self.admin.revoke_app_password, ALICE, name, write=True)

    def mfa_on(self) -> None:
        user = run_sync(self.engine, accounts.get_user, ALICE, write=False)
        run_sync(self.engine, mfa_store.begin_enrolment, user.id, b"sealed", write=True)
        run_sync(self.engine, mfa_store.enable, user.id, self.now(), [], write=True)

    def failures(self) -> int:
        return run_sync(self.engine, lambda c: c.execute(
            select(func.count()).select_from(login_attempts)
            .where(login_attempts.c.success.is_(False))).scalar_one(), write=False)

    def events(self) -> list[str]:
        return [r.kind for r in self.rows(security_events)]


class CheckerTestsMixin(CheckerFixture):
    @defer.inlineCallbacks
    def test_app_password_opens_only_its_protocols(self):  # type: ignore[no-untyped-def]
        shown = self.app_password("phone", "imap", "submission")
        for service in ("imap", "submission", "smtps"):
            _, avatar, _ = yield self.sign_in(shown, service)
            self.assertEqual(avatar.email, ALICE)
        for service in ("pop3", "dav"):
            failure = yield self.assertFailure(self.sign_in(shown, service),
                                               AppPasswordOutOfScope)
            self.assertIn("not allowed for", failure.client_text)
        # The web sign-in takes the account password (and the second factor), never this.
        yield self.assertFailure(self.sign_in(shown, "web"), LoginRefused)
        self.assertIn("login_refused_app_password_scope", self.events())

    @defer.inlineCallbacks
    def test_app_password_is_accepted_without_dashes_or_case(self):  # type: ignore[no-untyped-def]
        shown = self.app_password("laptop", "pop3")
        yield self.sign_in(shown.replace("-", "").upper(), "pop3")

    @defer.inlineCallbacks
    def test_use_is_recorded_with_time_and_address(self):  # type: ignore[no-untyped-def]
        shown = self.app_password("phone", "imap")
        self.clock.advance(120)
        yield self.sign_in(shown, "imap", ip="198.51.100.7")
        [row] = run_sync(self.engine, self.admin.list_app_passwords, ALICE, write=False)
        self.assertEqual((row.last_used_at, row.last_ip), (self.now(), "198.51.100.7"))
        self.assertEqual(row.prefix, shown[:4])

    @defer.inlineCallbacks
    def test_revoked_app_password_is_refused_at_once_even_when_cached(self):  # type: ignore[no-untyped-def]
        shown = self.app_password("phone", "imap")
        yield self.sign_in(shown)                      # verified and cached
        yield self.sign_in(shown)
        self.revoke("phone")
        yield self.assertFailure(self.sign_in(shown), LoginRefused)
        self.assertRaises(UnknownAppPassword, run_sync, self.engine,
                          self.admin.revoke_app_password, ALICE, "phone", write=True)

    @defer.inlineCallbacks
    def test_revoked_app_password_failures_count_toward_a_ban(self):  # type: ignore[no-untyped-def]
        shown = self.app_password("phone", "imap")
        self.revoke("phone")
        for _ in range(settings()["BRUTE_MAX_TRIES"]):
            yield self.assertFailure(self.sign_in(shown), LoginRefused)
        # The IP is now banned: even the account password is refused from it.
        yield self.assertFailure(self.sign_in(PASSWORD, "web"), LoginBanned)

    @defer.inlineCallbacks
    def test_mfa_refuses_the_account_password_on_mail_protocols_only(self):  # type: ignore[no-untyped-def]
        self.mfa_on()
        for service in ("imap", "pop3", "submission", "smtps", "dav"):
            failure = yield self.assertFailure(self.sign_in(PASSWORD, service),
                                               AppPasswordRequired)
            self.assertIn("app password", failure.client_text)
        _, avatar, _ = yield self.sign_in(PASSWORD, "web")   # the web asks for the code next
        self.assertEqual(avatar.email, ALICE)
        shown = self.app_password("phone", "imap")
        yield self.sign_in(shown, "imap")

    @defer.inlineCallbacks
    def test_the_right_account_password_refused_by_mfa_does_not_count(self):  # type: ignore[no-untyped-def]
        self.mfa_on()
        for _ in range(settings()["BRUTE_MAX_TRIES"] + 2):
            yield self.assertFailure(self.sign_in(PASSWORD), AppPasswordRequired)
        self.assertEqual(self.failures(), 0)
        self.assertIn("login_refused_mfa_password", self.events())
        # A wrong one gets the same reply (no password oracle) and counts.
        yield self.assertFailure(self.sign_in("pw-SECRET-wrong"), AppPasswordRequired)
        self.assertEqual(self.failures(), 1)

    @defer.inlineCallbacks
    def test_turning_mfa_on_ends_a_cached_account_password_login(self):  # type: ignore[no-untyped-def]
        yield self.sign_in(PASSWORD)                   # verified and cached
        self.mfa_on()
        yield self.assertFailure(self.sign_in(PASSWORD), AppPasswordRequired)
        run_sync(self.engine, self.admin.reset_mfa, ALICE, write=True)
        yield self.sign_in(PASSWORD)

    @defer.inlineCallbacks
    def test_app_password_of_a_disabled_account_is_refused_and_counted(self):  # type: ignore[no-untyped-def]
        shown = self.app_password("phone", "imap")
        run_sync(self.engine, accounts.set_user_enabled, ALICE, False, write=True)
        failure = yield self.assertFailure(self.sign_in(shown), LoginRefused)
        self.assertNotIsInstance(failure, (AppPasswordRequired, AppPasswordOutOfScope))
        self.assertEqual(self.failures(), 1)

    @defer.inlineCallbacks
    def test_unknown_user_with_an_app_password_shape_is_refused(self):  # type: ignore[no-untyped-def]
        yield self.assertFailure(self.sign_in(new_password(), user="nobody@example.com"),
                                 LoginRefused)


def new_password() -> str:
    return app.format_app_password(app.new_app_password())


class MFAOffTestsMixin(CheckerFixture):
    config_overrides: dict[str, Any] = {"MFA_PROTECTS_PROTOCOLS": False}

    @defer.inlineCallbacks
    def test_account_password_still_works_when_protection_is_off(self):  # type: ignore[no-untyped-def]
        self.mfa_on()
        yield self.sign_in(PASSWORD, "imap")


class CheckerSQLiteTests(SQLiteDatabaseMixin, CheckerTestsMixin, unittest.TestCase):
    pass


class CheckerPostgresTests(PostgresDatabaseMixin, CheckerTestsMixin, unittest.TestCase):
    pass


class MFAOffSQLiteTests(SQLiteDatabaseMixin, MFAOffTestsMixin, unittest.TestCase):
    pass
