#!/usr/bin/env python3
"""Outbound delivery throughput: mailgosend's queue worker vs Postfix, same load, same receiver.

Figures only, no pass/fail (issue #5: "5,000 queued 4 KB messages from alpha to 50 recipients
at beta; report messages/s delivered and compare against Postfix relaying the same load to the
same receiver").

Interpretation.  5,000 messages, each to ONE recipient, the recipients cycling over 50
addresses user1..user50@beta.test (round-robin), so the queue holds 5,000 message/recipient
pairs.  `--rcpts-per-message 50` runs the other reading (every message to all 50 addresses,
one transaction with 50 RCPTs per message).

Receiver (the same process and port for every run).  Postfix's C `smtp-sink` on 127.0.0.3
(beta) on a free port, started by this script with `-c` (running counters) and a listen backlog
of 1024; its counter of received final dots is read from its output, so the delivered count is
exact.  It accepts and discards, so the senders are what is measured.

Ours (alpha, 127.0.0.2).  A queue template is filled once (like tests/test_delivery_crash.py's
fill_queue, i.e. exactly what the SMTP pipeline commits: blob sealed with owner "queue" plus
`store.queue.enqueue`, 250 messages per transaction) in a database made by our configuration
code; every run gets a fresh copy of it.  The server runs under `twistd -n mailgosend --config
app_config.conf` with `MAILGO_*` overrides: every listener off (port 0), TLS_MODE=off (our own
listeners; the sink offers no STARTTLS anyway), DNS_PRIMARY = a stub DNS
(`python -m tests.support.dnsserver`, TTL 300) serving `beta.test MX 10 mx.beta.test` and
`mx.beta.test A 127.0.0.3`, DELIVERY_PORT = the sink's port, DELIVERY_BIND=127.0.0.2,
DELIVERY_PAUSED=false, DELIVERY_DESTINATION_CONCURRENCY = 5 (our default) and, as a separate
row, 20 (Postfix's default_destination_concurrency_limit), DELIVERY_CONCURRENCY 20 (default).
No DKIM key exists, so nothing is signed (Postfix signs nothing either).  Clock: from the
"mailgosend ... started" log line (the worker starts with the service) until the sink has
counted all messages; "queue empty" = until the queue table is empty as well.

Postfix (alpha's peer).  A second Postfix instance of its own under --postfix-dir (default
/tmp/deliverybench/postfix; the pattern of ../shared/bench/setup_peer_stack.sh: own
config_directory, queue_directory, data_directory, `alternate_config_directories` declared in
/etc/postfix/main.cf, no chroot), smtpd on 127.0.0.2 for loading, `relayhost =
[127.0.0.3]:<sink port>` (no DNS: `smtp_dns_support_level = disabled`), `smtp_bind_address =
127.0.0.2`, `smtp_tls_security_level = none`, default_destination_concurrency_limit left at its
default 20 (initial_destination_concurrency 5, so Postfix ramps up from 5 to 20), connection
caching at its default (on demand).  Loading: the same messages (bytes identical to ours, plus
Postfix's own Received header) over SMTP from 4 client threads; every message is put on hold
by `smtpd_recipient_restrictions = check_client_access static:HOLD, ...`.  Release: `postsuper
-H ALL` (hold -> deferred) then `postqueue -f`; clock from just before postsuper until the sink
has all of them ("queue empty" = no file left in incoming/active/deferred/hold).

Rounds interleave the systems (ours@5, ours@20, postfix, order reversed every other round) and
ratios are taken within a round, because the machine's cores are shared with the sink and with
other work.  Reported per run: delivered messages/s, time to the first message at the sink,
CPU seconds of our server process (utime+stime from /proc/<pid>/stat over the delivery
interval) or of the Postfix master's process tree, per message; our RSS at "started" and its
peak (VmHWM); PSS peak of either side (../shared/bench/mem_sample.py).

Every loop is bounded by count and time (--run-max-seconds per run, --max-total-seconds for the
whole script: no new run starts past it).  Only 127.0.0.1 (DNS stub), 127.0.0.2 (senders) and
127.0.0.3 (sink) are contacted.

  .venv/bin/python benchmarks/delivery.py            # 5,000 messages, 2 rounds, 2-3 minutes
  .venv/bin/python benchmarks/delivery.py --quick    # smoke test: 500 messages, 1 round, ~20 s
  .venv/bin/python benchmarks/delivery.py --systems ours --ours-concurrency 5 --rounds 1
  .venv/bin/python benchmarks/delivery.py --rcpts-per-message 50 --count 1000 --rounds 1

Needs root (smtp-sink -u, Postfix's master) and Debian's postfix package (smtp-sink is in it):
  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y postfix
Our server and helpers run with the project's .venv/bin/python when it exists.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from smtp_inbound import (ROOT, log, loadavg, proc_status, publish_report,  # noqa: E402
                          tree_cpu_seconds)

ALPHA_IP, BETA_IP, DNS_IP = "127.0.0.2", "127.0.0.3", "127.0.0.1"
SENDER = "bench@alpha.test"
RCPT_DOMAIN = "beta.test"
N_ADDRESSES = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")
_VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
SERVER_PY = _VENV_PY if os.path.exists(_VENV_PY) else sys.executable
FILL_BATCH = 250


def recipients_for(idx: int, per_message: int) -> list[str]:
    if per_message >= N_ADDRESSES:
        return [f"user{n}@{RCPT_DOMAIN}" for n in range(1, N_ADDRESSES + 1)]
    return [f"user{(idx * per_message + k) % N_ADDRESSES + 1}@{RCPT_DOMAIN}"
            for k in range(per_message)]


def make_message(bench_dir: str, idx: int, rcpts: list[str]) -> bytes:
    """benchlib.make_message's 4 KB text message (the one smtp_bench.py --size 4k sends)."""
    if bench_dir not in sys.path:
        sys.path.insert(0, bench_dir)
    import benchlib  # type: ignore[import-not-found]
    return benchlib.make_message("4k", idx=idx, seed=5, to=rcpts[0], sender=SENDER)  # type: ignore


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError):
        return 0.0


