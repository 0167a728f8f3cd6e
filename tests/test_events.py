# -*- test-case-name: tests.test_events -*-
"""The change feed (mailgosend/events.py): batches per user, followers, resync, and which
changes concern which mailbox."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from twisted.trial import unittest

from mailgosend.events import (ChangeBatch, Events, Expunged, FlagsChanged, MailboxCreated,
                               MailboxDeleted, MailboxRenamed, NewMessage, QueueChanged,
                               RemoteChange, Resync, new_message_batches)
from mailgosend.store.messages import Delivered, FlagChange

WHEN = datetime(2026, 3, 14, 9, 26, 53, tzinfo=timezone.utc)


def delivered(user_id: int, mailbox_id: int, uid: int) -> Delivered:
    return Delivered(100 + uid, user_id, mailbox_id, 7, uid, 40 + uid, f"blob{uid}", 512,
                     ("\\Seen",), WHEN)


class ForMailboxTests(unittest.TestCase):
    CASES: list[tuple[Any, int, bool]] = [
        (NewMessage(5, 1, 2, (), 10, WHEN, 1, "b"), 5, True),
        (NewMessage(5, 1, 2, (), 10, WHEN, 1, "b"), 6, False),
        (FlagsChanged(5, (FlagChange(1, 3, ("\\Seen",)),)), 5, True),
        (Expunged(6, (1, 2)), 5, False),
        (MailboxCreated(5, "Archive"), 5, True),
        (MailboxDeleted(6, "Old"), 6, True),
        (MailboxRenamed(9, "INBOX", "Old", emptied_id=5), 5, True),  # RENAME INBOX empties it
        (MailboxRenamed(9, "A", "B"), 5, False),
        (RemoteChange("new", 5, 3, 3, 9), 5, True),
        (RemoteChange("new", 6, 3, 3, 9), 5, False),
        (RemoteChange("mailbox", None), 5, True),
        (Resync(), 5, True),
    ]

    def test_which_changes_concern_a_mailbox(self) -> None:
        for change, mailbox_id, expected in self.CASES:
            batch = ChangeBatch(1, (change,))
            self.assertEqual(bool(batch.for_mailbox(mailbox_id)), expected, (change, mailbox_id))


class EventsTests(unittest.TestCase):
    def test_a_commit_gives_one_batch_per_user_with_the_rows(self) -> None:
        batches = new_message_batches([delivered(1, 10, 1), delivered(2, 20, 1),
                                       delivered(1, 10, 2)])
        self.assertEqual([(b.user_id, [c.uid for c in b.changes]) for b in batches],
                         [(1, [1, 2]), (2, [1])])
        first = batches[0].changes[0]
        assert isinstance(first, NewMessage)
        self.assertEqual((first.mailbox_id, first.modseq, first.flags, first.size,
                          first.internal_date, first.message_id, first.blob_id),
                         (10, 41, ("\\Seen",), 512, WHEN, 101, "blob1"))

    def test_subscribers_get_their_users_batches_and_followers_every_batch(self) -> None:
        events = Events()
        alice: list[ChangeBatch] = []
        everyone: list[ChangeBatch] = []
        unsubscribe = events.subscribe(1, alice.append)
        events.follow(everyone.append)
        events.publish_all(new_message_batches([delivered(1, 10, 1), delivered(2, 20, 1)]))
        self.assertEqual([b.user_id for b in alice], [1])
        self.assertEqual([b.user_id for b in everyone], [1, 2])
        self.assertEqual(events.subscriber_count(1), 1)
        unsubscribe()
        self.assertEqual(events.subscriber_count(1), 0)
        events.publish(ChangeBatch(1, ()))  # an empty batch is not published
        self.assertEqual(len(everyone), 2)

    def test_a_failing_subscriber_does_not_stop_the_others(self) -> None:
        events = Events()
        seen: list[ChangeBatch] = []

        def broken(batch: ChangeBatch) -> None:
            raise RuntimeError("boom")

        events.subscribe(1, broken)
        events.subscribe(1, seen.append)
        events.publish(ChangeBatch(1, (Expunged(10, (1,)),)))
        self.assertEqual(len(seen), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_resync_reaches_every_subscribed_user_as_remote(self) -> None:
        events = Events()
        seen: list[ChangeBatch] = []
        events.subscribe(1, seen.append)
        events.subscribe(2, seen.append)
        events.resync()
        self.assertEqual(sorted(b.user_id for b in seen), [1, 2])
        self.assertTrue(all(b.remote and b.changes == (Resync(),) for b in seen))

    def test_queue_watchers_are_woken(self) -> None:
        events = Events()
        woken: list[QueueChanged] = []
        events.watch_queue(woken.append)
        events.publish_queued(QueueChanged(12))
        self.assertEqual(woken, [QueueChanged(12)])
