"""DatabaseRunner: results, failures, group commit, durability before firing, shutdown."""

from __future__ import annotations

import threading
from typing import Any, ClassVar, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import QueuePool
from twisted.internet import reactor as global_reactor
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mailgosend.db import schema as s
from mailgosend.db.runner import DatabaseRunner, DatabaseStopped, run_sync
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

# Only a safety net so a broken runner fails the test instead of hanging it; never asserted on.
GATE_TIMEOUT = 30


class JobError(Exception):
    """Raised by test jobs on purpose."""


class CommitRefused(Exception):
    """Raised from a commit event listener to make COMMIT fail."""


def put(conn: sa.Connection, key: str, value: str = "v") -> str:
    conn.execute(sa.insert(s.meta).values(key=key, value=value))
    return key


def put_then_fail(conn: sa.Connection, key: str) -> None:
    put(conn, key)
    raise JobError(key)


def keys(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.select(s.meta.c.key).order_by(s.meta.c.key)).scalars())


class Gate:
    """A write job that holds the writer thread until the test opens the gate."""

    def __init__(self) -> None:
        self._open = threading.Event()

    def open(self) -> None:
        self._open.set()

    def job(self, conn: sa.Connection, key: str) -> str:
        if not self._open.wait(GATE_TIMEOUT):
            raise JobError("gate never opened")
        return put(conn, key)


class _RunnerTestBase(DatabaseTestBase):
    def committed_keys(self) -> list[str]:
        """Keys as a brand-new connection sees them (test code: blocking here is fine)."""
        with self.engine.connect() as conn:
            return keys(conn)


class RunnerTestsMixin(_RunnerTestBase):
    """Behaviour every runner configuration must have, on every back end."""

    async def test_read_returns_the_job_result_in_the_reactor_thread(self) -> None:
        await self.runner.write(put, "a")
        job_threads: list[threading.Thread] = []

        def read(conn: sa.Connection, prefix: str) -> list[str]:
            job_threads.append(threading.current_thread())
            return [k for k in keys(conn) if k.startswith(prefix)]

        self.assertEqual(await self.runner.read(read, prefix="a"), ["a"])
        self.assertIsNot(job_threads[0], threading.current_thread())
        self.assertIs(threading.current_thread(), threading.main_thread())

    async def test_write_returns_the_job_result(self) -> None:
        self.assertEqual(await self.runner.write(put, "k", value="x"), "k")
        self.assertEqual(self.committed_keys(), ["k"])

    async def test_connect_lends_a_connection_to_the_calling_thread(self) -> None:
        """What blob readers use across worker calls (store/blobs.py Connectable)."""
        await self.runner.write(put, "lent")

        def read_here() -> list[str]:
            with self.runner.connect() as conn:
                return keys(conn)

        self.assertEqual(await deferToThread(read_here), ["lent"])

    async def test_read_failure_reaches_its_deferred(self) -> None:
        def boom(conn: sa.Connection) -> None:
            raise JobError("read")

        with self.assertRaises(JobError):
            await self.runner.read(boom)

    async def test_failing_write_leaves_no_partial_rows(self) -> None:
        with self.assertRaises(JobError):
            await self.runner.write(put_then_fail, "partial")
        self.assertEqual(self.committed_keys(), [])

    async def test_database_error_reaches_its_deferred(self) -> None:
        await self.runner.write(put, "dup")
        with self.assertRaises(IntegrityError):
            await self.runner.write(put, "dup")
        self.assertEqual(await self.runner.write(put, "after"), "after")

    async def test_returning_a_live_result_is_refused(self) -> None:
        def live(conn: sa.Connection) -> sa.Result[Any]:
            return conn.execute(sa.select(s.meta))

        with self.assertRaises(TypeError):
            await self.runner.read(live)

    async def test_every_write_fires_only_after_its_data_is_visible(self) -> None:
        seen: dict[str, list[str]] = {}

        def check(key: str) -> None:
            seen[key] = self.committed_keys()

        jobs = []
        for i in range(50):
            d = self.runner.write(put, f"k{i:02}")
            d.addCallback(check)
            jobs.append(d)
        await DeferredList(jobs, fireOnOneErrback=True, consumeErrors=True)
        self.assertEqual(len(seen), 50)
        for key, visible in seen.items():
            self.assertIn(key, visible)

    async def test_jobs_after_stop_fail_with_database_stopped(self) -> None:
        await self.runner.stopService()
        with self.assertRaises(DatabaseStopped):
            await self.runner.read(keys)
        with self.assertRaises(DatabaseStopped):
            await self.runner.write(put, "late")

    async def test_jobs_before_start_fail_with_database_stopped(self) -> None:
        idle = DatabaseRunner(self.engine, cast(IReactorFromThreads, global_reactor))
        with self.assertRaises(DatabaseStopped):
            await idle.write(put, "early")

    async def test_stop_waits_for_queued_and_running_jobs(self) -> None:
        gate = Gate()
        order: list[str] = []
        running = self.runner.write(gate.job, "held")
        queued = self.runner.write(put, "queued")
        read = self.runner.read(keys)
        jobs: list[tuple[str, Deferred[Any]]] = [
            ("held", running),
            ("queued", queued),
            ("read", read),
            ("stopped", self.runner.stopService()),
        ]
        for name, d in jobs:
            d.addCallback(lambda _, name: order.append(name), name)
        stopped = jobs[-1][1]
        with self.assertRaises(DatabaseStopped):
            await self.runner.write(put, "while-stopping")
        self.assertNotIn("stopped", order)
        gate.open()
        await stopped
        self.assertEqual(order[-1], "stopped")
        self.assertEqual(sorted(order[:-1]), ["held", "queued", "read"])
        self.assertEqual(self.committed_keys(), ["held", "queued"])

    async def test_stop_releases_pooled_connections(self) -> None:
        await self.runner.read(keys)
        pool = self.engine.pool
        assert isinstance(pool, QueuePool)
        self.assertGreater(pool.checkedin(), 0)
        await self.runner.stopService()
        pool = self.engine.pool  # dispose() swaps in a fresh, empty pool
        assert isinstance(pool, QueuePool)
        self.assertEqual(pool.checkedin(), 0)

    def test_run_sync_commits_writes_and_reads_them_back(self) -> None:
        self.assertEqual(run_sync(self.engine, put, "cli", write=True), "cli")
        self.assertEqual(run_sync(self.engine, keys, write=False), ["cli"])
        self.assertRaises(JobError, run_sync, self.engine, put_then_fail, "bad", write=True)
        self.assertEqual(self.committed_keys(), ["cli"])


