"""The audit log: store/audit.py (record inside the change's transaction, filters, cursor
paging, a domain administrator's view) on SQLite and, when MAILGO_TEST_PG_DSN is set,
PostgreSQL; and the page /admin/audit (web/admin_audit.py) with its filters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend import audit
from mailgosend.db.runner import run_sync
from mailgosend.store import counters as counter_store
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.test_admin_dash_pages import ADMIN, AdminTestCase

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def fill(conn: Any) -> None:
    for i in range(7):
        audit.record(conn, actor="root@example.com" if i % 2 else "ops@example.org",
                     action=("user.add", "user.delete", "settings.edit")[i % 3],
                     target=f"user{i}@example.{'com' if i < 4 else 'net'}",
                     ip="192.0.2.1", at=T0 + timedelta(days=i),
                     detail="quota 100%" if i == 5 else "",
                     domain=None if i % 3 == 2 else f"example.{'com' if i < 4 else 'net'}")


class AuditStoreMixin(DatabaseTestBase):
    def setUp(self):  # type: ignore[no-untyped-def]
        result = super().setUp()
        run_sync(self.engine, fill, write=True)
        return result

    def search(self, **query: Any) -> list[int]:
        found = run_sync(self.engine, audit.search, audit.AuditQuery(**query), write=False)
        return [int(e.target[4]) for e in found]

    def test_filters_and_cursor(self) -> None:
        self.assertEqual(self.search(), [6, 5, 4, 3, 2, 1, 0])
        self.assertEqual(self.search(actor="ROOT@"), [5, 3, 1])
        self.assertEqual(self.search(action="user."), [6, 4, 3, 1, 0])
        self.assertEqual(self.search(action="user.d"), [4, 1])
        self.assertEqual(self.search(text="100%"), [5])
        self.assertEqual(self.search(text="_"), [])          # LIKE wildcards are literal
        self.assertEqual(self.search(since=T0 + timedelta(days=2),
                                     until=T0 + timedelta(days=4)), [3, 2])
        self.assertEqual(self.search(domains=frozenset({"example.net"})), [6, 4])
        self.assertEqual(self.search(limit=3), [6, 5, 4])
        first = run_sync(self.engine, audit.search, audit.AuditQuery(limit=3), write=False)
        self.assertEqual(self.search(before=first[-1].id, limit=3), [3, 2, 1])

    def test_a_failed_change_records_nothing(self) -> None:
        def change(conn: Any) -> None:
            audit.record(conn, actor="x@example.com", action="user.add", target="y",
                         ip="", at=T0)
            raise ValueError("refused")
        with self.assertRaises(ValueError):
            run_sync(self.engine, change, write=True)
        self.assertEqual(len(self.search()), 7)


class AuditStoreSQLiteTests(SQLiteDatabaseMixin, AuditStoreMixin, unittest.TestCase):
    pass


class AuditStorePostgresTests(PostgresDatabaseMixin, AuditStoreMixin, unittest.TestCase):
    pass


class CounterStoreMixin(DatabaseTestBase):
    """Hourly buckets from two nodes sharing one database add up; each node's flushes add
    to its own rows."""

    def test_nodes_add_up(self) -> None:
        hour = T0.replace(minute=0)
        for node, n in (("a", 2), ("b", 3), ("a", 4)):
            run_sync(self.engine, counter_store.add_counts, node,
                     [(hour, "messages_received", "inbound", n),
                      (hour + timedelta(hours=1), "messages_sent", "", 1)], write=True)
        rows = run_sync(self.engine, counter_store.buckets,
                        ["messages_received", "messages_sent"], hour, write=False)
        self.assertEqual(sorted((r.hour, r.name, r.label, r.value) for r in rows),
                         [(hour, "messages_received", "inbound", 9),
                          (hour + timedelta(hours=1), "messages_sent", "", 3)])
        later = run_sync(self.engine, counter_store.buckets, ["messages_sent"],
                         hour + timedelta(hours=2), write=False)
        self.assertEqual(later, [])
        removed = run_sync(self.engine, counter_store.purge_before, hour + timedelta(hours=1),
                           write=True)
        self.assertEqual(removed, 2)


class CounterStoreSQLiteTests(SQLiteDatabaseMixin, CounterStoreMixin, unittest.TestCase):
    pass


class CounterStorePostgresTests(PostgresDatabaseMixin, CounterStoreMixin, unittest.TestCase):
    pass


class AuditPageTests(AdminTestCase):
    @defer.inlineCallbacks
    def test_the_page_lists_and_filters(self) -> Any:
        run_sync(self.server.engine, fill, write=True)
        web = yield self.admin_client()
        page = yield web.get("/admin/audit")
        self.assertEqual(page.status_code, 200)
        for i in range(7):
            self.assertIn(f"user{i}@example.", page.text)
        page = yield web.get("/admin/audit?action=user.delete&actor=root")
        self.assertIn("user1@example.com", page.text)
        self.assertNotIn("user4@example.net", page.text)
        self.assertNotIn("user0@example.com", page.text)
        page = yield web.get("/admin/audit?since=2026-12-03&until=2026-12-04")
        self.assertIn("user2@", page.text)
        self.assertIn("user3@", page.text)
        self.assertNotIn("user4@", page.text)
        page = yield web.get("/admin/audit?since=yesterday")
        self.assertEqual(page.status_code, 400)
        self.assertIn("is not a date like 2026-12-05", page.text)
        self.assertEqual(ADMIN, "root@example.com")
