"""MAX_CONNECTIONS and MAX_CONNECTIONS_PER_IP on the IMAP listener (connlimit.py), with real
clients: the connection over a limit gets ``* BYE`` and a reason (RFC 3501 §7.1.5)."""

from __future__ import annotations

import imaplib
from typing import Any, Optional

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import IMAPFixture, RawClient, deferLater

REFUSAL = b"* BYE Too many connections; try again later\r\n"


class ConnectionLimitTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    def refused_imaplib(self) -> Optional[str]:
        """Thread side: connect with imaplib; the error it raises, None if it was served."""
        try:
            client = imaplib.IMAP4("127.0.0.1", self.port, timeout=20)
        except imaplib.IMAP4.error as error:
            return str(error)
        client.shutdown()
        return None

    @defer.inlineCallbacks
    def wait_until_released(self, open_sessions: int) -> Any:
        while len(self.factory.open_connections()) != open_sessions:
            yield deferLater(0.01)

    @defer.inlineCallbacks
    def test_connection_over_the_per_ip_limit_gets_bye_with_a_reason(self) -> Any:
        # Regression: IMAP had no limit at all; MAX_CONNECTIONS_PER_IP was SMTP's and POP3's.
        yield self.listen(max_connections_per_ip=2)
        first = yield self.in_thread(self.imaplib_client)
        second = yield self.in_thread(self.imaplib_client, login=False)
        self.addCleanup(self.in_thread, second.shutdown)
        refusal = yield self.in_thread(self.refused_imaplib)
        self.assertIsNotNone(refusal)
        self.assertIn("Too many connections", str(refusal))
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        self.assertEqual(raw.greeting, REFUSAL)
        yield self.assertFailure(self.in_thread(raw.line), ConnectionError)
        self.assertEqual(self.factory.limiter.count("127.0.0.1"), 2)
        # A session that ends makes room for the next one.
        yield self.in_thread(first.logout)
        yield self.wait_until_released(1)
        third = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, third.logout)
        self.assertEqual(third.state, "AUTH")

    @defer.inlineCallbacks
    def test_connection_over_the_listener_limit_gets_bye(self) -> Any:
        yield self.listen(max_connections=1)
        first = yield self.in_thread(self.imaplib_client, login=False)
        self.addCleanup(self.in_thread, first.shutdown)
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        self.assertEqual(raw.greeting, REFUSAL)
        self.assertEqual(len(self.factory.open_connections()), 1)