class GroupCommitTestsMixin(_RunnerTestBase):
    """Batched writes: many jobs, one transaction, one savepoint each (DESIGN §2)."""

    def count_commits(self) -> list[int]:
        commits = [0]

        def on_commit(conn: Any) -> None:
            commits[0] += 1

        sa.event.listen(self.engine, "commit", on_commit)
        self.addCleanup(sa.event.remove, self.engine, "commit", on_commit)
        return commits

    def hold_writer(self) -> tuple[Gate, Deferred[str]]:
        """Occupy the writer so the next jobs pile up and form one batch."""
        gate = Gate()
        return gate, self.runner.write(gate.job, "gate")

    async def test_concurrent_writes_share_transactions(self) -> None:
        commits = self.count_commits()
        gate, held = self.hold_writer()
        jobs = [self.runner.write(put, f"k{i:02}") for i in range(50)]
        gate.open()
        results = await DeferredList([held, *jobs], fireOnOneErrback=True, consumeErrors=True)
        self.assertEqual(len(results), 51)
        # The held job's batch, then at most one batch for the 50 that queued behind it.
        self.assertLessEqual(commits[0], 2)
        self.assertEqual(len(self.committed_keys()), 51)

    async def test_failing_jobs_do_not_affect_the_rest_of_their_batch(self) -> None:
        commits = self.count_commits()
        gate, held = self.hold_writer()
        jobs: list[Deferred[Any]] = []
        for i in range(50):
            if i == 20:
                jobs.append(self.runner.write(put_then_fail, "partial"))
            elif i == 30:
                jobs.append(self.runner.write(put, "k00"))  # duplicate key: a database error
            else:
                jobs.append(self.runner.write(put, f"k{i:02}"))
        gate.open()
        results = await DeferredList([held, *jobs], consumeErrors=True)
        self.assertLessEqual(commits[0], 2)  # they really shared a transaction
        failures = {i: r for i, (ok, r) in enumerate(results[1:]) if not ok}
        self.assertEqual(sorted(failures), [20, 30])
        failures[20].trap(JobError)
        failures[30].trap(IntegrityError)
        expected = sorted(["gate"] + [f"k{i:02}" for i in range(50) if i not in (20, 30)])
        self.assertEqual(self.committed_keys(), expected)

    async def test_failed_commit_fails_every_job_of_the_batch(self) -> None:
        def refuse_commit(conn: Any) -> None:
            raise CommitRefused()

        gate, held = self.hold_writer()
        jobs: list[Deferred[Any]] = [self.runner.write(put, f"k{i}") for i in range(3)]
        own_failure: Deferred[Any] = self.runner.write(put_then_fail, "partial")
        sa.event.listen(self.engine, "commit", refuse_commit)
        gate.open()
        results = await DeferredList([held, *jobs, own_failure], consumeErrors=True)
        sa.event.remove(self.engine, "commit", refuse_commit)
        self.assertEqual([ok for ok, _ in results], [False] * 5)
        for _, failure in results[:-1]:
            failure.trap(CommitRefused)
        results[-1][1].trap(JobError)  # a job that failed on its own keeps its own error
        self.assertEqual(self.committed_keys(), [])
        self.assertEqual(await self.runner.write(put, "recovered"), "recovered")


class RunnerSQLiteTests(
    SQLiteDatabaseMixin, RunnerTestsMixin, GroupCommitTestsMixin, unittest.TestCase
):
    """SQLite's default runner: one writer thread, group commit."""


class RunnerPostgresTests(PostgresDatabaseMixin, RunnerTestsMixin, unittest.TestCase):
    """PostgreSQL's default runner: concurrent writers, one transaction each."""

    async def test_writes_commit_one_transaction_each(self) -> None:
        commits = [0]

        def on_commit(conn: Any) -> None:
            commits[0] += 1

        sa.event.listen(self.engine, "commit", on_commit)
        self.addCleanup(sa.event.remove, self.engine, "commit", on_commit)
        await DeferredList([self.runner.write(put, f"k{i}") for i in range(10)])
        self.assertEqual(commits[0], 10)


class GroupCommitPostgresTests(
    PostgresDatabaseMixin, RunnerTestsMixin, GroupCommitTestsMixin, unittest.TestCase
):
    """The batching path on PostgreSQL, where a failed statement aborts the transaction."""

    runner_options: ClassVar[dict[str, Any]] = {"group_commit": True, "writers": 1}
