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
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webserver import BINDIR, percentile, sign_in, web_server  # noqa: E402

USER = "bench@bench.test"
PASSWORD = "correct-horse-staple-9"
ECHO = {"using": ["urn:ietf:params:jmap:core"],
        "methodCalls": [["Core/echo", {"hello": "bench"}, "c"]]}




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
    shown: list[str] = []

    def app_password(conf: str, env: dict[str, str]) -> None:
        shown.append(subprocess.run(
            [str(BINDIR / "mailgosend"), "--config", conf, "user", "app-password", "add", USER,
             "bench", "--protocols", "jmap"], text=True, env=env, check=True,
            capture_output=True).stdout)

    with web_server("WEB", [(["domain", "add", "bench.test"], None),
                            (["user", "add", USER, "--password-stdin"], PASSWORD + "\n")],
                    prepare=app_password,
                    extra_env={"MAILGO_JMAP_RATE_PER_MIN": "1000000"}) as base:
        app = re.search(r"[a-z0-9]{4}(?:-[a-z0-9]{4}){4}", shown[0])
        assert app is not None, shown[0]
        basic = requests.Session()
        basic.auth = (USER, app.group(0))
        first = timed(1, lambda: basic.get(base + "/.well-known/jmap").raise_for_status())
        session = timed(args.rounds,
                        lambda: basic.get(base + "/.well-known/jmap").raise_for_status())
        account = basic.get(base + "/.well-known/jmap").json()["primaryAccounts"][
            "urn:ietf:params:jmap:mail"]
        echo_basic = timed(args.rounds, lambda: basic.post(
            base + "/jmap/api", json=ECHO).raise_for_status())

        browser = requests.Session()
        sign_in(browser, base, USER, PASSWORD)
        found = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(base + "/").text)
        assert found is not None, "no csrf_token on the account page"
        token = found.group(1)
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
