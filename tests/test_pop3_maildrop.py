"""The maildrop adapter over the store: snapshot, marks, ranges and the UPDATE transaction."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.events import Events
from mailgosend.pop3.maildrop import Maildrop, MessageDeleted, load_snapshot
from mailgosend.pop3.replies import NoSuchMessage
from mailgosend.store import accounts, messages
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.pop3 import EMAIL, KEYRING, POP3Fixture

ONE = b"Subject: one\r\n\r\nfirst\r\n"
TWO = b"Subject: two\r\n\r\nsecond message\r\n"
THREE = b"Subject: three\r\n\r\n" + b"".join(b"line %06d\r\n" % i for i in range(20000))


class MaildropTestsMixin(POP3Fixture):
    def maildrop(self) -> Maildrop:
        snapshot = run_sync(self.engine, load_snapshot, EMAIL, write=False)
        return Maildrop(snapshot, self.runner, self.blob_store, KEYRING, reactor, Events())

    def test_user_without_inbox_has_an_empty_maildrop(self) -> None:
        snapshot = run_sync(self.engine, load_snapshot, EMAIL, write=False)
        self.assertEqual((snapshot.mailbox_id, snapshot.entries), (None, ()))
        self.assertEqual(self.maildrop().stat(), (0, 0))

    def test_snapshot_lists_live_inbox_messages_from_plain_columns(self) -> None:
        first, second = self.deliver(ONE), self.deliver(TWO)
        drop = self.maildrop()
        self.assertEqual(drop.stat(), (2, len(ONE) + len(TWO)))
        self.assertEqual([(n, e.uid, e.size) for n, e in drop.listing()],
                         [(1, first.uid, len(ONE)), (2, second.uid, len(TWO))])

    def test_uidl_is_uidvalidity_dot_uid_and_stable_across_sessions(self) -> None:
        first, second = self.deliver(ONE), self.deliver(TWO)
        validity = self.inbox().uidvalidity
        self.assertEqual([self.maildrop().uidl(1), self.maildrop().uidl(2)],
                         [f"{validity}.{first.uid}", f"{validity}.{second.uid}"])

    def test_uidl_survives_deletion_of_earlier_messages(self) -> None:
        self.deliver(ONE)
        second = self.deliver(TWO)
        before = self.maildrop().uidl(2)
        run_sync(self.engine, messages.set_flags, self.inbox().id, [1], ["\\Deleted"], "add",
                 write=True)
        run_sync(self.engine, messages.expunge, self.inbox().id, [1], now=self.now(), write=True)
        after = self.maildrop()
        self.assertEqual(after.uidl(1), before)
        self.assertEqual(after.listing()[0][1].uid, second.uid)

    def test_marks_hide_messages_and_reset_restores_them(self) -> None:
        self.deliver(ONE)
        self.deliver(TWO)
        drop = self.maildrop()
        drop.delete(1)
        self.assertEqual(drop.stat(), (1, len(TWO)))
        self.assertRaises(NoSuchMessage, drop.size, 1)
        self.assertRaises(NoSuchMessage, drop.uidl, 1)
        self.assertRaises(MessageDeleted, drop.delete, 1)
        drop.reset()
        self.assertEqual(drop.stat(), (2, len(ONE) + len(TWO)))

    def test_out_of_range_numbers(self) -> None:
        self.deliver(ONE)
        drop = self.maildrop()
        for number in (0, 2, -1):
            self.assertRaises(NoSuchMessage, drop.size, number)
            self.assertRaises(NoSuchMessage, drop.delete, number)

    @defer.inlineCallbacks
    def test_read_returns_exact_ranges(self) -> Any:
        self.deliver(ONE)
        self.deliver(THREE)
        drop = self.maildrop()
        whole = yield drop.read(2, 0, len(THREE))
        self.assertEqual(whole, THREE)
        middle = yield drop.read(2, 70_000, 100_000)
        self.assertEqual(middle, THREE[70_000:170_000])
        past_end = yield drop.read(2, len(THREE) - 5, 100)
        self.assertEqual(past_end, THREE[-5:])

    @defer.inlineCallbacks
    def test_commit_soft_deletes_marked_and_flags_retrieved_as_seen(self) -> Any:
        first, second, third = self.deliver(ONE), self.deliver(TWO), self.deliver(THREE)
        used = run_sync(self.engine, accounts.get_user, EMAIL, write=False).used_bytes
        drop = self.maildrop()
        drop.mark_retrieved(1)
        drop.mark_retrieved(2)
        drop.delete(1)
        expunged = yield drop.commit()
        self.assertEqual(expunged, [first.uid])
        rows = {row.uid: row for row in self.rows()}
        self.assertIsNotNone(rows[first.uid].deleted_at)  # soft delete: the row stays
        self.assertIsNone(rows[second.uid].deleted_at)
        self.assertIn("\\Seen", rows[second.uid].flags.split())
        self.assertNotIn("\\Seen", rows[third.uid].flags.split())
        after = run_sync(self.engine, accounts.get_user, EMAIL, write=False).used_bytes
        self.assertEqual(after, used - len(ONE))

    @defer.inlineCallbacks
    def test_commit_leaves_imap_deleted_messages_it_did_not_mark(self) -> Any:
        self.deliver(ONE)
        second = self.deliver(TWO)
        run_sync(self.engine, messages.set_flags, self.inbox().id, [second.uid], ["\\Deleted"],
                 "add", write=True)
        drop = self.maildrop()
        drop.delete(1)
        yield drop.commit()
        self.assertIsNone({row.uid: row for row in self.rows()}[second.uid].deleted_at)

    @defer.inlineCallbacks
    def test_commit_skips_messages_another_session_removed(self) -> Any:
        self.deliver(ONE)
        self.deliver(TWO)
        mine, other = self.maildrop(), self.maildrop()
        other.delete(1)
        yield other.commit()
        mine.delete(1)
        mine.delete(2)
        expunged = yield mine.commit()
        self.assertEqual(expunged, [2])
        self.assertTrue(all(row.deleted_at is not None for row in self.rows()))

    @defer.inlineCallbacks
    def test_logout_forgets_the_marks(self) -> Any:
        self.deliver(ONE)
        drop = self.maildrop()
        drop.delete(1)
        drop.logout()
        expunged = yield drop.commit()
        self.assertEqual(expunged, [])
        self.assertIsNone(self.rows()[0].deleted_at)


class MaildropSQLiteTests(SQLiteDatabaseMixin, MaildropTestsMixin, unittest.TestCase):
    pass


class MaildropPostgresTests(PostgresDatabaseMixin, MaildropTestsMixin, unittest.TestCase):
    pass


class MaildropFileBlobsTests(SQLiteDatabaseMixin, MaildropTestsMixin, unittest.TestCase):
    blob_backend = "fs"
