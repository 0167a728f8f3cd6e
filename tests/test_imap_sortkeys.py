"""The SORT/THREAD keys (mail/sortkeys.py): RFC 5256 §2.1 base subject, RFC 5051
i;unicode-casemap, RFC 5256 §2.2 sent date, first addresses and references."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.trial import unittest

from mailgosend.mail.sortkeys import (base_subject, message_ids, order_fields, sent_time,
                                      unicode_casemap)
from mailgosend.store.mimeinfo import analyse

BASE_SUBJECTS = [
    (None, "", False),
    ("", "", False),
    ("hello", "hello", False),
    ("  hello \t  world  ", "hello world", False),
    ("Re: hello", "hello", True),
    ("RE: Re: re:hello", "hello", True),
    ("Fwd: hello", "hello", True),
    ("FW: hello", "hello", True),
    ("Re[2]: hello", "hello", True),
    ("Re [2]: hello", "hello", True),
    ("[list] Re: hello", "hello", True),
    ("Re: [list] hello", "hello", True),
    ("[PATCH] hello", "hello", False),
    ("[a][b] hello", "hello", False),
    ("[only blob]", "[only blob]", False),
    ("hello (fwd)", "hello", True),
    ("hello (FWD) (fwd)  ", "hello", True),
    ("[Fwd: hello]", "hello", True),
    ("[fwd: Re: hello (fwd)]", "hello", True),
    ("Re: [Fwd: Re: hello]", "hello", True),
    ("Reply: hello", "Reply: hello", False),
    ("Re:", "", True),
    ("=?utf-8?q?R=C3=A9union?=", "Réunion", False),
    ("Re: =?iso-8859-1?q?caf=E9?= time", "café time", True),
    ("=?utf-8?q?broken", "=?utf-8?q?broken", False),
]


class BaseSubjectTests(unittest.TestCase):
    def test_base_subject_table(self) -> None:
        for raw, base, reply in BASE_SUBJECTS:
            self.assertEqual(base_subject(raw), (base, reply), raw)


class CollationTests(unittest.TestCase):
    def test_unicode_casemap_table(self) -> None:
        equal = [("abc", "ABC"), ("Émile", "émile"), ("ÉMILE", "E\u0301mile"),
                 ("ǆemal", "ǅEMAL")]
        for a, b in equal:
            self.assertEqual(unicode_casemap(a), unicode_casemap(b), (a, b))
        # RFC 5051: decomposed, then code point order, so an accented letter follows its base
        ordered = ["", "A", "ab", "á", "B", "É", "e\u0301t", "Z", "_"]
        keys = [unicode_casemap(s) for s in ordered]
        self.assertEqual(keys, sorted(keys))

    def test_ascii_matches_ascii_casemap(self) -> None:
        # RFC 5256 §3 baseline: i;ascii-casemap upper-cases a-z and compares octets.
        words = ["b", "A", "_x", "a", "Zed", "[b]", "10", "~"]
        self.assertEqual(sorted(words, key=unicode_casemap), sorted(words, key=str.upper))


class SentTimeTests(unittest.TestCase):
    def test_sent_time_table(self) -> None:
        utc = datetime(2026, 3, 14, 8, 26, 53, tzinfo=timezone.utc).timestamp()
        cases = [("Sat, 14 Mar 2026 09:26:53 +0100", utc), ("14 Mar 2026 08:26:53 GMT", utc),
                 ("Sat, 14 Mar 2026 08:26:53 -0000", utc), (None, None), ("", None),
                 ("yesterday", None), ("Sat, 99 Foo 2026 25:61:00 +0100", None)]
        for raw, expected in cases:
            self.assertEqual(sent_time(raw), expected, raw)


class OrderFieldsTests(unittest.TestCase):
    def test_fields_of_a_reply(self) -> None:
        raw = (b"From: =?utf-8?q?Zo=C3=AB?= <zoe@example.org>, bob@example.org\r\n"
               b"To: undisclosed:;, \"Ann\" <ann@example.net>\r\n"
               b"Cc: carl@example.com\r\n"
               b"Subject: Re: [team] Plans\r\n"
               b"Date: Sat, 14 Mar 2026 09:26:53 +0100\r\n"
               b"Message-ID: <m3@example.org>\r\n"
               b"In-Reply-To: <m2@example.org>\r\n"
               b"References: <m1@example.org>\r\n <m2@example.org>\r\n\r\nbody\r\n")
        info = analyse(raw)
        fields = order_fields(info, raw[:raw.index(b"\r\n\r\n") + 4], 1_700_000_000.75, 321)
        self.assertEqual(fields[1:], ("PLANS", True, "ZOE", "ANN", "CARL", unicode_casemap("Zoë"),
                                      "ANN", "m3@example.org",
                                      ("m1@example.org", "m2@example.org"),
                                      1_700_000_000.0, 321))  # INTERNALDATE in whole seconds

    def test_in_reply_to_stands_in_for_missing_references(self) -> None:
        raw = (b"From: a@example.org\r\nSubject: x\r\nIn-Reply-To: <p@x> <q@x>\r\n"
               b"Message-ID: <c@x>\r\n\r\n")
        fields = order_fields(analyse(raw), raw, 0.0, 0)
        self.assertEqual(fields[8:10], ("c@x", ("p@x",)))
        self.assertEqual(fields[0], None)
        self.assertEqual(fields[7], "")  # no To

    def test_display_falls_back_to_addr_spec(self) -> None:
        raw = b"From: Zed@Example.org\r\nTo: <amy@example.org>\r\n\r\n"
        fields = order_fields(analyse(raw), raw, 0.0, 0)
        self.assertEqual((fields[3], fields[6], fields[7]),
                         ("ZED", "ZED@EXAMPLE.ORG", "AMY@EXAMPLE.ORG"))

    def test_address_without_domain_displays_as_written(self) -> None:
        raw = b"From: postmaster\r\nTo: undisclosed-recipients:;\r\n\r\n"
        fields = order_fields(analyse(raw), raw, 0.0, 0)
        self.assertEqual((fields[3], fields[4], fields[6], fields[7]),
                         ("POSTMASTER", "", "POSTMASTER", ""))

    def test_message_ids(self) -> None:
        self.assertEqual(message_ids("<a@b> junk <c@d>"), ["a@b", "c@d"])
        self.assertEqual(message_ids(None), [])
