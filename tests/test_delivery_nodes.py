"""Two mailgosend nodes share one PostgreSQL database and its queue (DESIGN.md §9): 200 queued
messages are claimed by both (FOR UPDATE SKIP LOCKED) and beta holds each exactly once."""

from __future__ import annotations

import os
import re
import secrets
from collections import Counter
from dataclasses import replace
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.store import queue as queue_store
from tests.support.db import fresh_postgres_database
from tests.support.dnsserver import TestDNSServer
from tests.support.mailserver import MailServer
from tests.support.net import free_ports
from tests.support.queueing import queue_raw
from tests.support.twoservers import BETA_IP, zone
from tests.test_delivery_e2e import message, wait_for

COUNT = 200
NODES = {"127.0.0.2": "node-a", "127.0.0.4": "node-b"}


class SharedQueueTests(unittest.TestCase):
    timeout = 180

    def test_two_nodes_share_the_queue_and_deliver_each_message_once(self) -> Any:
        return defer.Deferred.fromCoroutine(self._shared())

    async def _shared(self) -> None:
        base = os.path.abspath(self.mktemp())
        port = free_ports(1, BETA_IP)[0]
        dns = TestDNSServer(zone())
        dns.start()
        self.addCleanup(dns.stop)
        beta = MailServer(os.path.join(base, "beta"), dns=dns, hostname="mx.beta.test",
                          bind=BETA_IP, ports={"SMTP": port}, SPAM_CHECK_SPF="false",
                          SPAM_CHECK_DMARC="false")
        await beta.start()
        self.addCleanup(beta.stop)
        beta.add_domain("beta.test")
        beta.add_user("bob@beta.test")

        dsn = fresh_postgres_database(self)
        key = secrets.token_hex(32)
        nodes = []
        for address, name in NODES.items():
            node = MailServer(os.path.join(base, name), dns=dns, hostname="mx.alpha.test",
                              bind=address, DB_DRIVER="postgres", DB_DSN=dsn, ENCRYPTION_KEY=key,
                              DELIVERY_PORT=str(port), DELIVERY_BIND=address)
            await node.start()
            self.addCleanup(node.stop)
            nodes.append(node)
        first = nodes[0]
        first.add_domain("alpha.test")

        # Queue everything while both workers are paused, as the SMTP pipeline would.
        store = first.root.components["blob_store"]
        keyring = first.root.components["keyring"]
        for n in range(COUNT):
            queue_raw(first.engine, store, keyring, "alice@alpha.test", ["bob@beta.test"],
                      message("alice@alpha.test", "bob@beta.test", f"shared {n}"), first.now())
        for node in nodes:   # small claims, so both nodes get a share
            worker = node.root.components["delivery"]
            worker.settings = replace(worker.settings, paused=False, batch=10)
        for node in nodes:
            node.root.components["delivery"].wake()

        await wait_for(lambda: not run_sync(first.engine, queue_store.list_entries,
                                            write=False), timeout=120)
        stored = beta.stored("bob@beta.test")
        subjects = Counter(int(re.search(rb"Subject: shared (\d+)", m).group(1))  # type: ignore[union-attr]
                           for m in stored)
        self.assertEqual(set(subjects), set(range(COUNT)))
        self.assertEqual(max(subjects.values()), 1, "a message was delivered twice")
        senders = Counter(re.search(rb"from \S+ \(\[([\d.]+)\]\)", m).group(1).decode()  # type: ignore[union-attr]
                          for m in stored)
        self.assertEqual(set(senders), set(NODES), senders)
        print(f"\n  messages delivered per node: {dict(senders)}")
