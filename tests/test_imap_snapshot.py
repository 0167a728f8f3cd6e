"""The per-mailbox snapshot SELECT copies (imap/snapshot.py): shared between sessions, reused
while HIGHESTMODSEQ says nothing changed, and brought up to date by any change, including
changes the hub never hears of (another node, webmail, a direct store call)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.imap import snapshot
from mailgosend.store import mailboxes
from mailgosend.store import messages as ms
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import IMAPFixture, message


class SnapshotTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    def message_queries(self) -> list[str]:
        """Statements that read the messages table from now on."""
        seen: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "FROM messages" in statement:
                seen.append(statement)

        event.listen(self.engine, "before_cursor_execute", record)
        self.addCleanup(event.remove, self.engine, "before_cursor_execute", record)
        return seen

    @defer.inlineCallbacks
    def select(self, client: Any) -> Any:
        typ, data = yield self.in_thread(client.select, "INBOX")
        self.assertEqual(typ, "OK")
        return int(data[0]), client.untagged_responses

    @defer.inlineCallbacks
    def client(self) -> Any:
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        return client

    @defer.inlineCallbacks
    def test_a_second_select_reuses_the_snapshot_without_reading_messages(self) -> Any:
        for n in range(3):
            yield self.deliver(message(f"m{n}"))
        yield self.listen()
        a = yield self.client()
        b = yield self.client()
        yield self.select(a)
        queries = self.message_queries()
        count, untagged = yield self.select(b)
        self.assertEqual(count, 3)
        self.assertEqual(queries, [])  # only the mailbox row was read
        self.assertEqual(len(self.factory.access.hub.snapshots), 1)

    @defer.inlineCallbacks
    def test_changes_by_another_session_reach_the_next_select(self) -> Any:
        for n in range(4):
            yield self.deliver(message(f"m{n}"))
        yield self.listen()
        a = yield self.client()
        b = yield self.client()
        yield self.select(a)
        yield self.select(b)
        yield self.in_thread(a.store, "2", "+FLAGS", "(\\Flagged)")
        yield self.in_thread(a.store, "1", "+FLAGS", "(\\Deleted)")
        yield self.in_thread(a.expunge)
        yield self.in_thread(a.append, "INBOX", "(\\Seen $Work)", None, message("new"))
        yield self.in_thread(b.close)
        count, untagged = yield self.select(b)
        self.assertEqual(count, 4)
        self.assertIn(b"$Work", untagged["FLAGS"][-1])
        typ, data = yield self.in_thread(b.fetch, "1:*", "(UID FLAGS)")
        self.assertEqual(data, [b"1 (UID 2 FLAGS (\\Flagged))", b"2 (UID 3 FLAGS ())",
                                b"3 (UID 4 FLAGS ())", b"4 (UID 5 FLAGS (\\Seen $Work))"])

    @defer.inlineCallbacks
    def test_changes_the_hub_never_hears_of_are_found_by_modseq(self) -> Any:
        for n in range(3):
            yield self.deliver(message(f"m{n}"))
        yield self.listen()
        a = yield self.client()
        yield self.select(a)
        yield self.in_thread(a.close)
        # As another node or webmail would: straight into the store, no hub, no event.
        box = self.mailbox("INBOX")
        yield self.runner.write(ms.set_flags, box.id, [1], ["\\Answered"], "add")
        yield self.deliver(message("elsewhere"), publish=False)
        yield self.runner.write(ms.set_flags, box.id, [3], ["\\Deleted"], "add")
        yield self.runner.write(ms.expunge, box.id, [3], now=self.now)
        count, untagged = yield self.select(a)
        self.assertEqual(count, 3)
        typ, data = yield self.in_thread(a.fetch, "1:*", "(UID FLAGS)")
        self.assertEqual(data, [b"1 (UID 1 FLAGS (\\Answered))", b"2 (UID 2 FLAGS ())",
                                b"3 (UID 4 FLAGS (\\Recent))"])

    @defer.inlineCallbacks
    def test_rows_that_leave_without_a_modseq_are_found_by_the_count(self) -> Any:
        for n in range(2):
            yield self.deliver(message(f"m{n}"))
        yield self.listen()
        a = yield self.client()
        yield self.select(a)
        yield self.in_thread(a.close)
        # RENAME INBOX moves the rows away keeping their MODSEQ (RFC 3501 §6.3.5).
        yield self.runner.write(mailboxes.rename_mailbox, self.alice.id, "INBOX", "Old",
                                self.now)
        count, _ = yield self.select(a)
        self.assertEqual(count, 0)
        yield self.deliver(message("after"))
        yield self.in_thread(a.close)
        count, _ = yield self.select(a)
        self.assertEqual(count, 1)

    @defer.inlineCallbacks
    def test_an_old_snapshot_is_counted_again_even_without_a_new_modseq(self) -> Any:
        for n in range(2):
            yield self.deliver(message(f"m{n}"))
        yield self.listen()
        a = yield self.client()
        yield self.select(a)
        yield self.in_thread(a.close)
        box = self.mailbox("INBOX")
        # A row gone without any MODSEQ (nothing in mailgosend does this; a repair might).
        yield self.runner.write(lambda conn: conn.execute(
            ms.messages.delete().where(ms.messages.c.mailbox_id == box.id,
                                       ms.messages.c.uid == 1)).rowcount)
        count, _ = yield self.select(a)
        self.assertEqual(count, 2)  # still trusted: HIGHESTMODSEQ did not move
        yield self.in_thread(a.close)
        self.factory.access.hub.snapshots.get(box.id).verified_at -= snapshot.VERIFY_SECONDS + 1
        count, _ = yield self.select(a)
        self.assertEqual(count, 1)

    @defer.inlineCallbacks
    def test_a_deleted_and_recreated_mailbox_gets_a_fresh_snapshot(self) -> Any:
        yield self.listen()
        a = yield self.client()
        yield self.in_thread(a.create, "Box")
        yield self.in_thread(a.append, "Box", None, None, message("one"))
        typ, data = yield self.in_thread(a.select, "Box")
        self.assertEqual(data, [b"1"])
        yield self.in_thread(a.close)
        yield self.in_thread(a.delete, "Box")
        yield self.in_thread(a.create, "Box")
        typ, data = yield self.in_thread(a.select, "Box")
        self.assertEqual(data, [b"0"])


class SnapshotUnitTests(unittest.TestCase):
    def row(self, uid: int, modseq: int, flags: tuple[str, ...] = (), deleted: bool = False
            ) -> ms.MessageRow:
        from datetime import datetime, timezone
        when = datetime(2026, 1, 1, tzinfo=timezone.utc)
        return ms.MessageRow(uid, 1, uid, modseq, flags, when, 10, "b%d" % uid,
                             when if deleted else None)

    def box(self, modseq: int) -> mailboxes.Mailbox:
        return mailboxes.Mailbox(1, 1, "INBOX", None, 7, 10, modseq, True)

    def test_apply_adds_changes_and_removes_and_caches_first_unseen(self) -> None:
        cache = snapshot.SnapshotCache()
        snap = cache.update(snapshot.SnapshotDelta(
            self.box(3), True, [self.row(1, 1, ("\\Seen",)), self.row(2, 2), self.row(3, 3)],
            0, None), 0.0)
        self.assertEqual((snap.uids, snap.first_unseen()), ([1, 2, 3], 2))
        delta = snapshot.SnapshotDelta(
            self.box(6), False, [self.row(2, 4, ("\\Seen", "x")), self.row(3, 5, deleted=True),
                                 self.row(5, 6)], 3, 3)
        self.assertIs(cache.update(delta, 1.0), snap)
        self.assertEqual((snap.uids, snap.modseq, snap.first_unseen()), ([1, 2, 5], 6, 5))
        self.assertEqual(snap.keywords, {"x"})
        self.assertFalse(snap.count_mismatch)
        self.assertEqual(cache.known(1, 2.0), {1: (7, 6, False)})

    def test_the_cache_drops_unselected_snapshots_beyond_its_bound(self) -> None:
        cache = snapshot.SnapshotCache(max_rows=3)
        for box_id in (1, 2, 3):
            box = mailboxes.Mailbox(box_id, 1, f"b{box_id}", None, 7, 10, 2, True)
            cache.update(snapshot.SnapshotDelta(box, True, [self.row(1, 1), self.row(2, 2)],
                                                0, None), 0.0, in_use=lambda i: i == 1)
        self.assertEqual((cache.get(1) is not None, cache.get(2), cache.get(3) is not None),
                         (True, None, True))
