"""Write throughput through DatabaseRunner: single-row inserts (512-byte blob), figures only.

    python benchmarks/db_write.py [N]

For SQLite (WAL, synchronous=FULL, one writer with group commit) and PostgreSQL (concurrent
writers, and the group-commit path for comparison) it prints inserts/s and the number of COMMITs
with 1 and 16 writes in flight.  PostgreSQL is taken from MAILGO_TEST_PG_DSN (default
postgresql://postgres@127.0.0.1:5432/test); a scratch database is created and dropped.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Engine, make_url
from twisted.internet import task
from twisted.internet.defer import Deferred, DeferredList

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mailgosend.db.engine import create_db_engine  # noqa: E402
from mailgosend.db.migrate import upgrade_to_head  # noqa: E402
from mailgosend.db.runner import DatabaseRunner  # noqa: E402
from mailgosend.db.schema import blobs  # noqa: E402

PAYLOAD = os.urandom(512)
NOW = datetime.now(timezone.utc)


def insert_blob(conn: sa.Connection, blob_id: str) -> None:
    conn.execute(
        sa.insert(blobs).values(id=blob_id, size=len(PAYLOAD), data=PAYLOAD, created_at=NOW)
    )


async def measure(
    reactor: Any, engine: Engine, n: int, in_flight: int, **options: Any
) -> tuple[float, int]:
    """Insert ``n`` rows keeping ``in_flight`` writes outstanding; (inserts/s, COMMITs)."""
    runner = DatabaseRunner(engine, reactor, **options)
    runner.startService()
    commits = [0]

    def on_commit(conn: Any) -> None:
        commits[0] += 1

    sa.event.listen(engine, "commit", on_commit)
    remaining = iter(range(n))
    prefix = secrets.token_hex(4)

    async def lane() -> None:
        for i in remaining:
            await runner.write(insert_blob, f"{prefix}-{i}")

    started = time.perf_counter()
    await DeferredList(
        [Deferred.fromCoroutine(lane()) for _ in range(in_flight)], fireOnOneErrback=True
    )
    elapsed = time.perf_counter() - started
    sa.event.remove(engine, "commit", on_commit)
    await runner.stopService()
    return n / elapsed, commits[0]


def report(label: str, in_flight: int, rate: float, commits: int) -> None:
    print(f"{label:<38} in flight {in_flight:>2}: {rate:8.0f} inserts/s  ({commits} COMMITs)")


async def main(reactor: Any, n: int) -> None:
    print(f"N={n} single-row inserts, 512-byte blob, through DatabaseRunner")
    scratch = tempfile.mkdtemp(prefix="mg-bench-")
    try:
        engine = create_db_engine("sqlite", sqlite_path=os.path.join(scratch, "bench.sqlite"))
        upgrade_to_head(engine)
        for in_flight in (1, 16):
            rate, commits = await measure(reactor, engine, n, in_flight)
            report("SQLite WAL FULL, group commit", in_flight, rate, commits)
    finally:
        shutil.rmtree(scratch)

    server = make_url(
        os.environ.get("MAILGO_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    )
    server_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = "mg_bench_" + secrets.token_hex(6)
    try:
        admin = psycopg.connect(server_dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as e:
        print(f"PostgreSQL not reachable ({e}); no PostgreSQL figures")
        return
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        dsn = server.set(database=name).render_as_string(hide_password=False)
        engine = create_db_engine("postgres", dsn=dsn)
        upgrade_to_head(engine)
        for in_flight in (1, 16):
            rate, commits = await measure(reactor, engine, n, in_flight)
            report("PostgreSQL, concurrent (4 writers)", in_flight, rate, commits)
            for writers in (1, 4):
                report(
                    f"PostgreSQL, group commit ({writers} writer{'s' * (writers > 1)})",
                    in_flight,
                    *await measure(
                        reactor, engine, n, in_flight, group_commit=True, writers=writers
                    ),
                )
        engine.dispose()
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor, count)))