def run_cmd(cmd: list[str], timeout: float = 120, check: bool = True, **kw: Any) -> str:
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                       **kw)
    out = r.stdout.decode(errors="replace")
    if check and r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{out}")
    return out


class MemSampler:
    """../shared/bench/mem_sample.py over process trees for the length of a run."""

    def __init__(self, bench_dir: str, pids: list[int], out: str, label: str,
                 bound: float) -> None:
        self.out = out
        if os.path.exists(out):
            os.unlink(out)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(bench_dir, "mem_sample.py"), "--interval", "0.5",
             "--duration", str(bound), "--json", out, "--label", label]
            + sum((["--pid", str(p)] for p in pids), []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        try:
            with open(self.out) as f:
                return dict(json.loads(f.read().strip().splitlines()[-1]))
        except (OSError, ValueError, IndexError):
            return {}


# ----------------------------------------------------------------------------- the receiver

class Sink:
    """Postfix's smtp-sink with running counters (-c): 'sess=S quit=Q mesg=M' after every
    final dot, QUIT and session end; `count()` is the last M written."""

    def __init__(self, workdir: str, port: int) -> None:
        self.port = port
        self.log_path = os.path.join(workdir, "smtp-sink.out")
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self._f: Any = None
        self._last = 0
        self._tail = b""

    def start(self) -> None:
        exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        out = open(self.log_path, "wb")
        self.proc = subprocess.Popen([exe, "-c", "-u", "postfix", f"{BETA_IP}:{self.port}",
                                      "1024"], stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((BETA_IP, self.port), timeout=2) as s:
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        s.recv(512)
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"smtp-sink did not answer on {BETA_IP}:{self.port}; "
                             f"see {self.log_path}")
        self._f = open(self.log_path, "rb")
        log(f"receiver: smtp-sink -c on {BETA_IP}:{self.port} (backlog 1024), pid "
            f"{self.proc.pid}")

    def count(self) -> int:
        data = self._tail + self._f.read()
        if data:
            parts = re.findall(rb"mesg=(\d+)", data)
            if parts:
                self._last = int(parts[-1])
            self._tail = data[-40:]
        return self._last

    def wait_quiet(self, seconds: float = 1.0, bound: float = 30) -> int:
        """The count once it has not changed for `seconds` (bounded)."""
        deadline = time.monotonic() + bound
        last, since = self.count(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            c = self.count()
            if c != last:
                last, since = c, time.monotonic()
            elif time.monotonic() - since >= seconds:
                break
        return last

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def wait_for_count(sink: Sink, target: int, t0: float, bound: float,
                   alive: Any = lambda: True) -> tuple[int, Optional[float], Optional[float]]:
    """Poll the sink every 5 ms until `target` messages (absolute count) or `bound` seconds.
    Returns (count, time of the first new message, time the target was reached)."""
    start_count = sink.count()
    first: Optional[float] = None
    deadline = t0 + bound
    checks = 0
    while time.monotonic() < deadline:
        c = sink.count()
        now = time.monotonic()
        if first is None and c > start_count:
            first = now
        if c >= target:
            return c, first, now
        checks += 1
        if checks % 200 == 0 and not alive():
            break
        time.sleep(0.005)
    return sink.count(), first, None


# ----------------------------------------------------------------------------- our server

def fill_main(argv: list[str]) -> None:
    """Hidden subcommand (run with the project's Python): create the configuration and fill
    the queue of a fresh database, as the SMTP pipeline would."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--rcpts-per-message", type=int, default=1)
    ap.add_argument("--bench-dir", required=True)
    a = ap.parse_args(argv)
    sys.path.insert(0, ROOT)
    from datetime import datetime, timezone

    from mailgosend.config import load
    from mailgosend.crypto import KeyRing
    from mailgosend.db.runner import run_sync
    from mailgosend.delivery.bounces import QUEUE_OWNER
    from mailgosend.service import open_database
    from mailgosend.store import accounts
    from mailgosend.store import queue as queue_store
    from mailgosend.store.blobs import make_blob_store

    config = load(a.config, profile="local", environ=os.environ)
    keyring = KeyRing(config["ENCRYPTION_KEY"])
    engine = open_database(config, keyring)
    store = make_blob_store(config["STORAGE_BACKEND"], config["STORAGE_PATH"],
                            os.path.join(config["DATA_DIR"], "spool"))
    now = datetime.now(timezone.utc)
    run_sync(engine, accounts.add_domain, "alpha.test", now, write=True)
    total_bytes = 0
    for start in range(0, a.count, FILL_BATCH):
        batch = []
        for idx in range(start, min(a.count, start + FILL_BATCH)):
            rcpts = recipients_for(idx, a.rcpts_per_message)
            raw = make_message(a.bench_dir, idx, rcpts)
            total_bytes += len(raw)
            batch.append((store.seal(keyring, QUEUE_OWNER, raw), len(raw), rcpts))

        def record(conn: Any, batch: list[Any] = batch) -> None:
            for sealed, size, rcpts in batch:
                # a queue blob belongs to no user (as in tests/test_delivery_crash.py)
                store.commit(conn, sealed, None, now)  # type: ignore[arg-type]
                queue_store.enqueue(conn, sender=SENDER, user_id=None, blob_id=sealed.blob_id,
                                    size=size, recipients=rcpts, now=now)
        run_sync(engine, record, write=True)
        for sealed, _size, _rcpts in batch:
            store.release(sealed)
    engine.dispose()
    print(json.dumps({"messages": a.count, "bytes": total_bytes,
                      "storage": config["STORAGE_BACKEND"], "data_dir": config["DATA_DIR"]}))


class OurServer:
    def __init__(self, workdir: str, sink: Sink, args: argparse.Namespace) -> None:
        self.dir = os.path.join(workdir, "ours")
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "app_config.conf")
        self.data = os.path.join(self.dir, "data")
        self.template = os.path.join(self.dir, "data.template")
        self.sink = sink
        self.args = args
        self.dns: Optional[subprocess.Popen[bytes]] = None
        self.dns_port = 0
        self.starts = 0
        self.fill_info: dict[str, Any] = {}

    def env(self, dest_concurrency: int = 5) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        # every listener off (tests/support/process.py quiet_env)
        for name in ("SMTP", "SUBMIT", "SMTPS", "IMAP", "IMAPS", "POP3", "POP3S", "WEB",
                     "ADMIN", "DAV"):
            env[f"MAILGO_{name}_PORT"] = "0"
        env.update({
            "MAILGO_PROFILE": "local",
            "MAILGO_HOSTNAME": "mx.alpha.test",
            "MAILGO_BIND_ADDRESS": ALPHA_IP,
            "MAILGO_TLS_MODE": "off",
            "MAILGO_DNSBL_ZONES": "",
            "MAILGO_DNS_PRIMARY": f"{DNS_IP}:{self.dns_port or 9}",
            "MAILGO_DNS_SECONDARY": "",
            "MAILGO_DELIVERY_PORT": str(self.sink.port),
            "MAILGO_DELIVERY_BIND": ALPHA_IP,
            "MAILGO_DELIVERY_PAUSED": "false",
            "MAILGO_DELIVERY_DESTINATION_CONCURRENCY": str(dest_concurrency),
            "MAILGO_SHUTDOWN_GRACE_SECONDS": "5",
        })
        for item in self.args.server_env:
            k, _, v = item.partition("=")
            env[k if k.startswith("MAILGO_") else "MAILGO_" + k] = v
        return env

    def start_dns(self) -> None:
        zone = os.path.join(self.dir, "zone.json")
        with open(zone, "w") as f:
            json.dump({"alpha.test": {"MX": [[10, "mx.alpha.test"]]},
                       "mx.alpha.test": {"A": [ALPHA_IP]},
                       RCPT_DOMAIN: {"MX": [[10, "mx." + RCPT_DOMAIN]]},
                       "mx." + RCPT_DOMAIN: {"A": [BETA_IP]}}, f)
        self.dns = subprocess.Popen(
            [SERVER_PY, "-m", "tests.support.dnsserver", "--host", DNS_IP, "--port", "0",
             "--ttl", "300", "--zone-json", zone], cwd=ROOT, env=self.env(),
            stdout=subprocess.PIPE, stderr=open(os.path.join(self.dir, "dns.log"), "wb"))
        assert self.dns.stdout is not None
        line = self.dns.stdout.readline().strip()
        if not line.isdigit():
            raise SystemExit("DNS stub did not start; see " + os.path.join(self.dir, "dns.log"))
        self.dns_port = int(line)
        log(f"DNS stub on {DNS_IP}:{self.dns_port}: {RCPT_DOMAIN} MX 10 mx.{RCPT_DOMAIN}, "
            f"mx.{RCPT_DOMAIN} A {BETA_IP}")

    def stop_dns(self) -> None:
        if self.dns is not None and self.dns.poll() is None:
            self.dns.send_signal(signal.SIGTERM)
            try:
                self.dns.wait(10)
            except subprocess.TimeoutExpired:
                self.dns.kill()
        self.dns = None

    def setup(self, count: int) -> None:
        t0 = time.monotonic()
        out = run_cmd([SERVER_PY, os.path.abspath(__file__), "_fill", "--config", self.conf,
                       "--count", str(count), "--rcpts-per-message",
                       str(self.args.rcpts_per_message), "--bench-dir", self.args.bench_dir],
                      timeout=1200, cwd=self.dir, env=self.env())
        self.fill_info = json.loads(out.strip().splitlines()[-1])
        if os.path.exists(self.template):
            shutil.rmtree(self.template)
        shutil.copytree(self.data, self.template)
        log(f"ours: queue template filled with {count} messages "
            f"({self.fill_info['bytes'] / count:.0f} B average, storage "
            f"{self.fill_info['storage']}) in {time.monotonic() - t0:.1f}s")

    def db_path(self) -> str:
        return os.path.join(self.data, "mailgosend.db")

    def _query(self, sql: str) -> list[Any]:
        con = sqlite3.connect(f"file:{self.db_path()}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def queued(self) -> int:
        return int(self._query("SELECT count(*) FROM queue")[0][0])

    def run(self, n: int, dest_conc: int) -> dict[str, Any]:
        rec: dict[str, Any] = {"system": "ours", "concurrency": dest_conc, "count": n}
        shutil.rmtree(self.data, ignore_errors=True)
        shutil.copytree(self.template, self.data)
        os.sync()
        self.starts += 1
        logpath = os.path.join(self.dir, f"server-{self.starts:02d}-c{dest_conc}.log")
        logf = open(logpath, "w")
        started = threading.Event()
        started_at: list[float] = []
        counts = {"delivered": 0, "other": 0, "errors": 0}

        proc = subprocess.Popen(
            [SERVER_PY, "-c", "from twisted.scripts.twistd import run; run()", "-n",
             "--pidfile=", "mailgosend", "--config", self.conf],
            cwd=self.dir, env=self.env(dest_conc), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                logf.write(line)
                if not started.is_set() and re.search(r"mailgosend \S+ started", line):
                    started_at.append(time.monotonic())
                    started.set()
                if "delivery: queue id" in line:
                    counts["delivered" if ": delivered (" in line else "other"] += 1
                elif "Traceback" in line or "unexpected error" in line or " failed" in line:
                    counts["errors"] += 1
            logf.close()
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        sink_base = self.sink.count()
        mem: Optional[MemSampler] = None
        try:
            if not started.wait(90):
                raise RuntimeError(f"no 'started' line within 90 s; see {logpath}")
            t0 = started_at[0]
            cpu0 = proc_cpu_seconds(proc.pid)
            rec["rss_started_mb"] = round(proc_status(proc.pid).get("VmRSS", 0) / 1024, 1)
            mem = MemSampler(self.args.bench_dir, [proc.pid],
                             os.path.join(self.dir, "mem.json"), f"ours-c{dest_conc}",
                             self.args.run_max_seconds + 60)
            got, first, done = wait_for_count(self.sink, sink_base + n, t0,
                                              self.args.run_max_seconds,
                                              alive=lambda: proc.poll() is None)
            t_done = done or time.monotonic()
            rec["cpu_s"] = round(proc_cpu_seconds(proc.pid) - cpu0, 2)
            rec["delivered"] = got - sink_base
            rec["seconds"] = round(t_done - t0, 3)
            rec["first_ms"] = round((first - t0) * 1000, 1) if first else None
            rec["complete"] = done is not None
            # the queue table empties when the last outcomes are committed
            q_deadline = time.monotonic() + 60
            left = self.queued()
            while left and time.monotonic() < q_deadline and proc.poll() is None:
                time.sleep(0.05)
                left = self.queued()
            rec["queue_left"] = left
            rec["queue_empty_s"] = round(time.monotonic() - t0, 3) if not left else None
            st = proc_status(proc.pid)
            rec["rss_peak_mb"] = round(st.get("VmHWM", 0) / 1024, 1)
        finally:
            if mem is not None:
                m = mem.stop()
                rec["pss_peak_mb"] = m.get("peak_pss_mb")
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            reader.join(10)
        rec["sink_after_stop"] = self.sink.wait_quiet(0.5, 10) - sink_base
        try:
            rec["delivery_log"] = dict(self._query(
                "SELECT status, count(*) FROM delivery_log GROUP BY status"))
        except sqlite3.Error as exc:
            rec["delivery_log"] = {"error": str(exc)}
        rec["log_lines"] = dict(counts)
        rec["log"] = logpath
        return rec


# ----------------------------------------------------------------------------- Postfix

class PostfixInstance:
    QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")

    def __init__(self, args: argparse.Namespace, sink: Sink) -> None:
        self.base = args.postfix_dir
        self.etc = os.path.join(self.base, "etc")
        self.spool = os.path.join(self.base, "spool")
        self.datadir = os.path.join(self.base, "data")
        self.args = args
        self.sink = sink
        self.port = 0
        self.started_here = False

    def master_pid(self) -> Optional[int]:
        try:
            with open(os.path.join(self.spool, "pid", "master.pid")) as f:
                pid = int(f.read().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def setup(self) -> None:
        missing = [p for p in ("/usr/lib/postfix/sbin/master", "/usr/sbin/postsuper",
                               "/usr/sbin/postqueue") if not os.path.exists(p)]
        if missing:
            raise SystemExit(
                "Postfix is not installed (missing " + ", ".join(missing) + "). As root: "
                "echo 'postfix postfix/main_mailer_type select No configuration' | "
                "debconf-set-selections; DEBIAN_FRONTEND=noninteractive apt-get install -y "
                "postfix  -- or run with --systems ours")
        if self.master_pid():
            log(f"postfix: an instance is already running under {self.spool}; stopping it")
            run_cmd(["postfix", "-c", self.etc, "stop"], check=False)
            self._wait_master_gone()
        for d in (self.etc, self.spool, self.datadir):
            os.makedirs(d, exist_ok=True)
        shutil.chown(self.datadir, "postfix", "postfix")
        self.port = free_port(ALPHA_IP)
        main_cf = f"""\
compatibility_level = 3.6
config_directory = {self.etc}
queue_directory = {self.spool}
data_directory = {self.datadir}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = /var, /dev/stdout, {self.base}
maillog_file = {self.base}/maillog
myhostname = mx.alpha.test
mydomain = alpha.test
myorigin = alpha.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
relay_domains =
relayhost = [{BETA_IP}]:{self.sink.port}
smtp_bind_address = {ALPHA_IP}
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtpd_peername_lookup = no
# every message loaded is held until the timed release (postsuper -H ALL; postqueue -f)
smtpd_recipient_restrictions = check_client_access static:HOLD, permit_mynetworks, reject
smtpd_relay_restrictions = permit_mynetworks, reject
message_size_limit = 52428800
biff = no
# default_destination_concurrency_limit (20), initial_destination_concurrency (5),
# smtp_destination_recipient_limit (50) and connection caching left at their defaults
"""
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(main_cf)
        with open("/etc/postfix/master.cf") as f:
            lines = f.read().splitlines()
        out = []
        for line in lines:
            fields = line.split()
            if re.match(r"^smtp\s+inet", line):
                out.append(f"{ALPHA_IP}:{self.port} inet n       -       n       -       -"
                           "       smtpd")
                continue
            if re.match(r"^[a-z]", line) and len(fields) >= 8:
                fields[4] = "n"            # no chroot anywhere
                line = " ".join(fields)
            out.append(line)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write("\n".join(out) + "\n")
        # `postfix -c` and the set-gid tools need the directory declared in the default main.cf
        default = "/etc/postfix/main.cf"
        text = open(default).read() if os.path.exists(default) else ""
        if not re.search(r"alternate_config_directories.*" + re.escape(self.etc), text):
            with open(default, "a") as f:
                f.write(f"alternate_config_directories = {self.etc}\n")
        run_cmd(["postfix", "-c", self.etc, "set-permissions"], check=False)
        run_cmd(["postfix", "-c", self.etc, "check"])
        run_cmd(["postfix", "-c", self.etc, "start"])
        self.started_here = True
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((ALPHA_IP, self.port), timeout=2) as s:
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"Postfix did not answer on {ALPHA_IP}:{self.port}; "
                             f"see {self.base}/maillog")
        self.purge()
        log(f"postfix {run_cmd(['postconf', '-h', 'mail_version']).strip()}: instance under "
            f"{self.base}, smtpd {ALPHA_IP}:{self.port} (loading, HOLD), relayhost "
            f"[{BETA_IP}]:{self.sink.port}, master pid {self.master_pid()}")

    def _wait_master_gone(self) -> None:
        deadline = time.monotonic() + 30
        while self.master_pid() and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop(self) -> None:
        if self.started_here:
            self.purge()
            run_cmd(["postfix", "-c", self.etc, "stop"], check=False)
            self._wait_master_gone()
            self.started_here = False

    def purge(self) -> None:
        run_cmd(["postsuper", "-c", self.etc, "-d", "ALL"], check=False)

    def queue_counts(self) -> dict[str, int]:
        out = {}
        for q in self.QUEUES:
            n = 0
            for _dirpath, _dirs, files in os.walk(os.path.join(self.spool, q)):
                n += len(files)
            out[q] = n
        return out

    def load(self, n: int) -> float:
        """Send the n messages to our smtpd (4 client threads); all end up on hold."""
        import smtplib
        t0 = time.monotonic()
        errors: list[str] = []
        threads = 4
        deadline = t0 + self.args.run_max_seconds

        def worker(k: int) -> None:
            try:
                s = smtplib.SMTP(ALPHA_IP, self.port, timeout=60, source_address=(ALPHA_IP, 0))
                s.ehlo("loader.alpha.test")
                for idx in range(k, n, threads):
                    if time.monotonic() > deadline:
                        errors.append("load deadline")
                        break
                    rcpts = recipients_for(idx, self.args.rcpts_per_message)
                    s.sendmail(SENDER, rcpts, make_message(self.args.bench_dir, idx, rcpts))
                s.quit()
            except Exception as exc:      # reported, the run then shows fewer messages
                errors.append(f"{type(exc).__name__}: {exc}")
        ts = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(self.args.run_max_seconds + 30)
        if errors:
            log(f"postfix: load errors: {errors[:3]}")
        # cleanup has written every queue file before smtpd's 250; wait for the hold count
        bound = time.monotonic() + 60
        while self.queue_counts()["hold"] < n and time.monotonic() < bound:
            time.sleep(0.1)
        return time.monotonic() - t0

    def run(self, n: int) -> dict[str, Any]:
        rec: dict[str, Any] = {"system": "postfix", "concurrency": 20, "count": n}
        self.purge()
        load_s = self.load(n)
        qc = self.queue_counts()
        rec["load_s"] = round(load_s, 1)
        rec["held"] = qc["hold"]
        if qc["hold"] != n:
            log(f"postfix: {qc['hold']} of {n} messages on hold after loading: {qc}")
        os.sync()
        time.sleep(1.0)
        pid = self.master_pid()
        assert pid is not None
        mem = MemSampler(self.args.bench_dir, [pid], os.path.join(self.base, "mem.json"),
                         "postfix", self.args.run_max_seconds + 60)
        sink_base = self.sink.count()
        cpu0 = tree_cpu_seconds([pid])
        t0 = time.monotonic()
        run_cmd(["postsuper", "-c", self.etc, "-H", "ALL"], timeout=120)
        rec["postsuper_ms"] = round((time.monotonic() - t0) * 1000, 1)
        run_cmd(["postqueue", "-c", self.etc, "-f"], timeout=60)
        got, first, done = wait_for_count(self.sink, sink_base + n, t0, self.args.run_max_seconds)
        t_done = done or time.monotonic()
        rec["cpu_s"] = round(tree_cpu_seconds([pid]) - cpu0, 2)
        rec["delivered"] = got - sink_base
        rec["seconds"] = round(t_done - t0, 3)
        rec["first_ms"] = round((first - t0) * 1000, 1) if first else None
        rec["complete"] = done is not None
        q_deadline = time.monotonic() + 60
        while time.monotonic() < q_deadline:
            qc = self.queue_counts()
            if not any(qc[q] for q in ("incoming", "active", "deferred", "hold")):
                break
            time.sleep(0.05)
        left = sum(qc[q] for q in ("incoming", "active", "deferred", "hold"))
        rec["queue_left"] = left
        rec["queue_empty_s"] = round(time.monotonic() - t0, 3) if not left else None
        rec["pss_peak_mb"] = mem.stop().get("peak_pss_mb")
        rec["sink_after_stop"] = self.sink.wait_quiet(0.5, 10) - sink_base
        if left:
            log(f"postfix: {left} message(s) still queued: {qc}; purging")
            self.purge()
        return rec


# ----------------------------------------------------------------------------- report

def fmt(v: Optional[float], nd: int = 0) -> str:
    if v is None:
        return "–"
    return f"{v:,.{nd}f}"


def label(rec: dict[str, Any]) -> str:
    return (f"ours C={rec['concurrency']}" if rec["system"] == "ours"
            else "Postfix C≤20")


def rate(rec: dict[str, Any]) -> Optional[float]:
    if not rec.get("seconds") or not rec.get("delivered"):
        return None
    return float(rec["delivered"]) / float(rec["seconds"])


def mmm(vals: list[Optional[float]], nd: int = 0) -> str:
    xs = [v for v in vals if v is not None]
    if not xs:
        return "–"
    if len(xs) == 1:
        return fmt(xs[0], nd)
    return f"{fmt(statistics.median(xs), nd)} [{fmt(min(xs), nd)}–{fmt(max(xs), nd)}]"


def report(runs: list[dict[str, Any]], args: argparse.Namespace,
           extras: dict[str, Any]) -> str:
    out = []
    per = ("each message to 1 recipient, cycling over user1..user50@beta.test"
           if args.rcpts_per_message == 1 else
           f"each message to {args.rcpts_per_message} recipients at beta.test")
    out.append(f"{args.count} queued 4 KB messages ({per}), alpha (127.0.0.2) → smtp-sink on "
               f"127.0.0.3; same receiver process and port for every run. Rate = messages "
               f"counted by the sink / seconds from release (ours: the 'started' log line; "
               f"Postfix: `postsuper -H ALL` + `postqueue -f`) until the sink had them all. "
               f"Ratios are taken within a round.\n")
    out.append("### Per run\n")
    out.append("| round | system | delivered | seconds | **msgs/s** | ratio to Postfix "
               "(same round) | first msg after release ms | queue empty after s | CPU ms/msg | "
               "RSS started → peak MB | PSS peak MB |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rounds = sorted({r["round"] for r in runs})
    for rnd in rounds:
        rr = [r for r in runs if r["round"] == rnd]
        pf = next((r for r in rr if r["system"] == "postfix"), None)
        for r in rr:
            ratio = None
            if pf and r is not pf and rate(pf) and rate(r):
                ratio = rate(r) / rate(pf)  # type: ignore[operator]
            cpu = (r["cpu_s"] * 1000 / r["delivered"]) if r.get("delivered") and "cpu_s" in r \
                else None
            rss = (f"{fmt(r.get('rss_started_mb'))} → {fmt(r.get('rss_peak_mb'))}"
                   if r["system"] == "ours" else "–")
            note = "" if r.get("complete") else " (incomplete)"
            out.append(f"| {rnd + 1} | {label(r)} | {r.get('delivered')}{note} | "
                       f"{fmt(r.get('seconds'), 2)} | **{fmt(rate(r), 1)}** | "
                       f"{fmt(ratio, 2) if ratio else '–'} | {fmt(r.get('first_ms'))} | "
                       f"{fmt(r.get('queue_empty_s'), 2)} | {fmt(cpu, 2)} | {rss} | "
                       f"{fmt(r.get('pss_peak_mb'))} |")
    out.append("\n### Summary (median [min–max] over rounds)\n")
    out.append("| system | msgs/s | **ratio to Postfix (same round)** | CPU ms/msg | "
               "peak RSS MB (ours VmHWM) | PSS peak MB |")
    out.append("|---|---:|---:|---:|---:|---:|")
    keys = []
    for r in runs:
        k = (r["system"], r["concurrency"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        rs = [r for r in runs if (r["system"], r["concurrency"]) == k]
        ratios = []
        for r in rs:
            pf = next((p for p in runs if p["system"] == "postfix" and p["round"] == r["round"]),
                      None)
            if pf and r["system"] == "ours" and rate(pf) and rate(r):
                ratios.append(rate(r) / rate(pf))  # type: ignore[operator]
        cpus = [r["cpu_s"] * 1000 / r["delivered"] for r in rs
                if r.get("delivered") and "cpu_s" in r]
        out.append(f"| {label(rs[0])} | {mmm([rate(r) for r in rs], 1)} | "
                   f"{mmm(ratios, 2) if ratios else '–'} | {mmm(cpus, 2)} | "
                   f"{mmm([r.get('rss_peak_mb') for r in rs])} | "
                   f"{mmm([r.get('pss_peak_mb') for r in rs])} |")
    notes = []
    for r in runs:
        if r["system"] == "ours":
            dl = r.get("delivery_log", {})
            bad = {k: v for k, v in dl.items() if k != "delivered"}
            if bad or r.get("log_lines", {}).get("errors") or not r.get("complete"):
                notes.append(f"round {r['round'] + 1} ours C={r['concurrency']}: delivery_log "
                             f"{dl}, log error lines {r.get('log_lines', {}).get('errors')}, "
                             f"queue rows left {r.get('queue_left')}; see {r.get('log')}")
            if r.get("sink_after_stop", 0) != r.get("delivered"):
                notes.append(f"round {r['round'] + 1} ours C={r['concurrency']}: the sink counted "
                             f"{r.get('sink_after_stop')} messages in all (duplicates or late)")
        else:
            if r.get("held") != r["count"] or not r.get("complete") or r.get("queue_left"):
                notes.append(f"round {r['round'] + 1} Postfix: held {r.get('held')}, delivered "
                             f"{r.get('delivered')}, left {r.get('queue_left')}")
    if notes:
        out.append("\n**Anomalies**\n")
        out.extend(f"- {n}" for n in notes)
    pf_runs = [r for r in runs if r["system"] == "postfix"]
    if pf_runs:
        out.append(f"\nPostfix loading (not timed in the rate): "
                   f"{mmm([r.get('load_s') for r in pf_runs], 1)} s for {args.count} messages "
                   f"over SMTP; `postsuper -H ALL` took "
                   f"{mmm([r.get('postsuper_ms') for r in pf_runs])} ms of the timed interval.")
    if extras.get("fill"):
        f = extras["fill"]
        out.append(f"Our queue template: {f.get('messages')} messages, "
                   f"{f.get('bytes', 0) / max(1, f.get('messages', 1)):.0f} B average, storage "
                   f"backend {f.get('storage')}, filled once in {extras.get('fill_s')} s and "
                   f"copied fresh for every run.")
    out.append("\nLoad average before each run: "
               + ", ".join(r["loadavg_before"].split()[0] for r in runs))
    return "\n".join(out)


# ----------------------------------------------------------------------------- main

def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_fill":
        fill_main(sys.argv[2:])
        return
    default_bench = os.path.join(os.path.dirname(ROOT), "shared", "bench")
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-dir", default=default_bench,
                    help="peer-bench scripts: benchlib.py, mem_sample.py (default: ../shared/bench "
                         "beside the repository)")
    ap.add_argument("--postfix-dir", default="/tmp/deliverybench/postfix",
                    help="our Postfix instance's directory (etc/, spool/, data/, maillog); kept "
                         "fixed because it is declared in /etc/postfix/main.cf")
    ap.add_argument("--workdir", help="scratch directory (default: a new one under /tmp)")
    ap.add_argument("--keep-workdir", action="store_true")
    ap.add_argument("--systems", default="ours,postfix")
    ap.add_argument("--ours-concurrency", default="5,20",
                    help="DELIVERY_DESTINATION_CONCURRENCY values to run ours at (default 5 = "
                         "ours' default, 20 = Postfix's default_destination_concurrency_limit)")
    ap.add_argument("--count", type=int, default=5000, help="messages per run")
    ap.add_argument("--rcpts-per-message", type=int, default=1, choices=[1, 50],
                    help="1: each message to one of the 50 addresses (round-robin); "
                         "50: each message to all 50")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--run-max-seconds", type=float, default=300,
                    help="bound on one run's delivery (and on loading Postfix)")
    ap.add_argument("--max-total-seconds", type=float, default=2400,
                    help="no new run starts after this many seconds")
    ap.add_argument("--server-env", action="append", default=[],
                    help="extra KEY=VALUE for our server (MAILGO_ prefix optional); repeatable")
    ap.add_argument("--quick", action="store_true", help="smoke test: 500 messages, 1 round")
    ap.add_argument("--markdown", help="also write the report to this file")
    args = ap.parse_args()
    if args.quick:
        args.count, args.rounds = 500, 1
    systems = [s for s in args.systems.split(",") if s]
    if not set(systems) <= {"ours", "postfix"}:
        ap.error("--systems: ours and/or postfix")
    conc = [int(c) for c in args.ours_concurrency.split(",") if c]
    if os.geteuid() != 0:
        ap.error("needs root (smtp-sink -u postfix, Postfix's master)")
    if not os.path.exists(os.path.join(args.bench_dir, "benchlib.py")):
        ap.error(f"--bench-dir {args.bench_dir}: benchlib.py not found")
    if not (shutil.which("smtp-sink") or os.path.exists("/usr/sbin/smtp-sink")):
        ap.error("smtp-sink not found: install Debian's postfix package (see --help)")

    t_start = time.monotonic()
    deadline = t_start + args.max_total_seconds
    workdir = args.workdir or tempfile.mkdtemp(prefix="delivery-")
    os.makedirs(os.path.join(workdir, "results"), exist_ok=True)
    log(f"workdir {workdir}; load average {loadavg()}; {os.cpu_count()} CPUs")
    sink = Sink(workdir, free_port(BETA_IP))
    ours = OurServer(workdir, sink, args) if "ours" in systems else None
    pfx = PostfixInstance(args, sink) if "postfix" in systems else None
    runs: list[dict[str, Any]] = []
    extras: dict[str, Any] = {}
    interrupted = False
    raw = os.path.join(workdir, "results", "runs.jsonl")
    try:
        sink.start()
        if ours:
            ours.start_dns()
            t0 = time.monotonic()
            ours.setup(args.count)
            extras["fill"], extras["fill_s"] = ours.fill_info, round(time.monotonic() - t0, 1)
        if pfx:
            pfx.setup()
        plan = [("ours", c) for c in conc] if ours else []
        if pfx:
            plan.append(("postfix", 20))
        for rnd in range(args.rounds):
            order = plan if rnd % 2 == 0 else list(reversed(plan))
            for system, c in order:
                if time.monotonic() > deadline:
                    log("--max-total-seconds reached: no more runs")
                    raise StopIteration
                la = loadavg()
                log(f"round {rnd + 1}: {system}" + (f" C={c}" if system == "ours" else "")
                    + f", {args.count} messages (load average {la})")
                try:
                    if system == "ours":
                        assert ours is not None
                        rec = ours.run(args.count, c)
                    else:
                        assert pfx is not None
                        rec = pfx.run(args.count)
                except (RuntimeError, subprocess.SubprocessError) as exc:
                    rec = {"system": system, "concurrency": c, "count": args.count,
                           "error": str(exc)}
                    log(f"  run failed: {exc}")
                rec["round"], rec["loadavg_before"] = rnd, la
                runs.append(rec)
                with open(raw, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                r = rate(rec)
                log(f"  delivered {rec.get('delivered')} in {rec.get('seconds')} s = "
                    f"{fmt(r, 1)} msgs/s; CPU {rec.get('cpu_s')} s; queue left "
                    f"{rec.get('queue_left')}")
    except StopIteration:
        pass
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted; reporting what was measured")
    finally:
        if ours:
            ours.stop_dns()
        if pfx:
            pfx.stop()
        sink.stop()
    publish_report("Outbound delivery benchmark", report(runs, args, extras), args, workdir, raw,
                   t_start, interrupted)


if __name__ == "__main__":
    main()
