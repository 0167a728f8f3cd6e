"""Malformed and hostile input: each gets BAD or NO, and the connection keeps working."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import ALICE, PASSWORD, IMAPFixture, RawClient, message

NOT_LOGGED_IN = [
    (b"a FROBNICATE", b"a BAD Unknown command FROBNICATE"),
    (b"", b"* BAD Missing or invalid tag"),
    (b"a", b"a BAD Missing command"),
    (b"+ NOOP", b"* BAD Missing or invalid tag"),
    (b"a NOOP extra", b"a BAD Too many arguments"),
    (b"a LOGIN", b"a BAD Missing user name"),
    (b'a LOGIN "unterminated', b"a BAD Unterminated quoted string"),
    (b"a LOGIN x\x01 y", b"a BAD Control character in command"),
    (b"a LOGIN caf\xe9 y", b"a BAD Invalid 8-bit data in an atom"),
    (b"a SELECT INBOX", b"a BAD Log in first"),
    (b"a LOGIN {9000}", b"a BAD Literal too big for this command (limit 8192 octets)"),
    (b"a AUTHENTICATE CRAM-MD5", b"a NO Unsupported authentication mechanism"),
]

SELECTED_EMPTY = [
    (b"a FETCH 1 (FLAGS", b"a BAD Unbalanced parentheses"),
    (b"a FETCH 1 FLAGS)", b"a BAD Unbalanced parentheses"),
    (b"a FETCH * FLAGS", b"a BAD No messages in the mailbox; invalid message sequence number"),
    (b"a FETCH 1:* FLAGS", b"a BAD No messages in the mailbox; invalid message sequence number"),
    (b"a UID FETCH 1:* FLAGS", b"a OK FETCH completed"),
    (b"a UID STORE 1:* +FLAGS (\\Seen)", b"a OK STORE completed"),
    (b"a SEARCH ALL", b"a OK SEARCH completed"),
    (b"a LOGIN x y", b"a BAD Not allowed in this state"),
    (b"a ENABLE CONDSTORE", b"a BAD Not allowed in this state"),
]

SELECTED = [
    (b"a FETCH 0 FLAGS", b"a BAD Invalid sequence set '0'"),
    (b"a FETCH 1:x FLAGS", b"a BAD Invalid sequence set '1:x'"),
    (b"a FETCH 5 FLAGS", b"a BAD Invalid message sequence number (beyond the last message)"),
    (b"a FETCH 1 (FLAGS BOGUS)", b"a BAD Unknown FETCH attribute BOGUS"),
    (b"a FETCH 1 BODY[1.BOGUS]", b"a BAD Invalid section [1.BOGUS]"),
    (b"a STORE 1 +FLAGS", b"a BAD Expected a list of flags"),
    (b"a STORE 1 +FLAGS (\\Recentish)", b"a BAD unknown system flag \\Recentish"),
    (b"a STORE 1 XFLAGS (\\Seen)", b"a BAD Expected FLAGS, +FLAGS or -FLAGS"),
    (b"a SEARCH BOGUS", b"a BAD Unknown search key BOGUS"),
    (b"a SEARCH OR SEEN", b"a BAD OR needs two search keys"),
    (b"a UID BOGUS 1", b"a BAD Unknown UID command BOGUS"),
    (b"a COPY 1", b"a BAD Missing mailbox name"),
    (b"a FETCH 1 FLAGS (CHANGEDSINCE x)", b"a BAD Expected a number for CHANGEDSINCE"),
    (b"a FETCH 1 FLAGS (VANISHED)", b"a BAD Expected (CHANGEDSINCE mod-sequence)"),
    (b"a STORE 1 (UNCHANGEDSINCE) +FLAGS (\\Seen)",
     b"a BAD Expected (UNCHANGEDSINCE mod-sequence)"),
    (b"a SELECT INBOX (QRESYNC (1 2))", b"a BAD QRESYNC must be enabled first (ENABLE QRESYNC)"),
    (b"a SEARCH MODSEQ", b"a BAD MODSEQ needs a mod-sequence value"),
    (b"a CREATE ../etc", b"a NO [CANNOT] mailbox name levels must not be '.' or '..'"),
    (b'a CREATE "x/../y"', b"a NO [CANNOT] mailbox name levels must not be '.' or '..'"),
    (b"a CREATE a//b", b"a NO [CANNOT] mailbox name has an empty level (check the '/' characters)"),
    (b"a CREATE &", b"a NO [CANNOT] unterminated '&' sequence in mailbox name"),
    (b"a RENAME INBOX ..", b"a NO [CANNOT] mailbox name levels must not be '.' or '..'"),
    (b"a STATUS INBOX (BOGUS)",
     b"a BAD STATUS items must be among MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN "
     b"HIGHESTMODSEQ SIZE APPENDLIMIT"),
    (b"a APPEND INBOX (\\Seen) \"31-Foo-2026 10:00:00 +0000\" {3+}\r\nabc",
     b'a BAD Invalid date-time, expected "dd-Mon-yyyy hh:mm:ss +zzzz"'),
    (b"a APPEND INBOX {0+}\r\n", b"a NO Refusing to store an empty message"),
    (b"a CREATE {100000}", b"a BAD Literal too big for this command (limit 65536 octets)"),
    (b"a CREATE {70000+}\r\n" + b"x" * 70000,
     b"a BAD Literal too big for this command (limit 65536 octets)"),
    (b"a LIST (BOGUS) \"\" *", b"a BAD Unsupported LIST selection option BOGUS"),
    (b"a ID (\"name\")", b"a BAD ID takes NIL or a list of field/value pairs"),
    (b"a NOOP " + b"x" * 100_000, b"a BAD Command line too long"),
    # last: a failed SELECT leaves the authenticated state (RFC 3501 §6.3.1)
    (b"a SELECT a/../INBOX", b"a NO [CANNOT] mailbox name levels must not be '.' or '..'"),
    (b"a FETCH 1 FLAGS", b"a BAD No mailbox selected"),
]


class BadInputTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def check(self, raw: RawClient, cases: list[tuple[bytes, bytes]]) -> Any:
        for line, expected in cases:
            yield self.in_thread(raw.send, line + b"\r\n")
            lines = yield self.in_thread(raw.until, expected.split(b" ")[0])
            self.assertEqual(lines[-1], expected + b"\r\n", line[:60])
            lines = yield self.in_thread(raw.command, b"z", b"NOOP")
            self.assertEqual(lines[-1], b"z OK NOOP completed\r\n", line[:60])

    @defer.inlineCallbacks
    def test_before_login(self) -> Any:
        yield self.listen()
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        yield self.check(raw, NOT_LOGGED_IN)

    @defer.inlineCallbacks
    def test_in_an_empty_selected_mailbox(self) -> Any:
        yield self.listen()
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        yield self.in_thread(raw.command, b"l", b"LOGIN %s %s" % (ALICE.encode(),
                                                                 PASSWORD.encode()))
        yield self.in_thread(raw.command, b"s", b"SELECT INBOX")
        yield self.check(raw, SELECTED_EMPTY)

    @defer.inlineCallbacks
    def test_with_messages(self) -> Any:
        for n in range(3):
            yield self.deliver(message(f"m{n}"))
        yield self.listen()
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        yield self.in_thread(raw.command, b"l", b"LOGIN %s %s" % (ALICE.encode(),
                                                                 PASSWORD.encode()))
        yield self.in_thread(raw.command, b"s", b"SELECT INBOX")
        yield self.check(raw, SELECTED)
        self.assertIsNone(self.mailbox("x"))
        self.assertEqual(len(self.rows("INBOX")), 3)
