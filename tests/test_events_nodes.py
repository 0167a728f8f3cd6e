# -*- test-case-name: tests.test_events_nodes -*-
"""Two real ``twistd`` nodes on one PostgreSQL database (DESIGN.md §9): the change feed
crosses nodes by LISTEN/NOTIFY (pgnotify.py).  An IMAP session idling on node A gets EXISTS
for a message delivered through node B's SMTP listener, and the untagged FETCH FLAGS for a
flag change made through node B's IMAP listener.

The waits are bounded well below IDLE's own database poll (30 s), so what arrives came through
the feed; nothing is asserted about how fast."""

from __future__ import annotations

import imaplib
import os
import secrets
import signal
import smtplib
import socket
import time
from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer, threads
from twisted.trial import unittest

from mailgosend import passwords
from mailgosend.db.engine import create_db_engine
from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from tests.support.db import fresh_postgres_database
from tests.support.dnsserver import TestDNSServer
from tests.support.net import free_ports
from tests.support.process import ServerProcess, quiet_env

ALICE = "alice@example.test"
PASSWORD = "pw-two-nodes-SECRET-9"
READY = r"mailgosend \S+ started"
WAIT = 15.0  # seconds: a bound, half of IDLE's poll interval


def read_until(client: imaplib.IMAP4, wanted: bytes, limit: float = WAIT) -> list[bytes]:
    """Thread side: untagged lines of an idling imaplib client until one contains
    ``wanted``; AssertionError with what came if ``limit`` seconds pass first."""
    lines: list[bytes] = []
    deadline = time.monotonic() + limit
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            client.sock.settimeout(remaining)
            line = client.readline()
            lines.append(line)
            if wanted in line:
                return lines
    except (socket.timeout, TimeoutError):
        pass
    finally:
        client.sock.settimeout(20)
    raise AssertionError(f"no {wanted!r} within the bound; got {lines!r}")


class TwoNodeFeedTests(unittest.TestCase):
    timeout = 180

    def setUp(self) -> Any:
        self.dir = os.path.abspath(self.mktemp())
        self.dns = TestDNSServer({})
        self.dns.start()
        self.addCleanup(self.dns.stop)
        self.dsn = fresh_postgres_database(self)
        self.key = secrets.token_hex(32)

    def node(self, name: str) -> tuple[ServerProcess, dict[str, int]]:
        directory = os.path.join(self.dir, name)
        os.makedirs(directory)
        ports = dict(zip(("SMTP", "IMAP"), free_ports(2)))
        env = {**quiet_env(**ports), "MAILGO_PROFILE": "local", "MAILGO_TLS_MODE": "off",
               "MAILGO_HOSTNAME": f"{name}.example.test", "MAILGO_DB_DRIVER": "postgres",
               "MAILGO_DB_DSN": self.dsn, "MAILGO_ENCRYPTION_KEY": self.key,
               "MAILGO_DNS_PRIMARY": self.dns.nameserver, "MAILGO_PLAINTEXT_AUTH_LOOPBACK": "true",
               "MAILGO_SPAM_CHECK_SPF": "false", "MAILGO_SPAM_CHECK_DMARC": "false"}
        proc = ServerProcess.twistd(directory, "--config", "app_config.conf", env=env)
        self.addCleanup(proc.stop, signal.SIGKILL)
        return proc.start(), ports

    def add_user(self) -> None:
        engine = create_db_engine("postgres", dsn=self.dsn)
        try:
            now = datetime.now(timezone.utc)
            run_sync(engine, accounts.add_domain, "example.test", now, write=True)
            run_sync(engine, accounts.add_user, ALICE, passwords.hash_password(PASSWORD, 4),
                     now, write=True)
        finally:
            engine.dispose()

    @defer.inlineCallbacks
    def test_idle_on_one_node_sees_delivery_and_flags_through_the_other(self) -> Any:
        a, ports_a = self.node("a")
        yield threads.deferToThread(a.wait_for, READY)  # A has migrated the database
        b, ports_b = self.node("b")
        yield threads.deferToThread(b.wait_for, READY)
        yield threads.deferToThread(self.add_user)
        yield threads.deferToThread(self.run_scenario, ports_a, ports_b)
        for proc in (a, b):  # the relay's threads end with a graceful stop
            code = yield threads.deferToThread(proc.stop)
            self.assertIn(code, (0, -signal.SIGTERM), proc.text())
            self.assertIn("mailgosend stopped", proc.text())
            self.assertNotIn("change feed:", proc.text())
            self.assertNotIn("Traceback", proc.text())

    def run_scenario(self, ports_a: dict[str, int], ports_b: dict[str, int]) -> None:
        idle = imaplib.IMAP4("127.0.0.1", ports_a["IMAP"], timeout=20)
        try:
            idle.login(ALICE, PASSWORD)
            idle.select("INBOX")
            tag = idle._new_tag()  # type: ignore[attr-defined]
            idle.send(tag + b" IDLE\r\n")
            self.assertEqual(idle.readline(), b"+ idling\r\n")

            with smtplib.SMTP("127.0.0.1", ports_b["SMTP"], timeout=20) as smtp:
                smtp.sendmail("someone@elsewhere.test", [ALICE],
                              b"From: someone@elsewhere.test\r\nTo: " + ALICE.encode()
                              + b"\r\nSubject: through b\r\n\r\nHello from node b.\r\n")
            self.assertIn(b"* 1 EXISTS\r\n", read_until(idle, b"EXISTS"))

            other = imaplib.IMAP4("127.0.0.1", ports_b["IMAP"], timeout=20)
            try:
                other.login(ALICE, PASSWORD)
                other.select("INBOX")
                other.store("1", "+FLAGS.SILENT", "(\\Flagged)")
            finally:
                other.logout()
            lines = read_until(idle, b"\\Flagged")
            self.assertTrue([line for line in lines
                             if line.startswith(b"* 1 FETCH (FLAGS (") and b"\\Flagged" in line],
                            lines)
            idle.send(b"DONE\r\n")
            self.assertIn(tag + b" OK", b"".join(read_until(idle, tag + b" OK")))
        finally:
            idle.shutdown()
