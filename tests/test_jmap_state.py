"""JMAP state (RFC 8620 §5.2, RFC 8621 §3, §4.3): Email/changes, Thread/get|changes and the
state strings, over a real database on both back ends, after every kind of mail change:
delivery, IMAP-style STORE and EXPUNGE, MOVE and COPY, mailbox rename and delete, across a
restart, and after the maintenance purge (the only cause of cannotCalculateChanges).
Threading by keyed hashes of Message-IDs (store/threads.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import select
from twisted.internet import defer, reactor
from twisted.internet.interfaces import IReactorFromThreads
from twisted.trial import unittest

from mailgosend.db.runner import DatabaseRunner, run_sync
from mailgosend.db.schema import mail_state, messages, thread_refs
from mailgosend.jmap.state import format_state, parse_state
from mailgosend.mail.changes import Position
from mailgosend.store.emails import purge_tombstones
from mailgosend.store.messages import purge_expunged
from mailgosend.store.threads import base_subject, message_ids
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.imap import IMAPFixture, message
from tests.support.jmapcalls import JMAPCallFixture, mail_message


class StateStringTests(unittest.TestCase):
    def test_round_trip_and_refusals(self) -> None:
        for position in (Position(0), Position(42), Position(42, 7)):
            self.assertEqual(parse_state(format_state(position)), position)
        for bad in ("", "42", "s", "s-1", "s01", "s4.0", "x1", 42, None, "s1.2.3"):
            self.assertIsNone(parse_state(bad), bad)

    def test_base_subject_and_message_ids(self) -> None:
        self.assertEqual(base_subject("Re: [list] Fwd:  Lunch  (fwd)"), "lunch")
        self.assertEqual(base_subject("AW: RE[2]: Lunch"), "lunch")
        self.assertEqual(base_subject("Lunch tomorrow"), "lunch tomorrow")
        self.assertEqual(message_ids(" <a@x>\r\n <b @y> junk <>"), ["a@x", "b@y"])


class StateTestsMixin(JMAPCallFixture, IMAPFixture):
    def setUp(self) -> Any:
        d = super().setUp()
        return d

    @defer.inlineCallbacks
    def inbox(self) -> Any:
        box = yield self.mail.get_mailbox("INBOX")
        return box

    # --- Email/changes ---------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_email_changes_after_delivery_store_and_expunge(self) -> Any:
        yield self.open_mail()
        s0 = yield self.state()
        one = yield self.send(message("one"))
        two = yield self.send(message("two"))
        m1, m2 = f"M{one.email_id}", f"M{two.email_id}"
        self.assertEqual(one.email_id, one.message_id)  # a new Email's id is its row's id
        created, updated, destroyed, result = yield self.changes("Email/changes", s0)
        self.assertEqual((created, updated, destroyed), ({m1, m2}, set(), set()))
        self.assertFalse(result["hasMoreChanges"])
        s1 = result["newState"]
        self.assertEqual(s1, (yield self.state()))
        inbox = yield self.inbox()
        yield self.mail.set_flags(inbox.id, [one.uid], ["\\Seen"], "add")
        created, updated, destroyed, result = yield self.changes("Email/changes", s1)
        self.assertEqual((created, updated, destroyed), (set(), {m1}, set()))
        s2 = result["newState"]
        yield self.mail.set_flags(inbox.id, [two.uid], ["\\Deleted"], "add")
        yield self.mail.expunge(inbox.id, None)
        created, updated, destroyed, _ = yield self.changes("Email/changes", s2)
        self.assertEqual((created, updated, destroyed), (set(), set(), {m2}))
        # From the start: created then destroyed is not mentioned (RFC 8620 §5.2).
        created, updated, destroyed, _ = yield self.changes("Email/changes", s0)
        self.assertEqual((created, updated, destroyed), ({m1}, set(), set()))
        # Nothing since now.
        now = yield self.state()
        created, updated, destroyed, result = yield self.changes("Email/changes", now)
        self.assertEqual((created, updated, destroyed, result["newState"]),
                         (set(), set(), set(), now))

    @defer.inlineCallbacks
    def test_move_keeps_the_email_id_and_copy_makes_a_new_one(self) -> Any:
        yield self.open_mail()
        delivered = yield self.send(message("moving"))
        inbox = yield self.inbox()
        archive = yield self.mail.get_mailbox("Archive")
        s0 = yield self.state()
        moved = yield self.mail.copy(inbox, [delivered.uid], archive, move=True)
        (new,) = moved.delivered
        self.assertEqual((new.email_id, new.thread_id),
                         (delivered.email_id, delivered.thread_id))
        created, updated, destroyed, result = yield self.changes("Email/changes", s0)
        self.assertEqual((created, updated, destroyed),
                         (set(), {f"M{delivered.email_id}"}, set()))
        rows = yield self.mail.emails([delivered.email_id])
        self.assertEqual([r.mailbox_id for r in rows], [archive.id])
        s1 = result["newState"]
        copied = yield self.mail.copy(archive, [new.uid], inbox, move=False)
        (copy,) = copied.delivered
        self.assertNotEqual(copy.email_id, delivered.email_id)
        self.assertEqual(copy.thread_id, delivered.thread_id)  # same message, same thread
        created, updated, destroyed, _ = yield self.changes("Email/changes", s1)
        self.assertEqual((created, updated, destroyed), ({f"M{copy.email_id}"}, set(), set()))
        # The thread gained an Email: Thread/changes says updated.
        created, updated, destroyed, _ = yield self.changes("Thread/changes", s1)
        self.assertEqual((created, updated, destroyed),
                         (set(), {f"T{delivered.thread_id}"}, set()))
        thread = yield self.jmap("Thread/get", {"ids": [f"T{delivered.thread_id}"]})
        self.assertEqual(thread["list"][0]["emailIds"],
                         [f"M{delivered.email_id}", f"M{copy.email_id}"])

    @defer.inlineCallbacks
    def test_mailbox_delete_destroys_its_emails_and_threads(self) -> Any:
        yield self.open_mail()
        box = yield self.mail.create_mailbox("Projects")
        live = yield self.send(message("kept"), target=box.id)
        gone = yield self.send(message("expunged earlier"), target=box.id)
        yield self.mail.set_flags(box.id, [gone.uid], ["\\Deleted"], "add")
        yield self.mail.expunge(box.id, None)
        s0 = yield self.state()
        yield self.mail.delete_mailbox("Projects")
        created, updated, destroyed, _ = yield self.changes("Email/changes", s0)
        self.assertEqual((created, updated, destroyed), (set(), set(), {f"M{live.email_id}"}))
        created, updated, destroyed, _ = yield self.changes("Thread/changes", s0)
        self.assertEqual((created, updated, destroyed), (set(), set(), {f"T{live.thread_id}"}))
        created, updated, destroyed, _ = yield self.changes("Mailbox/changes", s0)
        self.assertEqual(destroyed, {f"B{box.id}"})
        # The email expunged before s0 is not reported again.
        self.assertNotIn(f"M{gone.email_id}", destroyed)

    @defer.inlineCallbacks
    def test_rename_inbox_moves_its_emails(self) -> Any:
        yield self.open_mail()
        delivered = yield self.send(message("old inbox"))
        s0 = yield self.state()
        yield self.mail.rename_mailbox("INBOX", "Old")
        created, updated, destroyed, _ = yield self.changes("Email/changes", s0)
        self.assertEqual((created, updated, destroyed),
                         (set(), {f"M{delivered.email_id}"}, set()))

    @defer.inlineCallbacks
    def test_max_changes_pages_with_intermediate_states(self) -> Any:
        yield self.open_mail()
        s0 = yield self.state()
        ids = set()
        for i in range(5):
            delivered = yield self.send(message(f"page {i}"))
            ids.add(f"M{delivered.email_id}")
        inbox = yield self.inbox()
        yield self.mail.set_flags(inbox.id, None, ["$Tagged"], "add")  # one MODSEQ for all
        seen: set[str] = set()
        state, pages = s0, 0
        while True:
            created, updated, destroyed, result = yield self.changes(
                "Email/changes", state, maxChanges=2)
            self.assertLessEqual(len(created) + len(updated) + len(destroyed), 2)
            self.assertFalse(seen & (created | updated))
            seen |= created | updated
            state, pages = result["newState"], pages + 1
            if not result["hasMoreChanges"]:
                break
        self.assertEqual((seen, pages), (ids, 3))
        self.assertEqual(state, (yield self.state()))
        bad = yield self.jmap("Email/changes", {"sinceState": s0, "maxChanges": 0})
        self.assertEqual(bad["error"], "invalidArguments")

    @defer.inlineCallbacks
    def test_unknown_future_and_malformed_states_cannot_be_calculated(self) -> Any:
        yield self.open_mail()
        now = parse_state((yield self.state()))
        assert now is not None
        for since in ("nonsense", format_state(Position(now.modseq + 5)), "s1.x"):
            result = yield self.jmap("Email/changes", {"sinceState": since})
            self.assertEqual(result["error"], "cannotCalculateChanges", since)
        result = yield self.jmap("Email/changes", {"sinceState": 7})
        self.assertEqual(result["error"], "invalidArguments")

    @defer.inlineCallbacks
    def test_changes_survive_a_restart(self) -> Any:
        yield self.open_mail()
        s0 = yield self.state()
        delivered = yield self.send(message("before restart"))
        yield self.runner.stopService()
        self.runner = DatabaseRunner(self.engine, cast(IReactorFromThreads, reactor))
        self.runner.startService()  # a new runner and service: nothing kept in memory
        yield self.open_mail(self.service())
        created, updated, destroyed, _ = yield self.changes("Email/changes", s0)
        self.assertEqual(created, {f"M{delivered.email_id}"})

    @defer.inlineCallbacks
    def test_cannot_calculate_only_below_the_purge_floor(self) -> Any:
        yield self.open_mail()
        s0 = yield self.state()
        first = yield self.send(message("purged"))
        box = yield self.mail.create_mailbox("Doomed")
        yield self.send(message("in doomed"), target=box.id)
        inbox = yield self.inbox()
        s1 = yield self.state()
        yield self.mail.set_flags(inbox.id, [first.uid], ["\\Deleted"], "add")
        yield self.mail.expunge(inbox.id, None)
        s2 = yield self.state()
        yield self.mail.delete_mailbox("Doomed")
        s3 = yield self.state()
        later = self.mail.service.now() + timedelta(days=2)
        result = yield self.jmap("Email/changes", {"sinceState": s0})
        self.assertNotIn("error", result)  # nothing purged yet: any old state works
        purged = yield self.runner.write(purge_expunged, before=later)
        self.assertEqual(purged, 1)
        for since in (s0, s1):
            result = yield self.jmap("Email/changes", {"sinceState": since})
            self.assertEqual(result["error"], "cannotCalculateChanges")
        created, updated, destroyed, _ = yield self.changes("Email/changes", s2)
        self.assertEqual(len(destroyed), 1)  # the deleted mailbox's email, from a tombstone
        yield self.runner.write(purge_tombstones, before=later)
        result = yield self.jmap("Mailbox/changes", {"sinceState": s2})
        self.assertEqual(result["error"], "cannotCalculateChanges")
        result = yield self.jmap("Mailbox/changes", {"sinceState": s3})
        self.assertNotIn("error", result)

    @defer.inlineCallbacks
    def test_purge_of_rows_a_move_left_costs_no_history(self) -> Any:
        yield self.open_mail()
        s0 = yield self.state()
        delivered = yield self.send(message("moved away"))
        inbox = yield self.inbox()
        archive = yield self.mail.get_mailbox("Archive")
        yield self.mail.copy(inbox, [delivered.uid], archive, move=True)
        yield self.runner.write(purge_expunged,
                                before=self.mail.service.now() + timedelta(days=2))
        created, _, _, _ = yield self.changes("Email/changes", s0)
        self.assertEqual(created, {f"M{delivered.email_id}"})

    @defer.inlineCallbacks
    def test_modseq_comes_from_one_counter_per_user(self) -> Any:
        yield self.open_mail()
        a = yield self.send(message("a"))
        archive = yield self.mail.get_mailbox("Archive")
        b = yield self.send(message("b"), target=archive.id)
        self.assertEqual(b.modseq, a.modseq + 1)  # other mailbox, same counter
        inbox = yield self.inbox()
        self.assertEqual(inbox.highestmodseq, a.modseq)
        counter = run_sync(self.engine, lambda conn: conn.execute(
            select(mail_state.c.modseq).where(mail_state.c.user_id == self.alice.id))
            .scalar_one(), write=False)
        self.assertEqual(counter, b.modseq)
        self.assertEqual((yield self.state()), f"s{counter}")

    @defer.inlineCallbacks
    def test_concurrent_changes_are_all_reported_in_pages(self) -> Any:
        # Deliveries and flag changes racing each other: the counter's row lock makes the
        # values commit in order, so paging from any state misses nothing.
        yield self.open_mail()
        first = yield self.send(message("base"))
        inbox = yield self.inbox()
        s0 = yield self.state()
        work = [self.send(message(f"racing {i}")) for i in range(8)]
        work += [self.mail.set_flags(inbox.id, [first.uid], [f"$k{i}"], "add")
                 for i in range(4)]
        all_done = defer.DeferredList(work, fireOnOneErrback=True, consumeErrors=True)
        finished: list[Any] = []
        all_done.addCallback(finished.append)
        seen_created, seen_updated, state = set(), set(), s0
        while True:  # a client following the changes while they are being made
            was_finished = bool(finished)
            created, updated, _, result = yield self.changes("Email/changes", state,
                                                             maxChanges=3)
            seen_created |= created
            seen_updated |= updated
            state = result["newState"]
            if was_finished and not result["hasMoreChanges"]:
                break
        expected = {f"M{r.email_id}" for ok, r in finished[0][:8]}
        self.assertEqual((seen_created, seen_updated), (expected, {f"M{first.email_id}"}))
        rows = yield self.mail.emails([first.email_id])
        self.assertEqual(len([f for f in rows[0].flags if f.startswith("$k")]), 4)

    # --- threads -------------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_replies_join_their_parents_thread(self) -> Any:
        yield self.open_mail()
        s0 = yield self.state()
        parent = yield self.send(mail_message("Lunch", "<p1@example.net>"))
        reply = yield self.send(mail_message("Re: Lunch", "<r1@example.net>",
                                             in_reply_to="<p1@example.net>",
                                             references="<p1@example.net>"))
        deep = yield self.send(mail_message("RE: [team] Lunch", "<r2@example.net>",
                                            references="<p1@example.net>\r\n <r1@example.net>"))
        self.assertEqual({reply.thread_id, deep.thread_id}, {parent.thread_id})
        self.assertEqual(parent.thread_id, parent.email_id)
        created, updated, destroyed, _ = yield self.changes("Thread/changes", s0)
        self.assertEqual((created, updated, destroyed), ({f"T{parent.thread_id}"}, set(), set()))
        result = yield self.jmap("Thread/get", {"ids": [f"T{parent.thread_id}", "T999999",
                                                         "junk"]})
        self.assertEqual(result["list"], [{"id": f"T{parent.thread_id}", "emailIds": [
            f"M{parent.email_id}", f"M{reply.email_id}", f"M{deep.email_id}"]}])
        self.assertEqual(result["notFound"], ["T999999", "junk"])

    @defer.inlineCallbacks
    def test_reply_arriving_before_its_parent(self) -> Any:
        yield self.open_mail()
        reply = yield self.send(mail_message("Re: Plans", "<r@example.net>",
                                             in_reply_to="<p@example.net>"))
        parent = yield self.send(mail_message("Plans", "<p@example.net>"))
        self.assertEqual(parent.thread_id, reply.thread_id)

    @defer.inlineCallbacks
    def test_unrelated_and_changed_subject_mail_stays_apart(self) -> Any:
        yield self.open_mail()
        parent = yield self.send(mail_message("Lunch", "<p@example.net>"))
        other = yield self.send(mail_message("Lunch", "<q@example.net>"))  # same subject only
        new_topic = yield self.send(mail_message("Quarterly report", "<n@example.net>",
                                                 in_reply_to="<p@example.net>"))
        no_ids = yield self.send(b"Subject: Lunch\r\n\r\nno ids\r\n")
        threads = {parent.thread_id, other.thread_id, new_topic.thread_id, no_ids.thread_id}
        self.assertEqual(len(threads), 4)

    @defer.inlineCallbacks
    def test_no_plaintext_message_ids_are_stored(self) -> Any:
        yield self.open_mail()
        yield self.send(mail_message("Secret", "<very-secret-id@example.net>"))
        hashes = run_sync(self.engine, lambda conn: [bytes(r) for r in conn.execute(
            select(thread_refs.c.ref_hash)).scalars()], write=False)
        self.assertEqual(len(hashes), 1)
        self.assertEqual(len(hashes[0]), 16)
        self.assertNotIn(b"secret", hashes[0])

    @defer.inlineCallbacks
    def test_thread_of_expunged_messages_is_destroyed_and_not_reused(self) -> Any:
        yield self.open_mail()
        first = yield self.send(mail_message("Gone", "<g@example.net>"))
        inbox = yield self.inbox()
        s0 = yield self.state()
        yield self.mail.set_flags(inbox.id, [first.uid], ["\\Deleted"], "add")
        yield self.mail.expunge(inbox.id, None)
        created, updated, destroyed, result = yield self.changes("Thread/changes", s0)
        self.assertEqual(destroyed, {f"T{first.thread_id}"})
        again = yield self.send(mail_message("Re: Gone", "<h@example.net>",
                                             in_reply_to="<g@example.net>"))
        self.assertNotEqual(again.thread_id, first.thread_id)  # ids are never reused
        later = yield self.send(mail_message("Re: Gone", "<i@example.net>",
                                             references="<g@example.net> <h@example.net>"))
        self.assertEqual(later.thread_id, again.thread_id)

    @defer.inlineCallbacks
    def test_thread_get_ids_null_lists_every_thread(self) -> Any:
        yield self.open_mail()
        one = yield self.send(message("x"))
        two = yield self.send(message("y"))
        result = yield self.jmap("Thread/get", {"ids": None})
        self.assertEqual({t["id"] for t in result["list"]},
                         {f"T{one.thread_id}", f"T{two.thread_id}"})

    @defer.inlineCallbacks
    def test_email_ids_of_other_users_are_not_found(self) -> Any:
        yield self.open_mail()
        mine = yield self.send(message("mine"))
        bob = yield self.mail.service.open_account(self.bob.email)
        self.assertEqual((yield bob.emails([mine.email_id])), [])
        self.assertEqual((yield bob.thread_emails([mine.thread_id])), [])
        rows = yield self.mail.emails([mine.email_id])
        self.assertEqual([(r.email_id, r.uid, r.size) for r in rows],
                         [(mine.email_id, mine.uid, mine.size)])


class StateSQLiteTests(SQLiteDatabaseMixin, StateTestsMixin, unittest.TestCase):
    pass


class StatePostgresTests(PostgresDatabaseMixin, StateTestsMixin, unittest.TestCase):
    pass
