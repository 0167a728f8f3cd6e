"""Prometheus /metrics and /readyz on the admin port (web/admin_metrics.py) and the counters
behind them and the dashboard (counters.py): the text parses with prometheus_client's
parser, the counters move when mail flows through smtplib, logins are counted, the hourly
buckets reach the database (so they survive a restart), and METRICS_ALLOW/METRICS_TOKEN
decide who may read it."""

from __future__ import annotations

import smtplib
import time
from datetime import datetime, timezone
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, task, threads
from twisted.trial import unittest
from twisted.internet import reactor

from mailgosend.counters import Counters
from mailgosend.db.runner import run_sync
from mailgosend.store import counters as counter_store
from tests.support.mailserver import PASSWORD
from tests.test_admin_dash_pages import ADMIN, ALICE, AdminTestCase

MESSAGE = b"From: a@b.org\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
TOKEN = "t" * 40


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


class MetricsTestCase(AdminTestCase):
    @defer.inlineCallbacks
    def scrape(self, **kwargs: Any) -> Any:
        answer = yield self.client(admin=True).get("/metrics", **kwargs)
        self.assertEqual(answer.status_code, 200, answer.text)
        self.assertTrue(answer.headers["Content-Type"].startswith("text/plain"))
        return samples(answer.text)

    def send(self, sender: str, recipients: list[str]) -> Any:
        def run() -> Any:
            with smtplib.SMTP("127.0.0.1", self.server.ports["SMTP"], timeout=10) as client:
                try:
                    return client.sendmail(sender, recipients, MESSAGE)
                except smtplib.SMTPRecipientsRefused as exc:
                    return exc.recipients
        return threads.deferToThread(run)


class MetricsTests(MetricsTestCase):
    @defer.inlineCallbacks
    def test_counters_move_when_mail_flows(self) -> Any:
        received = ("mailgosend_messages_received_total", (("listener", "inbound"),))
        unknown = ("mailgosend_messages_rejected_total", (("reason", "unknown_recipient"),))
        before = yield self.scrape()
        refused = yield self.send("a@b.org", [ALICE])
        self.assertEqual(refused, {})
        refused = yield self.send("a@b.org", ["nobody@example.com"])
        self.assertEqual(refused["nobody@example.com"][0], 550)
        after = yield self.scrape()
        self.assertEqual(after[received] - before.get(received, 0), 1)
        self.assertEqual(after[unknown] - before.get(unknown, 0), 1)
        # DB job latency: a histogram with observations of reads and writes.
        self.assertGreater(after[("mailgosend_db_job_seconds_count", (("kind", "write"),))], 0)
        self.assertGreater(after[("mailgosend_db_job_seconds_count", (("kind", "read"),))], 0)
        # Gauges: the queue, connections per listener, the certificates in use.
        self.assertEqual(after[("mailgosend_queue_messages", ())], 0)
        self.assertIn(("mailgosend_connections_active", (("protocol", "smtp"),)), after)
        expiry = [k for k in after if k[0] == "mailgosend_certificate_expiry_timestamp_seconds"]
        self.assertIn(("name", "mx.mailgo.test"), expiry[0][1])
        self.assertGreater(after[expiry[0]], time.time())

    @defer.inlineCallbacks
    def test_logins_are_counted_by_service_and_result(self) -> Any:
        ok = ("mailgosend_logins_total", (("result", "success"), ("service", "admin")))
        bad = ("mailgosend_logins_total", (("result", "failure"), ("service", "admin")))
        before = yield self.scrape()
        yield self.admin_client()
        answer = yield self.client(admin=True).sign_in(ADMIN, "wrong password")
        self.assertEqual(answer.status_code, 403)
        after = yield self.scrape()
        self.assertEqual(after[ok] - before.get(ok, 0), 1)
        self.assertEqual(after[bad] - before.get(bad, 0), 1)

    @defer.inlineCallbacks
    def test_hourly_buckets_reach_the_database_and_a_new_process_reads_them(self) -> Any:
        yield self.send("a@b.org", [ALICE])
        counters = self.server.root.components["counters"]
        yield counters.flush()
        since = counters.now().replace(minute=0, second=0, microsecond=0)
        rows = run_sync(self.server.engine, counter_store.buckets, ["messages_received"],
                        since, write=False)
        self.assertEqual([(r.label, r.value) for r in rows], [("inbound", 1)])
        # A new Counters (a restarted server) sees the stored history.
        fresh = Counters(counters.runner, reactor, "another-node")
        history = yield fresh.history(["messages_received"], since)
        self.assertEqual(list(history.values()), [1])

    @defer.inlineCallbacks
    def test_readyz_and_healthz(self) -> Any:
        web = self.client(admin=True)
        answer = yield web.get("/readyz")
        self.assertEqual((answer.status_code, answer.json()),
                         (200, {"status": "ok", "database": "ok", "listeners": "ok"}))
        answer = yield web.get("/healthz")
        self.assertEqual(answer.status_code, 200)


