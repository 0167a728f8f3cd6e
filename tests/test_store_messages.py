"""Delivery, quota, UIDs/MODSEQ, flags, expunge and the read API, on SQLite and PostgreSQL,
with the database and the file blob stores."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.trial import unittest

from mailgosend.crypto import DecryptionError, KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import blobs, messages
from mailgosend.mail.delivery import LocalDelivery, Placement
from mailgosend.store import accounts, mailboxes
from mailgosend.store import messages as ms
from mailgosend.store.blobs import BlobStore, DatabaseBlobs, FileBlobs, SealedBlob
from mailgosend.store.mimeinfo import analyse
from mailgosend.workers import WorkerPool
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
KEYRING = KeyRing(bytes(range(32)))
RAW = (b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: Hello\r\n"
       b"Content-Type: text/plain\r\n\r\nHi Bob,\r\nsee you.\r\n")


def deliver_to_users(runner: Any, keyring: KeyRing, store: BlobStore, source: Any,
                     recipients: list[tuple[Any, Any]], flags: Any, internal_date: datetime,
                     workers: Any) -> Any:
    """The one local-delivery path (mail/delivery.py), each refusal in its recipient's slot."""
    local = LocalDelivery(runner=runner, keyring=keyring, blob_store=store, workers=workers)
    return Deferred.fromCoroutine(local.deliver(
        source, [Placement(user, target, tuple(flags), internal_date)
                 for user, target in recipients], internal_date))


class FailingCommit(DatabaseBlobs):
    """A blob store whose commit breaks the delivery transaction."""

    def commit(self, conn: Connection, sealed: SealedBlob, user_id: int, now: datetime) -> None:
        super().commit(conn, sealed, user_id, now)
        raise RuntimeError("disk full")


