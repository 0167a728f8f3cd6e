"""Kill the sending server during a burst of 500 queued messages, restart it, and count what
beta holds.

alpha runs as a real ``twistd`` process (so it can be killed); beta is a whole server in the
test process on 127.0.0.3, found through the test DNS.  The 500 messages are queued in alpha's
database before it starts, exactly as the SMTP pipeline queues them.

- SIGTERM (an operator's restart): alpha finishes what is in flight and records it, so beta
  holds every message exactly once.
- SIGKILL (a crash): no shutdown code runs.  A message whose final dot beta acknowledged an
  instant before the kill, but whose outcome alpha had not committed yet, is sent again after
  the restart: RFC 5321 §6.1 accepts a duplicate over a loss, and no MTA can tell the two
  apart.  The test checks that every message arrives, that duplicates are bounded by the
  sessions in flight, and that alpha never re-sends a message it had recorded as delivered.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from twisted.internet import defer, threads
from twisted.trial import unittest

from mailgosend.config import load
from mailgosend.crypto import KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import delivery_log, queue
from mailgosend.service import open_database
from mailgosend.store import accounts, mailboxes, messages
from mailgosend.store.blobs import make_blob_store
from tests.support.dnsserver import TestDNSServer
from tests.support.mailserver import MailServer
from tests.support.net import free_ports
from tests.support.process import ServerProcess, quiet_env
from tests.support.queueing import queue_raw
from tests.support.twoservers import ALPHA_IP, BETA_IP, zone

COUNT = 500
CONCURRENCY = 5


def burst_message(n: int) -> bytes:
    return (f"From: <alice@alpha.test>\r\nTo: <bob@beta.test>\r\nSubject: burst {n}\r\n"
            f"Message-ID: <burst-{n}@alpha.test>\r\n\r\n" + f"line of message {n}\r\n" * 40
            ).encode()


class CrashTests(unittest.TestCase):
    timeout = 300

    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.dir, "alpha"))
        self.port = free_ports(1, BETA_IP, also=(ALPHA_IP,))[0]
        self.dns = TestDNSServer(zone())
        self.dns.start()
        self.addCleanup(self.dns.stop)
        self.beta = MailServer(os.path.join(self.dir, "beta"), dns=self.dns,
                               hostname="mx.beta.test", bind=BETA_IP, ports={"SMTP": self.port},
                               SPAM_CHECK_SPF="false", SPAM_CHECK_DMARC="false")
        yield self.beta.start()
        self.addCleanup(self.beta.stop)
        self.beta.add_domain("beta.test")
        self.bob = self.beta.add_user("bob@beta.test")
        self.env = {**quiet_env(), "MAILGO_PROFILE": "local", "MAILGO_TLS_MODE": "off",
                    "MAILGO_HOSTNAME": "mx.alpha.test", "MAILGO_DNS_PRIMARY": self.dns.nameserver,
                    "MAILGO_DELIVERY_PORT": str(self.port), "MAILGO_DELIVERY_BIND": ALPHA_IP,
                    "MAILGO_DELIVERY_DESTINATION_CONCURRENCY": str(CONCURRENCY),
                    "MAILGO_SHUTDOWN_GRACE_SECONDS": "20"}
        self.config = load(os.path.join(self.dir, "alpha", "app_config.conf"), profile="local",
                           environ=self.env)
        self.keyring = KeyRing(self.config["ENCRYPTION_KEY"])
        self.engine = open_database(self.config, self.keyring)
        self.addCleanup(self.engine.dispose)
        yield threads.deferToThread(self.fill_queue)

    def fill_queue(self) -> None:
        store = make_blob_store(self.config["STORAGE_BACKEND"], self.config["STORAGE_PATH"],
                                os.path.join(self.config["DATA_DIR"], "spool"))
        now = datetime.now(timezone.utc)
        run_sync(self.engine, accounts.add_domain, "alpha.test", now, write=True)
        for n in range(COUNT):
            queue_raw(self.engine, store, self.keyring, "alice@alpha.test", ["bob@beta.test"],
                      burst_message(n), now)

    def alpha(self) -> ServerProcess:
        proc = ServerProcess.twistd(os.path.join(self.dir, "alpha"), "--config",
                                    "app_config.conf", env=self.env)
        self.addCleanup(proc.stop, signal.SIGKILL)
        return proc.start()

    def beta_count(self) -> int:
        box = run_sync(self.beta.engine, mailboxes.get_by_role, self.bob.id, "inbox",
                       write=False)
        if box is None:
            return 0
        return run_sync(self.beta.engine, messages.mailbox_counts, box.id, write=False).messages

    def queued(self) -> int:
        return int(run_sync(self.engine, lambda c: c.execute(
            select(func.count()).select_from(queue)).scalar(), write=False))

    def beta_subjects(self) -> Counter[int]:
        found: Counter[int] = Counter()
        for data in self.beta.stored("bob@beta.test"):
            subject = data.split(b"Subject: burst ", 1)[1].split(b"\r\n", 1)[0]
            self.assertTrue(data.endswith(burst_message(int(subject)).split(b"\r\n\r\n", 1)[1]))
            found[int(subject)] += 1
        return found

    def delivered_log(self) -> Counter[int]:
        """How many times alpha recorded each queue id as delivered."""
        rows = run_sync(self.engine, lambda c: c.execute(
            select(delivery_log.c.queue_id).where(delivery_log.c.status == "delivered")
        ).scalars().all(), write=False)
        return Counter(int(r) for r in rows)

    def wait(self, condition: Any, limit: float = 180.0) -> None:
        deadline = time.monotonic() + limit
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.05)

    @defer.inlineCallbacks
    def burst_then_kill(self, sig: int):  # type: ignore[no-untyped-def]
        proc = self.alpha()
        yield threads.deferToThread(proc.wait_for, r"mailgosend \S+ started")
        yield threads.deferToThread(self.wait, lambda: self.beta_count() >= COUNT // 5)
        yield threads.deferToThread(proc.stop, sig)
        at_kill = yield threads.deferToThread(self.beta_count)
        self.assertLess(at_kill, COUNT, "the burst ended before the kill; nothing was tested")
        restarted = self.alpha()
        yield threads.deferToThread(restarted.wait_for, r"mailgosend \S+ started")
        yield threads.deferToThread(self.wait, lambda: self.queued() == 0)
        yield threads.deferToThread(restarted.stop)
        subjects = yield threads.deferToThread(self.beta_subjects)
        self.assertEqual(set(subjects), set(range(COUNT)), "messages lost")
        return subjects

    @defer.inlineCallbacks
    def test_sigterm_mid_burst_delivers_each_message_exactly_once(self):  # type: ignore[no-untyped-def]
        subjects = yield self.burst_then_kill(signal.SIGTERM)
        self.assertEqual({n for n, c in subjects.items() if c > 1}, set())
        self.assertEqual(set(self.delivered_log().values()), {1})

    @defer.inlineCallbacks
    def test_sigkill_mid_burst_loses_nothing_and_resends_only_unrecorded(self):  # type: ignore[no-untyped-def]
        subjects = yield self.burst_then_kill(signal.SIGKILL)
        duplicates = {n for n, c in subjects.items() if c > 1}
        self.assertLessEqual(len(duplicates), CONCURRENCY, duplicates)
        self.assertTrue(all(c <= 2 for c in subjects.values()))
        # Alpha recorded every message as delivered once: a duplicate is only ever a message
        # whose first delivery was acknowledged but not yet recorded at the kill.
        self.assertEqual(set(self.delivered_log().values()), {1})
        self.assertEqual(len(self.delivered_log()), COUNT)
