"""Greylist state (store/greylist.py) and the decision edge (spam/greylist.py ``check``,
``Greylist``) on SQLite and PostgreSQL, and the hourly purge."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from twisted.internet import defer, task
from twisted.trial import unittest

from mailgosend.crypto import KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import greylist as table
from mailgosend.maintenance import MaintenanceService
from mailgosend.spam import greylist as gl
from mailgosend.spam.greylist import Action, GreylistPolicy
from mailgosend.store import greylist as state
from mailgosend.store.blobs import DatabaseBlobs
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)
KEYRING = KeyRing(bytes(range(32)))
POLICY = GreylistPolicy(delay=timedelta(minutes=5))
A = b"A" * 32
B = b"B" * 32


class GreylistStoreTestsMixin(DatabaseTestBase):
    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=True, **kwargs)

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=False, **kwargs)

    def rows(self) -> int:
        return int(self.read(lambda c: c.execute(select(func.count()).select_from(table))
                             .scalar_one()))

    def test_only_keyed_hashes_are_accepted(self) -> None:
        for bad in (b"short", "x" * 32, b"x" * 33):
            with self.assertRaises(ValueError):
                self.write(state.insert_new, bad, NOW)

    def test_insert_get_pass_touch_restart(self) -> None:
        self.assertIsNone(self.read(state.get, A))
        self.assertTrue(self.write(state.insert_new, A, NOW))
        self.assertFalse(self.write(state.insert_new, A, NOW + timedelta(seconds=1)))
        self.assertEqual(self.read(state.get, A), state.TripletState(NOW, NOW, False))
        later = NOW + timedelta(minutes=6)
        self.write(state.mark_passed, A, later)
        self.assertEqual(self.read(state.get, A), state.TripletState(NOW, later, True))
        much_later = later + timedelta(days=1)
        self.write(state.touch, A, much_later)
        self.assertEqual(self.read(state.get, A).last_seen, much_later)
        self.write(state.restart, A, much_later)
        self.assertEqual(self.read(state.get, A),
                         state.TripletState(much_later, much_later, False))

    def test_upsert_passed_creates_or_refreshes(self) -> None:
        self.write(state.upsert_passed, B, NOW)
        self.assertEqual(self.read(state.get, B), state.TripletState(NOW, NOW, True))
        self.write(state.insert_new, A, NOW)
        self.write(state.upsert_passed, A, NOW + timedelta(hours=1))
        self.assertEqual(self.read(state.get, A),
                         state.TripletState(NOW, NOW + timedelta(hours=1), True))

    def test_purge_removes_stale_unpassed_and_expired_passed_rows(self) -> None:
        keys = {name: bytes([i]) * 32 for i, name in enumerate(
            ("new", "stale", "passed", "expired"))}
        self.write(state.insert_new, keys["new"], NOW - timedelta(hours=23))
        self.write(state.insert_new, keys["stale"], NOW - timedelta(hours=25))
        self.write(state.upsert_passed, keys["passed"], NOW - timedelta(days=30))
        self.write(state.upsert_passed, keys["expired"], NOW - timedelta(days=36))
        removed = self.write(gl.purge, NOW, GreylistPolicy())
        self.assertEqual(removed, 2)
        left = {name for name, key in keys.items() if self.read(state.get, key) is not None}
        self.assertEqual(left, {"new", "passed"})

    async def test_first_attempt_defers_early_retry_defers_later_retry_passes(self) -> None:
        clock = task.Clock()
        clock.advance(NOW.timestamp())
        greylist = gl.Greylist(self.runner, KEYRING, POLICY, clock)
        triplet = ("198.51.100.7", "ann@sender.example", "bob@example.com")
        first = await greylist.check(*triplet)
        self.assertEqual((first.action, first.reason), (Action.DEFER, "new triplet"))
        clock.advance(60)
        early = await greylist.check("198.51.100.8", "ANN@sender.example", "bob@example.com")
        self.assertEqual((early.action, early.retry_in), (Action.DEFER, 240))
        clock.advance(240)
        passed = await greylist.check(*triplet)
        self.assertEqual(passed.action, Action.ACCEPT)
        self.assertEqual(self.rows(), 2)  # the triplet and its client network

        # The client network passed once: its other senders and recipients are not delayed.
        other = await greylist.check("198.51.100.9", "", "carol@example.com")
        self.assertEqual((other.action, other.reason), (Action.ACCEPT, "known client"))
        stranger = await greylist.check("203.0.113.5", "ann@sender.example", "bob@example.com")
        self.assertEqual(stranger.action, Action.DEFER)

    async def test_concurrent_first_attempts_all_defer_and_make_one_row(self) -> None:
        clock = task.Clock()
        clock.advance(NOW.timestamp())
        greylist = gl.Greylist(self.runner, KEYRING, POLICY, clock)
        triplet = ("198.51.100.7", "ann@sender.example", "bob@example.com")
        results = await defer.DeferredList([greylist.check(*triplet) for _ in range(4)],
                                           consumeErrors=True)
        self.assertEqual([(ok, outcome.action) for ok, outcome in results],
                         [(True, Action.DEFER)] * 4)
        self.assertEqual(self.rows(), 1)

    async def test_a_retry_after_the_window_starts_over(self) -> None:
        clock = task.Clock()
        clock.advance(NOW.timestamp())
        greylist = gl.Greylist(self.runner, KEYRING, POLICY, clock)
        triplet = ("198.51.100.7", "ann@sender.example", "bob@example.com")
        await greylist.check(*triplet)
        clock.advance(timedelta(hours=25).total_seconds())
        late = await greylist.check(*triplet)
        self.assertEqual((late.action, late.reason), (Action.DEFER, "triplet retried too late"))
        clock.advance(300)
        self.assertEqual((await greylist.check(*triplet)).action, Action.ACCEPT)

    async def test_the_table_never_holds_an_address(self) -> None:
        clock = task.Clock()
        clock.advance(NOW.timestamp())
        greylist = gl.Greylist(self.runner, KEYRING, GreylistPolicy(delay=timedelta(0)), clock)
        await greylist.check("198.51.100.7", "secretsender@sender.example",
                             "secretrcpt@example.com")
        await greylist.check("198.51.100.7", "secretsender@sender.example",
                             "secretrcpt@example.com")
        keys = self.read(lambda c: [bytes(r[0]) for r in c.execute(select(table.c.triplet))])
        self.assertEqual(len(keys), 2)
        blob = b"|".join(keys)
        for fragment in (b"secret", b"sender", b"example", b"198.51"):
            self.assertNotIn(fragment, blob)

    async def test_maintenance_purges_greylist_rows(self) -> None:
        self.write(state.insert_new, A, NOW - timedelta(hours=25))
        self.write(state.insert_new, B, NOW - timedelta(hours=1))
        clock = task.Clock()
        clock.advance(NOW.timestamp())
        service = MaintenanceService(self.runner, DatabaseBlobs(self.mktemp()), clock)
        service.greylist_policy = GreylistPolicy(retry_window=timedelta(hours=24))
        rows, blobs = await service.run_once()
        self.assertEqual((rows, blobs), (0, 0))
        self.assertIsNone(self.read(state.get, A))
        self.assertIsNotNone(self.read(state.get, B))


class GreylistStoreSQLiteTests(SQLiteDatabaseMixin, GreylistStoreTestsMixin, unittest.TestCase):
    pass


class GreylistStorePostgresTests(PostgresDatabaseMixin, GreylistStoreTestsMixin,
                                 unittest.TestCase):
    pass
