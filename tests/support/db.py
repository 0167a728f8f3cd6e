"""Run one set of database tests on SQLite and on PostgreSQL (DESIGN §10).

Write the tests once, in a mixin that uses ``self.engine`` (a migrated engine), ``self.runner``
(a started :class:`~mailgosend.db.runner.DatabaseRunner` on the global reactor) and
``self.backend`` (``"sqlite"`` or ``"postgresql"``), then bind it to each back end::

    class QueueTestsMixin(DatabaseTestBase):
        def test_enqueue(self) -> Deferred[None]:
            ...

    class QueueSQLiteTests(SQLiteDatabaseMixin, QueueTestsMixin, unittest.TestCase):
        pass

    class QueuePostgresTests(PostgresDatabaseMixin, QueueTestsMixin, unittest.TestCase):
        pass

Test mixins subclass :data:`DatabaseTestBase` (``object`` at run time, a typed ``TestCase`` for
mypy).  A class may set ``runner_options`` (keyword arguments for the runner).  The back-end mixin
must come first: its ``setUp`` creates and migrates the database and starts the runner, then calls
``super().setUp()``, so a test mixin's own ``setUp`` (next in the MRO) can already use
``self.engine`` and ``self.runner``; it should call ``super().setUp()`` too.

SQLite uses a file under ``self.mktemp()``.  PostgreSQL gets a fresh database per test
(``mg_test_<random hex>``, so ``trial -j N`` workers never collide), created on the server named by
``MAILGO_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``) and dropped
``WITH (FORCE)`` afterwards.  If that server is unreachable the PostgreSQL tests fail (never
skip) with instructions to start it: a silently skipped back end is an untested back end.
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING, Any, Callable, ClassVar, cast

import psycopg
from psycopg import sql
from sqlalchemy.engine import Engine, make_url
from twisted.internet import reactor as global_reactor
from twisted.internet.interfaces import IReactorFromThreads
from twisted.trial import unittest

from mailgosend.db.engine import create_db_engine
from mailgosend.db.migrate import upgrade_to_head
from mailgosend.db.runner import DatabaseRunner

__all__ = [
    "PG_DSN_ENV",
    "DatabaseTestBase",
    "PostgresDatabaseMixin",
    "SQLiteDatabaseMixin",
    "postgres_server_dsn",
]

PG_DSN_ENV = "MAILGO_TEST_PG_DSN"
_DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_server_dsn() -> str:
    """The libpq DSN of the test PostgreSQL server (any ``+driver`` suffix removed)."""
    url = make_url(os.environ.get(PG_DSN_ENV, _DEFAULT_PG_DSN))
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


if TYPE_CHECKING:

    class DatabaseTestBase(unittest.TestCase):
        """What a test mixin may use, for type checkers; at run time the mixin's base is object."""

        backend: ClassVar[str]
        engine: Engine
        runner: DatabaseRunner
        make_engine: Callable[[], Engine]

else:
    DatabaseTestBase = object


class _DatabaseMixin:
    """What both back-end mixins share: migrate, start the runner, stop it in cleanup."""

    backend: ClassVar[str]
    # Keyword arguments for the DatabaseRunner, e.g. {"group_commit": True}.
    runner_options: ClassVar[dict[str, Any]] = {}
    engine: Engine
    runner: DatabaseRunner

    # Provided by twisted.trial.unittest.TestCase.
    addCleanup: Any
    mktemp: Any

    # Each back-end mixin defines it: an engine on a fresh, empty database for this test.
    make_engine: Callable[[], Engine]

    def setUp(self) -> Any:
        # The database is ready before the test mixin's own setUp (next in the MRO) runs,
        # so that setUp can already create fixtures.
        self.engine = self.make_engine()
        self.addCleanup(self.engine.dispose)
        upgrade_to_head(self.engine)
        self.runner = DatabaseRunner(
            self.engine, cast(IReactorFromThreads, global_reactor), **self.runner_options
        )
        self.runner.startService()
        self.addCleanup(self._stop_runner)
        return super().setUp()  # type: ignore[misc]

    def _stop_runner(self) -> Any:
        # Tests may have stopped it themselves.
        if self.runner.running:
            return self.runner.stopService()
        return None


class SQLiteDatabaseMixin(_DatabaseMixin):
    """Bind a test mixin to SQLite (a fresh file per test)."""

    backend = "sqlite"

    def make_engine(self) -> Engine:
        """Engine on ``<mktemp>/mail.sqlite``, with the production pragmas."""
        path = os.path.join(self.mktemp(), "mail.sqlite")
        return create_db_engine("sqlite", sqlite_path=path)


class PostgresDatabaseMixin(_DatabaseMixin):
    """Bind a test mixin to PostgreSQL (a fresh database per test)."""

    backend = "postgresql"

    def make_engine(self) -> Engine:
        """Create ``mg_test_<hex>`` on the test server and return an engine on it."""
        return create_db_engine("postgres", dsn=fresh_postgres_database(self))


def fresh_postgres_database(testcase: Any) -> str:
    """Create ``mg_test_<hex>`` on the test server, dropped at the test's cleanup; its DSN."""
    server = postgres_server_dsn()
    name = "mg_test_" + secrets.token_hex(8)
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as e:
        raise AssertionError(
            f"PostgreSQL is not reachable at {server} ({e}). Start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, "
            f"or point {PG_DSN_ENV} at a server where this user may CREATE DATABASE."
        ) from e
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    testcase.addCleanup(_drop_database, server, name)
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def _drop_database(server: str, name: str) -> None:
    """Drop a per-test database, disconnecting anything a failed test left behind."""
    with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
