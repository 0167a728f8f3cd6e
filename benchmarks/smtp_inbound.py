#!/usr/bin/env python3
"""Inbound SMTP, durable delivery to local users: mailgosend vs Postfix -> LMTP -> Dovecot.

Figures only, no pass/fail.  Sets up everything itself (temporary directory, configuration,
ten users, a DNS stub, the server), then runs, in interleaved rounds, the same load against both
systems with the peer-bench scripts (../shared/bench: smtp_bench.py, mem_sample.py, and
setup_peer_stack.sh / start_stack.sh / stop_stack.sh for the reference stack), and prints
Markdown tables with same-round ratios.

What is compared.  mailgosend answers 250 only after the encrypted copy is committed to the
database (SQLite, synchronous=FULL), and it has no IMAP yet, so its accept rate IS its
delivered-and-visible rate.  Postfix answers 250 once its queue file is written and delivers to
Dovecot (LMTP, maildir) afterwards, so its comparable figure is the e2e rate: first MAIL FROM
until every message shows in IMAP STATUS (smtp_bench.py --e2e).  Its accept rate is shown too.

Per round and configuration (size x C, same N for both, order alternating per round):
  ours     fresh copy of a template database (10 users), server started, smtp_bench.py, server
           CPU from /proc, RSS/PSS sampled with mem_sample.py, server stopped;
  postfix  mailboxes expunged (--reset-mailboxes), smtp_bench.py --e2e, CPU and RSS/PSS of the
           Postfix and Dovecot process trees.
Before the matrix: one large message per run to each system (52,000,000 bytes, just under the
50 MiB limit, and 26,000,000 bytes, just under the 25 MiB size up to which our checks read the
whole message; RSS before / peak, time), and py-spy --gil profiles of our server, 4k and 100k at
C=10 (if py-spy is installed; --no-profile skips them).

Every loop is bounded by count and time (--run-max-seconds per run, --max-total-seconds for the
whole script; no new run starts past it).  Only 127.0.0.1 is ever contacted.

  python3 benchmarks/smtp_inbound.py                       # full matrix, about 20 minutes
  python3 benchmarks/smtp_inbound.py --quick               # smoke test, about 2 minutes
  python3 benchmarks/smtp_inbound.py --systems ours --rounds 1 --sizes 4k --concurrency 10

Needs (Debian 12): apt-get install postfix dovecot-imapd dovecot-lmtpd  (root, for the peer
stack's vmail user and Postfix's master), and optionally pip install py-spy.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from typing import Any, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOMAIN = "bench.test"
USERS = [f"user{n}@{DOMAIN}" for n in range(1, 11)]
OUR_PASSWORD = "benchpass-long"      # our CLI wants >= 10 characters
CLK_TCK = os.sysconf("SC_CLK_TCK")
PY = sys.executable


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S ") + msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- /proc helpers

def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            ppid = int(s[s.rindex(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError):
            pass
    return kids


def tree_cpu_seconds(pids: list[int]) -> float:
    """utime+stime+cutime+cstime over the process trees: reaped children are counted through
    their parent's cutime, live ones directly, so a difference of two snapshots is the CPU
    the trees used in between."""
    kids = _children_map()
    stack, total = list(pids), 0
    while stack:
        p = stack.pop()
        stack.extend(kids.get(p, []))
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
            fields = s[s.rindex(")") + 2:].split()
            total += sum(int(x) for x in fields[11:15])
        except (OSError, ValueError):
            pass
    return total / CLK_TCK


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_greeting(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


class RssSampler(threading.Thread):
    """VmRSS/RssAnon/RssFile of one process every `interval` s until stopped (bounded)."""

    def __init__(self, pid: int, interval: float = 0.05, max_seconds: float = 600) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.max_seconds = pid, interval, max_seconds
        self.samples: list[dict[str, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._halt.is_set() and time.monotonic() < deadline:
            st = proc_status(self.pid)
            if st:
                self.samples.append(st)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def peak(self, key: str) -> int:
        return max((s.get(key, 0) for s in self.samples), default=0)


# ----------------------------------------------------------------------------- DNS stub

def dns_stub_main(argv: list[str]) -> None:
    """Hidden subcommand: tests/support/dnsserver.py's server, also writing what it was asked."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--zone-json", required=True)
    ap.add_argument("--stats", required=True)
    args = ap.parse_args(argv)
    sys.path.insert(0, ROOT)
    from twisted.internet import reactor

    from tests.support.dnsserver import TestDNSServer

    with open(args.zone_json) as f:
        records = json.load(f)
    server = TestDNSServer(records, reactor=reactor)
    _host, port = server.start("127.0.0.1", 0)

    def write_stats() -> None:
        counts = Counter(f"{qtype} {name}" for name, qtype in server.queries)
        with open(args.stats, "w") as f:
            json.dump({"queries": len(server.queries), "by_name": dict(counts.most_common(20))}, f)

    reactor.addSystemEventTrigger("before", "shutdown", write_stats)  # type: ignore
    reactor.callLater(3600, reactor.stop)  # type: ignore  # bounded
    print(port, flush=True)
    reactor.run()  # type: ignore


