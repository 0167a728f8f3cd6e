#!/usr/bin/env python3
"""IDLE notification cost: N IMAP sessions idle on one INBOX while M messages arrive by SMTP.

Figures only, no pass/fail.  One process: a whole server (tests/support/mailserver.py: the
real makeService on SQLite, SMTP on a free loopback port) plus an IMAP listener built on the
server's own components, N raw-socket sessions (LOGIN, SELECT INBOX, IDLE) read by one
selector thread, and smtplib sending the messages one at a time.  For each message: the time
from the start of the SMTP transaction to the moment every session has read "* k EXISTS"
(the copy is announced after its commit, before the 250, so this is delivery plus
notification).  Also counted: the
SELECTs on the messages table the server ran meanwhile (what idling sessions read back), and
the process CPU time per message (server and clients share the process).

    python3 benchmarks/imap_idle_feed.py --sessions 50 --messages 40
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import smtplib
import socket
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import event  # noqa: E402
from twisted.internet import reactor, threads  # noqa: E402
from twisted.internet.defer import ensureDeferred  # noqa: E402
from twisted.internet.endpoints import TCP4ServerEndpoint  # noqa: E402

from tests.support.mailserver import PASSWORD, MailServer  # noqa: E402

USER = "idle@example.com"
EXISTS = re.compile(rb"^\* (\d+) EXISTS\r$", re.M)


class Sessions:
    """N idling sessions; ``seen[i]`` is the highest EXISTS session i has read."""

    def __init__(self, port: int, count: int) -> None:
        self.socks = []
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            f = s.makefile("rb")
            f.readline()
            s.sendall(f'a LOGIN "{USER}" "{PASSWORD}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
            while not f.readline().startswith(b"+ "):
                pass
            s.setblocking(False)
            self.socks.append((s, f))
        self.seen = [0] * count
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        sel = selectors.DefaultSelector()
        buffers = {}
        for i, (s, _) in enumerate(self.socks):
            sel.register(s, selectors.EVENT_READ, i)
            buffers[i] = b""
        while not self.stop:
            for key, _ in sel.select(0.2):
                i = key.data
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                buffers[i] += data
                found = EXISTS.findall(buffers[i])
                if found:
                    with self.lock:
                        self.seen[i] = max(self.seen[i], max(int(n) for n in found))
                    buffers[i] = buffers[i][buffers[i].rfind(b"\n") + 1:]

    def all_at(self, n: int) -> bool:
        with self.lock:
            return min(self.seen) >= n

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        for s, _ in self.socks:
            s.close()


def run(args: argparse.Namespace, server: MailServer, imap_port: int) -> dict[str, Any]:
    sessions = Sessions(imap_port, args.sessions)
    time.sleep(1.0)  # every IDLE's first sync done
    reads: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM messages" in statement:
            reads.append(statement)

    latencies = []
    cpu0 = time.process_time()
    event.listen(server.engine, "before_cursor_execute", record)
    try:
        with smtplib.SMTP("127.0.0.1", server.ports["SMTP"], timeout=30) as smtp:
            for n in range(1, args.messages + 1):
                sent = time.perf_counter()
                smtp.sendmail("someone@example.org", [USER],
                              f"From: someone@example.org\r\nTo: {USER}\r\nSubject: m{n}\r\n\r\n"
                              f"body {n}\r\n".encode())
                deadline = sent + 30
                while not sessions.all_at(n):
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"message {n}: not every session saw EXISTS")
                    time.sleep(0.0005)
                latencies.append(time.perf_counter() - sent)
    finally:
        event.remove(server.engine, "before_cursor_execute", record)
        sessions.close()
    cpu = time.process_time() - cpu0
    return {"median_ms": statistics.median(latencies) * 1000,
            "p90_ms": sorted(latencies)[int(len(latencies) * 0.9) - 1] * 1000,
            "message_reads": len(reads), "cpu_ms_per_message": cpu / args.messages * 1000}


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory:
        server = MailServer(directory)
        await server.start()
        try:
            server.add_domain("example.com")
            server.add_user(USER)
            factory = server.imap_factory()
            port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
            try:
                result = await threads.deferToThread(run, args, server,
                                                     port.getHost().port)
            finally:
                await port.stopListening()
                for session in list(factory.open_connections()):
                    session.transport.abortConnection()
        finally:
            await server.stop()
    print(f"sessions={args.sessions} messages={args.messages}: "
          f"notify median {result['median_ms']:.1f} ms, p90 {result['p90_ms']:.1f} ms, "
          f"SELECTs on messages {result['message_reads']}, "
          f"process CPU {result['cpu_ms_per_message']:.1f} ms/message")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--messages", type=int, default=40)
    options = parser.parse_args()

    def go() -> Any:
        d = ensureDeferred(main(options))
        d.addErrback(lambda f: (f.printTraceback(), None))
        d.addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]

    reactor.callWhenRunning(go)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
