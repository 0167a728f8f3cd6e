"""Snooze (mail/snooze.py) on SQLite and PostgreSQL: a message moves into the \\Snoozed
mailbox (made on demand) and comes back, unread, to where it was when the service's clock
reaches its time; IMAP clients see exactly that (LIST shows \\Snoozed; the message is in
Snoozed meanwhile, then in INBOX without \\Seen).  An IMAP MOVE out of Snoozed cancels the
snooze; two workers (two nodes) racing over one due message move it once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from mailgosend.db.engine import create_db_engine
from mailgosend.db.runner import DatabaseRunner, run_sync
from mailgosend.events import ChangeBatch, Expunged, NewMessage
from mailgosend.mail.service import MailService, UserMail
from mailgosend.mail.snooze import SnoozeError, SnoozeWaker
from mailgosend.store import snoozes as store_snoozes
from mailgosend.store.mailboxes import ensure_default_mailboxes
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.imap import KEYRING, IMAPFixture, message

HOUR = 3600.0


class SnoozeTestsMixin(IMAPFixture):
    def setUp(self) -> Any:
        d = super().setUp()
        self.clock = task.Clock()
        self.clock.advance(datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc).timestamp())
        run_sync(self.engine, ensure_default_mailboxes, self.alice.id, self.now, write=True)
        return d

    def service(self, runner: DatabaseRunner | None = None) -> MailService:
        return MailService(runner=runner or self.runner, keyring=KEYRING,
                           blob_store=self.blobs, workers=self.workers, clock=self.clock,
                           trainer=self.trainer, events=self.events)

    def later(self, hours: float) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds() + hours * HOUR, timezone.utc)

    async def setup_mail(self, *subjects: str, flags: tuple[str, ...] = ("\\Seen",)
                         ) -> tuple[MailService, UserMail, list[int]]:
        service = self.service()
        mail = await service.open_account(self.alice.email)
        inbox = await mail.get_mailbox("INBOX")
        ids = []
        for subject in subjects:
            delivered = await mail.append(inbox.id, message(subject), list(flags), None)
            [row] = await mail.service.runner.read(_email_of, delivered.message_id)
            ids.append(row)
        return service, mail, ids

    def names(self, box: str) -> list[tuple[int, tuple[str, ...]]]:
        return [(row.uid, row.flags) for row in self.rows(box)]

    # --- the service ------------------------------------------------------------------

    def test_snooze_moves_to_snoozed_then_back_unread_at_its_time(self) -> Any:
        return defer.Deferred.fromCoroutine(self._snooze_and_wake())

    async def _snooze_and_wake(self) -> None:
        service, mail, [first, second] = await self.setup_mail("first", "second")
        result = await mail.snooze([first], self.later(2))
        self.assertTrue(result.created)
        self.assertEqual((result.done, result.not_found), ([first], []))
        boxes, subscribed = await mail.mailboxes_and_subscriptions()
        snoozed = next(box for box in boxes if box.role == "snoozed")
        self.assertEqual((snoozed.name, snoozed.special_use), ("Snoozed", "\\Snoozed"))
        self.assertIn("Snoozed", subscribed)
        self.assertEqual(len(self.rows("INBOX")), 1)
        self.assertEqual(len(self.rows("Snoozed")), 1)
        [entry] = await mail.snoozed()
        self.assertEqual((entry.email_id, entry.wake_at), (first, self.later(2)))
        # Not yet: an hour later nothing moves.
        self.clock.advance(HOUR)
        self.assertEqual(await service.snoozer.wake_due(), [])
        self.assertEqual(len(self.rows("Snoozed")), 1)
        # Its time: back in INBOX, same Email id, \Seen removed; the row is gone.
        self.clock.advance(HOUR)
        [woken] = await service.snoozer.wake_due()
        self.assertEqual(woken.email_id, first)
        self.assertTrue(woken.moved)
        self.assertEqual(self.rows("Snoozed"), [])
        flags = sorted(row.flags for row in self.rows("INBOX"))
        self.assertEqual(flags, [(), ("\\Seen",)])
        rows = await mail.emails([first])
        self.assertEqual([r.mailbox_id for r in rows], [self.rows("INBOX")[0].mailbox_id])
        self.assertEqual(await mail.snoozed(), [])
        self.assertEqual(await service.snoozer.wake_due(), [])   # nothing twice

    def test_a_snoozed_folder_made_by_hand_gets_the_role(self) -> Any:
        return defer.Deferred.fromCoroutine(self._by_hand())

    async def _by_hand(self) -> None:
        _service, mail, [first] = await self.setup_mail("one")
        made = await mail.create_mailbox("Snoozed")          # a user's own, no attribute
        result = await mail.snooze([first], self.later(1))
        self.assertFalse(result.created)
        assert result.mailbox is not None
        self.assertEqual((result.mailbox.id, result.mailbox.special_use),
                         (made.id, "\\Snoozed"))
        self.assertEqual(len(self.rows("Snoozed")), 1)

    def test_bad_input_names_the_field(self) -> Any:
        return defer.Deferred.fromCoroutine(self._bad_input())

    async def _bad_input(self) -> None:
        _service, mail, [first] = await self.setup_mail("one")
        for until, words in ((self.later(-1), "future"), (self.later(0), "future"),
                             (self.later(24 * 365 * 6), "five years"),
                             (datetime(2027, 1, 1), "time zone")):
            with self.assertRaises(SnoozeError) as caught:
                await mail.snooze([first], until)
            self.assertIn("until:", str(caught.exception))
            self.assertIn(words, str(caught.exception))
        with self.assertRaises(SnoozeError) as caught:
            await mail.snooze([], self.later(1))
        self.assertIn("emailIds:", str(caught.exception))
        # Unknown (or another user's) ids are reported, not moved; nothing else happens.
        result = await mail.snooze([first + 1000], self.later(1))
        self.assertEqual((result.done, result.not_found), ([], [first + 1000]))
        self.assertEqual(len(self.rows("INBOX")), 1)

    def test_resnooze_keeps_the_return_mailbox_and_unsnooze_brings_back_now(self) -> Any:
        return defer.Deferred.fromCoroutine(self._resnooze())

    async def _resnooze(self) -> None:
        service, mail, [first] = await self.setup_mail("archived")
        archive = await mail.get_mailbox("Archive")
        inbox = await mail.get_mailbox("INBOX")
        await mail.copy(inbox, [self.rows("INBOX")[0].uid], archive, move=True)
        await mail.snooze([first], self.later(1))
        await mail.snooze([first], self.later(5))   # again, from Snoozed: a new time only
        [entry] = await mail.snoozed()
        self.assertEqual((entry.wake_at, entry.return_mailbox_id), (self.later(5), archive.id))
        self.clock.advance(2 * HOUR)
        self.assertEqual(await service.snoozer.wake_due(), [])
        result = await mail.unsnooze([first])
        self.assertEqual(result.done, [first])
        self.assertEqual(self.names("Archive"), [(2, ("\\Seen",))])   # flags kept
        self.assertEqual(await mail.snoozed(), [])

    def test_a_message_moved_out_of_snoozed_stays_there(self) -> Any:
        return defer.Deferred.fromCoroutine(self._moved_out())

    async def _moved_out(self) -> None:
        service, mail, [first, second] = await self.setup_mail("kept", "deleted")
        await mail.snooze([first, second], self.later(1))
        snoozed = await mail.get_mailbox("Snoozed")
        archive = await mail.get_mailbox("Archive")
        uids = [row.uid for row in self.rows("Snoozed")]
        await mail.copy(snoozed, uids[:1], archive, move=True)     # cancels its snooze
        self.assertEqual([s.email_id for s in await mail.snoozed()], [second])
        await mail.set_flags(snoozed.id, uids[1:], ["\\Deleted"], "add")
        await mail.expunge(snoozed.id, None)                       # deleted while snoozed
        self.clock.advance(2 * HOUR)
        [woken] = await service.snoozer.wake_due()
        self.assertEqual((woken.email_id, woken.moved), (second, False))
        self.assertEqual(len(self.rows("Archive")), 1)
        self.assertEqual(self.rows("INBOX"), [])
        self.assertEqual(await mail.snoozed(), [])

    def test_the_waker_runs_on_the_service_clock_and_publishes(self) -> Any:
        return defer.Deferred.fromCoroutine(self._waker())

    async def _waker(self) -> None:
        service, mail, [first] = await self.setup_mail("timed")
        batches: list[ChangeBatch] = []
        service.events = _Recorder(batches)
        waker = SnoozeWaker(service.snoozer, interval=86400)  # the loop: not within this test
        waker.startService()
        self.addCleanup(waker.stopService)
        await defer.gatherResults(list(service.snoozer.pending))   # its first round
        await mail.snooze([first], self.later(0.5))
        self.assertEqual(len(service.snoozer.timers), 1)   # a timer for its own time
        self.assertTrue(any(isinstance(c, Expunged) for b in batches for c in b.changes))
        batches.clear()
        self.clock.advance(0.5 * HOUR + 1)                  # the timer fires
        self.assertEqual(len(service.snoozer.pending), 1)    # the timer's wake-up
        await defer.gatherResults(list(service.snoozer.pending))
        self.assertEqual([row.flags for row in self.rows("INBOX")], [()])
        new = [c for b in batches for c in b.changes if isinstance(c, NewMessage)]
        self.assertEqual([(c.mailbox_id, c.flags) for c in new],
                         [(self.rows("INBOX")[0].mailbox_id, ())])

    # --- over IMAP ----------------------------------------------------------------------

    def test_imap_sees_snoozed_then_the_message_back_and_move_out_cancels(self) -> Any:
        return defer.Deferred.fromCoroutine(self._imap())

    async def _imap(self) -> None:
        service, mail, [first, second] = await self.setup_mail("wake me", "keep me")
        await self.listen()
        await mail.snooze([first, second], self.later(3))

        def during() -> tuple[Any, ...]:
            client = self.imapclient_client()
            try:
                listed = {name: flags for flags, _sep, name in client.list_folders()}
                client.select_folder("Snoozed")
                found = client.fetch(client.search("ALL"), ["ENVELOPE"])
                subjects = [v[b"ENVELOPE"].subject for v in found.values()]
                # The user moves "keep me" out of Snoozed by hand: its snooze is cancelled.
                uid = [u for u, v in found.items() if v[b"ENVELOPE"].subject == b"keep me"]
                client.move(uid, "Archive")
                client.select_folder("INBOX")
                inbox = client.search("ALL")
                return listed, subjects, inbox
            finally:
                client.logout()

        listed, subjects, inbox = await self.in_thread(during)
        self.assertIn(b"\\Snoozed", listed["Snoozed"])
        self.assertEqual(sorted(subjects), [b"keep me", b"wake me"])
        self.assertEqual(inbox, [])
        self.assertEqual([s.email_id for s in await mail.snoozed()], [first])
        self.clock.advance(3 * HOUR)
        woken = await service.snoozer.wake_due()
        self.assertEqual([w.email_id for w in woken], [first])

        def after() -> tuple[Any, ...]:
            client = self.imapclient_client()
            try:
                client.select_folder("INBOX")
                found = client.fetch(client.search("ALL"), ["ENVELOPE", "FLAGS"])
                inbox = [(v[b"ENVELOPE"].subject, b"\\Seen" in v[b"FLAGS"])
                         for v in found.values()]
                snoozed = client.select_folder("Snoozed")[b"EXISTS"]
                archive = client.select_folder("Archive")[b"EXISTS"]
                return inbox, snoozed, archive
            finally:
                client.logout()

        inbox, snoozed_count, archive_count = await self.in_thread(after)
        self.assertEqual(inbox, [(b"wake me", False)])       # back, unread
        self.assertEqual((snoozed_count, archive_count), (0, 1))


class SnoozeSQLiteTests(SQLiteDatabaseMixin, SnoozeTestsMixin, unittest.TestCase):
    pass


class SnoozePostgresTests(PostgresDatabaseMixin, SnoozeTestsMixin, unittest.TestCase):
    def test_two_workers_claim_a_due_message_once(self) -> Any:
        return defer.Deferred.fromCoroutine(self._two_workers())

    async def _two_workers(self) -> None:
        """Two nodes (two services, each with its own connection pool) wake at once."""
        _service, mail, ids = await self.setup_mail(*[f"m{i}" for i in range(12)])
        await mail.snooze(ids, self.later(1))
        other = create_db_engine("postgres", dsn=self.engine.url.render_as_string(
            hide_password=False))
        self.addCleanup(other.dispose)
        other_runner = DatabaseRunner(other, _reactor(), readers=4)
        other_runner.startService()
        self.addCleanup(other_runner.stopService)
        one, two = self.service(), self.service(other_runner)
        self.clock.advance(2 * HOUR)
        got = await defer.gatherResults([defer.Deferred.fromCoroutine(one.snoozer.wake_due()),
                                         defer.Deferred.fromCoroutine(two.snoozer.wake_due())])
        woken = sorted(w.email_id for batch in got for w in batch)
        self.assertEqual(woken, sorted(ids))                  # each exactly once
        self.assertEqual(len(self.rows("INBOX")), 12)
        self.assertEqual(self.rows("Snoozed"), [])
        self.assertEqual(run_sync(self.engine, store_snoozes.due, self.later(10), 100, write=False), [])


def _email_of(conn: Any, message_id: int) -> list[int]:
    from sqlalchemy import select

    from mailgosend.db.schema import messages

    return [int(r) for r in conn.execute(select(messages.c.email_id).where(
        messages.c.id == message_id)).scalars()]


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class _Recorder:
    def __init__(self, batches: list[ChangeBatch]) -> None:
        self.batches = batches

    def publish(self, batch: ChangeBatch) -> None:
        self.batches.append(batch)
