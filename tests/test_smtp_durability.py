"""A 250 is a promise (DESIGN.md §3): SIGKILL the real server process while
several clients send, restart it, and check what is stored.

Every message that got a 250 must be stored intact and decrypt.  A message
whose 250 never arrived may only be stored if it was in flight at the kill:
committed an instant before the process died, reply lost.  That case cannot
be told apart by any server (RFC 5321 §6.1: the client retries, a duplicate
is the accepted cost); the test bounds it to one per client.
"""

from __future__ import annotations

import os
import signal
import smtplib
import threading
import time
from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer, threads
from twisted.trial import unittest

from mailgosend import passwords
from mailgosend.config import load
from mailgosend.crypto import KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.service import open_database
from mailgosend.store import accounts, mailboxes, messages
from mailgosend.store.blobs import make_blob_store
from tests.support.net import free_port
from tests.support.process import ServerProcess, quiet_env

CLIENTS = 4
KILL_AFTER = 40       # acknowledged messages before the kill
MAX_MESSAGES = 2000   # a bound, in case the server is very slow


def body(client: int, n: int) -> bytes:
    return (f"From: sender{client}@remote.example\r\nTo: user{client}@example.com\r\n"
            f"Subject: durability {client}-{n}\r\nMessage-ID: <{client}-{n}@remote.example>\r\n"
            f"\r\n" + f"line {n} of client {client}\r\n" * 50).encode()


class DurabilityTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.port = free_port()
        self.env = {**quiet_env(SMTP=self.port), "MAILGO_PROFILE": "local",
                    "MAILGO_TLS_MODE": "off", "MAILGO_SPAM_CHECK_SPF": "false",
                    "MAILGO_SPAM_CHECK_DKIM": "false", "MAILGO_SPAM_CHECK_DMARC": "false"}
        self.config = load(os.path.join(self.dir, "app_config.conf"), profile="local",
                           environ=self.env)
        self.keyring = KeyRing(self.config["ENCRYPTION_KEY"])
        engine = open_database(self.config, self.keyring)
        now = datetime.now(timezone.utc)
        run_sync(engine, accounts.add_domain, "example.com", now, write=True)
        for i in range(CLIENTS):
            run_sync(engine, accounts.add_user, f"user{i}@example.com",
                     passwords.hash_password("pw-SECRET-durable-1", 4), now, write=True)
        engine.dispose()

    def server(self) -> ServerProcess:
        proc = ServerProcess.twistd(self.dir, "--config", "app_config.conf", env=self.env)
        self.addCleanup(proc.stop, signal.SIGKILL)
        return proc.start()

    def blast(self, acked: set[tuple[int, int]], in_flight: dict[int, int],
              stop: threading.Event) -> None:
        def client(i: int) -> None:
            n = 0
            conn = None
            while not stop.is_set() and n < MAX_MESSAGES:
                try:
                    if conn is None:
                        conn = smtplib.SMTP("127.0.0.1", self.port, timeout=20)
                    in_flight[i] = n
                    conn.sendmail(f"sender{i}@remote.example", [f"user{i}@example.com"],
                                  body(i, n))
                    acked.add((i, n))
                    in_flight.pop(i, None)
                    n += 1
                except (OSError, smtplib.SMTPException):
                    return  # the server died under us
        workers = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)

    def stored(self) -> dict[tuple[int, int], bytes]:
        engine = open_database(self.config, self.keyring)
        store = make_blob_store(self.config["STORAGE_BACKEND"], self.config["STORAGE_PATH"])
        found: dict[tuple[int, int], bytes] = {}
        try:
            for i in range(CLIENTS):
                user = run_sync(engine, accounts.get_user, f"user{i}@example.com", write=False)
                box = run_sync(engine, mailboxes.get_by_role, user.id, "inbox", write=False)
                if box is None:
                    continue
                for row in run_sync(engine, messages.list_messages, box.id, write=False):
                    with store.open_blob(engine, self.keyring, user.uuid, row.blob_id) as r:
                        data = b"".join(r)
                    subject = data.split(b"Subject: durability ", 1)[1].split(b"\r\n", 1)[0]
                    client, n = (int(x) for x in subject.decode().split("-"))
                    self.assertNotIn((client, n), found, "stored twice")
                    found[(client, n)] = data
        finally:
            engine.dispose()
        return found

    @defer.inlineCallbacks
    def test_every_acknowledged_message_survives_sigkill(self):  # type: ignore[no-untyped-def]
        proc = self.server()
        yield threads.deferToThread(proc.wait_for, r"mailgosend \S+ started")
        acked: set[tuple[int, int]] = set()
        in_flight: dict[int, int] = {}
        stop = threading.Event()
        sender = threads.deferToThread(self.blast, acked, in_flight, stop)

        def kill_when_enough() -> dict[int, int]:
            deadline = time.monotonic() + 120
            while len(acked) < KILL_AFTER and time.monotonic() < deadline:
                time.sleep(0.01)
            assert proc.proc is not None
            snapshot = dict(in_flight)
            proc.proc.kill()                     # SIGKILL: no shutdown code runs
            proc.proc.wait(30)
            stop.set()
            return snapshot
        flying = yield threads.deferToThread(kill_when_enough)
        yield sender
        self.assertGreaterEqual(len(acked), KILL_AFTER)

        restarted = self.server()                # recovery after the crash
        yield threads.deferToThread(restarted.wait_for, r"mailgosend \S+ started")
        yield threads.deferToThread(restarted.stop)

        stored = self.stored()
        missing = acked - set(stored)
        self.assertEqual(missing, set(), "acknowledged messages lost")
        for key, data in stored.items():
            self.assertTrue(data.endswith(body(*key)), f"message {key} altered")
        unacknowledged = set(stored) - acked
        allowed = {(i, n) for i, n in flying.items()}
        allowed |= {(i, n + 1) for i, n in flying.items()}  # in_flight set just before send
        self.assertTrue(unacknowledged <= allowed,
                        f"stored without a 250 and not in flight: {unacknowledged - allowed}")