# ----------------------------------------------------------------------------- our server

class OurServer:
    def __init__(self, workdir: str, port: int, args: argparse.Namespace) -> None:
        self.dir = os.path.join(workdir, "ours")
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "app_config.conf")
        self.data = os.path.join(self.dir, "data")
        self.template = os.path.join(self.dir, "data.template")
        self.port = port
        self.args = args
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.dns: Optional[subprocess.Popen[bytes]] = None
        self.dns_port = 0
        self.dns_stats = os.path.join(self.dir, "dns_stats.json")
        self.starts = 0

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env.update({
            "MAILGO_PROFILE": "local",
            "MAILGO_HOSTNAME": "mx.ours.test",
            "MAILGO_DEFAULT_DOMAIN": DOMAIN,
            "MAILGO_BIND_ADDRESS": "127.0.0.1",
            "MAILGO_SMTP_BIND": "127.0.0.1",
            "MAILGO_SMTP_PORT": str(self.port),
            "MAILGO_TLS_MODE": "off",
            "MAILGO_DNSBL_ZONES": "",
            "MAILGO_DNS_PRIMARY": f"127.0.0.1:{self.dns_port}" if self.dns_port else "127.0.0.1:9",
            "MAILGO_DNS_SECONDARY": "",
            # 50 sessions come from one address; the default per-IP limit is 20.
            "MAILGO_MAX_CONNECTIONS_PER_IP": "200",
            "MAILGO_SHUTDOWN_GRACE_SECONDS": "2",
        })
        # Every other listener off (IMAP/POP3/web are landing; only inbound SMTP is measured).
        for service in ("SUBMIT", "SMTPS", "ADMIN", "IMAP", "IMAPS", "POP3", "POP3S", "WEB", "DAV"):
            env[f"MAILGO_{service}_PORT"] = "0"
        for item in self.args.server_env:
            k, _, v = item.partition("=")
            env[k if k.startswith("MAILGO_") else "MAILGO_" + k] = v
        return env

    def start_dns(self) -> None:
        zone = os.path.join(self.dir, "zone.json")
        with open(zone, "w") as f:
            json.dump({}, f)          # empty zone: every lookup is a fast NXDOMAIN
        self.dns = subprocess.Popen(
            [PY, os.path.abspath(__file__), "_dns-stub", "--zone-json", zone,
             "--stats", self.dns_stats], cwd=ROOT, env=self.env(),
            stdout=subprocess.PIPE, stderr=open(os.path.join(self.dir, "dns.log"), "wb"))
        assert self.dns.stdout is not None
        line = self.dns.stdout.readline().strip()
        if not line.isdigit():
            raise SystemExit("DNS stub did not start; see " + os.path.join(self.dir, "dns.log"))
        self.dns_port = int(line)
        log(f"DNS stub (tests/support/dnsserver.py, empty zone) on 127.0.0.1:{self.dns_port}, "
            f"pid {self.dns.pid}")

    def cli(self, *argv: str, stdin: Optional[bytes] = None) -> None:
        r = subprocess.run([PY, "-c", "from mailgosend.cli import run; run()", "--config",
                            self.conf, *argv], cwd=ROOT, env=self.env(), input=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if r.returncode != 0:
            raise SystemExit(f"mailgosend {' '.join(argv)} failed: {r.stdout.decode()}")

    def setup(self) -> None:
        t0 = time.monotonic()
        self.cli("domain", "add", DOMAIN)
        for user in USERS:
            self.cli("user", "add", user, "--password-stdin", stdin=(OUR_PASSWORD + "\n").encode())
        shutil.copytree(self.data, self.template)
        log(f"ours: config {self.conf}, domain + {len(USERS)} users created "
            f"({time.monotonic() - t0:.1f}s); template database saved")

    def start(self, fresh: bool = True) -> int:
        if fresh:
            shutil.rmtree(self.data, ignore_errors=True)
            shutil.copytree(self.template, self.data)
        self.starts += 1
        logf = open(os.path.join(self.dir, f"server-{self.starts:03d}.log"), "wb")
        self.proc = subprocess.Popen(
            [PY, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
             "mailgosend", "--config", self.conf],
            cwd=ROOT, env=self.env(), stdout=logf, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        if not wait_for_greeting(self.port, 60):
            self.stop()
            raise SystemExit(f"our server did not answer on 127.0.0.1:{self.port}; see {logf.name}")
        time.sleep(0.5)   # let start-up allocations settle before the idle RSS sample
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

    def stop_dns(self) -> dict[str, Any]:
        if self.dns is None:
            return {}
        if self.dns.poll() is None:
            self.dns.send_signal(signal.SIGTERM)
            try:
                self.dns.wait(10)
            except subprocess.TimeoutExpired:
                self.dns.kill()
        self.dns = None
        try:
            with open(self.dns_stats) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}


# ----------------------------------------------------------------------------- peer stack

class PeerStack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.bench = args.bench_dir
        self.pb = args.pb
        self.password = args.peer_password
        self.started_here = False

    def env(self) -> dict[str, str]:
        return dict(os.environ, PB=self.pb, BENCH_PASSWORD=self.password)

    def pids(self) -> list[int]:
        out = []
        for name in ("postfix", "dovecot"):
            try:
                with open(os.path.join(self.pb, "pids", name + ".pid")) as f:
                    pid = int(f.read().split()[0])
                os.kill(pid, 0)
                out.append(pid)
            except (OSError, ValueError):
                pass
        return out

    def ensure(self, force_setup: bool) -> None:
        missing = [p for p in ("/usr/lib/postfix/sbin/master", "/usr/sbin/dovecot",
                               "/usr/lib/dovecot/lmtp", "/usr/lib/dovecot/imap")
                   if not os.path.exists(p)]
        if missing:
            raise SystemExit(
                "the Postfix/Dovecot peer stack is not installed (missing " + ", ".join(missing)
                + "). As root: echo 'postfix postfix/main_mailer_type select No configuration' "
                "| debconf-set-selections; DEBIAN_FRONTEND=noninteractive apt-get install -y "
                "postfix dovecot-imapd dovecot-lmtpd  -- or run with --systems ours")
        if force_setup or not os.path.exists(os.path.join(self.pb, "postfix", "etc", "main.cf")):
            r = subprocess.run(["bash", os.path.join(self.bench, "setup_peer_stack.sh")],
                               env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=120)
            if r.returncode:
                raise SystemExit("setup_peer_stack.sh failed:\n" + r.stdout.decode())
            log(f"peer stack configured under {self.pb}")
        if len(self.pids()) < 2:
            r = subprocess.run(["bash", os.path.join(self.bench, "start_stack.sh")], env=self.env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            if r.returncode:
                raise SystemExit("start_stack.sh failed:\n" + r.stdout.decode())
            self.started_here = True
        log(f"peer stack up: Postfix 127.0.0.1:2525 -> LMTP -> Dovecot IMAP 127.0.0.1:1143 "
            f"(pids {self.pids()})")

    def stop(self) -> None:
        if self.started_here:
            subprocess.run(["bash", os.path.join(self.bench, "stop_stack.sh")], env=self.env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            self.started_here = False


# ----------------------------------------------------------------------------- one run

class Runner:
    def __init__(self, args: argparse.Namespace, workdir: str, ours: Optional[OurServer],
                 peer: Optional[PeerStack]) -> None:
        self.args = args
        self.ours, self.peer = ours, peer
        self.results = os.path.join(workdir, "results")
        os.makedirs(self.results, exist_ok=True)
        self.runs_path = os.path.join(self.results, "runs.jsonl")
        self.raw_path = os.path.join(self.results, "smtp_bench.jsonl")

    def _bench_cmd(self, system: str, size: str, c: int, n: int, label: str,
                   message_file: Optional[str] = None) -> list[str]:
        a = self.args
        cmd = [PY, os.path.join(a.bench_dir, "smtp_bench.py"), "--host", "127.0.0.1",
               "--count", str(n), "--concurrency", str(c), "--label", label,
               "--json", self.raw_path, "--max-seconds", str(a.run_max_seconds),
               "--settle", "1", "--mail-from", "loadgen@client.test"]
        if message_file:
            cmd += ["--message-file", message_file, "--rcpt", USERS[0]]
        else:
            cmd += ["--size", size, "--rcpt-template", "user{n}@" + DOMAIN, "--rcpt-count", "10"]
        if system == "ours":
            assert self.ours is not None
            cmd += ["--port", str(self.ours.port)]
        else:
            cmd += ["--port", "2525", "--e2e", "--imap-port", "1143", "--imap-password",
                    a.peer_password, "--reset-mailboxes", "--e2e-timeout", str(a.run_max_seconds)]
        return cmd

    def run(self, system: str, size: str, c: int, n: int, rnd: str,
            message_file: Optional[str] = None, profile: Optional[str] = None) -> dict[str, Any]:
        """One measured run; returns the combined record (also appended to runs.jsonl)."""
        label = f"{system}|{rnd}"
        rec: dict[str, Any] = {"system": system, "size": size, "concurrency": c, "count": n,
                               "round": rnd, "loadavg_before": loadavg()}
        if system == "ours":
            assert self.ours is not None
            pid = self.ours.start(fresh=not self.args.reuse_db)
            pids = [pid]
            rec["idle"] = proc_status(pid)
        else:
            assert self.peer is not None
            pids = self.peer.pids()
        os.sync()
        mem_json = os.path.join(self.results, "mem.jsonl")
        bound = self.args.run_max_seconds * 2 + 120
        mem = subprocess.Popen(
            [PY, os.path.join(self.args.bench_dir, "mem_sample.py"), "--interval",
             "0.2" if message_file else "0.5", "--duration", str(bound), "--json", mem_json,
             "--label", f"{label}|{size}|C{c}|N{n}"] + sum((["--pid", str(p)] for p in pids), []),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        sampler = RssSampler(pids[0]) if system == "ours" else None
        if sampler:
            sampler.start()
        spy = None
        if profile:
            spy_out = os.path.join(self.results, f"profile_{profile}.txt")
            spy_cmd = ["py-spy", "record", "--pid", str(pids[0]), "--rate", "200", "--format",
                       "raw", "--output", spy_out, "--nonblocking",
                       "--duration", str(int(self.args.run_max_seconds))]
            spy_cmd += ["--gil"] if profile.startswith("gil") else ["--threads"]
            spy = subprocess.Popen(spy_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            time.sleep(1.0)
            rec["profile_file"] = spy_out
        cpu0 = tree_cpu_seconds(pids)
        t0 = time.monotonic()
        cmd = self._bench_cmd(system, size, c, n, label, message_file)
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=self.args.run_max_seconds * 2 + 90)
            out = r.stdout.decode(errors="replace").strip()
        except subprocess.TimeoutExpired:
            out = "TIMEOUT"
        rec["wall_s"] = round(time.monotonic() - t0, 1)
        rec["cpu_s"] = round(tree_cpu_seconds(pids) - cpu0, 2)
        if spy is not None:
            spy.send_signal(signal.SIGINT)     # py-spy writes its output on SIGINT
            try:
                spy.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
        mem.send_signal(signal.SIGTERM)
        try:
            mem.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            mem.kill()
        if sampler:
            sampler.stop()
            st = proc_status(pids[0])
            rec["rss_samples"] = len(sampler.samples)
            rec["peak_rss_kb"] = sampler.peak("VmRSS")
            rec["peak_anon_kb"] = sampler.peak("RssAnon")
            rec["hwm_after_kb"] = st.get("VmHWM")
        rec["bench_output"] = out
        rec["smtp"] = _last_json(self.raw_path, lambda x: x.get("label") == label)
        rec["mem"] = _last_json(mem_json, lambda x: x.get("label", "").startswith(label + "|"))
        if system == "ours":
            assert self.ours is not None
            self.ours.stop()
        if rec["smtp"] and rec["smtp"].get("accepted"):
            rec["cpu_ms_per_msg"] = round(rec["cpu_s"] * 1000 / rec["smtp"]["accepted"], 2)
        with open(self.runs_path, "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        first = out.splitlines()[0] if out else "(no output)"
        log(f"[{label} {size} C={c} N={n} {rec['wall_s']:.0f}s cpu={rec['cpu_s']}s] {first}")
        return rec


def _last_json(path: str, pred: Any) -> Optional[dict[str, Any]]:
    try:
        with open(path) as f:
            rows = [json.loads(x) for x in f if x.strip()]
    except OSError:
        return None
    rows = [r for r in rows if pred(r)]
    return rows[-1] if rows else None


# ----------------------------------------------------------------------------- big message

def make_big_message(path: str, size: int) -> None:
    """A multipart message of exactly `size` bytes: short text part + base64 random attachment."""
    head = (f"From: Big Sender <loadgen@client.test>\r\nTo: <{USERS[0]}>\r\n"
            "Subject: large message test\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
            "Message-ID: <big.1@client.test>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="BIGBOUNDARY"\r\n\r\n'
            "--BIGBOUNDARY\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            "A large attachment follows.\r\n--BIGBOUNDARY\r\n"
            'Content-Type: application/octet-stream; name="big.bin"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n").encode()
    tail = b"\r\n--BIGBOUNDARY--\r\n"
    need = size - len(head) - len(tail)
    rng_bytes = os.urandom(1 << 20)
    with open(path, "wb") as f:
        f.write(head)
        written = 0
        line_raw = 57                      # 57 raw bytes -> 76 base64 chars + CRLF = 78
        block = base64.encodebytes(rng_bytes[: (len(rng_bytes) // line_raw) * line_raw])
        block = block.replace(b"\n", b"\r\n")
        while written + len(block) <= need:
            f.write(block)
            written += len(block)
        rest = need - written
        full_lines = rest // 78
        if full_lines:
            f.write(block[: full_lines * 78])
            written += full_lines * 78
        f.write(b"\r\n" * ((need - written) // 2))
        written += (need - written) // 2 * 2
        if need - written:
            f.write(b" ")      # odd byte: a trailing space on the last empty line
        f.write(tail)
    assert os.path.getsize(path) == size, (os.path.getsize(path), size)


# ----------------------------------------------------------------------------- profile summary

IDLE_LEAVES = ("epoll", "_wait_for_tstate_lock", "select (selectors", "wait (threading",
               "get (queue")


def summarize_profile(path: str, top_self: int, top_incl: int,
                      cpu_ms: Optional[float] = None) -> str:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = busy = 0
    try:
        f = open(path)
    except OSError:
        return f"(no profile at {path})"
    with f:
        for line in f:
            line = line.rstrip()
            if not line:
                continue
            stack, _, n_text = line.rpartition(" ")
            try:
                n = int(n_text)
            except ValueError:
                continue
            frames = [x for x in stack.split(";") if not x.startswith(("thread (", "process "))]
            total += n
            if not frames or any(k in frames[-1] for k in IDLE_LEAVES):
                continue
            busy += n
            own[frames[-1]] += n
            for fr in set(frames):
                incl[fr] += n
    if not busy:
        return "(empty profile)"
    def row(k: str, v: int) -> str:
        ms = f" {cpu_ms * v / busy:.3f} |" if cpu_ms else ""
        return f"| {100 * v / busy:.1f} |{ms} `{k}` |"
    head = ["| % |" + (" ≈ ms/msg |" if cpu_ms else "") + " function |",
            "|---:|" + ("---:|" if cpu_ms else "") + "---|"]
    out = [f"{busy} samples ({total} incl. idle waits). Self time (leaf frames):", ""] + head
    out += [row(k, v) for k, v in own.most_common(top_self)]
    out += ["", "Inclusive, mailgosend frames and the main library entry points:", ""] + head
    keep = ("mailgosend/", "sqlalchemy/engine/base.py", "email/", "tempfile.py",
            "default.py", "twisted/internet/tcp.py", "crypto", "twisted/python/util.py")
    rows = [(k, v) for k, v in incl.most_common() if any(s in k for s in keep)]
    out += [row(k, v) for k, v in rows[:top_incl]]
    return "\n".join(out)


# ----------------------------------------------------------------------------- report

def mmm(vals: list[Optional[float]]) -> Optional[tuple[float, float, float, int]]:
    v = [x for x in vals if x is not None]
    if not v:
        return None
    return statistics.median(v), min(v), max(v), len(v)


def fmt(t: Optional[tuple[float, float, float, int]], digits: int = 0) -> str:
    if t is None:
        return "–"
    med, lo, hi, n = t
    f = f"%.{digits}f"
    if n == 1:
        return f % med
    return f"{f % med} [{f % lo}–{f % hi}]"


def report(runs: list[dict[str, Any]], extras: dict[str, Any], args: argparse.Namespace) -> str:
    matrix = [r for r in runs if r["round"].startswith("r") and r.get("smtp")]
    by: dict[tuple[str, int, int], dict[str, dict[str, dict[str, Any]]]] = \
        defaultdict(lambda: defaultdict(dict))
    for r in matrix:
        by[(r["size"], r["concurrency"], r["count"])][r["system"]][r["round"]] = r
    keys = sorted(by, key=lambda k: (k[0] != "4k", k[0], k[1], k[2]))
    out: list[str] = []
    nrounds = len({r["round"] for r in matrix})
    out.append(f"### Throughput, msgs/s: median [min–max] over {nrounds} round(s); ratios are "
               "computed per round (same round, back to back), then summarised\n")
    out.append("| size | C | N | **ours** (250 after durable write) | Postfix **e2e** (visible in "
               "IMAP) | **ours / Postfix e2e** | Postfix accept | ours / Postfix accept | "
               "errors ours / Postfix |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for k in keys:
        d = by[k]
        o, p = d.get("ours", {}), d.get("postfix", {})
        ours_rate = [x["smtp"].get("msgs_per_s") for x in o.values()]
        pf_e2e = [x["smtp"].get("e2e_msgs_per_s") for x in p.values()]
        pf_acc = [x["smtp"].get("msgs_per_s") for x in p.values()]
        r_e2e, r_acc = [], []
        for rnd in o:
            if rnd in p:
                a = o[rnd]["smtp"].get("msgs_per_s")
                e = p[rnd]["smtp"].get("e2e_msgs_per_s")
                b = p[rnd]["smtp"].get("msgs_per_s")
                if a and e:
                    r_e2e.append(a / e)
                if a and b:
                    r_acc.append(a / b)
        errs = "%s / %s" % (sum(x["smtp"].get("errors", 0) for x in o.values()),
                            sum(x["smtp"].get("errors", 0) for x in p.values()))
        out.append(f"| {k[0]} | {k[1]} | {k[2]} | {fmt(mmm(ours_rate))} | {fmt(mmm(pf_e2e))} | "
                   f"**{fmt(mmm(r_e2e), 2)}** | {fmt(mmm(pf_acc))} | {fmt(mmm(r_acc), 2)} | {errs} |")

    out.append("\n### Latency per message (MAIL FROM → 250 after DATA), ms: median over rounds of "
               "each run's p50 / p99\n")
    out.append("Ours includes the durable write; Postfix's 250 comes before delivery to Dovecot, "
               "and its e2e lag is the time from its last 250 until all messages were visible.\n")
    out.append("| size | C | ours p50 | ours p99 | Postfix p50 | Postfix p99 | Postfix e2e lag s |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for k in keys:
        d = by[k]
        orows, prows = list(d.get("ours", {}).values()), list(d.get("postfix", {}).values())

        def q(rows: list[dict[str, Any]], key: str) -> str:
            return fmt(mmm([x["smtp"]["latency"].get(key) for x in rows
                            if x["smtp"].get("latency")]), 1)
        out.append(f"| {k[0]} | {k[1]} | {q(orows, 'p50_ms')} | {q(orows, 'p99_ms')} | {q(prows, 'p50_ms')} | "
                   f"{q(prows, 'p99_ms')} | {fmt(mmm([x['smtp'].get('e2e_lag_s') for x in prows]), 2)} |")

    out.append("\n### CPU and memory during the runs (median over rounds; peak = highest sample)\n")
    out.append("CPU = user+system seconds of the server process (ours) or of the Postfix and "
               "Dovecot process trees (incl. the 10 IMAP sessions of the e2e poller), per "
               "accepted message. RSS of a tree sums its processes (shared pages counted in each); "
               "PSS shares them out.\n")
    out.append("| size | C | ours CPU ms/msg | Postfix+Dovecot CPU ms/msg | ours RSS idle → peak MB | "
               "Postfix+Dovecot RSS-sum first → peak MB | Postfix+Dovecot PSS peak MB | procs |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for k in keys:
        d = by[k]
        orows, prows = list(d.get("ours", {}).values()), list(d.get("postfix", {}).values())

        def m(rows: list[dict[str, Any]], key: str) -> Optional[tuple[float, float, float, int]]:
            return mmm([x["mem"].get(key) for x in rows if x.get("mem")])
        idle = mmm([x["idle"]["VmRSS"] / 1024 for x in orows if x.get("idle")])
        peak_o = mmm([x["peak_rss_kb"] / 1024 for x in orows if x.get("peak_rss_kb")])
        out.append(
            f"| {k[0]} | {k[1]} | {fmt(mmm([x.get('cpu_ms_per_msg') for x in orows]), 2)} | "
            f"{fmt(mmm([x.get('cpu_ms_per_msg') for x in prows]), 2)} | "
            f"{fmt(idle)} → {fmt(peak_o)} | {fmt(m(prows, 'first_rss_mb'))} → "
            f"{fmt(m(prows, 'peak_rss_mb'))} | {fmt(m(prows, 'peak_pss_mb'))} | "
            f"{fmt(m(prows, 'max_procs'))} |")

    big = [r for r in runs if r["round"] == "big"]
    if big:
        out.append("\n### One large message per run (base64 attachment, C=1, fresh server)\n")
        out.append("| size | system | result | time to 250 | e2e (visible) | RSS before | RSS peak | "
                   "**peak growth** | notes |")
        out.append("|---|---|---|---:|---:|---:|---:|---:|---|")
        for r in big:
            nbytes = int(r["size"][3:])
            sz = f"{nbytes:,} B ({nbytes / 2**20:.1f} MiB)"
            s = r.get("smtp") or {}
            lat = (s.get("latency") or {}).get("p50_ms")
            ok = "250" if s.get("accepted") else "FAILED: " + "; ".join(s.get("error_samples", [])
                                                                         or [r["bench_output"][-200:]])
            if r["system"] == "ours":
                before = r["idle"]["VmRSS"] / 1024
                peak = max(r.get("peak_rss_kb") or 0, 0) / 1024
                hwm = (r.get("hwm_after_kb") or 0) / 1024
                anon_before = r["idle"].get("RssAnon", 0) / 1024
                anon_peak = (r.get("peak_anon_kb") or 0) / 1024
                notes = (f"VmHWM after {hwm:.0f} MB (kernel's exact peak: growth "
                         f"{hwm - before:.0f} MB); anonymous memory {anon_before:.0f} → "
                         f"{anon_peak:.0f} MB; {r.get('rss_samples')} samples at 50 ms; "
                         f"server CPU {r['cpu_s']} s")
                out.append(f"| {sz} | ours | {ok} | {lat / 1000 if lat else 0:.2f} s | = accept | "
                           f"{before:.0f} MB | {peak:.0f} MB | **{max(peak, hwm) - before:.0f} MB** | "
                           f"{notes} |")
            else:
                mm = r.get("mem") or {}
                out.append(f"| {sz} | Postfix+Dovecot | {ok} | {lat / 1000 if lat else 0:.2f} s | "
                           f"{s.get('e2e_s')} s | {mm.get('first_rss_mb')} MB (RSS-sum) | "
                           f"{mm.get('peak_rss_mb')} MB | "
                           f"{(mm.get('peak_rss_mb') or 0) - (mm.get('first_rss_mb') or 0):.0f} MB "
                           f"| PSS {mm.get('first_pss_mb')} → {mm.get('peak_pss_mb')} MB; "
                           f"CPU {r['cpu_s']} s |")

    prof = [r for r in runs if r["round"].startswith("profile")]
    for r in prof:
        s = r.get("smtp") or {}
        kind = r["round"].split("-", 1)[1]
        what = ("GIL holders only (py-spy --gil): where the Python CPU goes; ≈ ms/msg = share "
                "of samples × the run's server CPU per message" if kind == "gil" else
                "all threads, wall clock (py-spy --threads, idle waits dropped): also shows "
                "threads blocked in system calls (fsync, file creation, SQLite)")
        out.append(f"\n### Profile of our server, {r['size']} C={r['concurrency']} N={r['count']}: "
                   f"{what}\n")
        out.append(f"Run under the profiler: {s.get('msgs_per_s')} msgs/s, p50 "
                   f"{(s.get('latency') or {}).get('p50_ms')} ms, server CPU "
                   f"{r.get('cpu_ms_per_msg')} ms/msg.\n")
        out.append(summarize_profile(r.get("profile_file", ""), args.profile_top,
                                     args.profile_top + 15,
                                     r.get("cpu_ms_per_msg") if kind == "gil" else None))
    if extras.get("dns"):
        dns = extras["dns"]
        out.append(f"\nDNS stub: {dns.get('queries')} queries in total (all answered NXDOMAIN); "
                   f"most asked: " + ", ".join(f"{k} ×{v}" for k, v in
                                               list(dns.get("by_name", {}).items())[:6]))
    out.append("\nLoad average before each run (other work on the machine shows here): "
               + ", ".join(sorted({r["loadavg_before"].split()[0] for r in runs}))[:400])
    return "\n".join(out)


# ----------------------------------------------------------------------------- main

def parse_counts(text: str) -> dict[str, int]:
    out = {}
    for part in text.split(","):
        size, _, n = part.partition(":")
        out[size.strip()] = int(n)
    return out


def publish_report(title: str, text: str, args: Any, workdir: str, raw: str, t_start: float,
                   interrupted: bool) -> None:
    """Header (command, commit, uncommitted files), then print and save the report;
    shared by smtp_inbound.py and imap_workload.py."""
    header = (f"## {title} ({time.strftime('%Y-%m-%d %H:%M')}, "
              f"{time.monotonic() - t_start:.0f} s{', interrupted' if interrupted else ''})\n\n"
              f"Command: `{' '.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])}`; "
              f"raw records: `{raw}`\n")
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], timeout=10,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode().strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "mailgosend"],
                               timeout=10, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL).stdout.decode().split("\n")
        dirty_n = len([x for x in dirty if x.strip()])
        header += f"Code: commit {rev or '?'}" + (f" + {dirty_n} uncommitted file(s) under "
                                                 "mailgosend/" if dirty_n else "") + "\n"
    except (OSError, subprocess.SubprocessError):
        pass
    text = header + "\n" + text
    print(text)
    with open(os.path.join(workdir, "results", "report.md"), "w") as f:
        f.write(text + "\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    if not args.workdir and not args.keep_workdir:
        shutil.rmtree(os.path.join(workdir, "ours"), ignore_errors=True)
        log(f"our server's data removed; results kept in {os.path.join(workdir, 'results')}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_dns-stub":
        dns_stub_main(sys.argv[2:])
        return
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
    ap.add_argument("--workdir", help="scratch directory (default: a new one under /tmp)")
    ap.add_argument("--keep-workdir", action="store_true",
                    help="keep the scratch directory (always kept when --workdir is given)")
    ap.add_argument("--port", type=int, default=0, help="our SMTP port (0: pick a free one)")
    ap.add_argument("--systems", default="ours,postfix")
    ap.add_argument("--sizes", default="4k,100k")
    ap.add_argument("--concurrency", default="1,10,50")
    ap.add_argument("--counts", default="4k:3500,100k:2500",
                    help="messages per run for each size, same for both systems")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--run-max-seconds", type=float, default=240,
                    help="bound on the sending time of one run (and on the e2e wait)")
    ap.add_argument("--max-total-seconds", type=float, default=1440,
                    help="no new run starts after this many seconds from the start")
    ap.add_argument("--big-sizes", default="52000000,26000000",
                    help="bytes of each large-message test, comma-separated (empty skips them). "
                         "52,000,000 is just under both servers' 50 MiB limit; 26,000,000 is just "
                         "under FULL_CHECK_MAX_SIZE (25 MiB), the largest message our checks "
                         "still read whole")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--profile", default="4k:2000,100k:1000",
                    help="size:N of the profiled runs of our server (C=10)")
    ap.add_argument("--profile-modes", default="gil",
                    help="py-spy modes: gil (GIL holders = Python CPU), wall (all threads; "
                         "GIL waits show up as the system call that released the GIL)")
    ap.add_argument("--profile-top", type=int, default=25)
    ap.add_argument("--reuse-db", action="store_true",
                    help="do not give our server a fresh database for every run")
    ap.add_argument("--server-env", action="append", default=[],
                    help="extra KEY=VALUE for our server (MAILGO_ prefix optional); repeatable")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 round, N=300/150, 8 MB large message, short profile")
    ap.add_argument("--markdown", help="also write the report to this file")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.counts = 1, "4k:300,100k:150"
        args.big_sizes, args.profile = "8000000", "4k:300,100k:150"
    systems = [s for s in args.systems.split(",") if s]
    if not set(systems) <= {"ours", "postfix"}:
        ap.error("--systems: ours and/or postfix")
    sizes = [s for s in args.sizes.split(",") if s]
    conc = [int(c) for c in args.concurrency.split(",") if c]
    counts = parse_counts(args.counts)
    for s in sizes:
        if s not in ("4k", "100k") or s not in counts:
            ap.error(f"size {s}: sizes are 4k/100k and each needs a count in --counts")
    if not os.path.exists(os.path.join(args.bench_dir, "smtp_bench.py")):
        ap.error(f"--bench-dir {args.bench_dir}: smtp_bench.py not found")

    t_start = time.monotonic()
    deadline = t_start + args.max_total_seconds
    workdir = args.workdir or tempfile.mkdtemp(prefix="smtp_inbound-")
    os.makedirs(workdir, exist_ok=True)
    log(f"workdir {workdir}; load average {loadavg()}; {os.cpu_count()} CPUs")

    ours = OurServer(workdir, args.port or free_port(), args) if "ours" in systems else None
    peer = PeerStack(args) if "postfix" in systems else None
    extras: dict[str, Any] = {}
    runs: list[dict[str, Any]] = []
    interrupted = False
    try:
        if peer:
            peer.ensure(args.setup_peer)
        if ours:
            ours.start_dns()
            ours.setup()
        runner = Runner(args, workdir, ours, peer)

        for big_size in [int(x) for x in args.big_sizes.split(",") if x.strip()]:
            big = os.path.join(workdir, "big.eml")
            make_big_message(big, big_size)
            for system in systems:
                runs.append(runner.run(system, f"big{big_size}", 1, 1, "big", message_file=big))
            os.unlink(big)
        if ours and not args.no_profile:
            if shutil.which("py-spy"):
                for kind in [m for m in args.profile_modes.split(",") if m]:
                    for size, n in parse_counts(args.profile).items():
                        runs.append(runner.run("ours", size, 10, n, f"profile-{kind}",
                                               profile=f"{kind}-{size}"))
            else:
                log("py-spy not installed (pip install py-spy): no profile")

        configs = [(s, c) for s in sizes for c in conc]
        for rnd in range(args.rounds):
            order = systems if rnd % 2 == 0 else list(reversed(systems))
            for size, c in configs:
                for system in order:
                    if time.monotonic() > deadline:
                        log("--max-total-seconds reached: no more runs")
                        raise StopIteration
                    runs.append(runner.run(system, size, c, counts[size], f"r{rnd}"))
    except StopIteration:
        pass
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted; reporting what was measured")
    finally:
        if ours:
            ours.stop()
            extras["dns"] = ours.stop_dns()
        if peer and not args.keep_stack:
            peer.stop()
    publish_report('SMTP inbound benchmark', report(runs, extras, args), args, workdir,
                   os.path.join(workdir, 'results', 'runs.jsonl'), t_start, interrupted)

if __name__ == "__main__":
    main()
