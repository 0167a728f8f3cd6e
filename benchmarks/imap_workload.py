#!/usr/bin/env python3
"""IMAP on a 10,000-message mailbox: mailgosend vs Dovecot, same run, interleaved.

Figures only, no pass/fail.  Sets up everything itself: a temporary directory, our
app_config.conf (MAILGO_* variables: profile local, IMAP on a free loopback port, every other
listener off, PLAINTEXT_AUTH_LOOPBACK=true so LOGIN works without TLS from 127.0.0.1,
TLS_MODE=selfsigned, DNSBL off, DNS pointed at a dead loopback port), domain bench.test and
user imapbench@bench.test made with the mailgosend CLI (password "benchpass-long", default
BCRYPT_COST), our server under twistd; the Dovecot stack from ../shared/bench
(setup_peer_stack.sh the first time, start_stack.sh, stop_stack.sh at the end if it started
it), reached through benchmarks/smtp_inbound.py's PeerStack helper.

Fill.  Both INBOXes get the same --messages messages, byte for byte what
../shared/bench/imap_bench.py --fill would APPEND (benchlib.make_message(seed=42, idx),
every 20th ~100 KB with an attachment, the rare search word in 1 %, \\Seen on 70 %), but
sent by this script over a raw socket as LITERAL+ APPENDs, pipelined (--fill-window): with
imaplib's synchronizing literals every APPEND to our server costs ~50 ms, ~45 ms of it the
client's final CRLF waiting for a delayed ACK (see the report).  Our mailbox is filled fresh
every run (unless --workdir points at an earlier run's directory); a mailbox that already
holds exactly this set is reused with its flags reset to the fill pattern, otherwise it is
emptied and refilled (--refill-peer forces a refill).

Measured, per round, for each system back to back (order alternating by round), with the
peer-bench client ../shared/bench/imap_bench.py:
  singles   one process: LOGIN+SELECT x20, UID FETCH 1:* (FLAGS), FETCH 1:* (ENVELOPE),
            FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)]), the same three read raw
            off the socket (server-bound: imaplib's parsing dominates some rows), UID SEARCH
            TEXT/BODY <rare word>, UID SEARCH SUBJECT, 200 random UID FETCH BODY.PEEK[] one
            at a time, UID STORE +FLAGS on 1,000 random UIDs in one command and as 1,000
            commands;
  sorts     measured by this script on one session (raw socket), each --sort-repeats times:
            UID SORT (REVERSE DATE) / (SUBJECT) / (DISPLAYFROM) ALL, (REVERSE ARRIVAL) UNSEEN,
            UID THREAD REFERENCES / ORDEREDSUBJECT ALL; the median of the repeats after the
            first, and the first (which may fill a cache) apart; answers compared by digest;
  mixed     --clients processes for --duration s, the imap_bench.py mix (FETCH FLAGS of the
            last 100, FETCH ENVELOPE of 50, BODY.PEEK[] of one, STORE \\Seen, SEARCH
            SUBJECT, NOOP); server CPU (our process / Dovecot's process tree) sampled from
            /proc over the middle of the run, RSS/PSS with mem_sample.py.
Memory: idle RSS of our whole server process (fresh start on the filled database, before any
login; and again after the rounds), and with --clients sessions logged in and SELECTed on the
10k-message INBOX (and the peak during the mixed workload); Dovecot's process tree likewise
(RSS summed over processes, and PSS).
Profile (py-spy, if installed; --no-profile skips): --gil samples of our server during one
extra mixed run and one extra singles run, not counted in the tables.

Every loop is bounded by count and time (--max-total-seconds: no new step starts past it;
each client run has a timeout).  Only 127.0.0.1 is contacted.

  python3 benchmarks/imap_workload.py                   # 3 rounds, about 11 minutes
  python3 benchmarks/imap_workload.py --quick           # smoke test: 600 messages, 1 round, 8 s mix
  python3 benchmarks/imap_workload.py --systems ours --rounds 1 --keep-workdir
  python3 benchmarks/imap_workload.py --kinds sorts      # only the SORT/THREAD rows

Needs (Debian 12, root): apt-get install postfix dovecot-imapd dovecot-lmtpd (the peer
stack, as benchmarks/smtp_inbound.py), optionally pip install py-spy.
"""

from __future__ import annotations

import argparse
import hashlib
import imaplib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from smtp_inbound import (PeerStack, publish_report, free_port, loadavg, proc_status,  # noqa: E402
                          summarize_profile, tree_cpu_seconds)

DOMAIN = "bench.test"
USER = f"imapbench@{DOMAIN}"
OUR_PASSWORD = "benchpass-long"     # our CLI wants >= 10 characters
PY = sys.executable
SYSTEMS = ("ours", "dovecot")
SINGLE_TESTS = ["login_select", "fetch_flags", "fetch_envelope", "fetch_headers",
                "raw_fetch_flags", "raw_fetch_envelope", "raw_fetch_headers", "search_text",
                "search_body", "search_subject", "fetch_body_rand", "store_bulk", "store_single"]
# The "sorts" runs: each command --sort-repeats times on one SELECTed session, raw socket.
SORT_TESTS = {
    "sort_date": b"UID SORT (REVERSE DATE) UTF-8 ALL",
    "sort_subject": b"UID SORT (SUBJECT) UTF-8 ALL",
    "sort_displayfrom": b"UID SORT (DISPLAYFROM) UTF-8 ALL",
    "sort_arrival_unseen": b"UID SORT (REVERSE ARRIVAL) UTF-8 UNSEEN",
    "thread_references": b"UID THREAD REFERENCES UTF-8 ALL",
    "thread_orderedsubject": b"UID THREAD ORDEREDSUBJECT UTF-8 ALL",
}
KINDS = ("singles", "mixed", "sorts")


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S ") + msg, file=sys.stderr, flush=True)


def load_benchlib(bench_dir: str) -> Any:
    sys.path.insert(0, bench_dir)
    import benchlib  # type: ignore  # noqa: E402
    return benchlib


