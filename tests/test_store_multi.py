"""What MULTIAPPEND stores (``LocalDelivery.deliver_all``, mail/delivery.py) and LIST-STATUS
(``mailbox_counts_by_mailbox``), on SQLite and PostgreSQL: every message or none, and
one grouped count per mailbox that agrees with ``mailbox_counts``."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial import unittest

from mailgosend.crypto import KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import blobs, messages
from mailgosend.mail.delivery import LocalDelivery
from mailgosend.store import accounts, mailboxes
from mailgosend.store import messages as ms
from mailgosend.store.blobs import DatabaseBlobs
from mailgosend.workers import WorkerPool
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
EARLIER = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
KEYRING = KeyRing(bytes(range(32)))


def raw(n: int, size: int = 0) -> bytes:
    return (f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {n}\r\n\r\n".encode()
            + b"x" * size + b"body\r\n")


def deliver_all_or_nothing(runner: Any, keyring: KeyRing, store: Any, user: Any,
                           mailbox_id: int, messages_in: Any, workers: Any, *,
                           now: datetime) -> Any:
    local = LocalDelivery(runner=runner, keyring=keyring, blob_store=store, workers=workers)
    return Deferred.fromCoroutine(local.deliver_all(user, mailbox_id, messages_in, now))


class MultiTestsMixin(DatabaseTestBase):
    def setUp(self) -> Any:
        d = super().setUp()
        run_sync(self.engine, accounts.add_domain, "example.com", NOW, write=True)
        self.alice = run_sync(self.engine, accounts.add_user, "alice@example.com", "h", NOW,
                              quota_bytes=1000, write=True)
        self.boxes = run_sync(self.engine, mailboxes.ensure_default_mailboxes, self.alice.id,
                              NOW, write=True)
        self.inbox = self.boxes[0]
        self.spool = os.path.abspath(self.mktemp())
        self.store = DatabaseBlobs(self.spool)
        self.workers = WorkerPool(reactor, size=2)
        self.workers.startService()
        self.addCleanup(self.workers.stopService)
        return d

    def count(self, table: Any) -> int:
        return run_sync(self.engine, lambda c: c.execute(
            select(func.count()).select_from(table)).scalar_one(), write=False)

    async def test_every_message_in_order_with_consecutive_uids(self) -> None:
        done = await deliver_all_or_nothing(
            self.runner, KEYRING, self.store, self.alice, self.inbox.id,
            [(raw(1), ["\\Seen"], EARLIER), (raw(2), [], NOW), (raw(3), ["$Work"], NOW)],
            self.workers, now=NOW)
        self.assertEqual([d.uid for d in done], [1, 2, 3])
        rows = run_sync(self.engine, ms.list_messages, self.inbox.id, write=False)
        self.assertEqual([(r.uid, r.flags, r.internal_date) for r in rows],
                         [(1, ("\\Seen",), EARLIER), (2, (), NOW), (3, ("$Work",), NOW)])
        user = run_sync(self.engine, accounts.get_user, "alice@example.com", write=False)
        self.assertEqual(user.used_bytes, len(raw(1)) + len(raw(2)) + len(raw(3)))

    async def test_none_when_one_does_not_fit(self) -> None:
        with self.assertRaises(ms.QuotaExceeded):
            await deliver_all_or_nothing(
                self.runner, KEYRING, self.store, self.alice, self.inbox.id,
                [(raw(1, 400), [], NOW), (raw(2, 400), [], NOW), (raw(3, 400), [], NOW)],
                self.workers, now=NOW)
        self.assertEqual((self.count(messages), self.count(blobs)), (0, 0))
        box = run_sync(self.engine, mailboxes.get_mailbox, self.alice.id, "INBOX", write=False)
        self.assertEqual(box.uidnext, 1)
        self.assertEqual(os.listdir(self.spool), [])
        with self.assertRaises(ms.InvalidFlag):
            await deliver_all_or_nothing(
                self.runner, KEYRING, self.store, self.alice, self.inbox.id,
                [(raw(1), [], NOW), (raw(2), ["\\Bogus"], NOW)], self.workers, now=NOW)
        self.assertEqual(self.count(messages), 0)

    async def test_counts_by_mailbox_agree_with_mailbox_counts(self) -> None:
        other = self.boxes[2]  # Drafts
        await deliver_all_or_nothing(
            self.runner, KEYRING, self.store, self.alice, self.inbox.id,
            [(raw(1), ["\\Seen"], NOW), (raw(2), [], NOW), (raw(3), ["\\Deleted"], NOW)],
            self.workers, now=NOW)
        await deliver_all_or_nothing(
            self.runner, KEYRING, self.store, self.alice, other.id, [(raw(4, 10), [], NOW)],
            self.workers, now=NOW)
        run_sync(self.engine, ms.expunge, self.inbox.id, now=NOW, write=True)
        grouped = run_sync(self.engine, ms.mailbox_counts_by_mailbox, self.alice.id,
                           write=False)
        for box in (self.inbox, other):
            self.assertEqual(grouped[box.id],
                             run_sync(self.engine, ms.mailbox_counts, box.id, write=False))
        self.assertEqual(grouped[self.inbox.id],
                         ms.MailboxCounts(2, 1, len(raw(1)) + len(raw(2))))
        self.assertEqual(set(grouped), {self.inbox.id, other.id})  # empty mailboxes absent


class MultiSQLiteTests(SQLiteDatabaseMixin, MultiTestsMixin, unittest.TestCase):
    pass


class MultiPostgresTests(PostgresDatabaseMixin, MultiTestsMixin, unittest.TestCase):
    pass
