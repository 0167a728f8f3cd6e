"""Response times of the admin panel's delivery log over 100,000 rows: figures only.

Starts the server from this checkout under twistd (local profile, plain HTTP, SQLite in a
temporary directory) with its admin port, adds an administrator with the CLI, writes
ROWS delivery-log lines straight into the database (recipients spread over 50 domains,
statuses mixed, one attempt a second), then, signed in on the admin port, one request at a
time from one client (requests), measures:
- the first page (GET /admin/deliveries, 50 newest lines);
- deep pages: following the "Older entries" cursor (keyset on (attempted_at, id)) for
  --depth pages, every page timed; the last one reached is --depth * 50 rows deep;
- filtered pages: by status, by recipient domain, by exact address, by a date range;
and prints p50/p95 in milliseconds per kind, and SQLite's query plan for a deep page (it
should name ix_delivery_log_attempted_at_id, not a scan with a temporary B-tree).

Run from the repository root: python3 benchmarks/admin_log.py [--rows N] [--rounds N]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webserver import ROOT, percentile, sign_in, web_server  # noqa: E402

sys.path.insert(0, str(ROOT))
ADMIN = "admin@bench.test"
PASSWORD = "correct-horse-staple-9"
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
STATUSES = ("delivered", "delivered", "delivered", "deferred", "failed")




def fill_log(db_path: str, rows: int) -> str:
    """Write the log lines; returns the query plan of a deep keyset page."""
    from sqlalchemy import insert, text

    from mailgosend.db.engine import create_db_engine
    from mailgosend.db.schema import delivery_log

    engine = create_db_engine("sqlite", sqlite_path=db_path)
    with engine.begin() as conn:
        for start in range(0, rows, 5000):
            conn.execute(insert(delivery_log), [
                dict(queue_id=i // 2, recipient=f"user{i % 997}@domain{i % 50}.test",
                     attempted_at=START + timedelta(seconds=i), status=STATUSES[i % 5],
                     code=250 if i % 5 < 3 else 451, text="2.0.0 OK" if i % 5 < 3 else
                     "4.7.1 try again later", mx_host=f"mx.domain{i % 50}.test",
                     tls_version="TLSv1.3")
                for i in range(start, min(rows, start + 5000))])
    with engine.connect() as conn:
        compiled = str(conn.execute(text(
            "EXPLAIN QUERY PLAN SELECT * FROM delivery_log WHERE "
            "(attempted_at, id) < (:at, :id) ORDER BY attempted_at DESC, id DESC LIMIT 51"),
            {"at": (START + timedelta(seconds=rows // 2)).strftime("%Y-%m-%d %H:%M:%S.%f"),
             "id": rows // 2}).all())
    engine.dispose()
    return compiled


def timed(client: requests.Session, url: str, into: list[float]) -> str:
    started = time.perf_counter()
    answer = client.get(url)
    into.append(time.perf_counter() - started)
    assert answer.status_code == 200, (url, answer.status_code)
    return answer.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--depth", type=int, default=200, help="cursor pages to follow")
    args = parser.parse_args()
    filled_in: dict[str, Any] = {}

    def fill(conf: str, env: dict[str, str]) -> None:
        from mailgosend.config import load

        config = load(conf, create=False, environ={k: v for k, v in env.items()
                                                   if k.startswith("MAILGO_")})
        started = time.perf_counter()
        filled_in["plan"] = fill_log(config["DB_PATH"], args.rows)
        filled_in["seconds"] = time.perf_counter() - started

    results: dict[str, list[float]] = {k: [] for k in (
        "first page", "deep pages", "status=failed", "domain=domain7.test",
        "address=user5@domain5.test", "date range (1 day)")}
    with web_server("ADMIN", [(["create-admin", ADMIN, "--password-stdin"], PASSWORD + "\n")],
                    prepare=fill, extra_env={"MAILGO_BCRYPT_COST": "4",
                                             "MAILGO_DELIVERY_PAUSED": "true"}) as base:
        client = requests.Session()
        sign_in(client, base, ADMIN, PASSWORD)
        log = base + "/admin/deliveries"
        day = (START + timedelta(seconds=args.rows // 2)).strftime("%Y-%m-%d")
        filters = {"status=failed": "?status=failed", "domain=domain7.test":
                   "?domain=domain7.test", "address=user5@domain5.test":
                   "?address=user5@domain5.test",
                   "date range (1 day)": f"?since={day}T00:00&until={day}T23:59"}
        for _ in range(args.rounds):
            timed(client, log, results["first page"])
            for name, query in filters.items():
                timed(client, log + query, results[name])
        url = log
        for _ in range(args.depth):
            page = timed(client, url, results["deep pages"])
            found = re.search(r'rel="next" href="([^"]+)"', page)
            if not found:
                break
            url = base + found.group(1).replace("&amp;", "&")
        deepest = len(results["deep pages"]) * 50
    ms = 1000
    print(f"delivery_log rows: {args.rows} (written in {filled_in['seconds']:.1f} s)")
    for name, values in results.items():
        print(f"{name} ({len(values)}): p50 {statistics.median(values) * ms:.1f} ms, "
              f"p95 {percentile(values, 95) * ms:.1f} ms")
    print(f"deepest page reached: rows {deepest - 50}-{deepest} (newest first)")
    print(f"query plan of a keyset page: {filled_in['plan']}")


if __name__ == "__main__":
    main()
