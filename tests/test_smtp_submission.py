"""Submission (port 587) as real clients use it, issue 9 item 3: long sessions, the Date and
Message-ID fields a client left out (RFC 6409 §8.2, §8.3), smtplib throughout."""

from __future__ import annotations

import email
import email.utils
import smtplib
from datetime import datetime, timezone
from typing import Any, Callable

from twisted.internet import defer, threads
from twisted.trial import unittest

from mailgosend.delivery.dsn import parse_dsn
from mailgosend.smtp.pipeline.submission import missing_fields
from tests.support.mailserver import HOSTNAME, PASSWORD, MailServer


class SubmissionTestBase(unittest.TestCase):
    settings: dict[str, Any] = {}

    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        self.server = MailServer(self.mktemp(), {}, **self.settings)
        self.addCleanup(self.server.stop)
        yield self.server.start()
        self.server.add_domain("example.com")
        for user in ("alice@example.com", "bob@example.com"):
            self.server.add_user(user)

    def session(self, work: Callable[[smtplib.SMTP], Any]) -> Any:
        """Run ``work`` on a logged-in submission session (in a thread)."""
        def run() -> Any:
            with smtplib.SMTP("127.0.0.1", self.server.ports["SUBMIT"], timeout=60,
                              local_hostname="laptop.test") as client:
                client.starttls(context=self.server.client_tls())
                client.login("alice@example.com", PASSWORD)
                return work(client)
        return threads.deferToThread(run)


class LongSessionTests(SubmissionTestBase):
    timeout = 300

    @defer.inlineCallbacks
    def test_400_messages_in_one_session(self):  # type: ignore[no-untyped-def]
        # A client with many queued messages sends them in one session; 1,000 commands
        # (~334 messages) used to end it with 421.
        def send_all(client: smtplib.SMTP) -> list[Any]:
            results = []
            for i in range(400):
                raw = (f"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: n{i}\r\n"
                       f"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
                       f"Message-ID: <n{i}@example.com>\r\n\r\nbody {i}\r\n").encode()
                results.append(client.sendmail("alice@example.com", ["bob@example.com"], raw))
            client.noop()
            return results
        results = yield self.session(send_all)
        self.assertEqual(results, [{}] * 400)
        self.assertEqual(len(self.server.stored("bob@example.com")), 400)


class MissingFieldsTests(unittest.SynchronousTestCase):
    NOW = datetime(2026, 11, 22, 10, 0, 5, tzinfo=timezone.utc)
    CASES = [
        (b"From: a@example.com\r\n\r\n",
         ["Date: Sun, 22 Nov 2026 10:00:05 +0000",
          "Message-ID: <20261122100005.t1@mx.example.net>"]),
        (b"From: a@example.com\r\nDATE: Sun, 22 Nov 2026 09:00:00 +0000\r\n\r\n",
         ["Message-ID: <20261122100005.t1@mx.example.net>"]),
        (b"From: a@example.com\r\nmessage-id:\r\n <x@y>\r\n\r\n",
         ["Date: Sun, 22 Nov 2026 10:00:05 +0000"]),
        (b"Date: x\r\nMessage-Id: <x@y>\r\n\r\nMessage-ID: <in the body>\r\n", []),
        (b"", ["Date: Sun, 22 Nov 2026 10:00:05 +0000",
               "Message-ID: <20261122100005.t1@mx.example.net>"]),
    ]

    def test_table(self) -> None:
        for header_block, expected in self.CASES:
            self.assertEqual(missing_fields(header_block, self.NOW, "mx.example.net", "t1"),
                             expected, header_block)


class DateAndMessageIDTests(SubmissionTestBase):
    @defer.inlineCallbacks
    def test_submission_adds_missing_date_and_message_id(self):  # type: ignore[no-untyped-def]
        bare = b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: bare\r\n\r\nHi.\r\n"
        yield self.session(lambda c: c.sendmail("alice@example.com", ["bob@example.com"], bare))
        [stored] = self.server.stored("bob@example.com")
        parsed = email.message_from_bytes(stored)
        self.assertEqual(len(parsed.get_all("Date")), 1)
        self.assertEqual(len(parsed.get_all("Message-ID")), 1)
        self.assertIsNotNone(email.utils.parsedate_to_datetime(parsed["Date"]))
        self.assertTrue(parsed["Message-ID"].endswith(f"@{HOSTNAME}>"), parsed["Message-ID"])
        self.assertTrue(stored.endswith(bare))  # the client's bytes are kept as sent

    @defer.inlineCallbacks
    def test_fields_the_client_wrote_are_kept(self):  # type: ignore[no-untyped-def]
        full = (b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: full\r\n"
                b"Date: Sun, 22 Nov 2026 09:00:00 +0100\r\nMessage-ID: <mine@laptop>\r\n"
                b"\r\nHi.\r\n")
        yield self.session(lambda c: c.sendmail("alice@example.com", ["bob@example.com"], full))
        [stored] = self.server.stored("bob@example.com")
        parsed = email.message_from_bytes(stored)
        self.assertEqual(parsed.get_all("Date"), ["Sun, 22 Nov 2026 09:00:00 +0100"])
        self.assertEqual(parsed.get_all("Message-ID"), ["<mine@laptop>"])


