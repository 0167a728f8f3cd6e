#!/usr/bin/env python3
"""SMTP protocol-layer throughput: N messages through a real listener with a discard backend.

The server runs in its own process (so its CPU time can be read from /proc), clients are
smtplib in separate processes, one persistent connection each (``--reconnect`` for a new
connection per message). Prints msgs/s, MB/s and server CPU per message; figures only, no
pass/fail. Compare with the stock-Twisted and aiosmtpd numbers in the library notes §1.

    python benchmarks/smtp_protocol_bench.py --count 2000 --concurrency 4 --sizes 4k,100k
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import smtplib
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = {"4k": 4 * 1024, "100k": 100 * 1024}


def serve() -> None:
    """Child process: an inbound listener on 127.0.0.1, port printed on stdout."""
    sys.path.insert(0, ROOT)
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred, succeed
    from zope.interface import implementer

    from mailgosend.smtp.factory import SMTPLimits, SMTPServerFactory
    from mailgosend.smtp.interfaces import IMessageSink, ISMTPBackend
    from mailgosend.smtp.replies import SMTPReply
    from mailgosend.smtp.session import SMTPSession

    accepted = SMTPReply(250, "2.0.0", "Ok: discarded")

    @implementer(IMessageSink)
    class DiscardSink:
        def write(self, chunk: bytes) -> None:
            pass

        def finish(self) -> Deferred[SMTPReply]:
            return succeed(accepted)

        def abort(self) -> None:
            pass

    @implementer(ISMTPBackend)
    class DiscardBackend:
        def connection_made(self, session: SMTPSession) -> Deferred[None]:
            return succeed(None)

        def authenticate(self, session: SMTPSession, username: str, password: str) -> Deferred[str]:
            return succeed(username)

        def validate_sender(self, session: SMTPSession, address: str, params: object) -> Deferred[None]:
            return succeed(None)

        def validate_recipient(self, session: SMTPSession, address: str, params: object) -> Deferred[None]:
            return succeed(None)

        def begin_message(self, session: SMTPSession) -> DiscardSink:
            return DiscardSink()

    limits = SMTPLimits(
        max_message_size=64 * 1024 * 1024,
        max_commands=10**9,
        max_connections_per_ip=10_000,
        max_connections=10_000,
    )
    factory = SMTPServerFactory(DiscardBackend(), "bench.example", "inbound", None, reactor, limits)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1", backlog=512)
    print(port.getHost().port, flush=True)  # type: ignore[attr-defined]
    reactor.run()


def make_message(size: int) -> bytes:
    head = b"From: bench@client.example\r\nTo: sink@bench.example\r\nSubject: bench\r\n\r\n"
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopq\r\n"
    body = (line * (size // len(line) + 1))[: size - len(head) - 2]
    return head + body.rstrip(b"\r\n") + b"\r\n"


def client(args: tuple[int, int, bytes, bool]) -> int:
    port, count, message, reconnect = args
    sent = 0
    smtp = None
    try:
        for _ in range(count):
            if smtp is None:
                smtp = smtplib.SMTP("127.0.0.1", port, timeout=60)
            smtp.sendmail("bench@client.example", ["sink@bench.example"], message)
            sent += 1
            if reconnect:
                smtp.quit()
                smtp = None
    finally:
        if smtp is not None:
            smtp.quit()
    return sent


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="messages per size")
    parser.add_argument("--concurrency", type=int, default=4, help="client processes")
    parser.add_argument("--sizes", default="4k,100k", help="comma list of 4k, 100k")
    parser.add_argument("--reconnect", action="store_true", help="new connection per message")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve()
        return
    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        per_client = max(1, options.count // options.concurrency)
        total = per_client * options.concurrency
        mode = "new connection per message" if options.reconnect else "persistent connections"
        print(f"{total} messages per size, {options.concurrency} clients, {mode}")
        with multiprocessing.Pool(options.concurrency) as pool:
            for name in options.sizes.split(","):
                message = make_message(SIZES[name])
                pool.map(client, [(port, 5, message, False)] * options.concurrency)  # warm-up
                cpu_before = cpu_seconds(server.pid)
                started = time.perf_counter()
                sent = sum(pool.map(client, [(port, per_client, message, options.reconnect)] * options.concurrency))
                elapsed = time.perf_counter() - started
                cpu = cpu_seconds(server.pid) - cpu_before
                print(
                    f"{name:>5}: {sent / elapsed:8.0f} msgs/s  {sent * len(message) / elapsed / 1e6:7.1f} MB/s  "
                    f"server CPU {cpu / sent * 1000:.3f} ms/msg  ({sent} msgs in {elapsed:.2f} s)"
                )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
