"""The account administration rules (mailgosend.admin), as tables, on SQLite and PostgreSQL.

Every refusal is checked for its class, the argument it blames, a fragment of its message,
and that nothing was written.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from twisted.trial import unittest

from mailgosend import passwords
from mailgosend.admin import (
    AccountAdmin,
    AccountPolicy,
    AdminExists,
    BadInput,
    PasswordRefused,
)
from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)
GIB = 1024 ** 3
HASH = "stored-hash"


class AdminTestsMixin(DatabaseTestBase):
    def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=True, **kwargs)

    def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=False, **kwargs)

    def setUp(self):  # type: ignore[no-untyped-def]
        d = super().setUp()
        self.admin = AccountAdmin(AccountPolicy(default_quota=2 * GIB, bcrypt_cost=4))
        self.write(self.admin.add_domain, "example.com", NOW)
        self.write(self.admin.add_user, "bob@example.com", HASH, NOW, is_admin=True)
        self.write(self.admin.add_user, "carol@example.com", HASH, NOW)
        self.write(self.admin.add_alias, "info@example.com", "bob@example.com", NOW)
        return d

    def snapshot(self) -> tuple[Any, ...]:
        return (self.read(accounts.list_domains), self.read(accounts.list_users),
                self.read(accounts.list_aliases))

    def assertRefusals(self, cases: list[tuple[Callable[..., Any], tuple[Any, ...],
                                                  dict[str, Any], type[Exception], str, str]]
                       ) -> None:
        """(method, args, kwargs, error class, argument blamed, message fragment)."""
        before = self.snapshot()
        for method, args, kwargs, error, argument, fragment in cases:
            label = f"{method.__name__}{args}"
            with self.assertRaises(error, msg=label) as raised:
                self.write(method, *args, **kwargs)
            self.assertEqual(raised.exception.argument, argument, label)   # type: ignore[attr-defined]
            self.assertIn(fragment, str(raised.exception), label)
            self.assertEqual(self.snapshot(), before, f"{label} wrote something")

    # --- domains ---------------------------------------------------------------------

    def test_add_domain_stores_the_canonical_name_and_says_where_postmaster_mail_goes(self) -> None:
        added = self.write(self.admin.add_domain, " Straße.DE. ", NOW)
        self.assertEqual(added.domain.name, "xn--strae-oqa.de")
        # RFC 5321 §4.5.1: without a postmaster user or alias, the first administrator.
        self.assertEqual(added.postmaster, "mail for postmaster@xn--strae-oqa.de goes to "
                         "bob@example.com (the first administrator, as it has no postmaster "
                         "alias)")
        self.write(self.admin.add_alias, "postmaster@example.com", "carol@example.com", NOW)
        self.assertIn("its own mailbox or alias",
                      self.read(accounts.postmaster_route, "example.com"))

    def test_domain_refusals(self) -> None:
        self.assertRefusals([
            (self.admin.add_domain, ("not a domain", NOW), {}, BadInput, "domain",
             "'not a domain'"),
            (self.admin.add_domain, ("EXAMPLE.com.", NOW), {}, accounts.Duplicate, "domain",
             "example.com already exists"),
            (self.admin.add_domain, ("xn--ls8h.la", NOW), {}, BadInput, "domain",
             "'xn--ls8h.la'"),
            (self.admin.remove_domain, ("example.com",), {}, accounts.InUse, "domain",
             "still has 2 user(s)"),
            (self.admin.remove_domain, ("nowhere.example",), {}, accounts.UnknownDomain,
             "domain", "unknown domain nowhere.example"),
            (self.admin.set_domain_enabled, ("bad_domain", False), {}, BadInput, "domain",
             "'bad_domain'"),
        ])

    def test_remove_domain_takes_its_aliases(self) -> None:
        self.write(self.admin.add_domain, "example.org", NOW)
        self.write(self.admin.add_alias, "@example.org", "someone@remote.example", NOW)
        self.assertEqual(self.write(self.admin.remove_domain, "Example.ORG").name,
                         "example.org")
        self.assertEqual([a.source for a in self.read(self.admin.list_aliases)],
                         ["info@example.com"])

    # --- users -----------------------------------------------------------------------

    def test_add_user_quota_and_admin_flag(self) -> None:
        cases = [
            # kwargs, quota stored, admin flag
            ({}, 2 * GIB, False),                       # DEFAULT_QUOTA
            ({"quota": 0}, 0, False),                   # explicitly unlimited
            ({"quota": 5 * GIB}, 5 * GIB, False),
            ({"is_admin": True}, 2 * GIB, True),
        ]
        for n, (kwargs, quota, is_admin) in enumerate(cases):
            user = self.write(self.admin.add_user, f"User{n}@Example.com", HASH, NOW, **kwargs)
            self.assertEqual((user.email, user.quota_bytes, user.is_admin, user.enabled),
                             (f"user{n}@example.com", quota, is_admin, True), kwargs)

    def test_add_user_with_create_domain_adds_the_domain_in_the_same_transaction(self) -> None:
        user = self.write(self.admin.add_user, "root@new.example", HASH, NOW, is_admin=True,
                          create_domain=True)
        self.assertEqual((user.domain, user.is_admin), ("new.example", True))
        # An existing domain is kept as it is.
        self.write(self.admin.set_domain_enabled, "example.com", False)
        self.write(self.admin.add_user, "dan@example.com", HASH, NOW, create_domain=True)
        self.assertEqual([(d.name, d.enabled) for d in self.read(self.admin.list_domains)],
                         [("example.com", False), ("new.example", True)])

    def test_a_refused_user_with_create_domain_leaves_no_domain(self) -> None:
        self.assertRefusals([
            (self.admin.add_user, ("root@new.example", HASH, NOW),
             {"create_domain": True, "quota": -1}, BadInput, "quota", "negative"),
        ])

    def test_check_new_user_refuses_before_a_password_is_asked_for(self) -> None:
        self.assertEqual(self.read(self.admin.check_new_user, "Dan@EXAMPLE.com"),
                         "dan@example.com")
        self.assertEqual(self.read(self.admin.check_new_user, "root@new.example",
                                   create_domain=True), "root@new.example")
        cases = [
            ("notanaddress", {}, BadInput, "'notanaddress'"),
            ("a@b@example.com", {}, BadInput, "'a@b@example.com'"),
            ("Bob@example.com", {}, accounts.Duplicate, "bob@example.com already exists"),
            ("bob@example.com", {"create_domain": True}, accounts.Duplicate, "already exists"),
            ("info@example.com", {}, accounts.Duplicate, "info@example.com is already an alias"),
            ("dan@nowhere.example", {}, accounts.UnknownDomain, "unknown domain nowhere.example"),
            ("root@bad_domain", {"create_domain": True}, BadInput, "'root@bad_domain'"),
        ]
        for email, kwargs, error, fragment in cases:
            with self.assertRaises(error, msg=email) as raised:
                self.read(self.admin.check_new_user, email, **kwargs)
            self.assertEqual(raised.exception.argument, "email", email)
            self.assertIn(fragment, str(raised.exception), email)

    def test_user_refusals(self) -> None:
        self.assertRefusals([
            (self.admin.add_user, ("bob@example.com", HASH, NOW), {}, accounts.Duplicate,
             "email", "already exists"),
            (self.admin.add_user, ("info@example.com", HASH, NOW), {}, accounts.Duplicate,
             "email", "alias"),
            (self.admin.add_user, ("dan@nowhere.example", HASH, NOW), {},
             accounts.UnknownDomain, "email", "nowhere.example"),
            (self.admin.add_user, ("dan@example.com", HASH, NOW), {"quota": -5}, BadInput,
             "quota", "negative"),
            (self.admin.add_user, ("dan@example.com", HASH, NOW), {"quota": "2G"}, BadInput,
             "quota", "'2G'"),
            (self.admin.set_quota, ("bob@example.com", -1), {}, BadInput, "quota",
             "negative"),
            (self.admin.set_quota, ("nobody@example.com", 0), {}, accounts.UnknownUser,
             "email", "unknown user nobody@example.com"),
            (self.admin.set_user_enabled, ("nobody@example.com", False), {},
             accounts.UnknownUser, "email", "nobody@example.com"),
            (self.admin.set_user_admin, ("not an address", True), {}, BadInput, "email",
             "'not an address'"),
            (self.admin.set_password, ("nobody@example.com", HASH, NOW), {},
             accounts.UnknownUser, "email", "nobody@example.com"),
            (self.admin.delete_user, ("nobody@example.com",), {}, accounts.UnknownUser,
             "email", "nobody@example.com"),
        ])

    def test_user_changes(self) -> None:
        self.assertFalse(self.write(self.admin.set_user_enabled, "Carol@example.com",
                                    False).enabled)
        self.assertTrue(self.write(self.admin.set_user_admin, "carol@example.com",
                                   True).is_admin)
        self.assertEqual(self.write(self.admin.set_quota, "carol@example.com", GIB)
                         .quota_bytes, GIB)
        self.assertEqual(self.write(self.admin.set_password, "carol@example.com", "new", NOW)
                         .password_hash, "new")
        self.assertEqual([u.email for u in self.read(self.admin.list_users, "EXAMPLE.com")],
                         ["bob@example.com", "carol@example.com"])
        self.write(self.admin.delete_user, "carol@example.com")
        self.assertIsNone(self.read(accounts.find_user, "carol@example.com"))

    def test_password_policy(self) -> None:
        cases = [
            ("", "empty"),
            ("Sh0rt!p", "at least 8"),
            ("password123", "commonly used"),
            ("dan@example.com", "email address"),
            ("my name is dan!", "mailbox name"),
            ("aaaaaaaaaaaa", "repeated"),
        ]
        for password, fragment in cases:
            with self.assertRaises(PasswordRefused, msg=password) as raised:
                self.admin.check_password(password, "dan@example.com")
            self.assertEqual(raised.exception.argument, "password")
            self.assertTrue(str(raised.exception).startswith("password refused: "), password)
            self.assertIn(fragment, str(raised.exception), password)
        self.admin.check_password("correct horse battery staple", "dan@example.com")

    def test_hash_password_uses_the_configured_cost(self) -> None:
        stored = self.admin.hash_password("correct horse battery staple")
        self.assertIn("$2b$04$", stored)
        self.assertTrue(passwords.verify_password("correct horse battery staple", stored))

    # --- aliases ---------------------------------------------------------------------

    def test_alias_refusals(self) -> None:
        self.assertRefusals([
            (self.admin.add_alias, ("x@example.com", "nobody@example.com", NOW), {},
             accounts.UnknownUser, "destination", "neither a user nor an alias"),
            (self.admin.add_alias, ("bob@example.com", "someone@remote.example", NOW), {},
             accounts.Duplicate, "source", "bob@example.com is a user"),
            (self.admin.add_alias, ("x@nowhere.example", "bob@example.com", NOW), {},
             accounts.UnknownDomain, "source", "unknown domain nowhere.example"),
            (self.admin.add_alias, ("x@example.com", "X@example.com", NOW), {},
             accounts.AccountError, "destination", "itself"),
            (self.admin.add_alias, ("info@example.com", "bob@example.com", NOW), {},
             accounts.Duplicate, "destination", "already exists"),
            (self.admin.add_alias, ("x@example.com", "not-an-address", NOW), {}, BadInput,
             "destination", "'not-an-address'"),
            (self.admin.add_alias, ("@bad_domain", "bob@example.com", NOW), {}, BadInput,
             "source", "'bad_domain'"),
            (self.admin.remove_alias, ("none@example.com",), {}, accounts.AccountError,
             "source", "no alias none@example.com"),
            (self.admin.remove_alias, ("info@example.com", "carol@example.com"), {},
             accounts.AccountError, "destination", "no alias info@example.com ->"),
        ])

    def test_alias_changes(self) -> None:
        added = self.write(self.admin.add_alias, "@Example.com", "Carol@example.com", NOW)
        self.assertEqual((added.source, added.destination),
                         ("@example.com", "carol@example.com"))
        self.write(self.admin.add_alias, "info@example.com", "friend@remote.example", NOW)
        self.assertEqual(self.write(self.admin.remove_alias, "info@example.com",
                                    "friend@remote.example"), 1)
        self.write(self.admin.add_alias, "info@example.com", "carol@example.com", NOW)
        self.assertEqual(self.write(self.admin.remove_alias, "INFO@example.com"), 2)
        self.assertEqual([a.source for a in self.read(self.admin.list_aliases, "example.com")],
                         ["@example.com"])


    # --- settings page: display name, aliases, first administrator -------------------

    def test_display_name_is_cleaned_stored_and_cleared(self) -> None:
        self.assertEqual(self.read(self.admin.display_name, "carol@example.com"), "")
        stored = self.write(self.admin.set_display_name, "carol@example.com",
                            "  Carol   Jones ")
        self.assertEqual(stored, "Carol Jones")
        self.assertEqual(self.read(self.admin.display_name, "Carol@example.com"), "Carol Jones")
        self.write(self.admin.set_display_name, "carol@example.com", "")
        self.assertEqual(self.read(self.admin.display_name, "carol@example.com"), "")

    def test_display_name_refusals(self) -> None:
        self.write(self.admin.set_display_name, "carol@example.com", "Carol")
        for bad in ("x" * 101, "Carol\x00", "Carol\x1b[31m"):
            with self.assertRaises(BadInput) as raised:
                self.write(self.admin.set_display_name, "carol@example.com", bad)
            self.assertEqual(raised.exception.argument, "display_name")
        self.assertEqual(self.read(self.admin.display_name, "carol@example.com"), "Carol")

    def test_aliases_of_a_user(self) -> None:
        self.write(self.admin.add_alias, "@example.com", "carol@example.com", NOW)
        self.write(self.admin.add_alias, "sales@example.com", "carol@example.com", NOW)
        self.assertEqual(self.read(self.admin.aliases_of, "carol@example.com"),
                         ["@example.com", "sales@example.com"])
        self.assertEqual(self.read(self.admin.aliases_of, "bob@example.com"),
                         ["info@example.com"])

    def test_change_password_ends_the_other_sessions(self) -> None:
        from mailgosend.store import sessions as store

        carol = self.read(self.admin.get_user, "carol@example.com")
        bob = self.read(self.admin.get_user, "bob@example.com")
        made = [self.write(store.create_session, token=bytes([n]) * 32, user_id=user.id,
                           kind=kind, csrf_secret=b"c" * 32, now=NOW, expires_at=NOW,
                           ip="127.0.0.1", user_agent="", pending_step=None)
                for n, (user, kind) in enumerate([(carol, "web"), (carol, "web"),
                                                  (carol, "admin"), (bob, "web")])]
        changed = self.write(self.admin.change_password, "carol@example.com", "new-hash", NOW,
                             keep_session=made[0])
        self.assertEqual(changed.password_hash, "new-hash")
        left = [self.read(store.find_session, bytes([n]) * 32, kind) is not None
                for n, kind in enumerate(["web", "web", "admin", "web"])]
        self.assertEqual(left, [True, False, False, True])

    def test_first_admin_only_while_there_is_none(self) -> None:
        with self.assertRaises(AdminExists):
            self.write(self.admin.add_first_admin, "root@new.example", HASH, NOW)
        self.write(self.admin.set_user_admin, "bob@example.com", False)
        root = self.write(self.admin.add_first_admin, "Root@New.example", HASH, NOW)
        self.assertEqual((root.email, root.is_admin), ("root@new.example", True))
        self.assertIn("new.example", [d.name for d in self.read(self.admin.list_domains)])

    def test_has_admin(self) -> None:
        self.assertTrue(self.read(self.admin.has_admin))
        self.write(self.admin.set_user_admin, "bob@example.com", False)
        self.assertFalse(self.read(self.admin.has_admin))

class AdminSQLiteTests(SQLiteDatabaseMixin, AdminTestsMixin, unittest.TestCase):
    pass


class AdminPostgresTests(PostgresDatabaseMixin, AdminTestsMixin, unittest.TestCase):
    pass


class PolicyTests(unittest.SynchronousTestCase):
    def test_policy_from_config(self) -> None:
        policy = AccountPolicy.from_config({"DEFAULT_QUOTA": 5 * GIB, "BCRYPT_COST": 11})
        self.assertEqual(policy, AccountPolicy(default_quota=5 * GIB, bcrypt_cost=11))