def dsn_reports(server: MailServer, user: str) -> list[Any]:
    return [parse_dsn(m) for m in server.stored(user) if b"multipart/report" in m]


class DSNTests(SubmissionTestBase):
    """RFC 3461 on port 587 with smtplib (issue 9 item 3): advertised, NOTIFY/RET/ENVID/ORCPT
    reach the queue, NOTIFY=SUCCESS on a local delivery gives an "Action: delivered" report."""

    @defer.inlineCallbacks
    def test_dsn_is_advertised_on_submission_only(self):  # type: ignore[no-untyped-def]
        def ehlo(kind: str) -> bool:
            with smtplib.SMTP("127.0.0.1", self.server.ports[kind], timeout=30) as client:
                client.ehlo("laptop.test")
                return client.has_extn("dsn")
        self.assertTrue((yield threads.deferToThread(ehlo, "SUBMIT")))
        self.assertFalse((yield threads.deferToThread(ehlo, "SMTP")))

    @defer.inlineCallbacks
    def test_parameters_reach_the_queue(self):  # type: ignore[no-untyped-def]
        raw = b"From: alice@example.com\r\nSubject: dsn\r\n\r\nhi\r\n"

        def send(client: smtplib.SMTP) -> Any:
            client.mail("alice@example.com", ["RET=HDRS", "ENVID=env+2B42"])
            client.rcpt("Friend@elsewhere.example",
                        ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;friend+2Btag@elsewhere.example"])
            client.rcpt("other@elsewhere.example", ["NOTIFY=NEVER"])
            client.rcpt("third@elsewhere.example")
            return client.data(raw)
        code, _ = yield self.session(send)
        self.assertEqual(code, 250)
        [(row, rcpts)] = self.server.queued()
        self.assertEqual((row.ret, row.envid), ("HDRS", "env+42"))
        self.assertEqual([(r.recipient, r.notify, r.orcpt) for r in rcpts],
                         [("Friend@elsewhere.example", "FAILURE,DELAY",
                           "rfc822;friend+tag@elsewhere.example"),
                          ("other@elsewhere.example", "NEVER", None),
                          ("third@elsewhere.example", None, None)])

    @defer.inlineCallbacks
    def test_notify_success_on_local_delivery_reports_delivered(self):  # type: ignore[no-untyped-def]
        raw = (b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: tell me\r\n"
               b"Message-ID: <tell-me@example.com>\r\n\r\nhi\r\n")

        def send(client: smtplib.SMTP) -> Any:
            return client.sendmail("alice@example.com", ["bob@example.com"], raw,
                                   mail_options=["ENVID=QQ314159"],
                                   rcpt_options=["NOTIFY=SUCCESS,FAILURE",
                                                 "ORCPT=rfc822;bob@example.com"])
        self.assertEqual((yield self.session(send)), {})
        self.assertEqual(len(self.server.stored("bob@example.com")), 1)
        [report] = dsn_reports(self.server, "alice@example.com")
        self.assertEqual(report.report_type, "delivery-status")
        self.assertEqual(report.per_message["original-envelope-id"], "QQ314159")
        self.assertEqual(report.per_message["reporting-mta"], f"dns; {HOSTNAME}")
        [fields] = report.recipients
        self.assertEqual(fields["action"], "delivered")
        self.assertEqual(fields["status"], "2.0.0")
        self.assertEqual(fields["final-recipient"], "rfc822;bob@example.com")
        self.assertEqual(fields["original-recipient"], "rfc822;bob@example.com")
        self.assertIn(b"Subject: tell me", report.returned)
        self.assertNotIn(b"hi\r\n", report.returned)      # headers only

    @defer.inlineCallbacks
    def test_notify_success_for_an_alias_reports_expanded(self):  # type: ignore[no-untyped-def]
        self.server.add_alias("team@example.com", "bob@example.com")
        self.server.add_alias("team@example.com", "alice@example.com")
        raw = b"From: alice@example.com\r\nSubject: team\r\n\r\nhi\r\n"
        yield self.session(lambda c: c.sendmail("alice@example.com", ["team@example.com"], raw,
                                                rcpt_options=["NOTIFY=SUCCESS"]))
        [report] = dsn_reports(self.server, "alice@example.com")
        self.assertEqual([(f["final-recipient"], f["action"]) for f in report.recipients],
                         [("rfc822;team@example.com", "expanded")])

    @defer.inlineCallbacks
    def test_no_report_without_notify_success(self):  # type: ignore[no-untyped-def]
        raw = b"From: alice@example.com\r\nSubject: quiet\r\n\r\nhi\r\n"
        yield self.session(lambda c: c.sendmail("alice@example.com", ["bob@example.com"], raw,
                                                rcpt_options=["NOTIFY=FAILURE"]))
        yield self.session(lambda c: c.sendmail("alice@example.com", ["bob@example.com"], raw))
        self.assertEqual(dsn_reports(self.server, "alice@example.com"), [])
