"""FETCH attribute parsing (RFC 3501 §6.4.5)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.imap.errors import ImapError
from mailgosend.imap.fetch import parse_items
from mailgosend.mail.mailboxes import raise_recent_floor
from mailgosend.imap.tokens import tokenize
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import ALICE, BOB, PASSWORD, IMAPFixture, message


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
        # MODSEQ: the second delivery's value of alice's change counter (store/mailstate.py)
        (b"2 (RFC822.SIZE UID MODSEQ)", [b"* 2 FETCH (RFC822.SIZE 206 UID 2 MODSEQ (%d))"]),
    ]

    @defer.inlineCallbacks
    def test_flags_uid_size_and_modseq_in_the_order_asked(self) -> Any:
        yield self.deliver(message("one"), flags=("\\Seen",))
        two = yield self.deliver(message("two"))
        # an earlier session has seen both, so neither is \Recent (RFC 3501 §2.3.2)
        yield self.runner.write(raise_recent_floor, self.mailbox("INBOX").id, 2)
        yield self.listen()
        client = yield self.in_thread(self.raw)
        self.addCleanup(client.close)
        yield self.in_thread(client.command, b"a", b"LOGIN " + ALICE.encode() + b" " +
                             PASSWORD.encode())
        yield self.in_thread(client.command, b"b", b"SELECT INBOX")
        for query, expected in self.CASES:
            expected = [line % two.modseq if b"%d" in line else line for line in expected]
            lines = yield self.in_thread(client.command, b"c", b"FETCH " + query)
            self.assertEqual([line.rstrip(b"\r\n") for line in lines[:-1]], expected, query)
        lines = yield self.in_thread(client.command, b"d", b"UID FETCH 2:* (FLAGS)")
        self.assertEqual(lines[0], b"* 2 FETCH (FLAGS () UID 2)\r\n")


class SealedBlobCacheFetchTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    """BODY[] of small messages from the listener's cache of sealed blobs
    (store.blobs.SealedBlobCache, cmd_fetch._bodies_from_cache): never a wrong or stale body."""

    @defer.inlineCallbacks
    def session(self, user: str = ALICE) -> Any:
        client = yield self.in_thread(self.raw)
        self.addCleanup(client.close)
        yield self.in_thread(client.command, b"a", b"LOGIN " + user.encode() + b" " +
                             PASSWORD.encode())
        yield self.in_thread(client.command, b"b", b"SELECT INBOX")
        return client

    @defer.inlineCallbacks
    def body(self, client: Any, uid: int, item: bytes = b"BODY.PEEK[]") -> Any:
        lines = yield self.in_thread(client.command, b"f", b"UID FETCH %d (%s)" % (uid, item))
        self.assertTrue(lines[-1].startswith(b"f OK"), lines[-1])
        return lines[1] if len(lines) > 2 else None

    @defer.inlineCallbacks
    def test_cached_body_is_the_message_and_its_owners(self) -> Any:
        same = message("same", body="identical content\r\n")
        mine = yield self.deliver(same)
        theirs = yield self.deliver(same, user=self.bob)
        self.assertNotEqual(mine.blob_id, theirs.blob_id)  # two users never share a blob
        yield self.listen()
        cache = self.factory.access.mail.blob_cache
        alice = yield self.session()
        first = yield self.body(alice, mine.uid)
        self.assertEqual(first, same)
        self.assertIn(mine.blob_id, cache)
        opened = self.blobs.opened
        again = yield self.body(alice, mine.uid)
        self.assertEqual(again, same)
        self.assertEqual(self.blobs.opened, opened)  # served from the cache, no blob opened
        part = yield self.in_thread(alice.command, b"p", b"UID FETCH %d (BODY.PEEK[]<7.9>)"
                                    % mine.uid)
        self.assertIn(b"BODY[]<7> {9}", part[0])
        self.assertEqual(part[1], same[7:16])
        bob = yield self.session(BOB)
        self.assertEqual((yield self.body(bob, theirs.uid)), same)

    @defer.inlineCallbacks
    def test_a_poisoned_entry_never_answers(self) -> Any:
        """Alice's sealed blob put under Bob's blob id (or a corrupt one) fails to decrypt:
        the database path answers with Bob's own message."""
        hers = yield self.deliver(message("hers", body="alice only\r\n"))
        his_raw = message("his", body="bob only\r\n")
        his = yield self.deliver(his_raw, user=self.bob)
        yield self.listen()
        cache = self.factory.access.mail.blob_cache
        alice = yield self.session()
        yield self.body(alice, hers.uid)
        sealed = cache.get(hers.blob_id)
        assert sealed is not None
        cache.put(his.blob_id, sealed)
        bob = yield self.session(BOB)
        self.assertEqual((yield self.body(bob, his.uid)), his_raw)
        damaged = bytearray(sealed)
        damaged[-5] ^= 1
        cache.put(hers.blob_id, bytes(damaged))
        self.assertEqual((yield self.body(alice, hers.uid)), message("hers", body="alice only\r\n"))

    @defer.inlineCallbacks
    def test_body_without_peek_still_sets_seen(self) -> Any:
        raw = message("seen me")
        delivered = yield self.deliver(raw)
        yield self.listen()
        alice = yield self.session()
        yield self.body(alice, delivered.uid)  # now cached
        lines = yield self.in_thread(alice.command, b"g", b"UID FETCH %d (BODY[])"
                                     % delivered.uid)
        self.assertIn(b"FLAGS (\\Seen \\Recent)", lines[-2])  # first SELECT: \Recent
        self.assertEqual(lines[1], raw)
        self.assertEqual(self.rows("INBOX")[0].flags, ("\\Seen",))

    @defer.inlineCallbacks
    def test_expunged_and_purged_message_is_never_another_body(self) -> Any:
        from datetime import timedelta

        from mailgosend.db.runner import run_sync
        from mailgosend.store import messages as ms

        doomed_raw = message("doomed", body="gone soon\r\n")
        doomed = yield self.deliver(doomed_raw)
        yield self.listen()
        watcher = yield self.session()  # keeps the message in its view: never told
        self.assertEqual((yield self.body(watcher, doomed.uid)), doomed_raw)  # cached now
        killer = yield self.session()
        yield self.in_thread(killer.command, b"s", b"UID STORE %d +FLAGS (\\Deleted)"
                             % doomed.uid)
        yield self.in_thread(killer.command, b"e", b"EXPUNGE")
        later = self.now + timedelta(days=30)
        run_sync(self.engine, ms.purge_expunged, before=later, write=True)
        self.assertEqual(run_sync(self.engine, self.blobs.purge_unreferenced, now=later,
                                  grace=timedelta(0), write=True), 1)
        fresh_raw = message("fresh", body="a new message\r\n")
        fresh = yield self.deliver(fresh_raw)
        lines = yield self.in_thread(watcher.command, b"f", b"UID FETCH %d (BODY.PEEK[])"
                                     % doomed.uid)
        # RFC 3501 §7.4.1: the old bytes (the server may still return them) or NO; never
        # any other message's body.
        if lines[-1].startswith(b"f OK") and len(lines) > 2 and b"BODY[]" in lines[0]:
            self.assertEqual(lines[1], doomed_raw)
        else:
            self.assertNotIn(fresh_raw, lines)
        yield self.in_thread(watcher.command, b"n", b"NOOP")
        self.assertEqual((yield self.body(watcher, fresh.uid)), fresh_raw)

    @defer.inlineCallbacks
    def test_a_body_over_the_cap_takes_the_normal_path(self) -> Any:
        from mailgosend.store.blobs import SMALL_BLOB_BYTES

        big_raw = message("big", body=("x" * 998 + "\r\n") * (SMALL_BLOB_BYTES // 1000 + 20))
        big = yield self.deliver(big_raw)
        yield self.listen()
        cache = self.factory.access.mail.blob_cache
        alice = yield self.session()
        for _ in range(2):
            opened = self.blobs.opened
            self.assertEqual((yield self.body(alice, big.uid)), big_raw)
            self.assertEqual(self.blobs.opened, opened + 1)  # read from storage each time
            self.assertNotIn(big.blob_id, cache)
        lines = yield self.in_thread(alice.command, b"p", b"UID FETCH %d (BODY.PEEK[]<1000.20>)"
                                     % big.uid)
        self.assertEqual(lines[1], big_raw[1000:1020])
