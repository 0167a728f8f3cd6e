"""The queue and delivery-log pages of the admin panel (web/admin_queue.py) on real queued
mail (committed as the SMTP pipeline commits it, tests/support/queueing.py): list with
filters, details with delivery attempts, retry, hold/release, delete, bulk actions over one
sender; the delivery log's filters and keyset pages.  And the rule under the hold: the
delivery worker never claims a held recipient, and a message with a held recipient stays
queued when its others finish (store/queue.py, SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest

from mailgosend import audit
from mailgosend.db.runner import run_sync
from mailgosend.store import queue as queue_store
from tests.support.adminpanel import OpsTestCase, submit
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.peers import PeerScript
from tests.support.queueing import queue_raw
from tests.test_delivery_e2e import message, wait_for
from tests.test_delivery_worker import WorkerTestCase
from tests.test_store_queue import NOW, QueueStoreHelpers

RAW = b"From: a@example.com\r\nSubject: hi\r\n\r\nHello.\r\n"


class QueuePageTests(OpsTestCase):
    def queue(self, sender: str, recipients: list[str], age: timedelta = timedelta()) -> int:
        parts = self.server.root.components
        return queue_raw(self.server.engine, parts["blob_store"], parts["keyring"], sender,
                         recipients, RAW, datetime.now(timezone.utc) - age)

    def statuses(self, queue_id: int) -> list[str]:
        entry, _ = self.read(queue_store.get_entry, queue_id)
        return [r.status for r in entry.recipients]

    def ids(self) -> list[int]:
        return [e.message.id for e in self.read(queue_store.list_entries)]

    @defer.inlineCallbacks
    def test_list_filter_and_details(self) -> Any:
        first = self.queue("spammer@example.com", ["x@far.test", "y@other.test"],
                           age=timedelta(hours=5))
        second = self.queue("alice@example.com", ["z@far.test"])
        web = yield self.admin_client()
        page = yield web.get("/admin/queue")
        self.assertEqual(page.status_code, 200)
        self.assertIn(f'aria-label="Message {first}"', page.text)
        self.assertIn(f'aria-label="Message {second}"', page.text)
        for query, shown in (("sender=spammer@example.com", [first]),
                             ("domain=other.test", [first]), ("domain=far.test", [first, second]),
                             ("age=2", [first]), ("status=held", [])):
            page = yield web.get("/admin/queue?" + query)
            self.assertEqual([int(i) for i in re.findall(r'aria-label="Message (\d+)"', page.text)],
                             shown, query)
        page = yield web.get("/admin/queue?age=soon")
        self.assertEqual(page.status_code, 400)
        self.assertIn("Age: &#39;soon&#39; is not a number of hours", page.text)
        page = yield web.get(f"/admin/queue/{first}")
        self.assertIn("x@far.test", page.text)
        self.assertIn("No attempt yet.", page.text)
        page = yield web.get("/admin/queue/999999")
        self.assertEqual(page.status_code, 404)

    @defer.inlineCallbacks
    def test_hold_release_retry_and_delete_one(self) -> Any:
        qid = self.queue("alice@example.com", ["x@far.test"])
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        self.write(lambda c: c.execute(queue_store.queue_recipients.update().values(
            next_attempt_at=later)).rowcount)
        web = yield self.admin_client()
        page = f"/admin/queue/{qid}"
        yield submit(web, page, page + "/hold")
        self.assertEqual(self.statuses(qid), ["held"])
        yield submit(web, page, page + "/release")
        self.assertEqual(self.statuses(qid), ["queued"])
        entry, _ = self.read(queue_store.get_entry, qid)
        self.assertLess(entry.recipients[0].next_attempt_at, later)    # due at once
        self.write(lambda c: c.execute(queue_store.queue_recipients.update().values(
            next_attempt_at=later)).rowcount)
        yield submit(web, page, page + "/retry")
        entry, _ = self.read(queue_store.get_entry, qid)
        self.assertLess(entry.recipients[0].next_attempt_at, later)
        answer = yield submit(web, page, page + "/delete")
        self.assertEqual(answer.headers["Location"], "/admin/queue?done=delete&n=1")
        self.assertEqual(self.ids(), [])
        (line,) = self.read(queue_store.history, qid)
        self.assertEqual(line.status, "deleted")
        actions = [e.action for e in self.read(audit.search, audit.AuditQuery())]
        for action in ("queue.hold", "queue.release", "queue.retry", "queue.delete"):
            self.assertIn(action, actions)

    @defer.inlineCallbacks
    def test_bulk_actions_over_one_sender(self) -> Any:
        bad = [self.queue("hacked@example.com", [f"v{i}@far.test"]) for i in range(3)]
        good = self.queue("alice@example.com", ["friend@far.test"])
        web = yield self.admin_client()
        page = "/admin/queue?sender=hacked@example.com"
        yield submit(web, page, "/admin/queue/bulk", {"action": "hold",
                                                      "sender": "hacked@example.com"})
        self.assertEqual([self.statuses(q) for q in bad], [["held"]] * 3)
        self.assertEqual(self.statuses(good), ["queued"])
        # Refused: no filter at all, or an unknown action; nothing changes.
        answer = yield submit(web, "/admin/queue", "/admin/queue/bulk", {"action": "delete"})
        self.assertEqual(answer.status_code, 400)
        self.assertIn('bulk action never covers the whole queue', answer.text)
        answer = yield submit(web, page, "/admin/queue/bulk", {"action": "explode",
                                                               "sender": "hacked@example.com"})
        self.assertEqual(answer.status_code, 400)
        self.assertEqual(len(self.ids()), 4)
        answer = yield submit(web, page, "/admin/queue/bulk", {"action": "delete",
                                                               "sender": "hacked@example.com"})
        self.assertEqual(answer.headers["Location"], "/admin/queue?done=delete&n=3")
        self.assertEqual(self.ids(), [good])
        (entry,) = self.read(audit.search, audit.AuditQuery(action="queue.bulk_delete"))
        self.assertEqual(entry.target, "sender=hacked@example.com")


def _log(conn: Any, rows: list[dict[str, Any]]) -> int:
    return int(conn.execute(queue_store.delivery_log.insert(), rows).rowcount)


class DeliveryLogPageTests(OpsTestCase):
    @defer.inlineCallbacks
    def test_filters_and_keyset_pages(self) -> Any:
        start = datetime(2026, 12, 1, tzinfo=timezone.utc)
        rows = [dict(queue_id=i, recipient=f"r{i}@{'far' if i % 2 else 'near'}.test",
                     attempted_at=start + timedelta(minutes=i),
                     status="delivered" if i % 3 else "deferred", code=250, text="ok",
                     mx_host="mx.far.test", tls_version=None) for i in range(120)]
        self.write(_log, rows)
        web = yield self.admin_client()
        seen: list[str] = []
        path = "/admin/deliveries"
        while path:
            page = yield web.get(path)
            self.assertEqual(page.status_code, 200)
            seen += re.findall(r'break-all">(r\d+@[a-z.]+)</td>', page.text)
            found = re.search(r'rel="next" href="([^"]+)"', page.text)
            path = found.group(1).replace("&amp;", "&") if found else ""
        self.assertEqual(seen, [f"r{i}@{'far' if i % 2 else 'near'}.test"
                                for i in reversed(range(120))])     # newest first, each once
        page = yield web.get("/admin/deliveries?domain=far.test&status=deferred")
        shown = re.findall(r'break-all">(r(\d+)@far.test)</td>', page.text)
        self.assertEqual(sorted(int(n) for _, n in shown),
                         [i for i in range(120) if i % 2 and not i % 3])
        page = yield web.get("/admin/deliveries?address=r7@far.test")
        self.assertEqual(re.findall(r'break-all">(r\d+@[a-z.]+)</td>', page.text),
                         ["r7@far.test"])
        page = yield web.get("/admin/deliveries?since=2026-12-01T01:50&until=2026-12-01T01:55")
        self.assertEqual(re.findall(r'break-all">r(\d+)@', page.text),
                         ["114", "113", "112", "111", "110"])
        page = yield web.get("/admin/deliveries?since=yesterday")
        self.assertEqual(page.status_code, 400)
        self.assertIn('id="since-error"', page.text)


class HoldStoreTestsMixin(QueueStoreHelpers):
    def test_held_recipients_are_never_claimed_until_released(self) -> None:
        qid = self.enqueue(["x@beta.test", "y@beta.test"])
        self.assertEqual(self.write(queue_store.set_held, [qid], True, NOW), 2)
        self.assertEqual(self.claim(now=NOW + timedelta(days=1)), [])
        self.assertIsNone(self.read(queue_store.next_due))
        self.assertEqual(self.write(queue_store.set_held, [qid], False, NOW + timedelta(hours=2)), 2)
        (claim,) = self.claim(now=NOW + timedelta(hours=2))
        self.assertEqual(len(claim.recipients), 2)

    def test_a_held_recipient_keeps_its_message_queued(self) -> None:
        qid = self.enqueue(["x@beta.test", "y@beta.test"])
        (claim,) = self.claim(limit=1)
        self.write(queue_store.set_held, [qid], True, NOW)       # y is held; x is in flight
        self.assertEqual(self.statuses(), {"x@beta.test": "delivering", "y@beta.test": "held"})
        rcpt = claim.recipients[0]
        done = self.write(queue_store.record_outcomes, [queue_store.Outcome(
            rcpt.id, qid, rcpt.recipient, "delivered", 250, "ok")], NOW)
        self.assertEqual(done, [])
        self.assertEqual(self.statuses()["y@beta.test"], "held")

    def test_filters_pick_messages(self) -> None:
        a = self.enqueue(["x@beta.test"], sender="Bad@alpha.test")
        self.enqueue(["y@gamma.test"], sender="good@alpha.test", blob="b2")
        self.assertEqual(self.read(queue_store.matching_ids,
                                   queue_store.QueueFilter(sender="bad@alpha.test")), [a])
        self.assertEqual(self.read(queue_store.matching_ids,
                                   queue_store.QueueFilter(domain="BETA.test")), [a])


class HoldSQLiteTests(SQLiteDatabaseMixin, HoldStoreTestsMixin, unittest.TestCase):
    pass


class HoldPostgresTests(PostgresDatabaseMixin, HoldStoreTestsMixin, unittest.TestCase):
    pass


class WorkerRespectsHoldTests(WorkerTestCase):
    """The delivery worker (a whole server delivering to a scripted peer) leaves a held
    message alone, however often it is woken, and delivers it once released."""

    def test_held_mail_waits_until_released(self) -> Any:
        return defer.Deferred.fromCoroutine(self._held())

    async def _held(self) -> None:
        await self.start(PeerScript())
        parts = self.alpha.root.components
        qid = queue_raw(self.alpha.engine, parts["blob_store"], parts["keyring"],
                        "alice@alpha.test", ["bob@peer.test"],
                        message("alice@alpha.test", "bob@peer.test", "held"), self.alpha.now())
        run_sync(self.alpha.engine, queue_store.set_held, [qid], True, self.alpha.now(),
                 write=True)
        for _ in range(5):
            self.worker.wake()
            await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(self.peer.received, [])
        self.assertEqual([r.status for r in self.entries()[0].recipients], ["held"])
        self.assertEqual(self.log_rows(), [])
        run_sync(self.alpha.engine, queue_store.set_held, [qid], False, self.alpha.now(),
                 write=True)
        self.worker.wake()
        await wait_for(lambda: self.peer.received)
        await wait_for(lambda: not self.entries())
        self.assertEqual([r.status for r in self.log_rows()], ["delivered"])
