"""FETCH attribute parsing (RFC 3501 §6.4.5)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.imap.errors import ImapError
from mailgosend.imap.fetch import parse_items
from mailgosend.imap.tokens import tokenize
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import ALICE, PASSWORD, IMAPFixture, message


def items(text: bytes) -> list:
    return parse_items(tokenize([text])[0])


class FetchParseTests(unittest.TestCase):
    def test_macros(self) -> None:
        self.assertEqual([i.label for i in items(b"FAST")],
                         [b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"])
        self.assertEqual([i.kind for i in items(b"full")][-1], "body")

    def test_sections_labels_and_peek(self) -> None:
        cases = [
            (b"BODY[]", b"BODY[]", "", False, None),
            (b"body.peek[header.fields (from To)]", b"BODY[HEADER.FIELDS (FROM TO)]",
             "HEADER.FIELDS", True, ("FROM", "TO")),
            (b"BODY[1.2.MIME]", b"BODY[1.2.MIME]", "1.2.MIME", False, None),
            (b"BODY.PEEK[3.HEADER.FIELDS.NOT (X-Spam)]<0.100>",
             b"BODY[3.HEADER.FIELDS.NOT (X-SPAM)]<0>", "3.HEADER.FIELDS.NOT", True, ("X-SPAM",)),
            (b"BODY[TEXT]<10.5>", b"BODY[TEXT]<10>", "TEXT", False, None),
            (b"RFC822", b"RFC822", "", False, None),
            (b"RFC822.HEADER", b"RFC822.HEADER", "HEADER", True, None),
        ]
        for text, label, section, peek, fields in cases:
            (item,) = items(text)
            self.assertEqual((item.label, item.section, item.peek, item.fields),
                             (label, section, peek, fields), text)
        (partial,) = items(b"BODY[]<7.3>")
        self.assertEqual(partial.partial, (7, 3))

    def test_invalid_attributes_are_bad(self) -> None:
        for text in [b"BODY[MIME]", b"BODY[0]", b"BODY[1.FOO]", b"BODY[HEADER.FIELDS]",
                     b"BODY[HEADER.FIELDS ()]", b"BODY[]<1.0>", b"FLAGZ", b"()", b"BODY[TEXT x]",
                     b'"FLAGS"']:
            error = self.assertRaises(ImapError, parse_items, tokenize([text])[0])
            self.assertEqual(error.status, "BAD", text)


class SessionDataFetchTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    """FETCH of session data only (cmd_fetch._fetch_simple), every attribute order."""

    CASES = [
        (b"1:* (FLAGS)", [b"* 1 FETCH (FLAGS (\\Seen))", b"* 2 FETCH (FLAGS ())"]),
        (b"1:* (UID FLAGS)", [b"* 1 FETCH (UID 1 FLAGS (\\Seen))",
                              b"* 2 FETCH (UID 2 FLAGS ())"]),
        (b"2 (FLAGS UID)", [b"* 2 FETCH (FLAGS () UID 2)"]),
        (b"2 (UID)", [b"* 2 FETCH (UID 2)"]),
        (b"2 (FLAGS FLAGS)", [b"* 2 FETCH (FLAGS () FLAGS ())"]),
        (b"2 (RFC822.SIZE UID MODSEQ)", [b"* 2 FETCH (RFC822.SIZE 206 UID 2 MODSEQ (3))"]),
    ]

    @defer.inlineCallbacks
    def test_flags_uid_size_and_modseq_in_the_order_asked(self) -> Any:
        yield self.deliver(message("one"), flags=("\\Seen",))
        yield self.deliver(message("two"))
        yield self.listen()
        client = yield self.in_thread(self.raw)
        self.addCleanup(client.close)
        yield self.in_thread(client.command, b"a", b"LOGIN " + ALICE.encode() + b" " +
                             PASSWORD.encode())
        yield self.in_thread(client.command, b"b", b"SELECT INBOX")
        for query, expected in self.CASES:
            lines = yield self.in_thread(client.command, b"c", b"FETCH " + query)
            self.assertEqual([line.rstrip(b"\r\n") for line in lines[:-1]], expected, query)
        lines = yield self.in_thread(client.command, b"d", b"UID FETCH 2:* (FLAGS)")
        self.assertEqual(lines[0], b"* 2 FETCH (FLAGS () UID 2)\r\n")
