# -*- test-case-name: tests.test_pgnotify -*-
"""The change feed across nodes (mailgosend/pgnotify.py): the compact payload, and two relays
on one real PostgreSQL database (a node ignores its own notifications, a lost LISTEN
connection comes back and makes every subscriber resync)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

import psycopg
from twisted.internet import defer, reactor
from twisted.trial import unittest

from mailgosend.events import (ChangeBatch, Events, Expunged, FlagsChanged, IdentityChanged,
                               MailboxDeleted, MailboxRenamed, NewMessage, RemoteChange,
                               Resync, SubmissionChanged, VacationChanged)
from mailgosend.pgnotify import MAX_PAYLOAD, ChangeRelay, decode, encode
from mailgosend.store.messages import FlagChange
from tests.support.db import PostgresDatabaseMixin
from tests.support.imap import deferLater

WHEN = datetime(2026, 3, 14, 9, 26, 53, tzinfo=timezone.utc)


def new(mailbox_id: int, uid: int, modseq: int) -> NewMessage:
    return NewMessage(mailbox_id, uid, modseq, (), 100, WHEN, uid, "blob")


class PayloadTests(unittest.TestCase):
    CASES: list[tuple[tuple[Any, ...], list[Any]]] = [
        ((new(5, 3, 10), new(5, 4, 11)), [RemoteChange("new", 5, 3, 4, 11)]),
        ((FlagsChanged(5, (FlagChange(2, 12, ()), FlagChange(7, 12, ("\\Seen",)))),),
         [RemoteChange("flags", 5, 2, 7, 12)]),
        ((Expunged(5, (1, 9)),), [RemoteChange("expunge", 5, 1, 9, 0)]),
        ((new(6, 1, 2), Expunged(5, (4,))),
         [RemoteChange("new", 6, 1, 1, 2), RemoteChange("expunge", 5, 4, 4, 0)]),
        ((MailboxDeleted(8, "Old"),), [RemoteChange("mailbox", 8)]),
        ((MailboxRenamed(9, "INBOX", "Old", emptied_id=5),), [RemoteChange("mailbox", 5)]),
        ((Resync(),), []),
        # The JMAP account data's changes cross as themselves (jmap/push.py names them).
        ((IdentityChanged(4),), [IdentityChanged(4)]),
        ((IdentityChanged(),), [IdentityChanged()]),
        ((SubmissionChanged(12), SubmissionChanged(12)), [SubmissionChanged(12)]),
        ((VacationChanged(),), [VacationChanged()]),
    ]

    def test_a_batch_round_trips_as_a_summary(self) -> None:
        for changes, expected in self.CASES:
            payloads = encode("node1", ChangeBatch(42, changes))
            decoded = [decode(p) for p in payloads]
            got = [c for d in decoded if d is not None for c in d[1].changes]
            self.assertEqual(got, expected, changes)
            for found in decoded:
                assert found is not None
                self.assertEqual((found[0], found[1].user_id, found[1].remote),
                                 ("node1", 42, True))

    def test_a_remote_batch_is_not_sent_on(self) -> None:
        self.assertEqual(encode("n", ChangeBatch(1, (new(5, 1, 1),), remote=True)), [])

    def test_many_mailboxes_are_cut_below_the_postgres_limit(self) -> None:
        batch = ChangeBatch(1, tuple(new(box, 4_000_000_000, 9_000_000_000_000)
                                     for box in range(1, 2000)))
        payloads = encode("0123456789abcdef", batch)
        self.assertGreater(len(payloads), 1)
        self.assertTrue(all(len(p.encode()) <= MAX_PAYLOAD < 8000 for p in payloads))
        decoded = [decode(p) for p in payloads]
        boxes = [c.mailbox_id for d in decoded if d is not None for c in d[1].changes]
        self.assertEqual(boxes, list(range(1, 2000)))

    def test_unreadable_payloads_are_refused(self) -> None:
        for payload in ["", "v2 n 1 n:1:1-1:1", "v1 n 1", "v1 n x n:1:1-1:1",
                        "v1 n 1 q:1:1-1:1", "v1 n 1 n:1:1:1"]:
            self.assertIsNone(decode(payload), payload)


class RelayTests(PostgresDatabaseMixin, unittest.TestCase):
    def relay(self, events: Events, node_id: str) -> ChangeRelay:
        relay = ChangeRelay(self.engine, events, reactor, node_id=node_id)
        relay.startService()
        self.addCleanup(relay.stopService)
        return relay

    @defer.inlineCallbacks
    def wait_for(self, condition: Callable[[], bool]) -> Any:
        """A bound, not a timing check."""
        for _ in range(1500):
            if condition():
                return
            yield deferLater(0.01)
        self.fail("gave up waiting")

    @defer.inlineCallbacks
    def test_another_node_hears_a_change_and_the_sender_does_not(self) -> Any:
        events_a, events_b = Events(), Events()
        relay_a, relay_b = self.relay(events_a, "a"), self.relay(events_b, "b")
        yield self.wait_for(lambda: relay_a.connected.is_set() and relay_b.connected.is_set())
        heard_a: list[ChangeBatch] = []
        heard_b: list[ChangeBatch] = []
        events_a.subscribe(7, heard_a.append)
        events_b.subscribe(7, heard_b.append)
        events_a.publish(ChangeBatch(7, (new(3, 1, 5),)))
        yield self.wait_for(lambda: bool(heard_b))
        self.assertEqual(heard_b, [ChangeBatch(7, (RemoteChange("new", 3, 1, 1, 5),),
                                               remote=True)])
        events_b.publish(ChangeBatch(8, (Expunged(3, (1,)),)))  # to a's other users
        events_b.publish(ChangeBatch(7, (Expunged(3, (1,)),)))
        yield self.wait_for(lambda: len(heard_a) == 2)
        self.assertEqual(heard_a[1].changes, (RemoteChange("expunge", 3, 1, 1, 0),))
        # A marker from a: once b hears it, b's own earlier notification has come back too
        # (one channel, delivered in commit order), and was ignored.
        events_a.publish(ChangeBatch(7, (new(3, 2, 7),)))
        yield self.wait_for(lambda: len(heard_b) == 3)
        self.assertEqual([(b.remote, b.changes[0].__class__.__name__) for b in heard_b],
                         [(True, "RemoteChange"), (False, "Expunged"), (True, "RemoteChange")])
        self.assertEqual([b.remote for b in heard_a], [False, True, False])
        # A JMAP submission's change on a reaches b as that change (JMAP push there).
        events_a.publish(ChangeBatch(7, (SubmissionChanged(9),)))
        yield self.wait_for(lambda: len(heard_b) == 4)
        self.assertEqual(heard_b[3], ChangeBatch(7, (SubmissionChanged(9),), remote=True))

    @defer.inlineCallbacks
    def test_a_lost_listen_connection_comes_back_and_subscribers_resync(self) -> Any:
        events = Events()
        relay = self.relay(events, "a")
        yield self.wait_for(relay.connected.is_set)
        heard: list[ChangeBatch] = []
        events.subscribe(7, heard.append)
        dsn = self.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)

        def kill_listener() -> int:
            with psycopg.connect(dsn, autocommit=True) as admin:
                return len(admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
                ).fetchall())

        from twisted.internet.threads import deferToThread
        killed = yield deferToThread(kill_listener)
        self.assertEqual(killed, 1)
        yield self.wait_for(lambda: bool(heard))
        self.assertEqual(heard, [ChangeBatch(7, (Resync(),), remote=True)])
        other = Events()
        self.relay(other, "b")
        heard_again: list[ChangeBatch] = []
        events.subscribe(7, heard_again.append)
        yield self.wait_for(lambda: relay.connected.is_set())
        other.publish(ChangeBatch(7, (new(3, 2, 6),)))
        yield self.wait_for(lambda: bool(heard_again))
        self.assertEqual(heard_again[0].changes, (RemoteChange("new", 3, 2, 2, 6),))

    @defer.inlineCallbacks
    def test_a_burst_arrives_whole_and_in_order(self) -> Any:
        events_a, events_b = Events(), Events()
        relay_a, relay_b = self.relay(events_a, "a"), self.relay(events_b, "b")
        yield self.wait_for(lambda: relay_a.connected.is_set() and relay_b.connected.is_set())
        heard: list[ChangeBatch] = []
        events_b.subscribe(7, heard.append)
        for uid in range(1, 301):
            events_a.publish(ChangeBatch(7, (new(3, uid, uid + 10),)))
        yield self.wait_for(lambda: len(heard) == 300)
        self.assertEqual([b.changes[0].first_uid for b in heard],  # type: ignore[union-attr]
                         list(range(1, 301)))