class MessagesTestsMixin(DatabaseTestBase):
    store: BlobStore

    def make_store(self) -> BlobStore:
        self.spool = os.path.abspath(self.mktemp())
        return DatabaseBlobs(self.spool)

    def setUp(self) -> Any:
        d = super().setUp()
        self.write(accounts.add_domain, "example.com", NOW)
        self.alice = self.write(accounts.add_user, "alice@example.com", "h", NOW)
        self.bob = self.write(accounts.add_user, "bob@example.com", "h", NOW, quota_bytes=1000)
        self.store = self.make_store()
        self.workers = WorkerPool(reactor, size=4)
        self.workers.startService()
        self.addCleanup(self.workers.stopService)
        return d

    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=True, **kwargs)

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=False, **kwargs)

    def user(self, email: str) -> accounts.User:
        return self.read(accounts.get_user, email)

    def prepared(self, user: accounts.User, raw: bytes = RAW) -> tuple[SealedBlob, bytes]:
        sealed = self.store.seal(KEYRING, user.uuid, raw)
        return sealed, ms.seal_info(KEYRING, user.uuid, sealed.blob_id, analyse(raw))

    def deliver(self, user: accounts.User, target: Any = "inbox", raw: bytes = RAW,
                flags: tuple[str, ...] = ()) -> ms.Delivered:
        sealed, meta = self.prepared(user, raw)
        return self.write(ms.deliver, user, target, sealed, meta, flags, NOW, NOW,
                          blob_store=self.store)

    def inbox(self, user: accounts.User) -> mailboxes.Mailbox:
        return self.read(mailboxes.get_by_role, user.id, "inbox")

    def count(self, table: Any, **where: Any) -> int:
        return self.read(lambda c: c.execute(select(func.count()).select_from(table).where(
            *(table.c[k] == v for k, v in where.items()))).scalar_one())

    def test_deliver_creates_defaults_and_allocates_ascending_uids_and_modseqs(self) -> None:
        first, second = self.deliver(self.alice), self.deliver(self.alice)
        inbox = self.inbox(self.alice)
        self.assertEqual((first.mailbox_id, first.uid, second.uid), (inbox.id, 1, 2))
        self.assertLess(first.modseq, second.modseq)
        self.assertEqual((inbox.uidnext, inbox.highestmodseq), (3, second.modseq))
        self.assertEqual(first.uidvalidity, inbox.uidvalidity)
        self.assertEqual(len(self.read(mailboxes.list_mailboxes, self.alice.id)), 6)
        self.assertEqual(self.user("alice@example.com").used_bytes, 2 * len(RAW))

    def test_deliver_to_a_role_or_an_own_mailbox_id_only(self) -> None:
        junk = self.deliver(self.alice, "junk")
        junk_box = self.read(mailboxes.get_by_role, self.alice.id, "junk")
        self.assertEqual(junk.mailbox_id, junk_box.id)
        self.assertEqual(self.deliver(self.alice, junk.mailbox_id).uid, 2)
        self.assertRaises(mailboxes.MailboxNotFound, self.deliver, self.bob, junk.mailbox_id)
        self.assertEqual(self.count(messages, user_id=self.bob.id), 0)
        self.assertEqual(self.user("bob@example.com").used_bytes, 0)

    def test_uids_are_never_reused_after_expunge(self) -> None:
        for _ in range(3):
            last = self.deliver(self.alice)
        self.write(ms.set_flags, last.mailbox_id, [2, 3], ["\\Deleted"], "add")
        self.assertEqual(self.write(ms.expunge, last.mailbox_id, now=NOW), [2, 3])
        self.assertEqual(self.deliver(self.alice).uid, 4)
        self.assertEqual([m.uid for m in self.read(ms.list_messages, last.mailbox_id)], [1, 4])

    async def test_twenty_concurrent_deliveries_get_consecutive_distinct_uids(self) -> None:
        self.deliver(self.alice)  # creates the mailboxes; uid 1
        jobs = [self.prepared(self.alice) for _ in range(20)]
        results = await DeferredList(
            [self.runner.write(ms.deliver, self.alice, "inbox", sealed, meta, (), NOW, NOW,
                               blob_store=self.store) for sealed, meta in jobs],
            consumeErrors=True)
        self.assertTrue(all(ok for ok, _ in results), results)
        self.assertEqual(sorted(r.uid for _, r in results), list(range(2, 22)))
        self.assertEqual(len({r.modseq for _, r in results}), 20)
        self.assertEqual(self.user("alice@example.com").used_bytes, 21 * len(RAW))

    def test_quota_refused_before_anything_is_written(self) -> None:
        big = RAW + b"x" * 2000
        with self.assertRaises(ms.QuotaExceeded) as caught:
            self.deliver(self.bob, raw=big)
        self.assertEqual((caught.exception.size, caught.exception.quota, caught.exception.used),
                         (len(big), 1000, 0))
        self.assertEqual(caught.exception.imap_code, "OVERQUOTA")
        # What SMTP sends for a full mailbox (issue 10: it carried 552 5.2.2 and sent 452 4.2.2)
        self.assertEqual((caught.exception.smtp_code, caught.exception.enhanced_code),
                         (452, "4.2.2"))
        self.assertEqual(self.user("bob@example.com").used_bytes, 0)
        self.assertEqual(self.count(messages), 0)
        self.assertEqual(self.count(blobs), 0)
        self.assertEqual(self.read(mailboxes.list_mailboxes, self.bob.id), [])

    def test_quota_allows_exactly_full(self) -> None:
        raw = RAW + b"y" * (1000 - len(RAW))
        self.deliver(self.bob, raw=raw)
        self.assertEqual(self.user("bob@example.com").used_bytes, 1000)
        self.assertRaises(ms.QuotaExceeded, self.deliver, self.bob, raw=b"z")
        self.assertEqual(self.user("bob@example.com").used_bytes, 1000)

    async def test_concurrent_deliveries_fill_the_quota_exactly(self) -> None:
        # The reservation adds first and takes back what does not fit (quota.fits): under
        # concurrency exactly as many messages as fit are stored, and used_bytes is their sum.
        self.deliver(self.bob)  # creates the mailboxes
        size = len(RAW)
        jobs = [self.prepared(self.bob) for _ in range(12)]
        results = await DeferredList(
            [self.runner.write(ms.deliver, self.bob, "inbox", sealed, meta, (), NOW, NOW,
                               blob_store=self.store) for sealed, meta in jobs],
            consumeErrors=True)
        stored = [r for ok, r in results if ok]
        refused = [r.value for ok, r in results if not ok]
        self.assertEqual(len(stored) + 1, 1000 // size)
        self.assertTrue(all(isinstance(e, ms.QuotaExceeded) for e in refused), refused)
        self.assertEqual(self.user("bob@example.com").used_bytes, (len(stored) + 1) * size)

    def test_meta_decrypts_only_for_its_user_and_blob(self) -> None:
        delivered = self.deliver(self.alice)
        info = self.read(ms.load_info, KEYRING, self.alice, delivered.message_id)
        self.assertEqual((info.subject, info.snippet), ("Hello", "Hi Bob, see you."))
        self.assertRaises(LookupError, self.read, ms.load_info, KEYRING, self.bob,
                          delivered.message_id)
        # The ciphertext moved to Bob's row (same blob id even) does not open for Bob.
        theirs = self.deliver(self.bob, raw=b"Subject: x\r\n\r\ny")
        meta = self.read(lambda c: c.execute(select(messages.c.meta).where(
            messages.c.id == delivered.message_id)).scalar_one())
        self.write(lambda c: c.execute(messages.update().where(
            messages.c.id == theirs.message_id).values(meta=meta, blob_id=delivered.blob_id)
        ).rowcount)
        self.assertRaises(DecryptionError, self.read, ms.load_info, KEYRING, self.bob,
                          theirs.message_id)

    def test_load_infos_reads_a_batch_in_one_query_per_chunk(self) -> None:
        self.patch(ms, "_IN_BATCH", 2)
        delivered = [self.deliver(self.alice, raw=RAW.replace(b"Hello", b"Hello %d" % i))
                     for i in range(3)]
        statements: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            statements.append(statement)

        event.listen(self.engine, "before_cursor_execute", record)
        self.addCleanup(event.remove, self.engine, "before_cursor_execute", record)
        ids = [d.message_id for d in delivered]
        infos = self.read(ms.load_infos, KEYRING, self.alice, ids + [10**6])
        self.assertEqual({i: info.subject for i, info in infos.items()},
                         {d.message_id: f"Hello {n}" for n, d in enumerate(delivered)})
        self.assertEqual(len([s for s in statements if "messages.meta" in s]), 2)
        self.assertEqual(self.read(ms.load_infos, KEYRING, self.bob, ids), {})

    def test_flags_are_normalized_and_validated(self) -> None:
        self.assertEqual(ms.normalize_flags(["$Label", "\\seen", "\\SEEN", "\\Recent", "\\draft"]),
                         ("\\Draft", "\\Seen", "$Label"))
        for bad in ("\\Bogus", "has space", "", "brace{", "é"):
            self.assertRaises(ms.InvalidFlag, ms.normalize_flags, [bad])
        delivered = self.deliver(self.alice, flags=("\\seen", "Work"))
        [row] = self.read(ms.list_messages, delivered.mailbox_id)
        self.assertEqual(row.flags, ("\\Seen", "Work"))

    def test_set_flags_bumps_modseq_once_per_change_and_not_for_no_ops(self) -> None:
        box = self.deliver(self.alice).mailbox_id
        self.deliver(self.alice, flags=("\\Seen",))
        before = self.inbox(self.alice).highestmodseq
        result = self.write(ms.set_flags, box, None, ["\\Seen"], "add")
        self.assertEqual([(c.uid, c.flags) for c in result.changed], [(1, ("\\Seen",))])
        self.assertEqual((result.changed[0].modseq, result.highestmodseq), (before + 1,) * 2)
        noop = self.write(ms.set_flags, box, [1, 2], ["\\Seen"], "add")
        self.assertEqual((noop.changed, noop.highestmodseq), ([], before + 1))
        replaced = self.write(ms.set_flags, box, [2], ["\\Flagged", "Todo"], "replace")
        self.assertEqual(replaced.changed[0].flags, ("\\Flagged", "Todo"))
        removed = self.write(ms.set_flags, box, [2, 99], ["todo"], "remove")
        self.assertEqual([(c.uid, c.flags) for c in removed.changed], [(2, ("\\Flagged",))])
        rows = self.read(ms.list_messages, box, changed_since=replaced.highestmodseq)
        self.assertEqual([r.uid for r in rows], [2])

    def test_unchanged_since_reports_modified_messages(self) -> None:
        box = self.deliver(self.alice).mailbox_id
        self.deliver(self.alice)
        mark = self.inbox(self.alice).highestmodseq
        self.write(ms.set_flags, box, [2], ["\\Answered"], "add")
        result = self.write(ms.set_flags, box, [1, 2], ["\\Seen"], "add", unchanged_since=mark)
        self.assertEqual(([c.uid for c in result.changed], result.modified), ([1], [2]))

    def test_expunge_is_a_soft_delete_that_frees_quota(self) -> None:
        first = self.deliver(self.bob)
        self.deliver(self.bob)
        self.deliver(self.bob)
        box = first.mailbox_id
        self.write(ms.set_flags, box, [1, 2], ["\\Deleted"], "add")
        self.assertEqual(self.write(ms.expunge, box, [2, 3], now=NOW), [2])  # UID EXPUNGE
        self.assertEqual(self.user("bob@example.com").used_bytes, 2 * len(RAW))
        self.assertEqual(self.write(ms.expunge, box, now=NOW), [1])
        self.assertEqual(self.user("bob@example.com").used_bytes, len(RAW))
        live = self.read(ms.list_messages, box)
        every = self.read(ms.list_messages, box, include_expunged=True)
        self.assertEqual([r.uid for r in live], [3])
        self.assertEqual([(r.uid, r.deleted_at) for r in every], [(1, NOW), (2, NOW), (3, None)])
        self.assertEqual(self.write(ms.expunge, box, now=NOW), [])
        self.assertEqual(self.read(ms.mailbox_counts, box), ms.MailboxCounts(1, 1, len(RAW)))

    def test_purge_after_expunge_removes_rows_then_blobs(self) -> None:
        kept, gone = self.deliver(self.alice), self.deliver(self.alice)
        self.write(ms.set_flags, gone.mailbox_id, [gone.uid], ["\\Deleted"], "add")
        self.write(ms.expunge, gone.mailbox_id, now=NOW)
        self.assertEqual(self.write(ms.purge_expunged, before=NOW), 0)  # not yet old enough
        self.assertEqual(self.write(ms.purge_expunged, before=NOW + timedelta(days=2)), 1)
        later = NOW + timedelta(days=2)
        self.assertEqual(self.write(self.store.purge_unreferenced, now=later), 1)
        with self.store.open_blob(self.engine, KEYRING, self.alice.uuid, kept.blob_id) as reader:
            self.assertEqual(b"".join(reader), RAW)

    def test_list_messages_since_uid_and_counts(self) -> None:
        box = self.deliver(self.alice, flags=("\\Seen",)).mailbox_id
        self.deliver(self.alice)
        self.deliver(self.alice)
        self.assertEqual([r.uid for r in self.read(ms.list_messages, box, since_uid=1)], [2, 3])
        row = self.read(ms.list_messages, box)[0]
        self.assertEqual((row.size, row.internal_date, len(row.blob_id)), (len(RAW), NOW, 32))
        self.assertEqual(self.read(ms.mailbox_counts, box), ms.MailboxCounts(3, 2, 3 * len(RAW)))

    async def test_deliver_to_users_stores_every_copy_and_refuses_only_the_full_one(self) -> None:
        carol = self.write(accounts.add_user, "carol@example.com", "h", NOW, quota_bytes=10)
        self.deliver(self.bob, raw=RAW + b"b" * (1000 - 2 * len(RAW)))  # Bob has room for one
        results: list[Any] = await deliver_to_users(
            self.runner, KEYRING, self.store, RAW,
            [(self.alice, "inbox"), (carol, "inbox"), (self.bob, "inbox"), (self.alice, "junk")],
            ["\\Recent"], NOW, self.workers)
        alice_inbox, refused, bob, alice_junk = results
        self.assertIsInstance(refused, ms.QuotaExceeded)
        self.assertEqual((refused.size, refused.quota, refused.used), (len(RAW), 10, 0))
        self.assertEqual(self.user("carol@example.com").used_bytes, 0)
        self.assertEqual(self.count(messages, user_id=carol.id), 0)
        self.assertEqual(self.count(blobs, user_id=carol.id), 0)
        self.assertEqual((alice_inbox.uid, alice_junk.uid, bob.uid), (1, 1, 2))
        self.assertEqual(alice_inbox.blob_id, alice_junk.blob_id)  # one blob per user
        self.assertNotEqual(alice_inbox.blob_id, bob.blob_id)
        for user, delivered in ((self.alice, alice_junk), (self.bob, bob)):
            with self.store.open_blob(self.engine, KEYRING, user.uuid,
                                      delivered.blob_id) as reader:
                self.assertEqual(b"".join(reader), RAW)
            info = self.read(ms.load_info, KEYRING, user, delivered.message_id)
            self.assertEqual(info, analyse(RAW))
        self.assertEqual(os.listdir(self.spool), [])

    async def test_deliver_to_users_reads_a_spool_file(self) -> None:
        path = os.path.abspath(self.mktemp())
        raw = RAW + b"line of a longer body\r\n" * 40_000  # about 1 MB, spooled for sealing
        with open(path, "wb") as f:
            f.write(raw)
        delivered: Any
        [delivered] = await deliver_to_users(self.runner, KEYRING, self.store, path,
                                                [(self.alice, "inbox")], (), NOW, self.workers)
        self.assertEqual(delivered.size, len(raw))
        with self.store.open_blob(self.engine, KEYRING, self.alice.uuid,
                                  delivered.blob_id) as reader:
            self.assertEqual(reader.read_range(len(raw) - 23, 100), b"line of a longer body\r\n")
        info = self.read(ms.load_info, KEYRING, self.alice, delivered.message_id)
        self.assertEqual(info.root.lines, 40_002)

    async def test_deliver_to_users_commits_nothing_when_the_transaction_fails(self) -> None:
        store = FailingCommit(self.spool)
        with self.assertRaises(RuntimeError):
            await deliver_to_users(self.runner, KEYRING, store, RAW,
                                      [(self.alice, "inbox"), (self.bob, "inbox")], (), NOW,
                                      self.workers)
        self.assertEqual((self.count(messages), self.count(blobs)), (0, 0))
        self.assertEqual(self.user("alice@example.com").used_bytes, 0)
        self.assertEqual(os.listdir(self.spool), [])

    async def test_deliver_to_users_refuses_invalid_flags(self) -> None:
        with self.assertRaises(ms.InvalidFlag):
            await deliver_to_users(self.runner, KEYRING, self.store, RAW,
                                      [(self.alice, "inbox")], ["\\Bogus"], NOW, self.workers)
        self.assertEqual(self.count(messages), 0)


class FileStoreDeliveryTestsMixin(DatabaseTestBase):
    """deliver_to_users end to end with STORAGE_BACKEND = fs."""

    async def test_deliver_to_users_with_file_blobs(self) -> None:
        root = os.path.abspath(self.mktemp())
        store = FileBlobs(root)
        workers = WorkerPool(reactor, size=2)
        self.addCleanup(workers.stopService)
        run_sync(self.engine, accounts.add_domain, "example.com", NOW, write=True)
        alice = run_sync(self.engine, accounts.add_user, "alice@example.com", "h", NOW, write=True)
        full = run_sync(self.engine, accounts.add_user, "full@example.com", "h", NOW,
                        quota_bytes=1, write=True)
        delivered: Any
        refused: Any
        delivered, refused = await deliver_to_users(
            self.runner, KEYRING, store, RAW, [(alice, "inbox"), (full, "inbox")], (), NOW, workers)
        self.assertIsInstance(refused, ms.QuotaExceeded)
        files = [f for _, _, names in os.walk(root) for f in names]
        self.assertEqual(files, [delivered.blob_id])  # the refused copy's file is gone
        with store.open_blob(self.engine, KEYRING, alice.uuid, delivered.blob_id) as reader:
            self.assertEqual(b"".join(reader), RAW)


class MessagesSQLiteTests(SQLiteDatabaseMixin, MessagesTestsMixin, unittest.TestCase):
    pass


class MessagesPostgresTests(PostgresDatabaseMixin, MessagesTestsMixin, unittest.TestCase):
    runner_options = {"readers": 8}  # 8 concurrent writers for the concurrency test


class FileDeliverySQLiteTests(SQLiteDatabaseMixin, FileStoreDeliveryTestsMixin, unittest.TestCase):
    pass


class FileDeliveryPostgresTests(PostgresDatabaseMixin, FileStoreDeliveryTestsMixin,
                                unittest.TestCase):
    pass
