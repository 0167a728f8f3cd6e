"""TLS-RPT (RFC 8460): after a delivery under a ``testing`` MTA-STS policy whose MX
certificate does not verify, the day's counter becomes the daily report: an RFC 8460 §4.4
JSON document, gzip-compressed, sent as a multipart/report message (§5.3) through the
outbound queue (DKIM-signed like our other mail) to the ``mailto:`` rua, and POSTed as
``application/tlsrpt+gzip`` to the ``https:`` rua (§5.4).  The counters are then gone."""

from __future__ import annotations

import email
import gzip
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from twisted.internet import defer
from twisted.web import resource

from mailgosend.db.runner import run_sync
from mailgosend.db.schema import tls_results
from tests.test_delivery_e2e import inject, message, wait_for
from tests.test_mtasts import MTASTSTestBase


class Collector(resource.Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[tuple[str, bytes]] = []

    def render_POST(self, request: Any) -> bytes:
        self.posts.append((request.getHeader("content-type") or "", request.content.read()))
        return b"ok"


class DailyReportTests(MTASTSTestBase):
    mode = "testing"

    async def a_day_of_deliveries(self) -> str:
        """One delivery counted under the testing policy, its day then over: the counters
        are moved to yesterday (UTC), whose date is returned."""
        self.publish_policy()
        inject(self.alpha, "alice@alpha.test", ["bob@beta.test"],
               message("alice@alpha.test", "bob@beta.test", "counted"))
        await wait_for(lambda: self.beta.stored("bob@beta.test"))
        await self.queue_drained(self.alpha)
        yesterday = (self.alpha.now() - timedelta(days=1)).strftime("%Y-%m-%d")
        run_sync(self.alpha.engine, lambda c: c.execute(
            update(tls_results).values(day=yesterday)).rowcount, write=True)
        return yesterday

    def test_daily_report_to_mailto_and_https(self) -> Any:
        return defer.Deferred.fromCoroutine(self._report())

    async def _report(self) -> None:
        collector = Collector()
        self.policy_root.putChild(b"tlsrpt", collector)
        self.servers.publish_dkim(self.alpha, "alpha.test", "rsa2048")
        self.servers.beta.add_user("reports@beta.test")
        yesterday = await self.a_day_of_deliveries()
        port = self.policy_port.getHost().port
        self.servers.dns.update_records({"_smtp._tls.beta.test": {"TXT": [
            f"v=TLSRPTv1; rua=mailto:reports@beta.test,"
            f"https://mta-sts.beta.test:{port}/tlsrpt"]}})
        reporter = self.alpha.root.components["tlsrpt"]
        sent = await reporter.report_due()
        self.assertEqual(sent, 2)
        # https: one POST of the gzip document.
        ((content_type, posted),) = collector.posts
        self.assertEqual(content_type, "application/tlsrpt+gzip")
        self.check_report(json.loads(gzip.decompress(posted)), yesterday)
        # mailto: through alpha's queue to beta, signed.
        (stored,) = await wait_for(lambda: self.beta.stored("reports@beta.test"))
        parsed = email.message_from_bytes(stored)
        self.assertEqual(parsed.get_content_type(), "multipart/report")
        self.assertEqual(parsed.get_param("report-type"), "tlsrpt")
        self.assertEqual(parsed["TLS-Report-Domain"], "beta.test")
        self.assertEqual(parsed["TLS-Report-Submitter"], "mx.alpha.test")
        subject = parsed["Subject"].replace("\r\n", "").replace("\n", "")   # unfolded
        self.assertTrue(subject.startswith(
            "Report Domain: beta.test Submitter: mx.alpha.test Report-ID: <"))
        self.assertIn("dkim=pass", " ".join(parsed.get_all("Authentication-Results", [])))
        (attachment,) = [p for p in parsed.walk()
                         if p.get_content_type() == "application/tlsrpt+gzip"]
        filename = attachment.get_filename()
        self.assertTrue(filename.startswith("mx.alpha.test!beta.test!"), filename)
        self.assertTrue(filename.endswith(".json.gz"), filename)
        self.check_report(json.loads(gzip.decompress(attachment.get_payload(decode=True))),
                          yesterday)
        # Reported once: yesterday's counters are gone.
        left = run_sync(self.alpha.engine, lambda c: c.execute(
            tls_results.select().where(tls_results.c.day == yesterday)).all(), write=False)
        self.assertEqual(left, [])
        self.assertEqual(await reporter.report_due(), 0)

    def check_report(self, report: dict[str, Any], day: str) -> None:
        # RFC 8460 §4.4.
        self.assertEqual(report["organization-name"], "mx.alpha.test")
        self.assertEqual(report["date-range"], {"start-datetime": f"{day}T00:00:00Z",
                                                "end-datetime": f"{day}T23:59:59Z"})
        self.assertEqual(report["contact-info"], "postmaster@alpha.test")
        self.assertTrue(report["report-id"])
        (entry,) = report["policies"]
        self.assertEqual(entry["policy"], {
            "policy-type": "sts", "policy-domain": "beta.test",
            "policy-string": ["version: STSv1", "mode: testing", "mx: mx.beta.test",
                              "max_age: 86400"],
            "mx-host": ["mx.beta.test"]})
        self.assertEqual(entry["summary"], {"total-successful-session-count": 0,
                                            "total-failure-session-count": 1})
        self.assertEqual(entry["failure-details"], [
            {"result-type": "certificate-not-trusted",
             "receiving-mx-hostname": "mx.beta.test", "failed-session-count": 1}])

    def test_no_record_no_report(self) -> Any:
        return defer.Deferred.fromCoroutine(self._no_record())

    async def _no_record(self) -> None:
        await self.a_day_of_deliveries()
        self.assertEqual(await self.alpha.root.components["tlsrpt"].report_due(), 0)
        self.assertEqual(self.tls_results(), [])