class DeliveryMetricsTests(MetricsTestCase):
    settings = {"DELIVERY_PAUSED": "false", "QUEUE_RETRY_MINS": "60"}

    @defer.inlineCallbacks
    def test_delivery_attempts_per_result_and_destination(self) -> Any:
        self.server.add_alias("fwd@example.com", "someone@nowhere.test")
        yield self.send("a@b.org", ["fwd@example.com"])
        bounced = ("mailgosend_messages_bounced_total", ())
        failed = ("mailgosend_delivery_attempts_total", (("result", "failed"),))
        deadline = time.time() + 30
        while True:
            found = yield self.scrape()
            if (found.get(failed, 0) >= 2 and found.get(bounced)) or time.time() > deadline:
                break
            yield task.deferLater(reactor, 0.3, lambda: None)
        # nowhere.test has no MX (NXDOMAIN in the test DNS): failed at once, and the sender
        # a@b.org gets a bounce (whose own delivery to b.org fails too: no bounce of it).
        self.assertEqual(found[failed], 2, found)
        self.assertEqual(found[bounced], 1)
        # Per destination domain: on the dashboard only (unbounded labels in Prometheus).
        self.assertFalse([k for k in found if "delivery_domain" in k[0]])
        self.assertEqual(found[("mailgosend_messages_sent_total", ())], 0)
        web = yield self.admin_client()
        answer = yield web.get("/admin/api/dashboard")
        rows = {row["domain"]: row for row in answer.json()["destinations"]}
        self.assertEqual((rows["nowhere.test"]["delivered"],
                          rows["nowhere.test"]["not_delivered"], rows["nowhere.test"]["rate"]),
                         (0, 1, 0.0))
        self.assertEqual(answer.json()["totals_24h"]["bounced"], 1)


class MetricsAccessTests(MetricsTestCase):
    settings = {"METRICS_ALLOW": "10.0.0.0/8", "METRICS_TOKEN": TOKEN}

    @defer.inlineCallbacks
    def test_outside_metrics_allow_only_the_token_opens_it(self) -> Any:
        web = self.client(admin=True)
        answer = yield web.get("/metrics")
        self.assertEqual(answer.status_code, 403)
        self.assertIn("METRICS_ALLOW", answer.text)
        self.assertNotIn("mailgosend_", answer.text)
        answer = yield web.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40})
        self.assertEqual(answer.status_code, 403)
        found = yield self.scrape(headers={"Authorization": "Bearer " + TOKEN})
        self.assertIn(("mailgosend_queue_messages", ()), found)


class RecentHistoryTests(MetricsTestCase):
    """Counters.recent_history: settled hours read once an hour, recent hours and this
    node's unwritten counts every time (the injected clock decides which is which)."""

    @defer.inlineCallbacks
    def test_settled_hours_are_cached_recent_ones_are_not(self) -> Any:
        clock = task.Clock()
        start = datetime(2026, 12, 5, 9, 30, tzinfo=timezone.utc)
        clock.advance(start.timestamp())
        counters = Counters(self.server.root.runner, clock, "node-x")
        since = datetime(2026, 12, 5, 0, 0, tzinfo=timezone.utc)
        names = ["messages_sent"]
        counters.add("messages_sent", n=2)               # 09:00, written
        yield counters.flush()
        clock.advance(3 * 3600)                           # 12:30
        counters.add("messages_sent", n=5)               # 12:00, not written yet
        found = yield counters.recent_history(names, since)
        nine, noon = start.replace(minute=0), start.replace(hour=12, minute=0)
        self.assertEqual(found, {(nine, "messages_sent", ""): 2,
                                 (noon, "messages_sent", ""): 5})
        # Another node writes late into a settled hour: seen from the next hour on.
        run_sync(self.server.engine, counter_store.add_counts, "node-y",
                 [(nine, "messages_sent", "", 1)], write=True)
        found = yield counters.recent_history(names, since)
        self.assertEqual(found[(nine, "messages_sent", "")], 2)
        clock.advance(3600)
        found = yield counters.recent_history(names, since)
        self.assertEqual(found[(nine, "messages_sent", "")], 3)
        totals = yield counters.recent_history(names, since, group="label")
        self.assertEqual(totals, {(since, "messages_sent", ""): 8})


class RejectionReasonTests(unittest.TestCase):
    def test_reasons_of_refused_commands(self) -> None:
        from mailgosend.counters import rejection_reason

        self.assertEqual(rejection_reason("RCPT TO:<x@example.com>", "5.1.1"),
                         "unknown_recipient")
        self.assertEqual(rejection_reason("RCPT TO:<x@elsewhere.org>", "5.7.1"), "policy")
        self.assertEqual(rejection_reason("CONNECT", "4.7.0"), "limits")
        self.assertEqual(rejection_reason("DATA", "5.3.4"), "too_large")
        self.assertEqual(rejection_reason("DATA", "5.9.9"), "other")
        # Not about mail: protocol errors and AUTH (counted as logins).
        self.assertIsNone(rejection_reason("DATA", "5.5.1"))
        self.assertIsNone(rejection_reason("AUTH PLAIN", "5.7.8"))
        self.assertIsNone(rejection_reason("EHLO", "5.5.2"))
