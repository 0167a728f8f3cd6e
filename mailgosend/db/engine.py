"""Engine construction for the two supported back ends (DB_DRIVER = sqlite | postgres).

SQLite is configured for a mail server, not for convenience (DESIGN §2, §3):

- ``journal_mode=WAL`` so readers never block the writer and vice versa;
- ``synchronous=FULL`` because a 250 reply is a promise: WAL is fsynced at every COMMIT, and group
  commit in the runner amortises that fsync over many deliveries;
- ``foreign_keys=ON`` (SQLite's default is off) so CASCADE/RESTRICT mean what the schema says;
- ``busy_timeout`` so a CLI process writing next to the server waits instead of failing.

Python's ``sqlite3`` module (before 3.12's ``autocommit`` attribute) does not BEGIN before SELECT,
DDL or SAVEPOINT, which breaks savepoints and transactional migrations.  SQLAlchemy's documented
remedy is used: the driver's own transaction handling is switched off and SQLAlchemy emits BEGIN.
Write transactions emit ``BEGIN IMMEDIATE`` so the write lock is taken up front; a deferred
transaction that reads and then tries to upgrade to a write lock can fail with SQLITE_BUSY
regardless of busy_timeout.  Callers mark write connections with :func:`connect_for_write`.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url

__all__ = ["WRITE_TRANSACTION_OPTION", "connect_for_write", "create_db_engine", "postgres_url"]

# Execution option that makes the SQLite "begin" hook emit BEGIN IMMEDIATE.
WRITE_TRANSACTION_OPTION = "mailgosend_write_transaction"

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)


def create_db_engine(
    driver: str,
    *,
    sqlite_path: str | None = None,
    dsn: str | None = None,
    pool_size: int = 8,
) -> Engine:
    """Build the engine for ``driver`` ("sqlite" or "postgres"), configured as described above.

    ``pool_size`` must cover the runner's reader threads plus its writer thread(s), otherwise
    threads wait on the pool instead of on the database.
    """
    if driver == "sqlite":
        if not sqlite_path:
            raise ValueError("DB_DRIVER=sqlite needs a database file path (sqlite_path)")
        return _sqlite_engine(sqlite_path, pool_size)
    if driver in ("postgres", "postgresql"):
        if not dsn:
            raise ValueError("DB_DRIVER=postgres needs a DSN such as postgresql://user@host/db")
        return create_engine(
            postgres_url(dsn),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
        )
    raise ValueError(f"unknown database driver {driver!r}: expected 'sqlite' or 'postgres'")


def postgres_url(dsn: str) -> URL:
    """Turn ``postgresql://`` / ``postgres://`` / ``postgresql+psycopg://`` into the psycopg 3 URL.

    Plain ``postgresql://`` would make SQLAlchemy look for psycopg2, which is not a dependency.
    """
    url = make_url(dsn)
    if url.drivername not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise ValueError(
            f"unsupported PostgreSQL DSN scheme {url.drivername!r}: use postgresql://user@host/db"
        )
    return url.set(drivername="postgresql+psycopg")


def connect_for_write(engine: Engine) -> Connection:
    """Open a connection whose transactions take the write lock at BEGIN on SQLite.

    On PostgreSQL the option is ignored: row locks are taken as rows are touched.
    """
    conn = engine.connect()
    conn.execution_options(**{WRITE_TRANSACTION_OPTION: True})
    return conn


def _sqlite_engine(path: str, pool_size: int) -> Engine:
    """SQLite engine with WAL/FULL pragmas and SQLAlchemy-controlled BEGIN."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    engine = create_engine(
        URL.create("sqlite+pysqlite", database=path),
        pool_size=pool_size,
        max_overflow=pool_size,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (see the module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITE_TRANSACTION_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine
