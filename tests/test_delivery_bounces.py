"""Outcome batching in delivery/bounces.py: outcomes that arrive while a write is in flight are
committed together in the next one, and every caller resumes only after its own commit."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial import unittest

from mailgosend.delivery.bounces import OutcomeBatch
from mailgosend.store.queue import Outcome

T0 = datetime(2026, 11, 22, tzinfo=timezone.utc)


class HeldRunner:
    """Records write jobs and lets the test decide when each one commits."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Any, tuple[Any, ...], Deferred[Any]]] = []

    def write(self, fn: Any, *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.jobs.append((fn, args, d))
        return d


def outcome(n: int) -> Outcome:
    return Outcome(n, n, f"r{n}@example.org", "delivered", 250, "2.0.0 ok")


class OutcomeBatchTests(unittest.SynchronousTestCase):
    def test_outcomes_arriving_during_a_write_share_the_next_one(self) -> None:
        runner = HeldRunner()
        batch = OutcomeBatch(runner)  # type: ignore[arg-type]
        first = batch.add([outcome(1)], T0)
        second = batch.add([outcome(2)], T0)
        third = batch.add([outcome(3), outcome(4)], T0)
        self.assertEqual(len(runner.jobs), 1)
        self.assertEqual([o.recipient_id for o in runner.jobs[0][1][0]], [1])
        self.assertNoResult(second)
        runner.jobs[0][2].callback([1])
        self.successResultOf(first)
        self.assertNoResult(second)          # not committed yet: it is in the second write
        self.assertEqual(len(runner.jobs), 2)
        self.assertEqual([o.recipient_id for o in runner.jobs[1][1][0]], [2, 3, 4])
        runner.jobs[1][2].callback([2, 3])
        self.successResultOf(second)
        self.successResultOf(third)

    def test_a_failed_write_fails_its_callers_only(self) -> None:
        runner = HeldRunner()
        batch = OutcomeBatch(runner)  # type: ignore[arg-type]
        first = batch.add([outcome(1)], T0)
        second = batch.add([outcome(2)], T0)
        runner.jobs[0][2].errback(RuntimeError("database gone"))
        self.failureResultOf(first, RuntimeError)
        runner.jobs[1][2].callback([])
        self.successResultOf(second)


class SuccessReportChoiceTests(unittest.SynchronousTestCase):
    """Which delivered recipients get a "relayed" report (RFC 3461 §5.2.2, issue 9 item 3):
    NOTIFY=SUCCESS ones handed to a peer without DSN; with DSN the peer reports."""

    def claim(self, *notify: Any) -> Any:
        from mailgosend.store.queue import Claim, QueuedMessage, QueuedRecipient
        message = QueuedMessage(7, "alice@alpha.test", 1, "b", 10, None, None, False, False,
                                T0, False)
        return Claim(message, tuple(
            QueuedRecipient(n, 7, f"r{n}@example.org", "example.org", "delivering", 0, T0,
                            value, None, None) for n, value in enumerate(notify, 1)))

    def reports(self, claim: Any, peer_dsn: bool) -> list[Any]:
        from mailgosend.delivery.bounces import Bouncer
        bouncer = Bouncer.__new__(Bouncer)
        bouncer._max_age = None  # type: ignore[attr-defined]
        outcomes = [outcome(r.id) for r in claim.recipients]
        return bouncer._reports(claim, outcomes, T0, False, peer_dsn)

    def test_relayed_only_for_notify_success_and_a_peer_without_dsn(self) -> None:
        claim = self.claim("SUCCESS,FAILURE", None, "FAILURE", "NEVER", "SUCCESS")
        [report] = self.reports(claim, peer_dsn=False)
        self.assertEqual(report.kind, "success")
        self.assertEqual([(r.recipient, r.action, r.status) for r in report.recipients],
                         [("r1@example.org", "relayed", "2.0.0"),
                          ("r5@example.org", "relayed", "2.0.0")])
        self.assertEqual(self.reports(claim, peer_dsn=True), [])

    def test_no_report_for_the_null_sender(self) -> None:
        from dataclasses import replace
        claim = self.claim("SUCCESS")
        claim = replace(claim, message=replace(claim.message, sender=""))
        self.assertEqual(self.reports(claim, peer_dsn=False), [])
