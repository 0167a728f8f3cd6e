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
import os
import pathlib
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
USER = "bench@bench.test"
PASSWORD = "correct-horse-staple-9"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    bindir = pathlib.Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MAILGO_PROFILE": "local",
               "MAILGO_WEB_PORT": str(port), "MAILGO_TLS_MODE": "off",
               "MAILGO_DNSBL_ZONES": "", "MAILGO_WEB_RATE_PER_MIN": "100000",
               **{f"MAILGO_{n}_PORT": "0" for n in ("SMTP", "SUBMIT", "SMTPS", "IMAP",
                                                    "IMAPS", "POP3", "POP3S", "ADMIN", "DAV")}}
        conf = os.path.join(tmp, "app_config.conf")
        subprocess.run([str(bindir / "mailgosend"), "--config", conf, "config", "init",
                        "--profile", "local"], env=env, check=True, capture_output=True)
        subprocess.run([str(bindir / "mailgosend"), "--config", conf, "domain", "add",
                        "bench.test"], env=env, check=True, capture_output=True)
        subprocess.run([str(bindir / "mailgosend"), "--config", conf, "user", "add", USER,
                        "--password-stdin"], input=PASSWORD + "\n", text=True, env=env,
                       check=True, capture_output=True)
        server = subprocess.Popen([str(bindir / "twistd"), "-n", "--pidfile=", "mailgosend",
                                   "--config", conf], cwd=tmp, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    requests.get(base + "/login", timeout=2)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            first: list[float] = []
            again: list[float] = []
            page: list[float] = []
            settings: list[float] = []
            for n in range(args.rounds):
                client = requests.Session()
                started = time.perf_counter()
                form = client.get(base + "/login")
                token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
                answer = client.post(base + "/login", data={
                    "csrf_token": token, "email": USER, "password": PASSWORD},
                    headers={"Origin": base}, allow_redirects=False)
                assert answer.status_code == 303, answer.status_code
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
        finally:
            server.terminate()
            server.wait(timeout=30)
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
