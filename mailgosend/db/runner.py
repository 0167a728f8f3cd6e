"""Database work off the reactor thread, with group commit (DESIGN §2, §3).

Every query is a plain function ``fn(conn, *args, **kwargs)`` over a SQLAlchemy Core
``Connection``.  :class:`DatabaseRunner` runs it in a thread pool and returns a Deferred that fires
in the reactor thread.  ``fn`` must return plain data (rows from ``.all()``, a scalar, ...), never a
live ``Result``, because the connection is gone by the time the Deferred fires.

Writes and group commit.  SQLite allows one writer, and ``synchronous=FULL`` costs one fsync per
COMMIT.  So on SQLite a single writer thread takes every write job waiting (up to ``max_batch``),
opens ONE transaction, runs each job inside its own SAVEPOINT, and COMMITs once: concurrent
deliveries share one fsync.  A job that raises is rolled back to its savepoint and only its
Deferred fails.  If the COMMIT fails, every job of the batch fails.  A write Deferred fires only
after the COMMIT returned, i.e. once the data is durable and visible to every new connection; that
is what lets the SMTP layer say 250 (DESIGN §3).

On PostgreSQL writes run concurrently, each in its own transaction (psycopg pool), by default.  The
batching path works there too (``group_commit=True``); benchmarks/db_write.py measures both.

A job must not commit, roll back or begin transactions itself: the runner owns the transaction.
Read jobs get a connection whose implicit transaction is rolled back afterwards; they must not
write.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Concatenate, ContextManager, Generic, ParamSpec, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from mailgosend.db.engine import connect_for_write
from mailgosend.db.sync import call_job as _call
from mailgosend.db.sync import run_sync

__all__ = ["DatabaseRunner", "DatabaseStopped", "run_sync"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class DatabaseStopped(Exception):
    """A job was submitted while the runner is not running (before start, or after stop began)."""


@dataclass
class _Job(Generic[_T]):
    fn: Callable[..., _T]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    deferred: Deferred[_T]
    kind: str = "read"
    submitted: float = 0.0  # time.monotonic(): a duration for the metrics, not a decision

    def run(self, conn: Connection) -> _T:
        return _call(conn, self.fn, self.args, self.kwargs)


class DatabaseRunner(Service):
    """Runs DB jobs in thread pools and delivers their outcome in the reactor thread.

    ``readers`` threads run reads.  ``writers`` threads run writes: always 1 on SQLite, ``readers``
    on PostgreSQL unless given.  ``group_commit`` (default: on for SQLite only) batches up to
    ``max_batch`` waiting write jobs into one transaction.

    ``read``/``write``/``stopService`` must be called from the reactor thread.  ``stopService``
    stops accepting jobs, waits for every queued and running job to be delivered, then stops the
    pools and disposes of the engine (in a helper thread: joining threads and closing sockets must
    not block the reactor).
    """

    def __init__(
        self,
        engine: Engine,
        reactor: IReactorFromThreads,
        *,
        readers: int = 4,
        max_batch: int = 64,
        writers: int | None = None,
        group_commit: bool | None = None,
    ) -> None:
        single_writer = engine.dialect.name == "sqlite"
        if writers is None:
            writers = 1 if single_writer else readers
        if readers < 1 or writers < 1 or max_batch < 1:
            raise ValueError("readers, writers and max_batch must be at least 1")
        if single_writer and writers != 1:
            # SQLite has one writer however many threads ask; more would only spin on busy_timeout.
            raise ValueError("SQLite allows a single writer thread")
        self._engine = engine
        self._reactor = reactor
        self._readers = readers
        self._writers = writers
        self._max_batch = max_batch
        self._group_commit = single_writer if group_commit is None else group_commit
        self._read_pool: ThreadPool | None = None
        self._write_pool: ThreadPool | None = None
        self._accepting = False
        self._in_flight = 0
        self._drained: Deferred[None] | None = None
        self._pending: deque[_Job[Any]] = deque()
        self._pending_lock = threading.Lock()
        # Called in the reactor thread with ("read"|"write", seconds from submission to
        # outcome) for each job: the admin port's DB latency histogram (counters.py).
        self.latency_observer: Callable[[str, float], None] | None = None

    @property
    def engine(self) -> Engine:
        """The engine jobs run against."""
        return self._engine

    def connect(self) -> ContextManager[Connection]:
        """A connection for a moment, in the calling thread (never the reactor's): for readers
        that stream across several worker calls (a blob read one range per call), where one
        job per range would queue behind other sessions' jobs."""
        return self._engine.connect()

    def startService(self) -> None:
        """Start the reader and writer pools; jobs are accepted from now on."""
        Service.startService(self)
        self._read_pool = ThreadPool(0, self._readers, name="mailgosend-db-read")
        self._write_pool = ThreadPool(0, self._writers, name="mailgosend-db-write")
        self._read_pool.start()
        self._write_pool.start()
        self._accepting = True

    def stopService(self) -> Deferred[None]:
        """Refuse new jobs, let every accepted job finish, then release threads and connections."""
        if not self.running:
            return succeed(None)
        Service.stopService(self)
        self._accepting = False
        drained: Deferred[None]
        if self._in_flight:
            drained = self._drained = Deferred()
        else:
            drained = succeed(None)
        return drained.addCallback(lambda _: self._shut_down())

    def read(
        self, fn: Callable[Concatenate[Connection, _P], _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> Deferred[_T]:
        """Run ``fn(conn, ...)`` in a reader thread; the result fires in the reactor thread."""
        job = self._accept(fn, args, kwargs)
        if isinstance(job, Deferred):
            return job
        assert self._read_pool is not None
        self._read_pool.callInThread(self._run_read, job)
        return job.deferred

    def ping(self) -> Deferred[None]:
        """``SELECT 1`` in a reader thread: is the database answering?  (/healthz)"""
        return self.read(_ping)

    def write(
        self, fn: Callable[Concatenate[Connection, _P], _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> Deferred[_T]:
        """Run ``fn(conn, ...)`` in a write transaction; fires only after the COMMIT is durable."""
        job = self._accept(fn, args, kwargs)
        if isinstance(job, Deferred):
            return job
        job.kind = "write"
        assert self._write_pool is not None
        if self._group_commit:
            with self._pending_lock:
                self._pending.append(job)
            # One drain per job: a drain that finds the queue emptied by an earlier one returns.
            self._write_pool.callInThread(self._run_batch)
        else:
            self._write_pool.callInThread(self._run_write, job)
        return job.deferred

    def _accept(
        self, fn: Callable[..., _T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _Job[_T] | Deferred[_T]:
        if not self._accepting:
            return fail(DatabaseStopped("the database runner is not running"))
        self._in_flight += 1
        return _Job(fn, args, kwargs, Deferred(), submitted=time.monotonic())

    # --- worker threads -------------------------------------------------------------------------

    def _run_read(self, job: _Job[Any]) -> None:
        try:
            with self._engine.connect() as conn:
                result = job.run(conn)
        except Exception:
            self._deliver_from_thread(job, Failure())
        else:
            self._deliver_from_thread(job, result)

    def _run_write(self, job: _Job[Any]) -> None:
        try:
            with connect_for_write(self._engine) as conn, conn.begin():
                result = job.run(conn)
        except Exception:
            self._deliver_from_thread(job, Failure())
        else:
            self._deliver_from_thread(job, result)

    def _run_batch(self) -> None:
        with self._pending_lock:
            size = min(len(self._pending), self._max_batch)
            batch = [self._pending.popleft() for _ in range(size)]
        if not batch:
            return
        outcomes: list[tuple[_Job[Any], object]] = []
        try:
            with connect_for_write(self._engine) as conn, conn.begin():
                for job in batch:
                    try:
                        with conn.begin_nested():
                            outcomes.append((job, job.run(conn)))
                    except Exception:
                        outcomes.append((job, Failure()))
        except Exception:
            # BEGIN or COMMIT failed: nothing of this batch is durable.
            commit_failure = Failure()
            own = {id(job): outcome for job, outcome in outcomes if isinstance(outcome, Failure)}
            for job in batch:
                self._deliver_from_thread(job, own.get(id(job), commit_failure))
            return
        for job, outcome in outcomes:
            self._deliver_from_thread(job, outcome)

    def _deliver_from_thread(self, job: _Job[Any], outcome: object) -> None:
        self._reactor.callFromThread(self._deliver, job.deferred, outcome, job)

    # --- reactor thread -------------------------------------------------------------------------

    def _deliver(self, deferred: Deferred[Any], outcome: object,
                 job: _Job[Any] | None = None) -> None:
        self._in_flight -= 1
        if job is not None and self.latency_observer is not None:
            try:
                self.latency_observer(job.kind, time.monotonic() - job.submitted)
            except Exception:  # metrics must never fail a database job
                pass
        if isinstance(outcome, Failure):
            deferred.errback(outcome)
        else:
            deferred.callback(outcome)
        if self._in_flight == 0 and self._drained is not None:
            drained, self._drained = self._drained, None
            drained.callback(None)

    def _shut_down(self) -> Deferred[None]:
        pools = [p for p in (self._read_pool, self._write_pool) if p is not None]
        self._read_pool = self._write_pool = None
        done: Deferred[None] = Deferred()

        def stop_everything() -> None:
            try:
                for pool in pools:
                    pool.stop()
                self._engine.dispose()
            except Exception:
                self._reactor.callFromThread(done.errback, Failure())
            else:
                self._reactor.callFromThread(done.callback, None)

        threading.Thread(target=stop_everything, name="mailgosend-db-stop", daemon=True).start()
        return done


def _ping(conn: Connection) -> None:
    conn.execute(text("SELECT 1"))
