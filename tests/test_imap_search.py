"""SEARCH (RFC 3501 §6.4.4): every key, against stored mail, through imaplib and imapclient."""

from __future__ import annotations

import base64
import threading
from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.imap.errors import ImapError
from mailgosend.imap.search import parse_search
from mailgosend.imap.tokens import tokenize
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import MULTIPART, IMAPFixture, message

LUNCH = (b"From: Bob <bob@x.org>\r\nTo: alice@example.com\r\nCc: Carol <carol@y.org>\r\n"
         b"Subject: Lunch\r\nDate: Sat, 14 Mar 2026 12:00:00 +0100\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
         + base64.encodebytes("Grüße aus Köln\r\n".encode("utf-8")))

# key -> UIDs; message 1 "Invoice March" (\Seen, internal date 10 Jan), 2 MULTIPART
# (\Flagged, sent 2 Mar), 3 LUNCH (\Deleted, keyword "work"), 4 a large one.
CASES = [
    ("ALL", [1, 2, 3, 4]), ("SEEN", [1]), ("UNSEEN", [2, 3, 4]), ("FLAGGED", [2]),
    ("UNFLAGGED", [1, 3, 4]), ("DELETED", [3]), ("UNDELETED", [1, 2, 4]),
    ("ANSWERED", []), ("UNANSWERED", [1, 2, 3, 4]), ("DRAFT", []), ("UNDRAFT", [1, 2, 3, 4]),
    ("KEYWORD work", [3]), ("UNKEYWORD work", [1, 2, 4]),
    ("FROM bob", [3]), ('FROM "Jane"', [2]), ("TO alice@example", [3]), ("CC carol", [3]),
    ("BCC carol", []), ("SUBJECT invoice", [1]), ("SUBJECT REPORT", [2]),
    ("HEADER X-Priority 1", [2]), ('HEADER X-Priority ""', [2]), ("HEADER Cc Carol", [3]),
    ("BODY pay", [1]), ("BODY quarterly", [2]), ("BODY inner", [2]), ("TEXT lunch", [3]),
    ("TEXT quarterly", [2]), ("BODY nowhere", []),
    ("LARGER 4000", [4]), ("SMALLER 220", [1]), ("SMALLER 209", []),
    ("BEFORE 1-Mar-2026", [1]), ("ON 10-Jan-2026", [1]), ("SINCE 14-Mar-2026", [2, 3, 4]),
    ("SENTBEFORE 3-Mar-2026", [2]), ("SENTON 14-Mar-2026", [1, 3, 4]),
    ("SENTSINCE 14-Mar-2026", [1, 3, 4]),
    ("UID 2:3", [2, 3]), ("UID 3:*", [3, 4]), ("1,4", [1, 4]), ("2:*", [2, 3, 4]),
    ("NOT SEEN", [2, 3, 4]), ("OR FROM bob SUBJECT invoice", [1, 3]), ("SEEN FLAGGED", []),
    ("(SEEN) (UNFLAGGED)", [1]), ("NOT (OR SEEN FLAGGED)", [3, 4]),
    # RFC 3501 §2.3.2: delivered before the first SELECT, so \Recent to this session
    ("NEW", [2, 3, 4]), ("OLD", []), ("RECENT", [1, 2, 3, 4]),
    ("CHARSET UTF-8 SUBJECT report", [2]), ("charset us-ascii FROM bob", [3]),
]


class SearchParseTests(unittest.TestCase):
    def test_bad_searches_are_bad(self) -> None:
        for text in [b"", b"FOO", b"FROM", b"OR SEEN", b"LARGER x", b"BEFORE 2020-01-01",
                     b"UID", b"UID x", b"KEYWORD", b"()", b"NOT", b"HEADER X"]:
            error = self.assertRaises(ImapError, parse_search, tokenize([text]))
            self.assertEqual(error.status, "BAD", text)


class SearchTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def populate(self) -> Any:
        yield self.deliver(message("Invoice March", body="please pay\r\n"), flags=("\\Seen",),
                           internal_date=datetime(2026, 1, 10, 23, 0, tzinfo=timezone.utc))
        yield self.deliver(MULTIPART, flags=("\\Flagged",))
        yield self.deliver(LUNCH, flags=("\\Deleted", "work"))
        yield self.deliver(message("Large", body="x" * 5000 + "\r\n"))
        yield self.listen()

    @defer.inlineCallbacks
    def test_every_key_with_imaplib(self) -> Any:
        yield self.populate()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        for key, expected in CASES:
            typ, data = yield self.in_thread(client.uid, "SEARCH", key)
            self.assertEqual((typ, [int(n) for n in data[0].split()]), ("OK", expected), key)

    @defer.inlineCallbacks
    def test_sequence_numbers_and_uids_differ_after_an_expunge(self) -> Any:
        yield self.populate()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        yield self.in_thread(client.expunge)
        typ, data = yield self.in_thread(client.search, None, "FLAGGED")
        self.assertEqual(data, [b"2"])
        typ, data = yield self.in_thread(client.search, None, "LARGER", "4000")
        self.assertEqual(data, [b"3"])
        typ, data = yield self.in_thread(client.uid, "SEARCH", "LARGER", "4000")
        self.assertEqual(data, [b"4"])

    @defer.inlineCallbacks
    def test_utf8_strings_as_literals_with_imapclient(self) -> Any:
        yield self.populate()
        client = yield self.in_thread(self.imapclient_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select_folder, "INBOX")
        self.blobs.threads.clear()
        for criteria, expected in [(["SUBJECT", "café"], [2]), (["BODY", "köln"], [3]),
                                   (["BODY", "FAÇADE"], [2]), (["TEXT", "grüße"], [3]),
                                   (["FROM", "bob", "NOT", "SUBJECT", "café"], [3])]:
            found = yield self.in_thread(client.search, criteria, charset="UTF-8")
            self.assertEqual(found, expected, criteria)
        self.assertNotIn(threading.main_thread(), self.blobs.threads)  # never the reactor

    @defer.inlineCallbacks
    def test_unknown_charset_is_badcharset(self) -> Any:
        yield self.populate()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        typ, data = yield self.in_thread(client.search, "ISO-2022-JP", "ALL")
        self.assertEqual((typ, data), ("NO", [b"[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"]))


class SearchChunkTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    """A SEARCH that reads structures or bodies runs as several database jobs."""

    @defer.inlineCallbacks
    def test_body_search_runs_a_job_per_chunk_and_finds_every_match(self) -> Any:
        from mailgosend.imap import account, search as search_module
        self.patch(account, "SEARCH_JOB_SIZE", 3)
        for n in range(10):
            body = "the needle is here\r\n" if n in (1, 4, 8) else "nothing\r\n"
            yield self.deliver(message(f"m{n}", body=body), flags=("\\Seen",) if n < 5 else ())
        yield self.listen()
        jobs: list[tuple[int, int]] = []
        original = search_module.run_search

        def counting(source: Any, *args: Any, **kwargs: Any) -> Any:
            jobs.append(args[2:4])
            return original(source, *args, **kwargs)

        self.patch(account, "run_search", counting)
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        typ, data = yield self.in_thread(client.uid, "SEARCH", "BODY", "NEEDLE")
        self.assertEqual(data, [b"2 5 9"])
        self.assertEqual(jobs, [(0, 3), (3, 6), (6, 9), (9, 10)])
        typ, data = yield self.in_thread(client.uid, "SEARCH", "OR", "(BODY needle UNSEEN)",
                                         "NOT", "TEXT", "nothing")
        self.assertEqual(data, [b"2 5 9"])
        del jobs[:]
        typ, data = yield self.in_thread(client.search, None, "NOT", "SEEN", "2:*")
        self.assertEqual(data, [b"6 7 8 9 10"])
        self.assertEqual(jobs, [(0, 10)])  # session data only: one job
