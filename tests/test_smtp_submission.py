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