def wait_for_imap(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(512).startswith(b"* OK"):
                    s.sendall(b"z LOGOUT\r\n")
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


class CpuSampler(threading.Thread):
    """CPU seconds of process trees every `interval` s (bounded), to take a steady-state rate."""

    def __init__(self, pids: list[int], interval: float = 0.5, max_seconds: float = 300) -> None:
        super().__init__(daemon=True)
        self.pids, self.interval, self.max_seconds = pids, interval, max_seconds
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._halt.is_set() and time.monotonic() < deadline:
            self.samples.append((time.monotonic(), tree_cpu_seconds(self.pids)))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def rate(self, t_from: float, t_to: float) -> Optional[float]:
        """Cores busy (CPU s per s) between two monotonic times."""
        pts = [s for s in self.samples if t_from <= s[0] <= t_to]
        if len(pts) < 2 or pts[-1][0] - pts[0][0] < 1:
            return None
        return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])


# ----------------------------------------------------------------------------- our server

class OurImapServer:
    def __init__(self, workdir: str, port: int, args: argparse.Namespace) -> None:
        self.dir = os.path.join(workdir, "ours")
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "app_config.conf")
        self.port, self.args = port, args
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.starts = 0

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        if self.args.nodelay_experiment:
            env["PYTHONPATH"] = self.nodelay_dir() + os.pathsep + env["PYTHONPATH"]
        env.update({
            "MAILGO_PROFILE": "local",
            "MAILGO_HOSTNAME": "mx.ours.test",
            "MAILGO_DEFAULT_DOMAIN": DOMAIN,
            "MAILGO_BIND_ADDRESS": "127.0.0.1",
            "MAILGO_IMAP_BIND": "127.0.0.1",
            "MAILGO_IMAP_PORT": str(self.port),
            "MAILGO_PLAINTEXT_AUTH_LOOPBACK": "true",
            "MAILGO_TLS_MODE": "selfsigned",
            "MAILGO_DNSBL_ZONES": "",
            "MAILGO_DNS_PRIMARY": "127.0.0.1:9",     # nothing listens there; IMAP needs no DNS
            "MAILGO_DNS_SECONDARY": "",
            # the mixed workload, the 10 connected sessions and the main client: 12-22 at once
            "MAILGO_MAX_CONNECTIONS_PER_IP": "100",
            "MAILGO_SHUTDOWN_GRACE_SECONDS": "2",
        })
        for service in ("SMTP", "SUBMIT", "SMTPS", "IMAPS", "POP3", "POP3S", "WEB", "ADMIN",
                        "DAV"):
            env[f"MAILGO_{service}_PORT"] = "0"
        for item in self.args.server_env:
            k, _, v = item.partition("=")
            env[k if k.startswith("MAILGO_") else "MAILGO_" + k] = v
        return env

    def nodelay_dir(self) -> str:
        """--nodelay-experiment: a sitecustomize.py that sets TCP_NODELAY on every connection
        Twisted accepts (what-if; the product does not do this)."""
        d = os.path.join(self.dir, "nodelay-experiment")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "sitecustomize.py"), "w") as f:
            f.write("from twisted.internet import tcp as _tcp\n"
                    "_orig = _tcp.Server.__init__\n"
                    "def _init(self, *a, **kw):\n"
                    "    _orig(self, *a, **kw)\n"
                    "    self.setTcpNoDelay(True)\n"
                    "_tcp.Server.__init__ = _init\n")
        return d

    def cli(self, *argv: str, stdin: Optional[bytes] = None) -> None:
        r = subprocess.run([PY, "-c", "from mailgosend.cli import run; run()", "--config",
                            self.conf, *argv], cwd=ROOT, env=self.env(), input=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if r.returncode != 0:
            raise SystemExit(f"mailgosend {' '.join(argv)} failed: {r.stdout.decode()}")

    def setup(self) -> None:
        if os.path.exists(self.conf):
            return
        t0 = time.monotonic()
        self.cli("domain", "add", DOMAIN)
        self.cli("user", "add", USER, "--password-stdin", stdin=(OUR_PASSWORD + "\n").encode())
        log(f"ours: config {self.conf}, domain + {USER} created ({time.monotonic() - t0:.1f}s)")

    def start(self) -> int:
        self.starts += 1
        logf = open(os.path.join(self.dir, f"server-{self.starts:02d}.log"), "wb")
        self.proc = subprocess.Popen(
            [PY, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
             "mailgosend", "--config", self.conf],
            cwd=ROOT, env=self.env(), stdout=logf, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        if not wait_for_imap(self.port, 60):
            self.stop()
            raise SystemExit(f"our server did not answer on 127.0.0.1:{self.port}; see {logf.name}")
        return self.proc.pid

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                log(f"ours: pid {self.proc.pid} did not stop in 30 s; SIGKILL")
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


# ----------------------------------------------------------------------------- fill

def fill_message(benchlib: Any, idx: int, large_every: int) -> tuple[bytes, bool]:
    """Exactly what imap_bench.py --fill appends as message number idx (0-based)."""
    size = "100k" if large_every and idx % large_every == 0 else "4k"
    extra = ("This line mentions %s for the search test." % benchlib.RARE_WORD
             if idx % 100 == 7 else None)
    return benchlib.make_message(size, idx=idx, seed=42, to=USER, extra_body_line=extra), \
        idx % 10 < 7


class RawImap:
    """A tiny blocking IMAP client for the fill and the checks (tagged replies only)."""

    def __init__(self, port: int, password: str, timeout: float = 120) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")
        greeting = self.f.readline()
        if not greeting.startswith(b"* OK"):
            raise RuntimeError(f"greeting {greeting!r}")
        self.n = 0
        self.command(b"LOGIN " + USER.encode() + b' "' + password.encode() + b'"')

    def send(self, cmd: bytes) -> bytes:
        self.n += 1
        tag = b"W%d" % self.n
        self.sock.sendall(tag + b" " + cmd + b"\r\n")
        return tag

    def read_until(self, tag: bytes) -> tuple[bytes, list[bytes]]:
        untagged: list[bytes] = []
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("connection closed")
            while line.endswith(b"}\r\n") and b"{" in line:     # a literal follows
                size = int(line[line.rindex(b"{") + 1:-3].rstrip(b"+"))
                line += self.f.read(size) + self.f.readline()
            if line.startswith(tag + b" "):
                if not line[len(tag) + 1:].startswith(b"OK"):
                    raise RuntimeError(f"command failed: {line[:200]!r}")
                return line, untagged
            untagged.append(line)

    def command(self, cmd: bytes) -> list[bytes]:
        return self.read_until(self.send(cmd))[1]

    def close(self) -> None:
        try:
            self.send(b"LOGOUT")
            self.sock.close()
        except OSError:
            pass


def uidset(uids: list[int]) -> str:
    """Sorted UIDs as an IMAP sequence set (runs compressed to a:b)."""
    out: list[str] = []
    run: list[int] = []
    for u in sorted(uids):
        if run and u == run[-1] + 1:
            run.append(u)
            continue
        if run:
            out.append(f"{run[0]}" if len(run) == 1 else f"{run[0]}:{run[-1]}")
        run = [u]
    if run:
        out.append(f"{run[0]}" if len(run) == 1 else f"{run[0]}:{run[-1]}")
    return ",".join(out)


def sort_run(port: int, password: str, tests: list[str], repeats: int, timeout: float
             ) -> dict[str, dict[str, Any]]:
    """The SORT/THREAD rows: one session, SELECT INBOX, each command ``repeats`` times.
    ``first`` is the first run of the command in this session (the one that may build a
    cache), ``seconds`` the median of the others; ``digest`` identifies the answer, so the
    report can say whether both servers gave the same order."""
    c = RawImap(port, password, timeout)
    try:
        c.command(b"SELECT INBOX")
        found = b" ".join(c.command(b"UID SEARCH ALL")).split()[2:]
        position = {n: b"%d" % i for i, n in enumerate(found, 1)}  # UIDs differ per server
        out: dict[str, dict[str, Any]] = {}
        for name in tests:
            times, answer = [], b""
            for _ in range(max(repeats, 1)):
                t0 = time.perf_counter()
                lines = c.command(SORT_TESTS[name])
                times.append(time.perf_counter() - t0)
                answer = b"".join(line for line in lines
                                  if line.startswith((b"* SORT", b"* THREAD")))
            answer = re.sub(rb"\d+", lambda m: position.get(m.group(), b"?"), answer)
            out[name] = {"first": round(times[0], 4),
                         "seconds": round(statistics.median(times[1:] or times), 4),
                         "bytes": len(answer), "digest": hashlib.sha1(answer).hexdigest()[:12]}
        return out
    finally:
        c.close()


def mailbox_state(port: int, password: str, benchlib: Any, n: int) -> tuple[int, bool]:
    """(messages in INBOX, whether its first and last messages are the fill's idx 0 and n-1)."""
    c = RawImap(port, password)
    try:
        untagged = c.command(b"SELECT INBOX")
        exists = next((int(x.split()[1]) for x in untagged if x.endswith(b" EXISTS\r\n")), 0)
        if exists != n or n == 0:
            return exists, False
        ok = True
        for seq, idx in ((1, 0), (n, n - 1)):
            lines = c.command(b"FETCH %d (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])" % seq)
            msg, _ = fill_message(benchlib, idx, 20)
            want = [x for x in msg.split(b"\r\n") if x.startswith(b"Message-ID:")][0]
            ok = ok and want in b"".join(lines)
        return exists, ok
    finally:
        c.close()


def empty_mailbox(port: int, password: str) -> None:
    c = RawImap(port, password, timeout=600)
    try:
        c.command(b"SELECT INBOX")
        c.command(b"STORE 1:* +FLAGS.SILENT (\\Deleted)")
        c.command(b"EXPUNGE")
    finally:
        c.close()


def reset_flags(port: int, password: str, n: int) -> None:
    """Flags back to the fill pattern (\\Seen on idx % 10 < 7) after earlier runs' STOREs."""
    c = RawImap(port, password, timeout=600)
    try:
        c.command(b"SELECT INBOX")
        c.command(b"STORE 1:* -FLAGS.SILENT (\\Seen \\Flagged)")
        seen = [i + 1 for i in range(n) if i % 10 < 7]
        for i in range(0, len(seen), 2000):
            c.command(b"STORE " + uidset(seen[i:i + 2000]).encode() + b" +FLAGS.SILENT (\\Seen)")
    finally:
        c.close()


def fill(port: int, password: str, benchlib: Any, n: int, large_every: int, window: int,
         max_seconds: float) -> dict[str, Any]:
    """Pipelined LITERAL+ APPENDs of the fill messages idx 0..n-1, in order, one connection."""
    c = RawImap(port, password, timeout=300)
    caps = b"".join(c.command(b"CAPABILITY"))
    if b"LITERAL+" not in caps.upper():
        raise SystemExit("server does not advertise LITERAL+")
    t0 = time.monotonic()
    t_end = t0 + max_seconds
    pending: list[tuple[bytes, float]] = []
    lat: list[float] = []
    nbytes = 0
    idx = 0
    while (idx < n or pending) and time.monotonic() < t_end:
        while idx < n and len(pending) < window:
            msg, seen = fill_message(benchlib, idx, large_every)
            c.n += 1
            tag = b"F%d" % c.n
            flags = b" (\\Seen)" if seen else b""
            c.sock.sendall(tag + b" APPEND INBOX" + flags + b" {%d+}\r\n" % len(msg) + msg + b"\r\n")
            pending.append((tag, time.monotonic()))
            nbytes += len(msg)
            idx += 1
        tag, sent = pending.pop(0)
        c.read_until(tag)
        lat.append(time.monotonic() - sent)
    el = time.monotonic() - t0
    c.close()
    return {"appended": len(lat), "seconds": round(el, 1), "bytes": nbytes,
            "append_per_s": round(len(lat) / el, 1) if el else None, "window": window,
            "complete": len(lat) == n}


# ----------------------------------------------------------------------------- memory

def mem_tree(bench_dir: str, pids: list[int], label: str, json_path: str,
             duration: float = 0) -> dict[str, Any]:
    cmd = [PY, os.path.join(bench_dir, "mem_sample.py"), "--label", label, "--json", json_path]
    if duration:
        cmd += ["--duration", str(duration), "--interval", "0.5"]
    for p in pids:
        cmd += ["--pid", str(p)]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=duration + 60)
    return last_json(json_path, lambda x: x.get("label") == label) or {}


def connected_clients(port: int, password: str, count: int, timeout: float
                      ) -> list[imaplib.IMAP4]:
    out = []
    for _ in range(count):
        m = imaplib.IMAP4("127.0.0.1", port, timeout=timeout)
        m.login(USER, password)
        typ, _ = m.select("INBOX")
        if typ != "OK":
            raise RuntimeError("SELECT failed")
        out.append(m)
    return out


def last_json(path: str, pred: Callable[[dict[str, Any]], bool]) -> Optional[dict[str, Any]]:
    try:
        with open(path) as f:
            rows = [json.loads(x) for x in f if x.strip()]
    except OSError:
        return None
    rows = [r for r in rows if pred(r)]
    return rows[-1] if rows else None


# ----------------------------------------------------------------------------- runs

class Bench:
    def __init__(self, args: argparse.Namespace, workdir: str, ours: Optional[OurImapServer],
                 peer: Optional[PeerStack]) -> None:
        self.args, self.ours, self.peer = args, ours, peer
        self.results = os.path.join(workdir, "results")
        os.makedirs(self.results, exist_ok=True)
        self.raw = os.path.join(self.results, "imap_bench.jsonl")
        self.mem_json = os.path.join(self.results, "mem.jsonl")
        self.records: list[dict[str, Any]] = []

    def port(self, system: str) -> int:
        if system == "ours":
            assert self.ours is not None
            return self.ours.port
        return 1143

    def password(self, system: str) -> str:
        return OUR_PASSWORD if system == "ours" else self.args.peer_password

    def dovecot_pid(self) -> int:
        with open(os.path.join(self.args.pb, "pids", "dovecot.pid")) as f:
            return int(f.read().split()[0])

    def bench_cmd(self, system: str, tests: list[str], label: str) -> list[str]:
        a = self.args
        return [PY, os.path.join(a.bench_dir, "imap_bench.py"), "--host", "127.0.0.1",
                "--port", str(self.port(system)), "--user", USER, "--password",
                self.password(system), "--messages", str(a.messages), "--repeats", "1",
                "--tests", ",".join(tests), "--label", label, "--json", self.raw,
                "--clients", str(a.clients), "--duration", str(a.duration),
                "--timeout", str(a.client_timeout)]

    def run_sorts(self, system: str, rnd: str) -> dict[str, Any]:
        """SORT and THREAD (SORT_TESTS), measured here: imap_bench.py has no such test."""
        a = self.args
        label = f"{system}|sorts|{rnd}"
        rec: dict[str, Any] = {"system": system, "kind": "sorts", "round": rnd, "label": label,
                               "loadavg_before": loadavg(), "tests": {}}
        pids = [self.dovecot_pid()] if system == "dovecot" else [self.pid_ours()]
        cpu0, t0 = tree_cpu_seconds(pids), time.monotonic()
        try:
            rec["tests"] = sort_run(self.port(system), self.password(system),
                                    [t for t in a.sort_tests.split(",") if t], a.sort_repeats,
                                    a.client_timeout)
            rec["returncode"] = 0
        except (OSError, RuntimeError) as exc:
            rec["returncode"], rec["output"] = 1, str(exc)
        rec["wall_s"] = round(time.monotonic() - t0, 1)
        rec["cpu_s"] = round(tree_cpu_seconds(pids) - cpu0, 2)
        with open(os.path.join(self.results, "runs.jsonl"), "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        self.records.append(rec)
        log(f"[{label}] {rec['wall_s']:.0f}s, server CPU {rec['cpu_s']}s: " + ", ".join(
            f"{k} {v['first']:.3f}/{v['seconds']:.3f}s" for k, v in rec["tests"].items())
            + ("" if rec["returncode"] == 0 else f" -- FAILED: {rec.get('output')}"))
        return rec

    def run(self, system: str, kind: str, rnd: str, profile: Optional[str] = None
            ) -> dict[str, Any]:
        a = self.args
        if kind == "sorts":
            return self.run_sorts(system, rnd)
        label = f"{system}|{kind}|{rnd}"
        tests = ["concurrent"] if kind == "mixed" else [t for t in a.tests.split(",") if t]
        rec: dict[str, Any] = {"system": system, "kind": kind, "round": rnd, "label": label,
                               "loadavg_before": loadavg()}
        pids = [self.dovecot_pid()] if system == "dovecot" else [self.pid_ours()]
        bound = (a.duration + a.client_timeout + 90) if kind == "mixed" else a.singles_timeout
        mem = None
        if kind == "mixed":
            mem = subprocess.Popen(
                [PY, os.path.join(a.bench_dir, "mem_sample.py"), "--interval", "1",
                 "--duration", str(bound), "--json", self.mem_json, "--label", label]
                + sum((["--pid", str(p)] for p in pids), []),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spy = None
        if profile:
            out = os.path.join(self.results, f"profile_{profile}.txt")
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(pids[0]), "--rate", "100",
                                    "--format", "raw", "--output", out, "--nonblocking", "--gil",
                                    "--duration", str(int(bound))],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            time.sleep(1.0)
            rec["profile_file"] = out
        cpu = CpuSampler(pids, max_seconds=bound + 30)
        cpu.start()
        cpu0 = tree_cpu_seconds(pids)
        t0 = time.monotonic()
        try:
            r = subprocess.run(self.bench_cmd(system, tests, label), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=bound)
            out_text = r.stdout.decode(errors="replace").strip()
            rec["returncode"] = r.returncode
        except subprocess.TimeoutExpired:
            out_text = "TIMEOUT"
            rec["returncode"] = None
        t1 = time.monotonic()
        rec["wall_s"] = round(t1 - t0, 1)
        rec["cpu_s"] = round(tree_cpu_seconds(pids) - cpu0, 2)
        cpu.stop()
        if kind == "mixed":
            # imap_bench: clients log in, 1 s pause, then --duration s of load; take the
            # middle of the load window (logins and the tail excluded).
            start = t0 + 2.5 + min(3.0, a.duration * 0.15)
            rec["server_cores"] = cpu.rate(start, start + a.duration * 0.6)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
        if mem is not None:
            mem.send_signal(signal.SIGTERM)
            try:
                mem.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                mem.kill()
            rec["mem"] = last_json(self.mem_json, lambda x: x.get("label") == label)
        rec["output"] = out_text
        rec["tests"] = {}
        try:
            with open(self.raw) as f:
                for line in f:
                    x = json.loads(line)
                    if x.get("label") == label:
                        rec["tests"][x["test"]] = x
        except OSError:
            pass
        with open(os.path.join(self.results, "runs.jsonl"), "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        self.records.append(rec)
        summary = (f"{rec['tests'].get('concurrent', {}).get('ops_per_s')} ops/s, server "
                   f"{rec.get('server_cores') or 0:.2f} cores" if kind == "mixed" else
                   f"{len(rec['tests'])} tests")
        log(f"[{label}] {rec['wall_s']:.0f}s, server CPU {rec['cpu_s']}s: {summary}"
            + ("" if rec["returncode"] == 0 else f" -- FAILED: {out_text[-300:]}"))
        return rec

    def pid_ours(self) -> int:
        assert self.ours is not None
        return self.ours.pid


# ----------------------------------------------------------------------------- report

def mmm(vals: Sequence[Optional[float]]) -> Optional[tuple[float, float, float, int]]:
    v = [x for x in vals if x is not None]
    if not v:
        return None
    return statistics.median(v), min(v), max(v), len(v)


def fnum(x: float, unit: str) -> str:
    if unit == "s":
        if x >= 10:
            return f"{x:.1f} s"
        if x >= 1:
            return f"{x:.2f} s"
        return f"{x * 1000:.1f} ms" if x * 1000 < 100 else f"{x * 1000:.0f} ms"
    if unit == "c":
        return f"{x:.2f}"
    if unit == "ms":
        return f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def fmt(t: Optional[tuple[float, float, float, int]], unit: str) -> str:
    if t is None:
        return "–"
    med, lo, hi, n = t
    if n == 1:
        return fnum(med, unit)
    return f"{fnum(med, unit)} [{fnum(lo, unit)}–{fnum(hi, unit)}]"


def fratio(t: Optional[tuple[float, float, float, int]]) -> str:
    if t is None:
        return "–"
    med, lo, hi, n = t
    d = 3 if lo < 0.1 else 2
    return f"**{med:.{d}f}**" + ("" if n == 1 else f" [{lo:.{d}f}–{hi:.{d}f}]")


# (row label, record kind, getter on the test records, unit, target, lower-is-better)
def _g(test: str, *path: str) -> Callable[[dict[str, Any]], Optional[float]]:
    def get(tests: dict[str, Any]) -> Optional[float]:
        x: Any = tests.get(test)
        for p in path:
            if not isinstance(x, dict):
                return None
            x = x.get(p)
        return x
    return get


def _ms_to_s(f: Callable[[dict[str, Any]], Optional[float]]) -> Callable[[dict[str, Any]],
                                                                          Optional[float]]:
    def get(tests: dict[str, Any]) -> Optional[float]:
        v = f(tests)
        return None if v is None else v / 1000
    return get


ROWS = [
    ("connect + greeting (p50 of 20)", "singles", _ms_to_s(_g("login_select", "connect_greeting", "p50_ms")), "s", "", True),
    ("LOGIN (p50 of 20)", "singles", _ms_to_s(_g("login_select", "login", "p50_ms")), "s", "", True),
    ("**SELECT** INBOX (p50 of 20)", "singles", _ms_to_s(_g("login_select", "select", "p50_ms")), "s", "≤ 2×", True),
    ("**UID FETCH 1:* (FLAGS)**, raw socket", "singles", _g("raw_fetch_flags", "seconds"), "s", "≤ 2×", True),
    ("UID FETCH 1:* (FLAGS), imaplib", "singles", _g("fetch_flags", "seconds"), "s", "", True),
    ("**FETCH 1:* (ENVELOPE)**, raw socket", "singles", _g("raw_fetch_envelope", "seconds"), "s", "≤ 2×", True),
    ("FETCH 1:* (ENVELOPE), imaplib", "singles", _g("fetch_envelope", "seconds"), "s", "", True),
    ("FETCH 1:* BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)], raw", "singles", _g("raw_fetch_headers", "seconds"), "s", "≤ 2×", True),
    ("FETCH 1:* BODY.PEEK[HEADER.FIELDS …], imaplib", "singles", _g("fetch_headers", "seconds"), "s", "", True),
    ("**UID SEARCH BODY** rare word", "singles", _g("search_body", "seconds"), "s", "< Dovecot, < 0.55 s", True),
    ("UID SEARCH TEXT rare word", "singles", _g("search_text", "seconds"), "s", "≤ 2×", True),
    ("UID SEARCH SUBJECT", "singles", _g("search_subject", "seconds"), "s", "≤ 2×", True),
    ("**200 × UID FETCH n (BODY.PEEK[])**, total", "singles", _g("fetch_body_rand", "seconds"), "s", "≤ 2×", True),
    ("– per command p50", "singles", _ms_to_s(_g("fetch_body_rand", "latency", "p50_ms")), "s", "", True),
    ("**UID STORE +FLAGS, 1,000 UIDs in one command**", "singles", _g("store_bulk", "seconds"), "s", "≤ 2×", True),
    ("**1,000 × UID STORE +FLAGS.SILENT**, total", "singles", _g("store_single", "seconds"), "s", "≤ 2×", True),
    ("– per command p50", "singles", _ms_to_s(_g("store_single", "latency", "p50_ms")), "s", "", True),
    ("**UID SORT (REVERSE DATE) UTF-8 ALL**", "sorts", _g("sort_date", "seconds"), "s", "≤ 2×", True),
    ("– first in the session", "sorts", _g("sort_date", "first"), "s", "", True),
    ("**UID SORT (SUBJECT) UTF-8 ALL**", "sorts", _g("sort_subject", "seconds"), "s", "≤ 2×", True),
    ("**UID SORT (DISPLAYFROM) UTF-8 ALL**", "sorts", _g("sort_displayfrom", "seconds"), "s", "≤ 2×", True),
    ("**UID SORT (REVERSE ARRIVAL) UTF-8 UNSEEN**", "sorts", _g("sort_arrival_unseen", "seconds"), "s", "≤ 2×", True),
    ("**UID THREAD REFERENCES UTF-8 ALL**", "sorts", _g("thread_references", "seconds"), "s", "≤ 2×", True),
    ("**UID THREAD ORDEREDSUBJECT UTF-8 ALL**", "sorts", _g("thread_orderedsubject", "seconds"), "s", "≤ 2×", True),
    ("**mixed, 10 clients × 30 s: ops/s** (higher is better)", "mixed", _g("concurrent", "ops_per_s"), "n", "≥ 0.5×", False),
]
MIX_OPS = ["fetch_flags_100", "fetch_envelope_50", "fetch_body", "store_flag", "search_subject",
           "noop"]


def report(bench: Bench, extras: dict[str, Any], args: argparse.Namespace) -> str:
    recs = [r for r in bench.records if r["round"].startswith("r")]
    rounds = sorted({r["round"] for r in recs})
    by: dict[tuple[str, str, str], dict[str, Any]] = {
        (r["system"], r["kind"], r["round"]): r["tests"] for r in recs}
    mixed_rows = [r for r in recs if r["kind"] == "mixed"]
    if args.clients != 10 or args.duration != 30:
        ROWS[-1] = (f"**mixed, {args.clients} clients × {args.duration:g} s: ops/s** (higher is "
                    "better)",) + ROWS[-1][1:]
    kinds = {r["kind"] for r in recs}
    rows = [row for row in ROWS if row[1] in kinds]
    out = [f"### Same run, {len(rounds)} round(s), {extras.get('messages')} messages "
           f"({extras.get('mailbox_mb', '?')} MB); median [min–max] over rounds; ratio = ours / "
           "Dovecot computed within each round, then summarised\n",
           "| operation | ours | Dovecot | **ours / Dovecot** | target |",
           "|---|---:|---:|---:|---|"]
    for name, kind, get, unit, target, lower in (rows if kinds else ROWS):
        vals: dict[str, list[Optional[float]]] = {s: [] for s in SYSTEMS}
        ratios = []
        for rnd in rounds:
            o = by.get(("ours", kind, rnd))
            d = by.get(("dovecot", kind, rnd))
            vo = get(o) if o is not None else None
            vd = get(d) if d is not None else None
            vals["ours"].append(vo)
            vals["dovecot"].append(vd)
            if vo is not None and vd:
                ratios.append(vo / vd)
        out.append(f"| {name} | {fmt(mmm(vals['ours']), unit)} | "
                   f"{fmt(mmm(vals['dovecot']), unit)} | {fratio(mmm(ratios))} | {target} |")
    # CPU during the mixed workload
    cores = {s: [r.get("server_cores") for r in mixed_rows if r["system"] == s] for s in SYSTEMS}
    per_op = {s: [r["server_cores"] * 1000 / r["tests"]["concurrent"]["ops_per_s"]
                  for r in mixed_rows if r["system"] == s and r.get("server_cores")
                  and r["tests"].get("concurrent", {}).get("ops_per_s")] for s in SYSTEMS}
    out.append(f"| server CPU during the mix, cores busy (our process / Dovecot tree) | "
               f"{fmt(mmm(cores['ours']), 'c')} | {fmt(mmm(cores['dovecot']), 'c')} | | |")
    out.append(f"| server CPU per mixed op, ms | {fmt(mmm(per_op['ours']), 'ms')} | "
               f"{fmt(mmm(per_op['dovecot']), 'ms')} | | |")
    errs = {s: sum(r["tests"].get("concurrent", {}).get("errors", 0) for r in mixed_rows
                   if r["system"] == s) for s in SYSTEMS}
    failed = [r["label"] for r in recs if r.get("returncode") != 0]
    out.append(f"\nErrors in the mixed runs: ours {errs['ours']}, Dovecot {errs['dovecot']}"
               + (f"; client runs that failed: {', '.join(failed)}" if failed else "") + ".")
    out.append("\nSEARCH hits (same set, both): " + ", ".join(
        f"{t} ours {by.get(('ours', 'singles', rounds[0]), {}).get(t, {}).get('hits')} / Dovecot "
        f"{by.get(('dovecot', 'singles', rounds[0]), {}).get(t, {}).get('hits')}"
        for t in ("search_body", "search_text", "search_subject")) if rounds else "")

    sorted_recs = {s: [r for r in recs if r["system"] == s and r["kind"] == "sorts"]
                   for s in SYSTEMS}
    if sorted_recs["ours"] and sorted_recs["dovecot"]:
        same = [t for t in SORT_TESTS if sorted_recs["ours"][0]["tests"].get(t, {}).get("digest")
                == sorted_recs["dovecot"][0]["tests"].get(t, {}).get("digest")]
        out.append("\nSORT/THREAD answers byte-identical to Dovecot's: "
                   + (", ".join(same) or "none") + "; different: " + (", ".join(
                       t for t in SORT_TESTS if t not in same
                       and t in sorted_recs["ours"][0]["tests"]) or "none") + ".")

    out.append("\n### Mixed workload, per-operation latency p50 / p99 ms (median over rounds)\n")
    out.append("| op (weight) | ours p50 | ours p99 | Dovecot p50 | Dovecot p99 | ops ours / Dovecot |")
    out.append("|---|---:|---:|---:|---:|---:|")
    weights = dict(zip(MIX_OPS, (20, 20, 30, 15, 5, 10)))
    for op in MIX_OPS:
        cells = []
        for s in SYSTEMS:
            rows = [r["tests"].get("concurrent", {}).get("per_op", {}).get(op, {})
                    for r in mixed_rows if r["system"] == s]
            cells.append(fmt(mmm([x.get("p50_ms") for x in rows]), "ms"))
            cells.append(fmt(mmm([x.get("p99_ms") for x in rows]), "ms"))
        n = {s: mmm([r["tests"].get("concurrent", {}).get("per_op", {}).get(op, {}).get("n")
                     for r in mixed_rows if r["system"] == s]) for s in SYSTEMS}
        nn = " / ".join(f"{v[0]:,.0f}" if v else "–" for v in (n["ours"], n["dovecot"]))
        out.append(f"| {op} ({weights[op]}) | " + " | ".join(cells) + f" | {nn} |")

    mem = extras.get("mem", {})
    if mem:
        out.append("\n### Memory\n")
        out.append("Ours: VmRSS of the one server process (everything: reactor, database "
                   "threads, sessions). Dovecot: RSS summed over its process tree (shared pages "
                   "counted in each process) and PSS (shared pages divided).\n")
        out.append("| state | ours RSS MB | Dovecot RSS-sum MB | Dovecot PSS MB | Dovecot procs |")
        out.append("|---|---:|---:|---:|---:|")
        for key, name in (("idle", "idle (fresh start on the filled mailbox, no session)"),
                          ("connected", f"{args.clients} sessions logged in + SELECTed INBOX, idle"),
                          ("mixed_peak", f"peak during the mixed workload ({args.clients} clients)"),
                          ("idle_after", "idle again after all rounds (sessions closed)")):
            o = mem.get("ours", {}).get(key)
            d = mem.get("dovecot", {}).get(key)
            if o is None and d is None:
                continue
            out.append(f"| {name} | {o if o is not None else '–'} | "
                       f"{(d or {}).get('rss', '–')} | {(d or {}).get('pss', '–')} | "
                       f"{(d or {}).get('procs', '–')} |")
    fills = extras.get("fill", {})
    if fills:
        out.append("\n### Fill (pipelined LITERAL+ APPEND, one connection)\n")
        for s, f in fills.items():
            out.append(f"* {s}: {json.dumps(f)}")
    for prof in extras.get("profiles", []):
        out.append(f"\n### Profile of our server, {prof['what']} (py-spy --gil, not counted "
                   "above)\n")
        out.append(prof["note"] + "\n")
        out.append(prof["text"])
    if extras.get("notes"):
        out.append("\n" + "\n".join(extras["notes"]))
    out.append("\nLoad average before each run: "
               + ", ".join(r["loadavg_before"].split()[0] for r in bench.records)[:400])
    return "\n".join(out)


# ----------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-dir", default=os.path.join(os.path.dirname(ROOT), "shared", "bench"),
                    help="peer-bench scripts (default: ../shared/bench beside the repository)")
    ap.add_argument("--pb", default=os.environ.get("PB", os.path.join(tempfile.gettempdir(),
                                                                      "peerbench")),
                    help="directory of the Postfix/Dovecot stack (setup_peer_stack.sh's $PB)")
    ap.add_argument("--peer-password", default="benchpass")
    ap.add_argument("--setup-peer", action="store_true",
                    help="rerun setup_peer_stack.sh even if the stack is configured")
    ap.add_argument("--keep-stack", action="store_true",
                    help="leave the peer stack running at the end if this script started it")
    ap.add_argument("--refill-peer", action="store_true",
                    help="empty and refill the INBOXes even if they hold the fill set")
    ap.add_argument("--workdir", help="scratch directory (default: a new one under /tmp)")
    ap.add_argument("--keep-workdir", action="store_true",
                    help="keep our server's data (always kept when --workdir is given)")
    ap.add_argument("--port", type=int, default=0, help="our IMAP port (0: a free one)")
    ap.add_argument("--systems", default="ours,dovecot")
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--fill-large-every", type=int, default=20,
                    help="every Nth message ~100 KB with an attachment (imap_bench.py's default)")
    ap.add_argument("--fill-window", type=int, default=16, help="APPENDs in flight while filling")
    ap.add_argument("--fill-max-seconds", type=float, default=420)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tests", default=",".join(SINGLE_TESTS),
                    help="imap_bench.py single-client tests of each round")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help="runs of each round: singles (imap_bench.py), mixed, sorts "
                         "(SORT/THREAD, measured by this script)")
    ap.add_argument("--sort-tests", default=",".join(SORT_TESTS),
                    help="SORT/THREAD commands of the sorts runs")
    ap.add_argument("--sort-repeats", type=int, default=5,
                    help="times each SORT/THREAD command runs per sorts run")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--duration", type=float, default=30, help="seconds of the mixed workload")
    ap.add_argument("--client-timeout", type=float, default=120,
                    help="imap_bench.py --timeout (per command)")
    ap.add_argument("--singles-timeout", type=float, default=300,
                    help="bound on one singles run of imap_bench.py")
    ap.add_argument("--max-total-seconds", type=float, default=1140,
                    help="no new step starts after this many seconds from the start")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--profile-top", type=int, default=25)
    ap.add_argument("--server-env", action="append", default=[],
                    help="extra KEY=VALUE for our server (MAILGO_ prefix optional); repeatable")
    ap.add_argument("--nodelay-experiment", action="store_true",
                    help="what-if: run our server with TCP_NODELAY forced on every accepted "
                         "connection (a sitecustomize.py patching Twisted's tcp.Server); the "
                         "product does not set it")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 600 messages, 1 round, 8 s mixed workload")
    ap.add_argument("--markdown", help="also write the report to this file")
    args = ap.parse_args()
    if args.quick:
        args.messages, args.rounds, args.duration = 600, 1, 8.0
    systems = [s for s in args.systems.split(",") if s]
    if not set(systems) <= set(SYSTEMS):
        ap.error("--systems: ours and/or dovecot")
    for t in args.tests.split(","):
        if t and t not in SINGLE_TESTS:
            ap.error(f"unknown test {t}")
    kinds = [k for k in args.kinds.split(",") if k]
    if not set(kinds) <= set(KINDS):
        ap.error("--kinds: singles, mixed and/or sorts")
    for t in args.sort_tests.split(","):
        if t and t not in SORT_TESTS:
            ap.error(f"unknown sort test {t}")
    if not os.path.exists(os.path.join(args.bench_dir, "imap_bench.py")):
        ap.error(f"--bench-dir {args.bench_dir}: imap_bench.py not found")
    benchlib = load_benchlib(args.bench_dir)

    t_start = time.monotonic()
    deadline = t_start + args.max_total_seconds
    workdir = args.workdir or tempfile.mkdtemp(prefix="imap_workload-")
    os.makedirs(workdir, exist_ok=True)
    log(f"workdir {workdir}; load average {loadavg()}; {os.cpu_count()} CPUs")

    def time_left(what: str) -> bool:
        if time.monotonic() > deadline:
            log(f"--max-total-seconds reached: skipping {what}")
            return False
        return True

    ours = OurImapServer(workdir, args.port or free_port(), args) if "ours" in systems else None
    peer = None
    if "dovecot" in systems:
        peer_args = argparse.Namespace(bench_dir=args.bench_dir, pb=args.pb,
                                       peer_password=args.peer_password)
        peer = PeerStack(peer_args)
    bench = Bench(args, workdir, ours, peer)
    extras: dict[str, Any] = {"messages": args.messages, "mem": {}, "fill": {}, "profiles": [],
                              "notes": []}
    if args.nodelay_experiment:
        extras["notes"].append("**What-if run (--nodelay-experiment):** our server ran with "
                               "TCP_NODELAY forced on by a sitecustomize.py; the product does "
                               "not set it.")
    interrupted = False
    try:
        if peer:
            peer.ensure(args.setup_peer)
        if ours:
            ours.setup()
            ours.start()
        # --- fill
        for system in systems:
            port, pw = bench.port(system), bench.password(system)
            have, same = mailbox_state(port, pw, benchlib, args.messages)
            if same and not args.refill_peer:
                reset_flags(port, pw, args.messages)
                log(f"{system}: INBOX already holds the {have} fill messages; flags reset")
                continue
            if have:
                log(f"{system}: INBOX holds {have} other messages; emptying it")
                empty_mailbox(port, pw)
            log(f"{system}: filling {args.messages} messages (LITERAL+ APPEND, window "
                f"{args.fill_window})")
            r = fill(port, pw, benchlib, args.messages, args.fill_large_every, args.fill_window,
                     args.fill_max_seconds)
            extras["fill"][system] = r
            log(f"{system}: fill {r}")
            if not r["complete"]:
                raise SystemExit(f"{system}: fill incomplete in --fill-max-seconds")
        extras["mailbox_mb"] = round(sum(len(fill_message(benchlib, i, args.fill_large_every)[0])
                                         for i in range(args.messages)) / 1e6, 1)
        # --- idle memory, fresh process on the filled database
        if ours:
            ours.stop()
            ours.start()
            time.sleep(2.0)
            extras["mem"].setdefault("ours", {})["idle"] = round(
                proc_status(ours.pid)["VmRSS"] / 1024, 1)
        if peer:
            m = mem_tree(args.bench_dir, [bench.dovecot_pid()], "dovecot|idle", bench.mem_json)
            extras["mem"].setdefault("dovecot", {})["idle"] = {
                "rss": m.get("first_rss_mb"), "pss": m.get("first_pss_mb"),
                "procs": m.get("max_procs")}
        # --- sessions connected, idle
        for system in systems:
            sessions = connected_clients(bench.port(system), bench.password(system),
                                         args.clients, args.client_timeout)
            time.sleep(1.0)
            if system == "ours":
                assert ours is not None
                extras["mem"]["ours"]["connected"] = round(proc_status(ours.pid)["VmRSS"] / 1024, 1)
            else:
                m = mem_tree(args.bench_dir, [bench.dovecot_pid()], "dovecot|connected",
                             bench.mem_json)
                extras["mem"]["dovecot"]["connected"] = {
                    "rss": m.get("first_rss_mb"), "pss": m.get("first_pss_mb"),
                    "procs": m.get("max_procs")}
            for s in sessions:
                try:
                    s.logout()
                except (imaplib.IMAP4.error, OSError):
                    pass
        # --- rounds
        for rnd in range(args.rounds):
            order = systems if rnd % 2 == 0 else list(reversed(systems))
            for kind in kinds:
                for system in order:
                    if not time_left(f"round {rnd} {system} {kind}"):
                        raise StopIteration
                    bench.run(system, kind, f"r{rnd}")
        # --- memory after the rounds
        for system in systems:
            recs = [r for r in bench.records if r["system"] == system and r.get("mem")]
            if recs:
                peak = max(r["mem"]["peak_rss_mb"] for r in recs)
                if system == "ours":
                    extras["mem"]["ours"]["mixed_peak"] = peak
                else:
                    pk = max(recs, key=lambda r: r["mem"]["peak_pss_mb"])["mem"]
                    extras["mem"]["dovecot"]["mixed_peak"] = {
                        "rss": peak, "pss": pk["peak_pss_mb"], "procs": pk["max_procs"]}
        if ours:
            time.sleep(2.0)
            extras["mem"]["ours"]["idle_after"] = round(proc_status(ours.pid)["VmRSS"] / 1024, 1)
        # --- profiles (extra runs, not in the tables)
        if ours and not args.no_profile:
            if shutil.which("py-spy"):
                for kind in ("mixed", "singles"):
                    if not time_left(f"profile {kind}"):
                        break
                    rec = bench.run("ours", kind, f"profile-{kind}", profile=f"gil-{kind}")
                    if kind == "mixed":
                        ops = rec["tests"].get("concurrent", {}).get("ops_per_s")
                        cores = rec.get("server_cores")
                        ms = cores * 1000 / ops if ops and cores else None
                        note = (f"Under the profiler: {ops} ops/s, server {cores or 0:.2f} cores "
                                f"busy, {ms or 0:.2f} ms CPU per op; ≈ ms/op = share of samples "
                                "× that.")
                    else:
                        ms = None
                        note = (f"One singles run (all the rows above, one after another), "
                                f"{rec['wall_s']} s wall, server CPU {rec['cpu_s']} s; "
                                "per-test seconds of this run: " + ", ".join(
                                    f"{k} {round(v.get('seconds') or 0, 3)}"
                                    for k, v in rec["tests"].items()))
                    extras["profiles"].append({
                        "what": "mixed workload" if kind == "mixed" else "single-client tests",
                        "note": note,
                        "text": summarize_profile(rec.get("profile_file", ""), args.profile_top,
                                                  args.profile_top + 10, ms)
                        .replace("≈ ms/msg", "≈ ms/op")})
            else:
                log("py-spy not installed (pip install py-spy): no profile")
    except StopIteration:
        pass
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted; reporting what was measured")
    finally:
        if ours:
            ours.stop()
        if peer and not args.keep_stack:
            peer.stop()
    publish_report('IMAP workload benchmark', report(bench, extras, args), args, workdir,
                   os.path.join(workdir, 'results'), t_start, interrupted)

if __name__ == "__main__":
    main()
