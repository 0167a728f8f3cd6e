"""Mailboxes on SQLite and PostgreSQL: default special-use set, UIDVALIDITY, names, rename,
delete; concurrent creation of the defaults."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection
from twisted.internet.defer import DeferredList
from twisted.trial import unittest

from mailgosend.db.engine import connect_for_write
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import mailboxes as mailboxes_table
from mailgosend.db.schema import messages, users
from mailgosend.store import accounts
from mailgosend.store import mailboxes as mb
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
WAIT = 30  # safety net so a broken lock never hangs the suite; not asserted on

VALID = [
    ("Work", "Work"),
    ("Work/Projects/2026", "Work/Projects/2026"),
    ("Ünïcödé ✉", "Ünïcödé ✉"),
    ("inbox", "INBOX"),
    ("Inbox/Receipts", "INBOX/Receipts"),
    ("a b.c", "a b.c"),
    ("x" * 255, "x" * 255),
]
INVALID = ["", "/Work", "Work/", "Work//Projects", "..", "a/../b", ".", "a\x00b", "tab\there",
           "del\x7f", "c1\x85", "50%", "star*", "x" * 256, "a/" * 40 + "a", "\udc80bad"]


def add_message(conn: Connection, user_id: int, mailbox_id: int, uid: int, size: int,
                expunged: bool = False) -> None:
    conn.execute(insert(messages).values(
        mailbox_id=mailbox_id, user_id=user_id, uid=uid, modseq=1, flags="", internal_date=NOW,
        size=size, blob_id="b" * 32, deleted_at=NOW if expunged else None, created_at=NOW))


class MailboxNameTests(unittest.SynchronousTestCase):
    def test_valid_names_are_normalized(self) -> None:
        for name, stored in VALID:
            self.assertEqual(mb.normalize_name(name), stored, name)

    def test_invalid_names_are_refused(self) -> None:
        for name in INVALID:
            self.assertRaises(mb.InvalidMailboxName, mb.normalize_name, name)


class MailboxTestsMixin(DatabaseTestBase):
    def setUp(self) -> Any:
        d = super().setUp()
        self.write(accounts.add_domain, "example.com", NOW)
        self.alice = self.write(accounts.add_user, "alice@example.com", "hash", NOW).id
        self.bob = self.write(accounts.add_user, "bob@example.com", "hash", NOW).id
        return d

    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=True, **kwargs)

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=False, **kwargs)

    def names(self, user_id: int) -> list[str]:
        return [m.name for m in self.read(mb.list_mailboxes, user_id)]

    def test_defaults_created_once_with_roles(self) -> None:
        first = self.write(mb.ensure_default_mailboxes, self.alice, NOW)
        self.assertEqual({m.role: m.name for m in first}, mb.DEFAULT_MAILBOXES)
        # every role but those made on demand (\Snoozed, mail/snooze.py)
        self.assertEqual({m.role: m.special_use for m in first},
                         {role: mb.ROLES[role] for role in mb.DEFAULT_MAILBOXES})
        self.assertEqual(first[0].name, "INBOX")
        again = self.write(mb.ensure_default_mailboxes, self.alice, NOW + timedelta(days=1))
        self.assertEqual(again, first)
        self.assertEqual(self.names(self.bob), [])
        for box in first:
            self.assertTrue(0 < box.uidvalidity < 2**32)
            self.assertEqual(box.uidnext, 1)
        # the defaults start subscribed (RFC 3501 §6.3.6: subscriptions are names)
        self.assertEqual(sorted(self.read(mb.list_subscriptions, self.alice)),
                         sorted(mb.DEFAULT_MAILBOXES.values()))

    def test_existing_mailbox_of_the_default_name_receives_the_role(self) -> None:
        own = self.write(mb.create_mailbox, self.alice, "Sent", NOW)
        self.write(mb.ensure_default_mailboxes, self.alice, NOW)
        sent = self.read(mb.get_by_role, self.alice, "sent")
        self.assertEqual((sent.id, sent.special_use), (own.id, "\\Sent"))
        self.assertEqual(len(self.names(self.alice)), len(mb.DEFAULT_MAILBOXES))

    def test_missing_role_is_recreated_but_other_roles_are_untouched(self) -> None:
        first = {m.role: m for m in self.write(mb.ensure_default_mailboxes, self.alice, NOW)}
        self.write(mb.delete_mailbox, self.alice, "Archive")
        again = {m.role: m for m in self.write(mb.ensure_default_mailboxes, self.alice, NOW)}
        self.assertNotEqual(again["archive"].id, first["archive"].id)
        self.assertEqual(again["trash"], first["trash"])

    async def test_concurrent_ensure_creates_each_default_once(self) -> None:
        results = await DeferredList(
            [self.runner.write(mb.ensure_default_mailboxes, self.alice, NOW) for _ in range(4)],
            consumeErrors=True)
        self.assertTrue(all(ok for ok, _ in results), results)
        self.assertEqual(len(self.names(self.alice)), len(mb.DEFAULT_MAILBOXES))

    def test_uidvalidity_grows_after_delete_and_recreate_in_the_same_second(self) -> None:
        first = self.write(mb.create_mailbox, self.alice, "Projects", NOW)
        self.assertGreaterEqual(first.uidvalidity, int(NOW.timestamp()))
        self.write(mb.delete_mailbox, self.alice, "Projects")
        second = self.write(mb.create_mailbox, self.alice, "Projects", NOW)
        self.assertGreater(second.uidvalidity, first.uidvalidity)
        # Even if the clock steps back.
        self.write(mb.delete_mailbox, self.alice, "Projects")
        third = self.write(mb.create_mailbox, self.alice, "Projects", NOW - timedelta(days=9))
        self.assertGreater(third.uidvalidity, second.uidvalidity)

    def test_uidvalidity_follows_the_clock_when_it_is_ahead(self) -> None:
        later = NOW + timedelta(days=30)
        box = self.write(mb.create_mailbox, self.alice, "Later", later)
        self.assertEqual(box.uidvalidity, int(later.timestamp()))

    def test_create_refuses_duplicates_case_insensitive_inbox_and_makes_parents(self) -> None:
        self.write(mb.ensure_default_mailboxes, self.alice, NOW)
        self.assertRaises(mb.MailboxExists, self.write, mb.create_mailbox, self.alice, "inbox", NOW)
        self.write(mb.create_mailbox, self.alice, "a/b/c", NOW)
        self.assertRaises(mb.MailboxExists, self.write, mb.create_mailbox, self.alice, "a/b", NOW)
        self.assertTrue({"a", "a/b", "a/b/c"} <= set(self.names(self.alice)))
        self.assertIsNone(self.read(mb.get_mailbox, self.bob, "a"))
        self.assertRaises(mb.InvalidMailboxName, self.write, mb.create_mailbox, self.alice,
                          "a//b", NOW)

    def test_special_use_must_be_known_and_unique(self) -> None:
        self.write(mb.create_mailbox, self.alice, "Old mail", NOW, special_use="\\Archive")
        self.assertEqual(self.read(mb.get_by_role, self.alice, "archive").name, "Old mail")
        self.assertRaises(mb.SpecialUseInUse, self.write, mb.create_mailbox, self.alice, "More",
                          NOW, special_use="\\Archive")
        self.assertRaises(mb.MailboxError, self.write, mb.create_mailbox, self.alice, "X", NOW,
                          special_use="\\Important")
        self.assertRaises(ValueError, self.read, mb.get_by_role, self.alice, "spam")

    def test_list_puts_inbox_first_and_parents_before_children(self) -> None:
        for name in ("b", "a", "a/z", "INBOX", "a b"):
            self.write(mb.create_mailbox, self.alice, name, NOW)
        self.assertEqual(self.names(self.alice), ["INBOX", "a", "a/z", "a b", "b"])

    def test_rename_moves_children_and_keeps_uidvalidity(self) -> None:
        parent = self.write(mb.create_mailbox, self.alice, "Work", NOW)
        child = self.write(mb.create_mailbox, self.alice, "Work/2026", NOW)
        renamed = self.write(mb.rename_mailbox, self.alice, "Work", "Archive/Work", NOW)
        self.assertEqual((renamed.id, renamed.uidvalidity), (parent.id, parent.uidvalidity))
        moved = self.read(mb.get_mailbox, self.alice, "Archive/Work/2026")
        self.assertEqual(moved.id, child.id)
        self.assertIsNone(self.read(mb.get_mailbox, self.alice, "Work"))
        self.assertIn("Archive", self.names(self.alice))

    def test_rename_refusals(self) -> None:
        self.write(mb.create_mailbox, self.alice, "A", NOW)
        self.write(mb.create_mailbox, self.alice, "B", NOW)
        self.assertRaises(mb.MailboxExists, self.write, mb.rename_mailbox, self.alice, "A", "B",
                          NOW)
        self.assertRaises(mb.MailboxNotFound, self.write, mb.rename_mailbox, self.alice, "C", "D",
                          NOW)
        self.assertRaises(mb.InvalidMailboxName, self.write, mb.rename_mailbox, self.alice, "A",
                          "A/inside", NOW)

    def test_rename_inbox_moves_its_messages_and_keeps_uids_unique(self) -> None:
        inbox = self.write(mb.ensure_default_mailboxes, self.alice, NOW)[0]
        self.write(add_message, self.alice, inbox.id, 1, 10)
        self.write(lambda c: c.execute(mailboxes_table.update().values(uidnext=2)
                                       .where(mailboxes_table.c.id == inbox.id)).rowcount)
        target = self.write(mb.rename_mailbox, self.alice, "INBOX", "Old inbox", NOW)
        self.assertEqual(target.uidnext, 2)
        still = self.read(mb.get_mailbox, self.alice, "INBOX")
        self.assertEqual((still.id, still.uidvalidity, still.uidnext),
                         (inbox.id, inbox.uidvalidity, 2))
        owners = self.read(lambda c: c.execute(select(messages.c.mailbox_id)).scalars().all())
        self.assertEqual(owners, [target.id])

    def test_delete_refuses_inbox_children_and_unknown(self) -> None:
        self.write(mb.ensure_default_mailboxes, self.alice, NOW)
        self.write(mb.create_mailbox, self.alice, "P/Q", NOW)
        self.assertRaises(mb.CannotDeleteInbox, self.write, mb.delete_mailbox, self.alice, "inbox")
        self.assertRaises(mb.MailboxHasChildren, self.write, mb.delete_mailbox, self.alice, "P")
        self.assertRaises(mb.MailboxNotFound, self.write, mb.delete_mailbox, self.alice, "Nope")
        self.write(mb.delete_mailbox, self.alice, "P/Q")
        self.write(mb.delete_mailbox, self.alice, "P")
        self.assertNotIn("P", self.names(self.alice))

    def test_delete_removes_messages_and_frees_their_quota(self) -> None:
        box = self.write(mb.create_mailbox, self.alice, "Big", NOW)
        self.write(add_message, self.alice, box.id, 1, 300)
        self.write(add_message, self.alice, box.id, 2, 200, expunged=True)  # already freed
        self.write(lambda c: c.execute(users.update().values(used_bytes=1000)
                                       .where(users.c.id == self.alice)).rowcount)
        self.write(mb.delete_mailbox, self.alice, "Big")
        used = self.read(lambda c: c.execute(select(users.c.used_bytes)
                                             .where(users.c.id == self.alice)).scalar_one())
        self.assertEqual(used, 700)
        count = self.read(lambda c: c.execute(select(messages.c.id)).all())
        self.assertEqual(count, [])


class MailboxSQLiteTests(SQLiteDatabaseMixin, MailboxTestsMixin, unittest.TestCase):
    pass


class MailboxPostgresTests(PostgresDatabaseMixin, MailboxTestsMixin, unittest.TestCase):
    def test_ensure_waiting_on_an_uncommitted_creator_succeeds_after_it_commits(self) -> None:
        """Two sessions create the defaults at once: the second blocks on the first's rows,
        then finds them and does nothing instead of failing the delivery."""
        first = connect_for_write(self.engine)
        transaction = first.begin()
        mb.ensure_default_mailboxes(first, self.alice, NOW)
        outcome: dict[str, Any] = {}

        def second() -> None:
            try:
                outcome["boxes"] = run_sync(self.engine, mb.ensure_default_mailboxes, self.alice,
                                            NOW, write=True)
            except Exception as e:  # reported through the assertion below
                outcome["error"] = e

        thread = threading.Thread(target=second)
        thread.start()
        try:
            self.wait_until_blocked_on_a_lock()
        finally:
            transaction.commit()
            first.close()
        thread.join(WAIT)
        self.assertNotIn("error", outcome)
        self.assertEqual([m.name for m in outcome["boxes"]], self.names(self.alice))
        self.assertEqual(len(outcome["boxes"]), len(mb.DEFAULT_MAILBOXES))

    def wait_until_blocked_on_a_lock(self) -> None:
        """Poll pg_stat_activity until some session of this database waits on a lock."""
        waiting = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND wait_event_type = 'Lock'")
        with self.engine.connect() as conn:
            for _ in range(WAIT * 20):  # counted polls, not a deadline
                if conn.execute(waiting).scalar_one():
                    return
                conn.rollback()
                # time.sleep, not Event.wait(0.05): a timed thread wait never returns under
                # faketime (libfaketime), and this poll would hang there.
                time.sleep(0.05)
        self.fail("the second session never waited on the first one's lock")
