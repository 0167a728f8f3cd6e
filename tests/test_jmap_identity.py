"""Identity/get|changes|set (RFC 8621 §6) over a real database."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.admin import AccountAdmin, AccountPolicy
from mailgosend.db.runner import run_sync
from mailgosend.events import IdentityChanged
from mailgosend.store import accounts
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.jmapcall import JMAPCallFixture


class IdentityTests(SQLiteDatabaseMixin, JMAPCallFixture, unittest.TestCase):
    def call(self, name: str, user: Any = None, **args: Any) -> Any:
        return defer.Deferred.fromCoroutine(self.jmap(
            name, {"accountId": self.account(user), **args},
            user=(user or self.alice).email))

    @defer.inlineCallbacks
    def test_own_address_and_aliases_with_the_display_name(self) -> Any:
        run_sync(self.engine, accounts.add_alias, "sales@example.com", self.alice.email,
                 self.now, write=True)
        run_sync(self.engine, accounts.add_alias, "@example.com", self.alice.email,
                 self.now, write=True)  # a catch-all is no identity
        run_sync(self.engine, accounts.set_display_name, self.alice.id, "Alice Liddell",
                 write=True)
        name, result, _ = yield self.call("Identity/get", ids=None)
        self.assertEqual(name, "Identity/get")
        emails = {i["email"]: i for i in result["list"]}
        self.assertEqual(set(emails), {"alice@example.com", "sales@example.com"})
        mine = emails["alice@example.com"]
        self.assertEqual((mine["name"], mine["mayDelete"], mine["replyTo"],
                          mine["textSignature"]), ("Alice Liddell", False, None, ""))
        state = result["state"]
        # settings are stored and come back; the state moves; changes say which
        _, result, _ = yield self.call("Identity/set", update={mine["id"]: {
            "name": "Alice L.", "textSignature": "-- \nAlice",
            "replyTo": [{"name": None, "email": "alice+replies@example.com"}]}})
        self.assertEqual(result["updated"], {mine["id"]: None})
        _, result, _ = yield self.call("Identity/get", ids=[mine["id"]],
                                       properties=["name", "textSignature", "replyTo"])
        self.assertEqual(result["list"], [{"id": mine["id"], "name": "Alice L.",
                                           "textSignature": "-- \nAlice",
                                           "replyTo": [{"name": None,
                                                        "email": "alice+replies@example.com"}]}])
        _, changes, _ = yield self.call("Identity/changes", sinceState=state)
        self.assertEqual((changes["updated"], changes["created"]), ([mine["id"]], []))
        # the signature is sealed, not stored in clear
        from mailgosend.db.schema import jmap_identities
        from sqlalchemy import select
        sealed = run_sync(self.engine, lambda c: [r.sealed for r in c.execute(
            select(jmap_identities.c.sealed))], write=False)
        self.assertFalse(any(b"Alice L." in bytes(s) for s in sealed))

    @defer.inlineCallbacks
    def test_create_destroy_and_refusals(self) -> Any:
        _, result, _ = yield self.call("Identity/set", create={
            "tag": {"email": "alice+lists@example.com", "name": "Alice (lists)"},
            "bob": {"email": "bob@example.com"},
            "bad": {"email": "alice+x@example.com", "colour": "red"}})
        self.assertEqual(result["notCreated"]["bob"]["type"], "forbiddenFrom")
        self.assertEqual(result["notCreated"]["bad"]["properties"], ["colour"])
        new = result["created"]["tag"]["id"]
        self.assertTrue(result["created"]["tag"]["mayDelete"])
        _, result, _ = yield self.call("Identity/get", ids=None)
        own = [i["id"] for i in result["list"] if i["email"] == "alice@example.com"][0]
        state = result["state"]
        _, result, _ = yield self.call("Identity/set", destroy=[own, new, "I999"],
                                       update={new: {"email": "x@example.com"}})
        self.assertEqual(result["notDestroyed"][own]["type"], "forbidden")
        self.assertEqual(result["notDestroyed"]["I999"]["type"], "notFound")
        self.assertEqual(result["notUpdated"][new]["properties"], ["email"])
        self.assertEqual(result["destroyed"], [new])
        _, changes, _ = yield self.call("Identity/changes", sinceState=state)
        self.assertEqual(changes["destroyed"], [new])
        # bob cannot see or change alice's identities
        _, result, _ = yield self.call("Identity/get", user=self.bob, ids=[own])
        self.assertEqual(result["notFound"], [own])
        _, result, _ = yield self.call("Identity/set", user=self.bob,
                                       update={own: {"name": "Mallory"}})
        self.assertEqual(result["notUpdated"][own]["type"], "notFound")
        name, error, _ = yield self.call("Identity/get", ids=None, properties=["colour"])
        self.assertEqual(error["arguments"], ["properties"])
        name, error, _ = yield self.call("Identity/changes", sinceState="bogus")
        self.assertEqual(error["type"], "cannotCalculateChanges")


class IdentityFollowsAccountTests(SQLiteDatabaseMixin, JMAPCallFixture, unittest.TestCase):
    """Regression: the identity state moves (Identity/changes, push) when the display name
    changes or an alias backing an identity is added or removed (admin.py, the one place
    that changes them: settings page, admin panel and CLI alike)."""

    def setUp(self) -> Any:
        d = super().setUp()
        self.admin = AccountAdmin(AccountPolicy(bcrypt_cost=4), events=self.events)
        self.pushed: list[Any] = []
        self.addCleanup(self.events.subscribe(
            self.alice.id, lambda batch: self.pushed.extend(batch.changes)))
        return d

    def call(self, name: str, **args: Any) -> Any:
        return defer.Deferred.fromCoroutine(self.jmap(
            name, {"accountId": self.account(), **args}, user=self.alice.email))

    @defer.inlineCallbacks
    def change(self, operation: Any, *args: Any) -> Any:
        """Run an admin.py change as the web pages do: collect, commit, announce."""
        moved: set[int] = set()
        result = yield self.runner.write(operation, *args, moved)
        self.admin.announce(moved)
        return result

    @defer.inlineCallbacks
    def changes_since(self, state: str) -> Any:
        _, result, _ = yield self.call("Identity/changes", sinceState=state)
        return result

    @defer.inlineCallbacks
    def test_display_name_and_aliases_move_the_identity_state(self) -> Any:
        _, got, _ = yield self.call("Identity/get", ids=None)
        [own] = [i["id"] for i in got["list"]]
        state = got["state"]
        del self.pushed[:]
        # the display name (settings page / admin panel): the default identity is renamed
        yield self.change(self.admin.set_display_name, self.alice.email, "Alice Liddell")
        result = yield self.changes_since(state)
        self.assertEqual((result["created"], result["updated"], result["destroyed"]),
                         ([], [own], []))
        self.assertNotEqual(result["newState"], state)
        self.assertEqual(self.pushed, [IdentityChanged()])
        _, got, _ = yield self.call("Identity/get", ids=[own], properties=["name"])
        self.assertEqual(got["list"], [{"id": own, "name": "Alice Liddell"}])
        state = got["state"]
        # an alias added by an admin: its identity is created at once
        yield self.change(self.admin.add_alias, "sales@example.com", self.alice.email,
                          self.now)
        result = yield self.changes_since(state)
        self.assertEqual(len(result["created"]), 1, result)
        self.assertEqual((result["updated"], result["destroyed"]), ([], []))
        [sales] = result["created"]
        _, got, _ = yield self.call("Identity/get", ids=[sales], properties=["email", "name"])
        self.assertEqual(got["list"], [{"id": sales, "email": "sales@example.com",
                                        "name": "Alice Liddell"}])
        state = got["state"]
        self.assertEqual(len(self.pushed), 2)
        # the alias removed: its identity is destroyed
        yield self.change(self.admin.remove_alias, "sales@example.com", None)
        result = yield self.changes_since(state)
        self.assertEqual((result["created"], result["updated"], result["destroyed"]),
                         ([], [], [sales]))
        self.assertEqual(len(self.pushed), 3)
        _, got, _ = yield self.call("Identity/get", ids=None)
        self.assertEqual([i["id"] for i in got["list"]], [own])
        # an unchanged name moves nothing
        state = got["state"]
        yield self.change(self.admin.set_display_name, self.alice.email, "Alice  Liddell")
        result = yield self.changes_since(state)
        self.assertEqual(result["newState"], state)
        self.assertEqual(len(self.pushed), 3)


class PostgresIdentityTests(PostgresDatabaseMixin, IdentityTests):
    """The same on PostgreSQL (tombstones, modseq counters, sealed columns)."""
