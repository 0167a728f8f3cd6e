"""``mailgosend queue``: list, show, retry, retry-all, delete and stats against a real
SQLite database; bad ids exit 2 naming ID and change nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from mailgosend.config import load
from mailgosend.db.engine import create_db_engine
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import queue_recipients
from mailgosend.store import queue as q
from tests.test_cli import CLITestCase

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
FAR = datetime(2099, 1, 1, tzinfo=timezone.utc)


class QueueCLITests(CLITestCase):
    def setUp(self) -> None:
        super().setUp()
        self.assertEqual(self.run_cli("migrate")[0], 0)
        config = load(self.config_path, create=False)
        self.engine = create_db_engine("sqlite", sqlite_path=config["DB_PATH"])
        self.addCleanup(self.engine.dispose)

    def enqueue(self, recipients: list[str], sender: str = "alice@alpha.test") -> int:
        return run_sync(self.engine, q.enqueue, sender=sender, user_id=None, blob_id="b",
                        size=1234, recipients=recipients, now=T0, write=True)

    def due_times(self) -> list[datetime]:
        return run_sync(self.engine, lambda c: c.execute(
            select(queue_recipients.c.next_attempt_at)).scalars().all(), write=False)

    def test_empty_queue(self) -> None:
        self.assertEqual(self.run_cli("queue", "list"), (0, "queue is empty\n", ""))

    def test_list_and_show(self) -> None:
        qid = self.enqueue(["bob@beta.test", "carol@gamma.test"])
        status, out, _ = self.run_cli("queue", "list")
        self.assertEqual(status, 0)
        self.assertIn(f"{qid}\t2026-11-01 09:00:00 UTC\t1234 bytes\tfrom <alice@alpha.test>", out)
        self.assertIn("<carol@gamma.test>", out)
        status, out, _ = self.run_cli("queue", "show", str(qid))
        self.assertEqual(status, 0)
        self.assertIn("to        <bob@beta.test>  queued, attempts 0", out)
        self.assertIn("no attempts yet", out)

    def test_retry_makes_rows_due_now(self) -> None:
        qid = self.enqueue(["bob@beta.test"])
        run_sync(self.engine, lambda c: c.execute(queue_recipients.update().values(
            next_attempt_at=FAR)).rowcount, write=True)
        status, out, _ = self.run_cli("queue", "retry", str(qid))
        self.assertEqual((status, out), (0, f"queue id {qid}: 1 recipient(s) due now\n"))
        self.assertLess(self.due_times()[0], FAR)
        self.assertEqual(self.run_cli("queue", "retry-all")[1], "1 recipient(s) due now\n")

    def test_hold_and_release(self) -> None:
        qid = self.enqueue(["bob@beta.test"])
        status, out, _ = self.run_cli("queue", "hold", str(qid))
        self.assertEqual((status, out), (0, f"queue id {qid}: 1 recipient(s) held\n"))
        self.assertIn("held", self.run_cli("queue", "list")[1])
        self.assertEqual(self.run_cli("queue", "hold", "999")[0], 2)
        status, out, _ = self.run_cli("queue", "release", str(qid))
        self.assertEqual(out, f"queue id {qid}: 1 recipient(s) released, due now\n")
        self.assertEqual(run_sync(self.engine, q.get_entry, qid, write=False)[0]
                         .recipients[0].status, "queued")

    def test_delete_removes_without_bounce(self) -> None:
        qid = self.enqueue(["bob@beta.test"])
        status, out, _ = self.run_cli("queue", "delete", str(qid))
        self.assertEqual(status, 0)
        self.assertIn("no bounce sent", out)
        self.assertEqual(self.run_cli("queue", "list")[1], "queue is empty\n")
        status, out, _ = self.run_cli("queue", "show", str(qid))
        self.assertEqual(status, 0)   # the delivery log outlives the queue entry
        self.assertIn("is no longer queued", out)
        self.assertIn("deleted by the administrator", out)

    def test_bad_ids_exit_2_and_change_nothing(self) -> None:
        qid = self.enqueue(["bob@beta.test"])
        for argv in (("queue", "show", "abc"), ("queue", "retry", "-3"),
                     ("queue", "delete", "0"), ("queue", "delete", "999"),
                     ("queue", "show", "999"), ("queue", "retry", "999")):
            status, out, err = self.run_cli(*argv)
            self.assertEqual(status, 2, argv)
            self.assertIn("ID", err.upper(), argv)
        self.assertEqual(len(run_sync(self.engine, q.list_entries, write=False)), 1)
        self.assertEqual(run_sync(self.engine, q.get_entry, qid, write=False)[0].message.id, qid)

    def test_stats(self) -> None:
        self.enqueue(["bob@beta.test", "dave@beta.test"])
        self.enqueue(["carol@gamma.test"])
        status, out, _ = self.run_cli("queue", "stats")
        self.assertEqual(status, 0)
        self.assertIn("messages queued: 2", out)
        self.assertIn("  beta.test\t2", out)
        self.assertEqual(self.run_cli("queue", "stats", "--hours", "0")[0], 2)
