"""The header-size limit at DATA (HEADER_SIZE_LIMIT, issue 9): a message whose header
section is larger is refused at the final dot with 552 5.3.4, never accepted and then cut;
the session goes on; smtplib on port 25."""

from __future__ import annotations

import smtplib
from typing import Any

from twisted.internet import defer, threads

from tests.support.mailserver import MailServerTestCase
from tests.test_smtp_receive import message

ZONES = {"pass.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}}


def folded_header(size: int) -> bytes:
    """One X-Big field folded over lines of 78 octets, ``size`` octets in all."""
    lines = [b"X-Big: start"]
    total = len(lines[0]) + 2
    while total < size:
        lines.append(b" " + b"x" * 76)
        total += 79
    return b"\r\n".join(lines) + b"\r\n"


class HeaderLimitTestBase(MailServerTestCase):
    zones = ZONES

    def send_two(self, first: bytes) -> Any:
        """Send ``first``, then a normal message in the same session; both outcomes."""
        def run() -> Any:
            outcomes: list[Any] = []
            with smtplib.SMTP("127.0.0.1", self.server.ports["SMTP"], timeout=60,
                              local_hostname="client.test") as client:
                for raw in (first, message("someone@pass.test", "alice@example.com")):
                    try:
                        outcomes.append(client.sendmail("someone@pass.test",
                                                        ["alice@example.com"], raw))
                    except smtplib.SMTPDataError as exc:
                        outcomes.append((exc.smtp_code, exc.smtp_error))
            return outcomes
        return threads.deferToThread(run)


class DefaultLimitTests(HeaderLimitTestBase):
    @defer.inlineCallbacks
    def test_header_over_100_kib_is_refused_and_the_session_goes_on(self):  # type: ignore[no-untyped-def]
        big = folded_header(200 * 1024) + message("someone@pass.test", "alice@example.com")
        outcomes = yield self.send_two(big)
        self.assertEqual(outcomes[0][0], 552)
        self.assertTrue(outcomes[0][1].startswith(b"5.3.4 "), outcomes[0])
        self.assertEqual(outcomes[1], {})
        [stored] = self.server.stored("alice@example.com")
        self.assertNotIn(b"X-Big", stored)

    @defer.inlineCallbacks
    def test_header_under_the_limit_and_a_large_body_are_accepted(self):  # type: ignore[no-untyped-def]
        raw = folded_header(90 * 1024) + message("someone@pass.test", "alice@example.com",
                                                 body="y" * 70 + "\r\n" * 1 * 3000)
        outcomes = yield self.send_two(raw)
        self.assertEqual(outcomes, [{}, {}])
        self.assertEqual(len(self.server.stored("alice@example.com")), 2)


class ConfiguredLimitTests(HeaderLimitTestBase):
    settings = {"HEADER_SIZE_LIMIT": "2K"}

    @defer.inlineCallbacks
    def test_the_limit_is_a_setting(self):  # type: ignore[no-untyped-def]
        outcomes = yield self.send_two(folded_header(3000) + message("someone@pass.test",
                                                                     "alice@example.com"))
        self.assertEqual(outcomes[0][0], 552)
        self.assertEqual(outcomes[1], {})
