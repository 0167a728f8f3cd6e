"""When the queue worker scans (delivery/worker.py), with a Clock and a runner the test holds:
a wake that arrives while a scan is finishing is not lost behind the poll timer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial import unittest

from mailgosend.delivery.policy import RetryPolicy
from mailgosend.delivery.worker import DeliverySettings, QueueService
from mailgosend.store import queue as queue_store


class HeldReads:
    """Writes answer at once (no rows due); reads wait until the test fires them."""

    def __init__(self) -> None:
        self.claims = 0
        self.reads: list[Deferred[Any]] = []

    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        if fn is queue_store.claim_due:
            self.claims += 1
            return succeed([])
        return succeed(0)

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.reads.append(d)
        return d


def settings() -> DeliverySettings:
    return DeliverySettings(hostname="mx.test", port=25,
                            retry=RetryPolicy((5,), timedelta(hours=5)),
                            delay_warning_hours=0, concurrency=2, destination_concurrency=1,
                            paused=False)


class SchedulingTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.runner = HeldReads()
        self.worker = QueueService(
            settings=settings(), runner=self.runner, keyring=None, blob_store=None,  # type: ignore[arg-type]
            workers=None, resolver=None, signer=None, bouncer=None, clock=self.clock,  # type: ignore[arg-type]
            node="n1")
        self.worker.startService()
        self.clock.advance(0)

    def test_start_scans_once_then_waits_for_the_timer(self) -> None:
        self.assertEqual(self.runner.claims, 1)
        self.runner.reads.pop().callback(None)     # nothing queued: poll in 60 s
        self.clock.advance(30)
        self.assertEqual(self.runner.claims, 1)
        self.clock.advance(31)
        self.assertEqual(self.runner.claims, 2)

    def test_a_wake_during_the_timer_query_scans_again_at_once(self) -> None:
        self.assertEqual(len(self.runner.reads), 1)  # the scan is finishing: timer query
        self.worker.wake()                            # e.g. `queue retry` or new mail
        self.runner.reads.pop().callback(None)
        self.clock.advance(0)
        self.assertEqual(self.runner.claims, 2)

    def test_wakes_are_coalesced(self) -> None:
        self.runner.reads.pop().callback(None)
        for _ in range(5):
            self.worker.wake()
        self.clock.advance(0)
        self.assertEqual(self.runner.claims, 2)

    def test_stopping_during_the_timer_query_arms_no_timer(self) -> None:
        self.worker.stopService()
        self.runner.reads.pop().callback(None)
        self.assertEqual(self.clock.getDelayedCalls(), [])
