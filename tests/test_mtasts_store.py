"""store/mtasts.py on SQLite and PostgreSQL: the MTA-STS policy cache (stored, replaced when
fetched again) and the TLS-RPT counters (one row per day, domain, MX and result, counted up,
read for finished days only, forgotten per domain and day)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.mtasts import Policy
from mailgosend.store import mtasts as store
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)
POLICY = Policy("enforce", 86400, ("mx.example.net", "*.mx.example.net"))


class MTASTSStoreMixin(DatabaseTestBase):
    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=True, **kwargs)

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=False, **kwargs)

    def test_policy_cache(self) -> None:
        self.assertIsNone(self.read(store.cached_policy, "example.net"))
        self.write(store.store_policy, "example.net", "id1", POLICY, NOW)
        cached = self.read(store.cached_policy, "example.net")
        self.assertEqual((cached.policy_id, cached.policy, cached.fetched_at,
                          cached.expires_at),
                         ("id1", POLICY, NOW, NOW + timedelta(days=1)))
        testing = Policy("testing", 3600, ("mx.example.net",))
        later = NOW + timedelta(hours=2)
        self.write(store.store_policy, "example.net", "id2", testing, later)
        cached = self.read(store.cached_policy, "example.net")
        self.assertEqual((cached.policy_id, cached.policy, cached.expires_at),
                         ("id2", testing, later + timedelta(hours=1)))

    def count(self, day: str, domain: str, result: str, mx: str = "mx.example.net") -> None:
        self.write(store.count_result, day=day, domain=domain, policy_type="sts",
                   policy=("version: STSv1", "mode: testing"), mx_host=mx,
                   result_type=result)

    def test_counters(self) -> None:
        for _ in range(3):
            self.count("2026-12-04", "example.net", "success")
        self.count("2026-12-04", "example.net", "certificate-not-trusted")
        self.count("2026-12-04", "example.org", "success", mx="mx.example.org")
        self.count("2026-12-05", "example.net", "success")
        found = [(c.day, c.domain, c.mx_host, c.result_type, c.count, c.policy)
                 for c in self.read(store.results_before, "2026-12-05")]
        policy = ("version: STSv1", "mode: testing")
        self.assertEqual(found, [
            ("2026-12-04", "example.net", "mx.example.net", "success", 3, policy),
            ("2026-12-04", "example.net", "mx.example.net", "certificate-not-trusted", 1,
             policy),
            ("2026-12-04", "example.org", "mx.example.org", "success", 1, policy)])
        self.assertEqual(self.write(store.forget_results, "2026-12-04", "example.net"), 2)
        self.assertEqual([c.domain for c in self.read(store.results_before, "2026-12-06")],
                         ["example.org", "example.net"])


    def test_two_writers_counting_at_once_both_count(self) -> None:
        """Regression (seen in test_delivery_nodes on PostgreSQL): two nodes counting the
        same outcome in overlapping transactions; an UPDATE-then-INSERT made the second
        INSERT fail with a UniqueViolation and its count was lost."""
        first_counted, first_may_commit = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def first() -> None:
            try:
                with self.engine.begin() as conn:
                    self.count_on(conn)
                    first_counted.set()
                    first_may_commit.wait()
            except BaseException as exc:  # reported below
                errors.append(exc)
                first_counted.set()

        worker = threading.Thread(target=first)
        worker.start()
        first_counted.wait()  # set on every path of first()
        second_errors: list[BaseException] = []

        def run_second() -> None:
            try:
                with self.engine.begin() as conn:
                    self.count_on(conn)
            except BaseException as exc:
                second_errors.append(exc)
        second = threading.Thread(target=run_second)
        second.start()
        # Untimed waits only (a timed thread wait never returns under faketime): the
        # second is given half a second to block on the first's row or the writer lock.
        time.sleep(0.5)
        first_may_commit.set()
        worker.join()
        second.join()
        self.assertEqual((errors, second_errors), ([], []))
        [counted] = self.read(store.results_before, "2026-12-05")
        self.assertEqual(counted.count, 2)

    def count_on(self, conn: Any) -> None:
        store.count_result(conn, day="2026-12-04", domain="example.net", policy_type="sts",
                           policy=("version: STSv1",), mx_host="mx.example.net",
                           result_type="success")


class MTASTSStoreSQLiteTests(SQLiteDatabaseMixin, MTASTSStoreMixin, unittest.TestCase):
    pass


class MTASTSStorePostgresTests(PostgresDatabaseMixin, MTASTSStoreMixin, unittest.TestCase):
    pass
