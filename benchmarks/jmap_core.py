"""Response times of the JMAP endpoint's own work (jmap-core): figures only.

Starts the server from this checkout under twistd (local profile, plain HTTP, default
BCRYPT_COST 12, SQLite in a temporary directory), adds one user with the CLI and an app
password with the "jmap" scope, then, one request at a time from one client (requests):
- session: GET /.well-known/jmap with HTTP Basic and the app password (each request goes
  through the Portal: bans, the verified-login cache, a login record);
- echo, Basic: POST /jmap/api with one Core/echo call, authenticated the same way;
- echo, cookie: the same call with the web sign-in's session cookie and X-CSRF-Token;
- upload and download of a 1 MB blob (sealed, then streamed back decrypted);
and prints p50/p95 in milliseconds.

Run from the repository root: python3 benchmarks/jmap_core.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
USER = "bench@bench.test"
PASSWORD = "correct-horse-staple-9"
ECHO = {"using": ["urn:ietf:params:jmap:core"],
        "methodCalls": [["Core/echo", {"hello": "bench"}, "c"]]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def timed(rounds: int, action: Callable[[], Any]) -> list[float]:
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    bindir = pathlib.Path(sys.executable).parent
    cli = str(bindir / "mailgosend")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MAILGO_PROFILE": "local",
               "MAILGO_WEB_PORT": str(port), "MAILGO_TLS_MODE": "off",
               "MAILGO_DNSBL_ZONES": "", "MAILGO_WEB_RATE_PER_MIN": "100000",
               "MAILGO_JMAP_RATE_PER_MIN": "1000000",
               **{f"MAILGO_{n}_PORT": "0" for n in ("SMTP", "SUBMIT", "SMTPS", "IMAP",
                                                    "IMAPS", "POP3", "POP3S", "ADMIN", "DAV")}}
        conf = os.path.join(tmp, "app_config.conf")

        def run(*argv: str, stdin: str = "") -> str:
            return subprocess.run([cli, "--config", conf, *argv], input=stdin, text=True,
                                  env=env, check=True, capture_output=True).stdout
        run("config", "init", "--profile", "local")
        run("domain", "add", "bench.test")
        run("user", "add", USER, "--password-stdin", stdin=PASSWORD + "\n")
        shown = run("user", "app-password", "add", USER, "bench", "--protocols", "jmap")
        app = re.search(r"[a-z0-9]{4}(?:-[a-z0-9]{4}){4}", shown)
        assert app is not None, shown
        auth = (USER, app.group(0))
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
            basic = requests.Session()
            basic.auth = auth
            first = timed(1, lambda: basic.get(base + "/.well-known/jmap").raise_for_status())
            session = timed(args.rounds,
                            lambda: basic.get(base + "/.well-known/jmap").raise_for_status())
            account = basic.get(base + "/.well-known/jmap").json()["primaryAccounts"][
                "urn:ietf:params:jmap:mail"]
            echo_basic = timed(args.rounds, lambda: basic.post(
                base + "/jmap/api", json=ECHO).raise_for_status())

            browser = requests.Session()
            form = browser.get(base + "/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
            browser.post(base + "/login", data={"csrf_token": token, "email": USER,
                                                "password": PASSWORD},
                         headers={"Origin": base}, allow_redirects=False)
            token = re.search(r'name="csrf_token" value="([^"]+)"',
                              browser.get(base + "/").text).group(1)
            echo_cookie = timed(args.rounds, lambda: browser.post(
                base + "/jmap/api", json=ECHO,
                headers={"Origin": base, "X-CSRF-Token": token}).raise_for_status())

            blob = os.urandom(1 << 20)
            ids: list[str] = []

            def upload() -> None:
                reply = basic.post(f"{base}/jmap/upload/{account}/", data=blob,
                                   headers={"Content-Type": "application/octet-stream"})
                reply.raise_for_status()
                ids.append(reply.json()["blobId"])
            rounds = max(1, args.rounds // 10)
            uploads = timed(rounds, upload)

            def download() -> None:
                reply = basic.get(f"{base}/jmap/download/{account}/{ids[0]}/b.bin")
                reply.raise_for_status()
                assert reply.content == blob
            downloads = timed(rounds, download)
        finally:
            server.terminate()
            server.wait(timeout=30)
    ms = 1000
    print(f"session, first request (one bcrypt, cost 12): {first[0] * ms:.1f} ms")
    for name, values in (("session (Basic, app password)", session),
                         ("Core/echo (Basic, app password)", echo_basic),
                         ("Core/echo (web session cookie + CSRF)", echo_cookie),
                         ("upload 1 MB", uploads), ("download 1 MB", downloads)):
        print(f"{name} ({len(values)}): p50 {statistics.median(values) * ms:.1f} ms, "
              f"p95 {percentile(values, 95) * ms:.1f} ms")


if __name__ == "__main__":
    main()
