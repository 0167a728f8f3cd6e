#!/usr/bin/env python3
"""IMAP SEARCH BODY for a rare word in a 10,000-message mailbox: ours (the blind substring
index of mail/substring.py, then the scan of the candidates) beside Dovecot without FTS, in
the same run.  Figures only, no pass/fail (the issue's target: under 100 ms).

Both mailboxes get the same --messages messages, byte for byte: benchmarks/jmap.py's
``message(idx)`` (../shared/bench/benchlib.make_message 4 KB text, a third replies, the rare
word "quixotically" in 1 %).  Ours: our server under twistd set up by benchmarks/
imap_workload.py's OurImapServer (a fresh SQLite database, the CLI's domain and user), filled
by pipelined LITERAL+ APPENDs (each message indexed as it is stored).  Dovecot: benchmarks/
jmap.py's Dovecot (dovecot-imapd configured by ../shared/bench/setup_peer_stack.sh, alone on
a free port), the same messages written into its Maildir, indexed by a first SELECT.

Over one imaplib session per system, each --repeats times after one warm-up, p50/p95 in ms:

  body-rare       UID SEARCH BODY quixotically            (100 hits in 10,000)
  body-mid-word   UID SEARCH BODY xoticall                 (a substring inside the word:
                                                            the same 100 hits)
  text-rare       UID SEARCH TEXT quixotically
  body-absent     UID SEARCH BODY zqxvjw                   (no hit)
  body-common     UID SEARCH BODY the                      (most messages: the index cannot
                                                            help, every candidate is read)

  python3 benchmarks/imap_search.py                      # 10,000, ours and Dovecot
  python3 benchmarks/imap_search.py --messages 2000 --systems ours --repeats 10
"""

from __future__ import annotations

import argparse
import imaplib
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import imap_workload  # noqa: E402
import jmap as jmap_bench  # noqa: E402

SEARCHES = [("body-rare", "BODY", jmap_bench.RARE), ("body-mid-word", "BODY", "xoticall"),
            ("text-rare", "TEXT", jmap_bench.RARE), ("body-absent", "BODY", "zqxvjw"),
            ("body-common", "BODY", "the")]


def fill_ours(port: int, n: int, window: int = 16) -> float:
    """Pipelined LITERAL+ APPENDs of jmap.message(0..n-1); the seconds it took."""
    client = imap_workload.RawImap(port, imap_workload.OUR_PASSWORD, timeout=600)
    started, pending, idx = time.monotonic(), [], 0
    while idx < n or pending:
        while idx < n and len(pending) < window:
            raw, seen = jmap_bench.message(idx)
            client.n += 1
            tag = b"F%d" % client.n
            flags = b" (\\Seen)" if seen else b""
            client.sock.sendall(tag + b" APPEND INBOX" + flags + b" {%d+}\r\n" % len(raw)
                                + raw + b"\r\n")
            pending.append(tag)
            idx += 1
        client.read_until(pending.pop(0))
        if idx % 2000 == 0 and not pending:
            jmap_bench.log(f"ours: {idx} appended")
    client.close()
    return time.monotonic() - started


def measure(imap: imaplib.IMAP4, repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, key, needle in SEARCHES:
        samples, hits = [], 0
        for i in range(repeats + 1):
            started = time.perf_counter()
            typ, data = imap.uid("SEARCH", key, needle)
            elapsed = time.perf_counter() - started
            if typ != "OK":
                raise RuntimeError(f"{label}: {typ} {data!r}")
            hits = len(data[0].split())
            if i:
                samples.append(elapsed)
        results[label] = dict(jmap_bench.percentiles(samples), hits=hits)
    return results


def run_ours(workdir: str, n: int, repeats: int) -> dict[str, Any]:
    args = argparse.Namespace(nodelay_experiment=False, server_env=[])
    server = imap_workload.OurImapServer(workdir, jmap_bench.free_port(), args)
    server.setup()
    server.start()
    try:
        seconds = fill_ours(server.port, n)
        jmap_bench.log(f"ours: filled {n} in {seconds:.0f} s")
        imap = imaplib.IMAP4("127.0.0.1", server.port)
        imap.login(imap_workload.USER, imap_workload.OUR_PASSWORD)
        imap.select("INBOX")
        results = measure(imap, repeats)
        imap.logout()
        return results
    finally:
        server.stop()


def run_dovecot(workdir: str, n: int, repeats: int) -> dict[str, Any]:
    dovecot = jmap_bench.Dovecot(workdir)
    dovecot.start()
    try:
        folder = f".s{n}"
        dovecot.fill(n, folder)
        for attempt in range(20):  # its auth process may still be starting
            imap = imaplib.IMAP4("127.0.0.1", dovecot.port)
            try:
                imap.login(jmap_bench.USER, jmap_bench.PASSWORD)
                break
            except imaplib.IMAP4.error:
                imap.shutdown()
                if attempt == 19:
                    raise
                time.sleep(0.5)
        typ, _ = imap.select(f"s{n}")  # builds Dovecot's index, not timed
        if typ != "OK":  # folder names under the Maildir++ layout
            imap.create(f"s{n}")
            imap.select(f"s{n}")
        results = measure(imap, repeats)
        imap.logout()
        return results
    finally:
        dovecot.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--systems", default="ours,dovecot")
    parser.add_argument("--workdir", help="scratch directory (default: a new one, removed)")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="imap-search-bench-")
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)  # Dovecot's auth process (another user) reads its passwd file here
    systems: dict[str, Callable[[str, int, int], dict[str, Any]]] = {
        "ours": run_ours, "dovecot": run_dovecot}
    found: dict[str, dict[str, Any]] = {}
    try:
        for name in args.systems.split(","):
            if name == "dovecot" and not os.path.exists("/usr/sbin/dovecot"):
                jmap_bench.log("dovecot is not installed: skipped")
                continue
            found[name] = systems[name](workdir, args.messages, args.repeats)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"UID SEARCH on {args.messages} messages, {args.repeats} repeats, ms")
    print(f"{'search':<16}" + "".join(f"{n + ' p50':>14}{n + ' p95':>14}{n + ' hits':>12}"
                                      for n in found))
    for label, _, _ in SEARCHES:
        print(f"{label:<16}" + "".join(
            f"{found[n][label]['p50']:>14.1f}{found[n][label]['p95']:>14.1f}"
            f"{found[n][label]['hits']:>12}" for n in found))


if __name__ == "__main__":
    main()
