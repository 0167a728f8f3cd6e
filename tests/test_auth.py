"""The shared Portal and checker: passwords, brute-force bans, records (both back ends)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from twisted.cred.credentials import UsernamePassword
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mailgosend import passwords
from mailgosend.auth.bans import BanCache
from mailgosend.auth.bruteforce import BrutePolicy, decide, parse_networks
from mailgosend.auth.checker import LoginBanned, LoginRefused
from mailgosend.auth.credentials import ClientCredentials
from mailgosend.auth.portal import IUser, build_portal
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import account_bans, ip_bans, login_attempts, security_events
from mailgosend.store import accounts
from mailgosend.store.security import SecurityStore
from mailgosend.workers import WorkerPool
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.config import auth_settings

PASSWORD = "pw-SECRET-correct-horse-7"
START = 1_795_000_000.0  # a fixed "now" for the injected clock


def settings(**overrides: Any) -> dict[str, Any]:
    return auth_settings(**{"BRUTE_MAX_TRIES": 3, "BRUTE_ACCOUNT_MAX_TRIES": 5, **overrides})


class PortalFixture(DatabaseTestBase):
    """A portal over a fresh database with alice@example.com; no tests of its own."""

    config_overrides: dict[str, Any] = {}

    def setUp(self):  # type: ignore[no-untyped-def]
        result = super().setUp()
        self.clock = task.Clock()
        self.clock.advance(START)
        now = datetime.fromtimestamp(START, timezone.utc)
        run_sync(self.engine, accounts.add_domain, "example.com", now, write=True)
        run_sync(self.engine, accounts.add_user, "alice@example.com",
                 passwords.hash_password(PASSWORD, 4), now, write=True)
        config = settings(**self.config_overrides)
        self.security = SecurityStore(self.runner, config, self.clock)
        self.bans = BanCache(self.security, self.clock)
        self.workers = WorkerPool(reactor, 2)
        self.workers.startService()
        self.addCleanup(self.workers.stopService)
        self.portal = build_portal(self.runner, self.security, self.bans, self.workers, config)
        return result

    def login(self, username: str, password: str, ip: str = "192.0.2.1") -> defer.Deferred:
        return self.portal.login(ClientCredentials(username, password, ip, "imap"), None, IUser)

    def rows(self, table: Any) -> list[Any]:
        return run_sync(self.engine, lambda c: list(c.execute(select(table))), write=False)

    @defer.inlineCallbacks
    def fail_times(self, n: int, ip: str = "192.0.2.1", user: str = "alice@example.com"):  # type: ignore[no-untyped-def]
        for _ in range(n):
            yield self.assertFailure(self.login(user, "wrong", ip), LoginRefused)


class PortalTestsMixin(PortalFixture):
    @defer.inlineCallbacks
    def test_correct_password_gives_user_avatar(self):  # type: ignore[no-untyped-def]
        interface, avatar, logout = yield self.login("alice@example.com", PASSWORD)
        self.assertIs(interface, IUser)
        self.assertEqual(avatar.email, "alice@example.com")

    @defer.inlineCallbacks
    def test_bare_name_logs_in_to_default_domain_case_insensitively(self):  # type: ignore[no-untyped-def]
        _, avatar, _ = yield self.login("ALICE", PASSWORD)
        self.assertEqual(avatar.email, "alice@example.com")

    @defer.inlineCallbacks
    def test_plain_username_password_credentials_work_without_ip(self):  # type: ignore[no-untyped-def]
        _, avatar, _ = yield self.portal.login(
            UsernamePassword(b"alice@example.com", PASSWORD.encode()), None, IUser)
        self.assertEqual(avatar.email, "alice@example.com")

    @defer.inlineCallbacks
    def test_wrong_password_unknown_user_and_disabled_user_refused_alike(self):  # type: ignore[no-untyped-def]
        yield self.assertFailure(self.login("alice@example.com", "nope"), LoginRefused)
        yield self.assertFailure(self.login("ghost@example.com", PASSWORD), LoginRefused)
        run_sync(self.engine, accounts.set_user_enabled, "alice@example.com", False, write=True)
        yield self.assertFailure(self.login("alice@example.com", PASSWORD), LoginRefused)

    @defer.inlineCallbacks
    def test_attempts_and_events_recorded_without_the_password(self):  # type: ignore[no-untyped-def]
        yield self.login("alice@example.com", PASSWORD)
        yield self.assertFailure(self.login("alice@example.com", PASSWORD + "x"), LoginRefused)
        attempts = self.rows(login_attempts)
        self.assertEqual([(a.username, a.success, a.service, a.ip) for a in attempts],
                         [("alice@example.com", True, "imap", "192.0.2.1"),
                          ("alice@example.com", False, "imap", "192.0.2.1")])
        events = self.rows(security_events)
        self.assertEqual([e.kind for e in events], ["login_failed"])
        everything = repr(attempts) + repr(events)
        self.assertNotIn("correct-horse", everything)

    @defer.inlineCallbacks
    def test_ip_banned_after_max_tries_even_with_right_password(self):  # type: ignore[no-untyped-def]
        yield self.fail_times(3)
        failure = yield self.assertFailure(self.login("alice@example.com", PASSWORD), LoginBanned)
        self.assertEqual(failure.until, datetime.fromtimestamp(START, timezone.utc)
                         + timedelta(hours=1))
        self.assertTrue(self.bans.is_banned("192.0.2.1"))
        bans = self.rows(ip_bans)
        self.assertEqual([b.ip for b in bans], ["192.0.2.1"])
        kinds = [e.kind for e in self.rows(security_events)]
        self.assertIn("ip_banned", kinds)
        self.assertIn("login_refused_banned_ip", kinds)
        # Another address is unaffected.
        _, avatar, _ = yield self.login("alice@example.com", PASSWORD, ip="192.0.2.99")
        self.assertEqual(avatar.email, "alice@example.com")

    @defer.inlineCallbacks
    def test_ban_expires(self):  # type: ignore[no-untyped-def]
        yield self.fail_times(3)
        self.clock.advance(3601)
        self.assertFalse(self.bans.is_banned("192.0.2.1"))
        _, avatar, _ = yield self.login("alice@example.com", PASSWORD)
        self.assertEqual(avatar.email, "alice@example.com")

    @defer.inlineCallbacks
    def test_failures_outside_window_do_not_count(self):  # type: ignore[no-untyped-def]
        yield self.fail_times(2)
        self.clock.advance(16 * 60)
        yield self.fail_times(2)
        _, avatar, _ = yield self.login("alice@example.com", PASSWORD)
        self.assertEqual(avatar.email, "alice@example.com")

    @defer.inlineCallbacks
    def test_ban_cache_reloads_bans_made_by_another_node(self):  # type: ignore[no-untyped-def]
        other = BanCache(self.security, self.clock)
        yield self.fail_times(3)
        self.assertFalse(other.is_banned("192.0.2.1"))
        yield other.refresh()
        self.assertTrue(other.is_banned("192.0.2.1"))

    @defer.inlineCallbacks
    def test_distributed_guessing_suspends_account_but_not_owner_address(self):  # type: ignore[no-untyped-def]
        yield self.login("alice@example.com", PASSWORD, ip="198.51.100.7")  # the owner
        for n in range(5):
            yield self.assertFailure(
                self.login("alice@example.com", "guess", ip=f"203.0.113.{n}"), LoginRefused)
        self.assertEqual([b.username for b in self.rows(account_bans)], ["alice@example.com"])
        yield self.assertFailure(
            self.login("alice@example.com", PASSWORD, ip="203.0.113.200"), LoginBanned)
        _, avatar, _ = yield self.login("alice@example.com", PASSWORD, ip="198.51.100.7")
        self.assertEqual(avatar.email, "alice@example.com")


class VerifiedLoginCacheTestsMixin(PortalFixture):
    def count_bcrypt(self) -> list[int]:
        calls = [0]
        real = passwords.verify_password

        def counting(password: str, stored: str) -> bool:
            calls[0] += 1
            return real(password, stored)
        self.patch(passwords, "verify_password", counting)
        return calls

    @defer.inlineCallbacks
    def test_repeated_login_pays_bcrypt_once(self):  # type: ignore[no-untyped-def]
        calls = self.count_bcrypt()
        for _ in range(3):
            yield self.login("alice@example.com", PASSWORD)
        self.assertEqual(calls[0], 1)
        self.clock.advance(301)                       # the entry expires
        yield self.login("alice@example.com", PASSWORD)
        self.assertEqual(calls[0], 2)

    @defer.inlineCallbacks
    def test_password_change_invalidates_the_cached_login(self):  # type: ignore[no-untyped-def]
        yield self.login("alice@example.com", PASSWORD)
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        run_sync(self.engine, accounts.set_password, "alice@example.com",
                 passwords.hash_password("pw-SECRET-brand-new-1", 4), now, write=True)
        yield self.assertFailure(self.login("alice@example.com", PASSWORD), LoginRefused)

    @defer.inlineCallbacks
    def test_wrong_password_is_never_answered_from_the_cache(self):  # type: ignore[no-untyped-def]
        yield self.login("alice@example.com", PASSWORD)
        yield self.assertFailure(self.login("alice@example.com", PASSWORD + "x"), LoginRefused)


class VerifiedLoginCacheSQLiteTests(SQLiteDatabaseMixin, VerifiedLoginCacheTestsMixin,
                                    unittest.TestCase):
    pass


class PortalSQLiteTests(SQLiteDatabaseMixin, PortalTestsMixin, unittest.TestCase):
    pass


class PortalPostgresTests(PostgresDatabaseMixin, PortalTestsMixin, unittest.TestCase):
    pass


class ExemptTestsMixin(PortalFixture):
    config_overrides = {"BAN_EXEMPT_IPS": ("192.0.2.0/24",)}

    @defer.inlineCallbacks
    def test_exempt_network_is_never_banned_but_failures_recorded(self):  # type: ignore[no-untyped-def]
        yield self.fail_times(4)
        self.assertEqual(self.rows(ip_bans), [])
        self.assertEqual(len(self.rows(login_attempts)), 4)


class ExemptSQLiteTests(SQLiteDatabaseMixin, ExemptTestsMixin, unittest.TestCase):
    pass


class PolicyTests(unittest.TestCase):
    policy = BrutePolicy(3, 5, timedelta(minutes=15), timedelta(hours=1),
                         parse_networks(["10.0.0.0/8", "2001:db8::1"]))

    def test_decision_table(self) -> None:
        cases = [
            # ip, ip_failures, account_failures, kwargs, (ban_ip, ban_account)
            ("192.0.2.1", 2, 0, {}, (False, False)),
            ("192.0.2.1", 3, 0, {}, (True, False)),
            ("192.0.2.1", 3, 0, {"ip_already_banned": True}, (False, False)),
            ("10.1.2.3", 50, 0, {}, (False, False)),
            ("2001:db8::1", 50, 0, {}, (False, False)),
            ("192.0.2.1", 0, 5, {}, (False, True)),
            ("192.0.2.1", 0, 5, {"account_exists": False}, (False, False)),
            ("192.0.2.1", 0, 9, {"account_already_banned": True}, (False, False)),
        ]
        for ip, ipf, accf, kwargs, expected in cases:
            decision = decide(self.policy, ip, ipf, accf, **kwargs)
            self.assertEqual((decision.ban_ip, decision.ban_account), expected,
                             msg=(ip, ipf, accf, kwargs))

    def test_bad_exempt_entry_named(self) -> None:
        with self.assertRaises(ValueError) as caught:
            parse_networks(["10.0.0.0/8", "not-an-ip"])
        self.assertIn("not-an-ip", str(caught.exception))
