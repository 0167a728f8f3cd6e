"""The outbound queue in the database (store/queue.py) on SQLite and PostgreSQL: one claimant
per row (also with concurrent claimers on PostgreSQL), outcomes, crash recovery of claims,
and what the CLI reads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.db.schema import delivery_log, queue, queue_recipients
from mailgosend.store import queue as q
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
LEASE = timedelta(hours=1)


class QueueStoreHelpers(DatabaseTestBase):
    """Queue rows as the tests need them (also tests/test_admin_queue.py)."""

    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=True, **kwargs)

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=False, **kwargs)

    def enqueue(self, recipients: list[str], now: datetime = NOW, sender: str = "a@alpha.test",
                blob: str = "b1") -> int:
        return self.write(q.enqueue, sender=sender, user_id=None, blob_id=blob, size=100,
                          recipients=recipients, now=now)

    def claim(self, node: str = "n1", now: datetime = NOW, limit: int = 100) -> list[q.Claim]:
        return self.write(q.claim_due, node, now, limit=limit, stale_before=now - LEASE)

    def statuses(self) -> dict[str, str]:
        return dict(self.read(lambda c: c.execute(
            select(queue_recipients.c.recipient, queue_recipients.c.status)).all()))


class QueueStoreTestsMixin(QueueStoreHelpers):
    def test_held_message_is_not_claimed_before_its_release(self) -> None:
        """Send later: stored now, due (and the worker woken) at its release time, which
        also starts its time in the queue (expiry, delay warnings)."""
        release = NOW + timedelta(hours=1)
        qid = self.write(q.enqueue, sender="a@alpha.test", user_id=None, blob_id="b1",
                         size=100, recipients=["x@beta.test"], now=NOW, release_at=release)
        self.assertEqual(self.read(q.next_due), release)
        self.assertEqual(self.claim(now=release - timedelta(seconds=1)), [])
        [claim] = self.claim(now=release)
        self.assertEqual(claim.message.id, qid)
        self.assertEqual((claim.message.release_at, claim.message.started_at),
                         (release, release))
        # a release time not in the future: an ordinary message
        self.write(q.enqueue, sender="a@alpha.test", user_id=None, blob_id="b2", size=100,
                   recipients=["y@beta.test"], now=NOW, release_at=NOW)
        [plain] = self.claim(now=NOW)
        self.assertEqual((plain.message.release_at, plain.message.started_at), (None, NOW))

    def test_claim_takes_due_rows_once_grouped_by_message(self) -> None:
        first = self.enqueue(["x@beta.test", "y@beta.test"])
        second = self.enqueue(["z@gamma.test"], blob="b2")
        self.enqueue(["later@beta.test"], now=NOW + timedelta(minutes=5), blob="b3")
        claims = self.claim()
        self.assertEqual([c.message.id for c in claims], [first, second])
        self.assertEqual([r.recipient for r in claims[0].recipients],
                         ["x@beta.test", "y@beta.test"])
        self.assertEqual(claims[0].message.sender, "a@alpha.test")
        self.assertEqual(self.claim("n2"), [])   # nobody claims a row twice
        self.assertEqual(self.statuses()["later@beta.test"], "queued")

    def test_claim_respects_the_limit(self) -> None:
        self.enqueue([f"r{i}@beta.test" for i in range(5)])
        self.assertEqual(sum(len(c.recipients) for c in self.claim(limit=3)), 3)
        self.assertEqual(sum(len(c.recipients) for c in self.claim(limit=3)), 2)

    def test_stale_claim_of_a_dead_node_is_taken_after_the_lease(self) -> None:
        self.enqueue(["x@beta.test"])
        self.claim("dead")
        self.assertEqual(self.claim("n2", now=NOW + LEASE - timedelta(seconds=1)), [])
        self.assertEqual(len(self.claim("n2", now=NOW + LEASE + timedelta(seconds=1))), 1)

    def test_restarted_node_takes_its_own_claims_back_at_once(self) -> None:
        self.enqueue(["x@beta.test", "y@beta.test"])
        self.claim("n1")
        self.assertEqual(self.write(q.release_node_claims, "other", NOW), 0)
        self.assertEqual(self.write(q.release_node_claims, "n1", NOW), 2)
        self.assertEqual(set(self.statuses().values()), {"queued"})
        self.assertEqual(len(self.claim("n1")[0].recipients), 2)

    def test_outcomes_update_rows_log_attempts_and_delete_finished_messages(self) -> None:
        qid = self.enqueue(["ok@beta.test", "later@beta.test"])
        claim = self.claim()[0]
        ok, later = claim.recipients
        retry_at = NOW + timedelta(minutes=5)
        finished = self.write(q.record_outcomes, [
            q.Outcome(ok.id, qid, ok.recipient, "delivered", 250, "2.0.0 OK", "mx.beta.test",
                      "TLSv1.3"),
            q.Outcome(later.id, qid, later.recipient, "deferred", 451, "4.3.0 busy",
                      "mx.beta.test", None, next_attempt_at=retry_at)], NOW)
        self.assertEqual(finished, [])
        entry, log = self.read(q.get_entry, qid)
        by_rcpt = {r.recipient: r for r in entry.recipients}
        self.assertEqual(by_rcpt["ok@beta.test"].status, "delivered")
        self.assertEqual((by_rcpt["later@beta.test"].status, by_rcpt["later@beta.test"].attempts,
                          by_rcpt["later@beta.test"].last_mx),
                         ("queued", 1, "mx.beta.test"))
        self.assertEqual(by_rcpt["later@beta.test"].next_attempt_at, retry_at)
        self.assertEqual([(l.status, l.code, l.tls_version) for l in log],
                         [("delivered", 250, "TLSv1.3"), ("deferred", 451, None)])
        self.assertEqual(self.read(q.next_due), retry_at)
        again = self.claim(now=retry_at)[0]
        finished = self.write(q.record_outcomes, [
            q.Outcome(again.recipients[0].id, qid, "later@beta.test", "failed", 550,
                      "5.1.1 no such user")], retry_at)
        self.assertEqual(finished, [qid])
        self.assertEqual(self.read(lambda c: c.execute(select(queue)).all()), [])
        self.assertEqual(self.read(lambda c: c.execute(select(queue_recipients)).all()), [])
        self.assertEqual(len(self.read(lambda c: c.execute(select(delivery_log)).all())), 3)

    def test_deferred_outcome_needs_a_time(self) -> None:
        with self.assertRaises(ValueError):
            q.Outcome(1, 1, "x@y", "deferred", 451, "busy")
        with self.assertRaises(ValueError):
            q.Outcome(1, 1, "x@y", "delivered", 250, "ok", next_attempt_at=NOW)
        with self.assertRaises(ValueError):
            q.Outcome(1, 1, "x@y", "lost", 250, "ok")

    def test_retry_now_and_delete(self) -> None:
        qid = self.enqueue(["x@beta.test"], now=NOW)
        self.write(lambda c: c.execute(queue_recipients.update().values(
            next_attempt_at=NOW + timedelta(hours=3))).rowcount)
        self.assertEqual(self.claim(), [])
        self.assertEqual(self.write(q.retry_now, qid, NOW), 1)
        self.assertEqual(len(self.claim()), 1)
        self.assertRaises(q.NoSuchEntry, self.write, q.retry_now, 999, NOW)
        self.assertEqual(self.write(q.delete_entry, qid, NOW), 1)
        self.assertRaises(q.NoSuchEntry, self.read, q.get_entry, qid)
        log = self.read(lambda c: c.execute(select(delivery_log.c.status)).scalars().all())
        self.assertEqual(log, ["deleted"])

    def test_unclaim_gives_rows_back_untouched(self) -> None:
        self.enqueue(["x@beta.test"])
        claim = self.claim()[0]
        self.write(q.unclaim, [r.id for r in claim.recipients], NOW)
        self.assertEqual(self.statuses(), {"x@beta.test": "queued"})
        self.assertEqual(claim.recipients[0].attempts, 0)

    def test_old_delivery_log_entries_are_purged(self) -> None:
        qid = self.enqueue(["x@beta.test"])
        self.write(q.delete_entry, qid, NOW)
        self.assertEqual(self.write(q.purge_delivery_log, NOW), 0)
        self.assertEqual(self.write(q.purge_delivery_log, NOW + timedelta(seconds=1)), 1)
        self.assertEqual(self.read(q.history, qid), [])

    def test_stats_and_list(self) -> None:
        self.enqueue(["a@beta.test", "b@beta.test"])
        self.enqueue(["c@gamma.test"], blob="b2")
        self.claim(limit=1)
        st = self.read(q.stats, NOW - timedelta(hours=1))
        self.assertEqual(st.messages, 2)
        self.assertEqual(st.by_status, {"queued": 2, "delivering": 1})
        self.assertEqual(st.by_domain, [("beta.test", 2), ("gamma.test", 1)])
        self.assertEqual(st.oldest, NOW)
        entries = self.read(q.list_entries)
        self.assertEqual([len(e.recipients) for e in entries], [2, 1])


class QueueStoreSQLiteTests(SQLiteDatabaseMixin, QueueStoreTestsMixin, unittest.TestCase):
    pass


class QueueStorePostgresTests(PostgresDatabaseMixin, QueueStoreTestsMixin, unittest.TestCase):
    def test_concurrent_claimers_never_share_a_row(self) -> None:
        """Two nodes claim at the same moment: SKIP LOCKED gives each row to one of them."""
        import threading

        self.enqueue([f"r{i}@beta.test" for i in range(200)])
        results: dict[str, list[int]] = {}
        barrier = threading.Barrier(4)

        def node(name: str) -> None:
            barrier.wait()
            taken: list[int] = []
            while True:
                claims = self.claim(name, limit=7)
                if not claims:
                    break
                taken += [r.id for c in claims for r in c.recipients]
            results[name] = taken

        threads = [threading.Thread(target=node, args=(f"n{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        everything = [i for taken in results.values() for i in taken]
        self.assertEqual(len(everything), 200)
        self.assertEqual(len(set(everything)), 200)
