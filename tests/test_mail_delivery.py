"""The one local-delivery path (mail/delivery.py) called directly: refusal modes, variant
prefixes, the queue's copy and the new-mail announcement.  (Per-recipient refusals and
all-or-nothing are in test_store_messages and test_store_multi, through the same path.)"""

from __future__ import annotations

import io
import os
from datetime import datetime, timezone
from typing import Any

from twisted.internet import reactor
from twisted.trial import unittest

from mailgosend.crypto import KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.events import Events
from mailgosend.mail.delivery import Envelope, LocalDelivery, Placement
from mailgosend.store import accounts, queue
from mailgosend.store import messages as ms
from mailgosend.store.blobs import DatabaseBlobs
from mailgosend.workers import WorkerPool
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
KEYRING = KeyRing(bytes(range(32)))
RAW = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"


class DeliveryTestsMixin(DatabaseTestBase):
    def setUp(self) -> Any:
        d = super().setUp()
        run_sync(self.engine, accounts.add_domain, "example.com", NOW, write=True)
        self.alice = run_sync(self.engine, accounts.add_user, "alice@example.com", "h", NOW,
                              write=True)
        self.full = run_sync(self.engine, accounts.add_user, "full@example.com", "h", NOW,
                             quota_bytes=1, write=True)
        self.bob = run_sync(self.engine, accounts.add_user, "bob@example.com", "h", NOW,
                            write=True)
        self.spool = os.path.abspath(self.mktemp())
        self.store = DatabaseBlobs(self.spool)
        workers = WorkerPool(reactor, size=2)
        workers.startService()
        self.addCleanup(workers.stopService)
        self.events = Events()
        self.local = LocalDelivery(runner=self.runner, keyring=KEYRING, blob_store=self.store,
                                   workers=workers, events=self.events)
        return d

    def rows(self, user: Any, role: str = "inbox") -> list[ms.MessageRow]:
        from mailgosend.store.mailboxes import get_by_role
        box = run_sync(self.engine, get_by_role, user.id, role, write=False)
        return [] if box is None else run_sync(self.engine, ms.list_messages, box.id,
                                               write=False)

    async def test_skip_leaves_out_a_full_mailbox_and_announces_the_rest(self) -> None:
        heard: list[Any] = []
        self.events.subscribe(self.alice.id, heard.append)
        results = await self.local.deliver(
            RAW, [Placement(self.alice, "inbox"), Placement(self.full, "inbox")], NOW,
            refused="skip", about="report")
        self.assertIsInstance(results[0], ms.Delivered)
        self.assertIsNone(results[1])
        self.assertEqual((len(self.rows(self.alice)), self.rows(self.full)), (1, []))
        self.assertEqual(len(heard), 1)
        self.assertEqual(os.listdir(self.spool), [])  # the unused copy is gone too

    async def test_raise_fails_the_whole_transaction(self) -> None:
        with self.assertRaises(ms.QuotaExceeded):
            await self.local.deliver(
                RAW, [Placement(self.alice, "inbox"), Placement(self.full, "inbox")], NOW,
                refused="raise")
        self.assertEqual(self.rows(self.alice), [])

    async def test_a_variant_copy_starts_with_its_own_header_lines(self) -> None:
        prefix = b"X-Shared: 1\r\n"
        source = io.BytesIO(prefix + RAW)
        sealed = self.local.seal(source, [self.alice.uuid, self.bob.uuid],
                                 variants={self.alice.uuid: b"X-Own: yes\r\n"},
                                 shared_prefix=len(prefix))
        results = await self.runner.write(
            self.local.file, sealed, [Placement(self.alice, "inbox"), Placement(self.bob, "junk")],
            NOW)
        self.local.settle(sealed, results)
        texts = {}
        for item, user in zip(results, (self.alice, self.bob)):
            with self.store.open_blob(self.engine, KEYRING, user.uuid, item.blob_id) as reader:
                texts[user.email] = b"".join(reader)
        self.assertEqual(texts, {"alice@example.com": b"X-Own: yes\r\n" + RAW,
                                 "bob@example.com": prefix + RAW})
        self.assertEqual([r.size for r in self.rows(self.bob, "junk")], [len(prefix + RAW)])

    async def test_the_queue_copy_carries_the_envelope(self) -> None:
        sealed = await self.local._workers.run(self.local.seal, RAW, [queue.QUEUE_OWNER])
        envelope = Envelope(sender="alice@example.com", recipients=("Bob@example.org",),
                            smtputf8=True, authenticated="alice@example.com",
                            notify={"bob@example.org": ("SUCCESS", "rfc822;bob@example.org")})
        queue_id = await self.runner.write(
            lambda conn: self.local.queue_copy(conn, envelope, ["Bob@example.org"],
                                               sealed[queue.QUEUE_OWNER][0], NOW))
        self.local.settle(sealed, [], queued=True, publish=False)
        [claim] = await self.runner.write(queue.claim_due, "node", NOW, limit=10,
                                           stale_before=NOW)
        message, [rcpt] = claim.message, claim.recipients
        self.assertEqual((message.id, message.sender, message.user_id, message.smtputf8,
                          message.size), (queue_id, "alice@example.com", self.alice.id, True,
                                          len(RAW)))
        self.assertEqual((rcpt.recipient, rcpt.notify, rcpt.orcpt),
                         ("Bob@example.org", "SUCCESS", "rfc822;bob@example.org"))


class DeliverySQLiteTests(SQLiteDatabaseMixin, DeliveryTestsMixin, unittest.TestCase):
    pass


class DeliveryPostgresTests(PostgresDatabaseMixin, DeliveryTestsMixin, unittest.TestCase):
    pass
