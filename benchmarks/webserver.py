"""What the web benchmarks share: a server from this checkout under twistd with one web
listener (the web or the admin port) in a temporary directory, set up with the CLI, and a
browser-like sign-in.  Figures only; see each script's docstring."""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import socket
import subprocess
import sys
import tempfile
import time
from typing import Callable, Iterator, Optional, Sequence

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINDIR = pathlib.Path(sys.executable).parent
OTHER_PORTS = ("SMTP", "SUBMIT", "SMTPS", "IMAP", "IMAPS", "POP3", "POP3S", "WEB", "ADMIN",
               "DAV")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@contextlib.contextmanager
def web_server(kind: str, commands: Sequence[tuple[Sequence[str], Optional[str]]],
               prepare: Optional[Callable[[str, dict[str, str]], None]] = None,
               extra_env: Optional[dict[str, str]] = None) -> Iterator[str]:
    """Yields the base URL of a running server whose ``kind`` port ("WEB" or "ADMIN") alone
    listens (plain HTTP, local profile, no rate limit); ``commands`` are CLI arguments run
    first (with their stdin), ``prepare(conf, env)`` runs after them, before the start;
    ``extra_env``: more MAILGO_ settings for the CLI and the server."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MAILGO_PROFILE": "local",
               "MAILGO_TLS_MODE": "off", "MAILGO_DNSBL_ZONES": "",
               **{f"MAILGO_{n}_PORT": "0" for n in OTHER_PORTS},
               f"MAILGO_{kind}_PORT": str(port), f"MAILGO_{kind}_RATE_PER_MIN": "100000",
               **(extra_env or {})}
        conf = os.path.join(tmp, "app_config.conf")
        run = [str(BINDIR / "mailgosend"), "--config", conf]
        subprocess.run(run + ["config", "init", "--profile", "local"], env=env, check=True,
                       capture_output=True)
        for args, stdin in commands:
            subprocess.run(run + list(args), input=stdin, text=True, env=env, check=True,
                           capture_output=True)
        if prepare is not None:
            prepare(conf, env)
        server = subprocess.Popen([str(BINDIR / "twistd"), "-n", "--pidfile=", "mailgosend",
                                   "--config", conf], cwd=tmp, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    requests.get(base + "/login", timeout=2)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            yield base
        finally:
            server.terminate()
            server.wait(timeout=30)


def sign_in(client: requests.Session, base: str, email: str, password: str) -> None:
    """GET /login for the CSRF token, POST it with the password (no second step)."""
    form = client.get(base + "/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert found is not None, "no csrf_token on /login"
    answer = client.post(base + "/login", data={
        "csrf_token": found.group(1), "email": email, "password": password},
        headers={"Origin": base}, allow_redirects=False)
    assert answer.status_code == 303, answer.status_code
