"""Response times of the web sign-in, the signed-in account page and the settings page:
figures only.

Starts the server from this checkout under twistd (local profile, plain HTTP, default
BCRYPT_COST 12, SQLite in a temporary directory), adds one user with the CLI, then, one
request at a time from one client (requests):
- sign-in: GET /login then POST /login (the POST pays one bcrypt in the worker pool, the first
  time per address and password; later sign-ins hit the verified-login cache, as a person
  signing in again within minutes does), measured separately for the first and the rest;
- account page: GET / while signed in (session lookup, session list, template);
- settings page: GET /settings while signed in (display name, aliases, template);
and prints p50/p95 in milliseconds, with the size of the shipped CSS (raw and gzipped).

Run from the repository root: python3 benchmarks/web_signin.py [--rounds N]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webserver import ROOT, percentile, sign_in, web_server  # noqa: E402
USER = "bench@bench.test"
PASSWORD = "correct-horse-staple-9"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    setup = [(["domain", "add", "bench.test"], None),
             (["user", "add", USER, "--password-stdin"], PASSWORD + "\n")]
    with web_server("WEB", setup) as base:
        first: list[float] = []
        again: list[float] = []
        page: list[float] = []
        settings: list[float] = []
        for n in range(args.rounds):
            client = requests.Session()
            started = time.perf_counter()
            sign_in(client, base, USER, PASSWORD)
            (first if n == 0 else again).append(time.perf_counter() - started)
            started = time.perf_counter()
            home = client.get(base + "/")
            assert home.status_code == 200
            page.append(time.perf_counter() - started)
            started = time.perf_counter()
            shown = client.get(base + "/settings")
            assert shown.status_code == 200
            settings.append(time.perf_counter() - started)
            client.close()
    css = (ROOT / "static" / "css" / "app.css").read_bytes()
    ms = 1000
    print(f"sign-in, first (bcrypt cost 12): {first[0] * ms:.1f} ms")
    print(f"sign-in, again ({len(again)}): p50 {statistics.median(again) * ms:.1f} ms, "
          f"p95 {percentile(again, 95) * ms:.1f} ms")
    print(f"account page ({len(page)}): p50 {statistics.median(page) * ms:.1f} ms, "
          f"p95 {percentile(page, 95) * ms:.1f} ms")
    print(f"settings page ({len(settings)}): p50 {statistics.median(settings) * ms:.1f} ms, "
          f"p95 {percentile(settings, 95) * ms:.1f} ms")
    print(f"static/css/app.css: {len(css)} bytes, {len(gzip.compress(css, 9))} gzipped; "
          "no JavaScript is shipped")


if __name__ == "__main__":
    main()
