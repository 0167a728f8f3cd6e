"""STATUS=SIZE (RFC 8438) and APPENDLIMIT (RFC 7889) through imaplib and IMAPClient."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import IMAPFixture, message


class StatusSizeAppendLimitTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    max_message_size = 20_000

    @defer.inlineCallbacks
    def test_capabilities_name_the_limit(self) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.imapclient_client)
        self.addCleanup(self.in_thread, client.logout)
        caps = yield self.in_thread(client.capabilities)
        self.assertIn(b"STATUS=SIZE", caps)
        self.assertIn(b"APPENDLIMIT=20000", caps)

    @defer.inlineCallbacks
    def test_status_size_is_the_sum_of_rfc822_sizes(self) -> Any:
        raws = [message(f"size {i}", "x" * (100 * i) + "\r\n") for i in range(1, 4)]
        for raw in raws:
            yield self.deliver(raw)
        yield self.listen()
        client = yield self.in_thread(self.imapclient_client)
        self.addCleanup(self.in_thread, client.logout)
        status = yield self.in_thread(client.folder_status, "INBOX",
                                      ["MESSAGES", "SIZE", "APPENDLIMIT"])
        self.assertEqual(status[b"MESSAGES"], 3)
        self.assertEqual(status[b"SIZE"], sum(len(r) for r in raws))
        self.assertEqual(status[b"APPENDLIMIT"], 20_000)
        yield self.in_thread(client.select_folder, "INBOX")
        uids = yield self.in_thread(client.search, "ALL")
        sizes = yield self.in_thread(client.fetch, uids, ["RFC822.SIZE"])
        self.assertEqual(status[b"SIZE"], sum(v[b"RFC822.SIZE"] for v in sizes.values()))
        empty = yield self.in_thread(client.folder_status, "Trash", ["SIZE"])
        self.assertEqual(empty[b"SIZE"], 0)
        # An expunged message leaves the sum.
        yield self.in_thread(client.delete_messages, uids[:1])
        yield self.in_thread(client.expunge)
        status = yield self.in_thread(client.folder_status, "INBOX", ["SIZE"])
        self.assertEqual(status[b"SIZE"], len(raws[1]) + len(raws[2]))

    @defer.inlineCallbacks
    def test_append_over_the_limit_is_toobig(self) -> Any:
        yield self.listen()

        def scenario() -> tuple[Any, Any]:
            client = self.imaplib_client()
            try:
                big = message("big", "y" * 20_001)
                refused = client.append("INBOX", None, None, big)  # NO is returned
                fits = client.append("INBOX", None, None, message("fits", "z" * 1000))
                return refused, fits
            finally:
                client.logout()

        refused, fits = yield self.in_thread(scenario)
        self.assertEqual(refused[0], "NO")
        self.assertIn(b"[TOOBIG]", refused[1][0])
        self.assertEqual(fits[0], "OK")
        self.assertEqual(len(self.rows("INBOX")), 1)
