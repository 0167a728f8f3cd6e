"""Domains, users, aliases and recipient resolution, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from mailgosend.store.addresses import AddressError, parse_address
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


class AccountsTestsMixin(DatabaseTestBase):
    def write(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        return run_sync(self.engine, fn, *args, write=True, **kwargs)

    def read(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        return run_sync(self.engine, fn, *args, write=False, **kwargs)

    def setUp(self):  # type: ignore[no-untyped-def]
        d = super().setUp()
        self.write(accounts.add_domain, "example.com", NOW)
        self.write(accounts.add_domain, "other.test", NOW)
        for email in ("alice@example.com", "bob@example.com", "carol@other.test"):
            self.write(accounts.add_user, email, "hash", NOW)
        return d

    def resolve(self, address: str) -> accounts.Resolution:
        return self.read(accounts.resolve_recipient, address)

    def test_user_receives_at_exact_address_case_insensitively(self) -> None:
        self.assertEqual(self.resolve("Alice@EXAMPLE.com").local, ("alice@example.com",))

    def test_domains_are_stored_in_their_idna_2008_form(self) -> None:
        # Issue 10 item 5: Python's IDNA 2003 codec made straße.de strasse.de, a different
        # domain from the one SMTP (IDNA 2008) looks up for mail sent to it.
        self.write(accounts.add_domain, "Straße.de", NOW)
        self.write(accounts.add_user, "anna@straße.de", "hash", NOW)
        self.assertIn("xn--strae-oqa.de", [d.name for d in self.read(accounts.list_domains)])
        self.assertTrue(self.read(accounts.is_local_domain, "xn--strae-oqa.de"))
        self.assertFalse(self.read(accounts.is_local_domain, "strasse.de"))
        self.assertEqual(self.resolve("anna@xn--strae-oqa.de").local,
                         ("anna@xn--strae-oqa.de",))
        self.assertEqual(self.resolve("anna@strasse.de").remote, ("anna@strasse.de",))
        self.write(accounts.add_domain, "strasse.de", NOW)    # a domain of its own

    def test_subaddress_reaches_base_user(self) -> None:
        self.assertEqual(self.resolve("alice+lists@example.com").local, ("alice@example.com",))

    def test_alias_chain_expands_to_users_and_remote(self) -> None:
        self.write(accounts.add_alias, "team@example.com", "alice@example.com", NOW)
        self.write(accounts.add_alias, "team@example.com", "carol@other.test", NOW)
        self.write(accounts.add_alias, "all@example.com", "team@example.com", NOW)
        self.write(accounts.add_alias, "all@example.com", "friend@remote.example", NOW)
        result = self.resolve("all@example.com")
        self.assertEqual(set(result.local), {"alice@example.com", "carol@other.test"})
        self.assertEqual(result.remote, ("friend@remote.example",))

    def test_alias_loop_delivers_once_and_terminates(self) -> None:
        self.write(accounts.add_alias, "a@example.com", "alice@example.com", NOW)
        self.write(accounts.add_alias, "b@example.com", "a@example.com", NOW)
        self.write(accounts.add_alias, "a@example.com", "b@example.com", NOW)
        self.assertEqual(self.resolve("b@example.com").local, ("alice@example.com",))

    def test_catch_all_only_when_no_user_or_alias_matches(self) -> None:
        self.write(accounts.add_alias, "@example.com", "bob@example.com", NOW)
        self.assertEqual(self.resolve("nobody@example.com").local, ("bob@example.com",))
        self.assertEqual(self.resolve("alice@example.com").local, ("alice@example.com",))

    def test_unknown_local_address_is_not_deliverable(self) -> None:
        self.assertFalse(self.resolve("nobody@example.com").deliverable)

    def test_disabled_user_and_disabled_domain_do_not_receive(self) -> None:
        self.write(accounts.set_user_enabled, "alice@example.com", False)
        self.assertFalse(self.resolve("alice@example.com").deliverable)
        self.write(accounts.set_domain_enabled, "other.test", False)
        self.assertFalse(self.resolve("carol@other.test").deliverable)

    def test_remote_address_resolves_remote(self) -> None:
        result = self.resolve("x@elsewhere.example")
        self.assertEqual(result.remote, ("x@elsewhere.example",))
        self.assertFalse(result.local_domain)

    def test_resolution_carries_user_records_and_local_domain_flag(self) -> None:
        self.write(accounts.add_alias, "team@example.com", "carol@other.test", NOW)
        result = self.resolve("team@example.com")
        self.assertTrue(result.local_domain)
        self.assertEqual([(u.email, u.domain) for u in result.users],
                         [("carol@other.test", "other.test")])
        self.assertTrue(self.resolve("nobody@example.com").local_domain)

    def test_postmaster_goes_to_its_alias_else_the_first_admin(self) -> None:
        # RFC 5321 §4.5.1 (issue 9 item 3): postmaster@ every local domain is accepted.
        self.assertFalse(self.resolve("postmaster@other.test").deliverable)  # no admin yet
        self.write(accounts.set_user_admin, "carol@other.test", True)
        self.write(accounts.set_user_admin, "bob@example.com", True)
        self.write(accounts.add_alias, "@example.com", "alice@example.com", NOW)
        for domain in ("example.com", "other.test", "OTHER.test"):
            self.assertEqual(self.resolve(f"PostMaster@{domain}").local, ("bob@example.com",))
        self.write(accounts.add_alias, "postmaster@other.test", "carol@other.test", NOW)
        self.assertEqual(self.resolve("postmaster@other.test").local, ("carol@other.test",))
        self.assertIn("carol@other.test (its own mailbox or alias)",
                      self.read(accounts.postmaster_route, "other.test"))
        self.assertIn("bob@example.com (the first administrator",
                      self.read(accounts.postmaster_route, "example.com"))
        self.write(accounts.set_user_enabled, "bob@example.com", False)
        self.assertEqual(self.resolve("postmaster@example.com").local, ("carol@other.test",))
        self.write(accounts.set_domain_enabled, "example.com", False)
        self.assertFalse(self.resolve("postmaster@example.com").deliverable)

    def test_user_in_unknown_domain_refused(self) -> None:
        self.assertRaises(accounts.UnknownDomain, self.write, accounts.add_user,
                          "x@nowhere.test", "hash", NOW)

    def test_duplicate_user_refused(self) -> None:
        self.assertRaises(accounts.Duplicate, self.write, accounts.add_user,
                          "ALICE@example.com", "hash", NOW)

    def test_alias_to_unknown_local_user_refused(self) -> None:
        self.assertRaises(accounts.UnknownUser, self.write, accounts.add_alias,
                          "x@example.com", "ghost@example.com", NOW)

    def test_remove_domain_with_users_refused_and_kept(self) -> None:
        self.assertRaises(accounts.InUse, self.write, accounts.remove_domain, "example.com")
        self.assertIn("example.com", [d.name for d in self.read(accounts.list_domains)])

    def test_users_get_distinct_random_uuids(self) -> None:
        uuids = {u.uuid for u in self.read(accounts.list_users)}
        self.assertEqual(len(uuids), 3)
        self.assertTrue(all(len(u) == 32 for u in uuids))

    def test_deleted_and_recreated_user_gets_new_uuid(self) -> None:
        before = self.read(accounts.get_user, "bob@example.com").uuid
        self.write(accounts.delete_user, "bob@example.com")
        after = self.write(accounts.add_user, "bob@example.com", "hash", NOW).uuid
        self.assertNotEqual(before, after)


class AccountsSQLiteTests(SQLiteDatabaseMixin, AccountsTestsMixin, unittest.TestCase):
    pass


class AccountsPostgresTests(PostgresDatabaseMixin, AccountsTestsMixin, unittest.TestCase):
    pass


class AddressTests(unittest.TestCase):
    def test_valid_addresses_normalised(self) -> None:
        for text, expected in [
            ("Alice@Example.COM", "alice@example.com"),
            ("a.b+c@example.com", "a.b+c@example.com"),
            ("user@bücher.example", "user@xn--bcher-kva.example"),
            ("jörg@example.com", "jörg@example.com"),
        ]:
            self.assertEqual(str(parse_address(text)), expected)

    def test_invalid_addresses_refused_with_reason(self) -> None:
        for text in ["", "alice", "a@b@c", "@example.com", "a..b@example.com",
                     ".a@example.com", "a b@example.com", "a@-bad-.com", "a@", "x" * 65 + "@e.com"]:
            with self.assertRaises(AddressError, msg=text) as caught:
                parse_address(text)
            self.assertIn("invalid address", str(caught.exception))


class SendAsTestsMixin(DatabaseTestBase):
    def setUp(self):  # type: ignore[no-untyped-def]
        d = super().setUp()
        run_sync(self.engine, accounts.add_domain, "example.com", NOW, write=True)
        for email in ("alice@example.com", "bob@example.com"):
            run_sync(self.engine, accounts.add_user, email, "hash", NOW, write=True)
        run_sync(self.engine, accounts.add_alias, "sales@example.com", "alice@example.com",
                 NOW, write=True)
        run_sync(self.engine, accounts.add_alias, "@example.com", "alice@example.com", NOW,
                 write=True)
        return d

    def test_send_as_table(self) -> None:
        cases = [("alice@example.com", True), ("Alice+news@Example.com", True),
                 ("sales@example.com", True), ("sales+x@example.com", True),
                 ("bob@example.com", False), ("random@example.com", False),
                 ("alice@other.example", False), ("not an address", False), ("", False)]
        for address, expected in cases:
            self.assertEqual(run_sync(self.engine, accounts.may_send_as, "alice@example.com",
                                      address, write=False), expected, msg=address)


class SendAsSQLiteTests(SQLiteDatabaseMixin, SendAsTestsMixin, unittest.TestCase):
    pass


class SendAsPostgresTests(PostgresDatabaseMixin, SendAsTestsMixin, unittest.TestCase):
    pass
