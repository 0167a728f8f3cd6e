"""Response times of the admin dashboard page and its data endpoint: figures only.

Starts the server from this checkout under twistd (local profile, plain HTTP, SQLite in a
temporary directory), creates an administrator with the CLI and fills the counter table as
30 days of a busy server would leave it: every hour, the four message series (received per
listener, rejected per reason: 14 labels) and delivery results for DESTINATIONS destination
domains over the last 7 days, from two nodes (about 30,000 rows).  Then, signed in, one
request at a time from one client (requests):
- GET /admin                the page (counters, gauges, security events, certificates,
                            template);
- GET /admin/api/dashboard  the JSON the charts draw;
and prints p50/p95 in milliseconds.

Run from the repository root: python3 benchmarks/admin_dashboard.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webserver import ROOT, percentile, sign_in, web_server  # noqa: E402

sys.path.insert(0, str(ROOT))

ADMIN = "admin@bench.test"
PASSWORD = "correct-horse-staple-9"
DESTINATIONS = 200


def fill_counters(conf: str, env: dict[str, str]) -> int:
    """Thirty days of hourly buckets from two nodes, written with the store's own function."""
    from mailgosend.config import load
    from mailgosend.crypto import KeyRing
    from mailgosend.db.runner import run_sync
    from mailgosend.db.opening import open_database
    from mailgosend.store.counters import add_counts

    config = load(conf, environ=env)
    engine = open_database(config, KeyRing(config["ENCRYPTION_KEY"], ()))
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    rows = []
    for h in range(30 * 24):
        hour = now - timedelta(hours=h)
        rows += [(hour, "messages_received", "inbound", 40 + h % 7),
                 (hour, "messages_received", "submission", 9), (hour, "messages_sent", "", 8),
                 (hour, "messages_bounced", "", 1)]
        rows += [(hour, "messages_rejected", reason, 3) for reason in (
            "unknown_recipient", "policy", "greylisted", "limits", "too_large", "malformed",
            "bad_address", "other", "authentication_required", "temporary_failure",
            "too_many_recipients", "shutting_down")]
        if h < 7 * 24:
            rows += [(hour, "delivery_domain_ok", f"d{d}.example", 1)
                     for d in range(0, DESTINATIONS, 8 if h % 2 else 5)]
    for node in ("node-a", "node-b"):
        run_sync(engine, add_counts, node, rows, write=True)
    engine.dispose()
    return 2 * len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    rows: list[int] = []
    setup = [(["create-admin", ADMIN, "--password-stdin"], PASSWORD + "\n")]
    with web_server("ADMIN", setup,
                    lambda conf, env: rows.append(fill_counters(conf, env))) as base:
        client = requests.Session()
        sign_in(client, base, ADMIN, PASSWORD)
        page: list[float] = []
        data: list[float] = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            shown = client.get(base + "/admin")
            assert shown.status_code == 200, shown.status_code
            page.append(time.perf_counter() - started)
            started = time.perf_counter()
            answer = client.get(base + "/admin/api/dashboard")
            assert answer.status_code == 200
            data.append(time.perf_counter() - started)
        totals = answer.json()["totals_24h"]
    ms = 1000
    print(f"counter rows: {rows[0]}; last 24 h as shown: {totals}")
    print(f"dashboard page /admin ({len(page)}): p50 {statistics.median(page) * ms:.1f} ms, "
          f"p95 {percentile(page, 95) * ms:.1f} ms")
    print(f"data endpoint /admin/api/dashboard ({len(data)}): p50 "
          f"{statistics.median(data) * ms:.1f} ms, p95 {percentile(data, 95) * ms:.1f} ms")


if __name__ == "__main__":
    main()
