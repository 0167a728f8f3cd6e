"""SORT (RFC 5256) with SORT=DISPLAY (RFC 5957) and ESORT (RFC 5267), and THREAD, over the
wire with imaplib and IMAPClient against a real listener."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.imap import cmd_sort
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import ALICE, PASSWORD, IMAPFixture

BASE = datetime(2026, 3, 1, tzinfo=timezone.utc)

# (From, To, Cc, Subject, Date, Message-ID, References, arrival day, body padding)
MESSAGES = [
    ("Carl <carl@example.org>", "zoe@example.org", "", "Plans", "Mon, 02 Mar 2026 10:00:00 +0000",
     "<p1@x>", "", 5, 300),
    ("anna@example.org", "Bob <bob@example.org>", "dan@example.org", "Re: plans",
     "Mon, 02 Mar 2026 12:00:00 +0000", "<p2@x>", "<p1@x>", 1, 10),
    ("=?utf-8?q?=C3=89mile?= <zed@example.org>", "amy@example.org", "ben@example.org",
     "[list] Budget", "Sun, 01 Mar 2026 09:00:00 +0000", "<b1@x>", "", 3, 100),
    ("bert@example.org", "Yann <yann@example.org>", "", "Fwd: Budget",
     "Tue, 03 Mar 2026 08:00:00 +0200", "<b2@x>", "", 2, 50),
    ("Dora <dora@example.org>", "carl@example.org", "", "Re: Plans",
     "not a date", "<p3@x>", "<p1@x> <p2@x>", 4, 200),
]


def raw(spec: tuple[Any, ...]) -> bytes:
    sender, to, cc, subject, date, msgid, refs, _, pad = spec
    head = f"From: {sender}\r\nTo: {to}\r\n"
    if cc:
        head += f"Cc: {cc}\r\n"
    head += f"Subject: {subject}\r\nDate: {date}\r\nMessage-ID: {msgid}\r\n"
    if refs:
        head += f"References: {refs}\r\n"
    return (head + "\r\n" + "x" * pad + "\r\n").encode()


class SortWireTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def connect(self) -> Any:
        for spec in MESSAGES:
            yield self.deliver(raw(spec), internal_date=BASE + timedelta(days=spec[7]))
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        return client

    @defer.inlineCallbacks
    def test_capabilities(self) -> Any:
        client = yield self.connect()
        for name in ("SORT", "SORT=DISPLAY", "ESORT", "THREAD=REFERENCES",
                     "THREAD=ORDEREDSUBJECT"):
            self.assertIn(name, client.capabilities)
        self.assertNotIn("CONTEXT=SORT", client.capabilities)

    @defer.inlineCallbacks
    def test_sort_keys(self) -> Any:
        client = yield self.connect()
        # message 5's Date cannot be read: DATE uses its INTERNALDATE (Mar 5)
        cases = [("(ARRIVAL)", b"2 4 3 5 1"), ("(REVERSE ARRIVAL)", b"1 5 3 4 2"),
                 ("(DATE)", b"3 1 2 4 5"), ("(SIZE)", b"2 4 3 5 1"),
                 ("(SUBJECT)", b"3 4 1 2 5"), ("(SUBJECT REVERSE DATE)", b"4 3 5 2 1"),
                 ("(FROM)", b"2 4 1 5 3"), ("(TO)", b"3 2 5 4 1"), ("(CC)", b"1 4 5 3 2"),
                 ("(DISPLAYFROM)", b"2 4 1 5 3"), ("(DISPLAYTO)", b"3 2 5 4 1"),
                 ("(REVERSE SUBJECT)", b"1 2 5 3 4")]
        for criteria, expected in cases:
            typ, data = yield self.in_thread(client.sort, criteria, "UTF-8", "ALL")
            self.assertEqual((typ, data), ("OK", [expected]), criteria)

    @defer.inlineCallbacks
    def test_displayfrom_uses_the_decoded_display_name(self) -> Any:
        client = yield self.connect()
        yield self.deliver(raw(("Aaron <zz@example.org>", "a@x", "", "s", "", "<d@x>", "", 9, 1)))
        yield self.in_thread(client.noop)
        typ, data = yield self.in_thread(client.sort, "(DISPLAYFROM)", "UTF-8", "ALL")
        # Aaron, anna@, bert@, Carl, Dora, Émile: the display name when there is one
        self.assertEqual(data, [b"6 2 4 1 5 3"])
        typ, data = yield self.in_thread(client.sort, "(FROM)", "UTF-8", "ALL")
        self.assertEqual(data, [b"2 4 1 5 3 6"])

    @defer.inlineCallbacks
    def test_uid_sort_with_search_criteria(self) -> Any:
        client = yield self.connect()
        yield self.in_thread(client.store, "1", "+FLAGS", "(\\Deleted)")
        yield self.in_thread(client.expunge)
        typ, data = yield self.in_thread(client.uid, "SORT", "(REVERSE SIZE)", "UTF-8",
                                         "NOT", "FROM", "anna")
        self.assertEqual(data, [b"5 3 4"])
        typ, data = yield self.in_thread(client.sort, "(SIZE)", "US-ASCII", "SUBJECT", "plans")
        self.assertEqual(data, [b"1 4"])

    @defer.inlineCallbacks
    def test_esort_return_options_and_save(self) -> Any:
        client = yield self.connect()
        tag = client._new_tag()
        client.send(tag + b" SORT RETURN (MIN MAX COUNT ALL SAVE) (DATE) UTF-8 ALL\r\n")
        typ, _ = yield self.in_thread(client._command_complete, "SORT", tag)
        self.assertEqual(typ, "OK")
        self.assertEqual(client.untagged_responses.pop("ESEARCH"),
                         [b'(TAG "' + tag + b'") MIN 3 MAX 5 COUNT 5 ALL 3,1:2,4:5'])
        typ, data = yield self.in_thread(client.uid, "SEARCH", "UID", "$")
        self.assertEqual(data, [b"1 2 3 4 5"])
        tag = client._new_tag()
        client.send(tag + b" UID SORT RETURN (MAX SAVE) (SIZE) UTF-8 UNDELETED\r\n")
        yield self.in_thread(client._command_complete, "SORT", tag)
        self.assertEqual(client.untagged_responses.pop("ESEARCH"),
                         [b'(TAG "' + tag + b'") UID MAX 1'])
        typ, data = yield self.in_thread(client.fetch, "$", "(UID)")
        self.assertEqual(data, [b"1 (UID 1)"])

    @defer.inlineCallbacks
    def test_sort_with_modseq_reports_the_highest(self) -> Any:
        client = yield self.connect()
        yield self.in_thread(client.store, "2", "+FLAGS", "(\\Seen)")
        top = self.mailbox("INBOX").highestmodseq
        typ, data = yield self.in_thread(client.sort, "(ARRIVAL)", "UTF-8", "MODSEQ", "1")
        self.assertEqual(data, [b"2 4 3 5 1 (MODSEQ %d)" % top])

    @defer.inlineCallbacks
    def test_bad_sort_commands(self) -> Any:
        client = yield self.connect()
        for args in (("(COLOR)", "UTF-8", "ALL"), ("()", "UTF-8", "ALL"),
                     ("(DATE REVERSE)", "UTF-8", "ALL"), ("(DATE)", "UTF-8", "NOSUCHKEY")):
            with self.assertRaises(Exception) as caught:
                yield self.in_thread(client.sort, *args)
            self.assertIn("BAD", str(caught.exception))
        typ, data = yield self.in_thread(client._simple_command, "SORT", "(DATE)", "KOI8-R",
                                         "ALL")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[BADCHARSET", data[0])

    @defer.inlineCallbacks
    def test_second_sort_reads_no_structure(self) -> Any:
        client = yield self.connect()
        calls: list[int] = []
        original = cmd_sort.load_order_job

        def counting(source: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(len(args[0]))
            return original(source, *args, **kwargs)

        self.patch(cmd_sort, "load_order_job", counting)
        yield self.in_thread(client.sort, "(SUBJECT)", "UTF-8", "ALL")
        self.assertEqual(calls, [5])
        yield self.in_thread(client.sort, "(REVERSE DATE)", "UTF-8", "ALL")
        yield self.in_thread(client.thread, "REFERENCES", "UTF-8", "ALL")
        self.assertEqual(calls, [5])

    @defer.inlineCallbacks
    def test_thread_references_and_orderedsubject(self) -> Any:
        client = yield self.connect()
        typ, data = yield self.in_thread(client.thread, "REFERENCES", "UTF-8", "ALL")
        # 1 <- 2 <- 5 by References; 3 and 4 share the base subject "budget", 4 is a forward
        self.assertEqual((typ, data), ("OK", [b"(3 4)(1 2 5)"]))
        typ, data = yield self.in_thread(client.thread, "ORDEREDSUBJECT", "UTF-8", "ALL")
        self.assertEqual(data, [b"(3 4)(1 (2)(5))"])
        typ, data = yield self.in_thread(client.uid, "THREAD", "REFERENCES", "UTF-8",
                                         "SUBJECT", "nothing")
        self.assertEqual(data, [b""])  # "* THREAD" with no thread-list
        with self.assertRaises(Exception):
            yield self.in_thread(client.thread, "X-UNKNOWN", "UTF-8", "ALL")

    @defer.inlineCallbacks
    def test_imapclient_sort_and_thread(self) -> Any:
        for spec in MESSAGES:
            yield self.deliver(raw(spec), internal_date=BASE + timedelta(days=spec[7]))
        yield self.listen()
        client = yield self.in_thread(self.imapclient_client)
        self.addCleanup(self.in_thread, client.logout)
        yield self.in_thread(client.select_folder, "INBOX")
        self.assertTrue((yield self.in_thread(client.has_capability, "SORT")))
        uids = yield self.in_thread(client.sort, ["REVERSE DATE"])
        self.assertEqual(uids, [5, 4, 2, 1, 3])
        uids = yield self.in_thread(client.sort, ["SUBJECT", "ARRIVAL"], ["NOT", "FROM", "bert"])
        self.assertEqual(uids, [3, 2, 5, 1])  # "Plans", "plans", "Re: Plans": one base subject
        threads = yield self.in_thread(client.thread, "REFERENCES")
        self.assertEqual(threads, ((3, 4), (1, 2, 5)))

    @defer.inlineCallbacks
    def test_curl_sends_sort_and_thread(self) -> Any:
        if shutil.which("curl") is None:
            raise unittest.SkipTest("curl is not installed")
        for spec in MESSAGES:
            yield self.deliver(raw(spec), internal_date=BASE + timedelta(days=spec[7]))
        yield self.listen()

        def curl(command: str) -> str:
            done = subprocess.run(
                ["curl", "--silent", "--show-error", "--max-time", "30", "--user",
                 f"{ALICE}:{PASSWORD}", f"imap://127.0.0.1:{self.port}/INBOX", "-X", command],
                capture_output=True, timeout=60, check=True)
            return done.stdout.decode()

        out = yield self.in_thread(curl, "UID SORT (REVERSE DATE) UTF-8 ALL")
        self.assertEqual(out.strip(), "* SORT 5 4 2 1 3")
        out = yield self.in_thread(curl, "UID THREAD REFERENCES UTF-8 ALL")
        self.assertEqual(out.strip(), "* THREAD (3 4)(1 2 5)")
        out = yield self.in_thread(curl, "SEARCH RETURN (COUNT MAX) ALL")
        self.assertRegex(out.strip(), r'^\* ESEARCH \(TAG "[^"]+"\) MAX 5 COUNT 5$')
