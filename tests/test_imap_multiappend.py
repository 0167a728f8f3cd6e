"""MULTIAPPEND (RFC 3502): several messages in one APPEND, stored all or none, answered with
APPENDUID and a UID set (RFC 4315 §3).  imaplib sends one literal per command, so the
MULTIAPPEND itself goes over a line-level client (synchronizing literals and LITERAL+), and
IMAPClient reads back what was stored."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.imap import ALICE, PASSWORD, IMAPFixture, message

FIRST, SECOND, THIRD = (message(f"multi {n}", f"body {n}\r\n" * (n * 10)) for n in (1, 2, 3))


def multiappend(client: Any, tag: bytes, head: bytes,
                parts: list[tuple[bytes, bytes]], plus: bool = False) -> list[bytes]:
    """``tag APPEND head`` then each (options, message) as ``options {n}``; with synchronizing
    literals, waits for each "+" (or for the tagged refusal)."""
    line = tag + b" APPEND " + head
    for options, raw in parts:
        line += (b" " + options if options else b"") + b" {%d%s}\r\n" % (
            len(raw), b"+" if plus else b"")
        client.send(line)
        if not plus:
            reply = client.line()
            if not reply.startswith(b"+"):
                return [reply]
        line = raw
    client.send(line + b"\r\n")
    return client.until(tag)


class MultiAppendTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    def session(self) -> Any:
        client = self.raw()
        client.command(b"l", b'LOGIN "%s" "%s"' % (ALICE.encode(), PASSWORD.encode()))
        return client

    @defer.inlineCallbacks
    def test_three_messages_with_flags_and_dates(self) -> Any:
        yield self.listen()
        date = b'"14-Mar-2026 10:00:00 +0100"'

        def scenario() -> Any:
            client = self.session()
            try:
                caps = client.command(b"c", b"CAPABILITY")
                first = multiappend(client, b"a", b"Drafts", [
                    (b"(\\Seen $Label1)", FIRST), (date, SECOND), (b"(\\Flagged) " + date, THIRD)])
                second = multiappend(client, b"b", b"Drafts", [(b"", FIRST), (b"", SECOND)],
                                     plus=True)
                return caps, first, second
            finally:
                client.close()

        caps, first, second = yield self.in_thread(scenario)
        self.assertIn(b" MULTIAPPEND", caps[0])
        uidvalidity = self.mailbox("Drafts").uidvalidity
        self.assertEqual(first[-1], b"a OK [APPENDUID %d 1:3] APPEND completed\r\n" % uidvalidity)
        self.assertEqual(second[-1], b"b OK [APPENDUID %d 4:5] APPEND completed\r\n" % uidvalidity)

        client = yield self.in_thread(self.imapclient_client)
        self.addCleanup(self.in_thread, client.logout)
        client.normalise_times = False  # aware datetimes, as the server sent them
        yield self.in_thread(client.select_folder, "Drafts")
        fetched = yield self.in_thread(client.fetch, [1, 2, 3, 4, 5],
                                       ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"])
        self.assertEqual([fetched[u][b"BODY[]"] for u in range(1, 6)],
                         [FIRST, SECOND, THIRD, FIRST, SECOND])
        # RFC 3501 §2.3.2: this first session to select Drafts sees the appended as \Recent
        self.assertEqual(set(fetched[1][b"FLAGS"]), {b"\\Seen", b"$Label1", b"\\Recent"})
        self.assertEqual(fetched[2][b"FLAGS"], (b"\\Recent",))
        self.assertEqual(set(fetched[3][b"FLAGS"]), {b"\\Flagged", b"\\Recent"})
        stamp = datetime(2026, 3, 14, 9, 0, 0, tzinfo=timezone.utc)
        for uid in (2, 3):
            self.assertEqual(fetched[uid][b"INTERNALDATE"], stamp)

    @defer.inlineCallbacks
    def test_all_or_nothing(self) -> Any:
        yield self.listen()

        def scenario() -> Any:
            client = self.session()
            try:
                # The third message has a flag no client may set: nothing is stored.
                bad_flag = multiappend(client, b"a", b"INBOX", [
                    (b"", FIRST), (b"", SECOND), (b"(\\Bogus)", THIRD)])
                missing = multiappend(client, b"b", b"Nowhere", [(b"", FIRST), (b"", SECOND)])
                empty = multiappend(client, b"c", b"INBOX", [(b"", FIRST), (b"", b"")],
                                    plus=True)
                still = client.command(b"d", b"NOOP")
                return bad_flag, missing, empty, still
            finally:
                client.close()

        bad_flag, missing, empty, still = yield self.in_thread(scenario)
        self.assertEqual(bad_flag[-1], b"a BAD unknown system flag \\Bogus\r\n")
        self.assertEqual(missing[-1], b"b NO [TRYCREATE] Mailbox does not exist\r\n")
        self.assertEqual(empty[-1], b"c NO Refusing to store an empty message\r\n")
        self.assertEqual(still[-1], b"d OK NOOP completed\r\n")
        self.assertEqual(self.rows("INBOX"), [])
        self.assertEqual(self.mailbox("INBOX").uidnext, 1)  # no UID was spent either


class MultiAppendLimitTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    quota = 5000
    max_message_size = 3000

    @defer.inlineCallbacks
    def test_quota_and_size_count_the_whole_command(self) -> Any:
        small = message("small", "s" * 1500)  # two fit the quota, three do not
        yield self.listen()

        def scenario() -> Any:
            client = self.raw()
            client.command(b"l", b'LOGIN "%s" "%s"' % (ALICE.encode(), PASSWORD.encode()))
            try:
                over_quota = multiappend(client, b"a", b"INBOX", [(b"", small)] * 3)
                too_big = multiappend(client, b"b", b"INBOX",
                                      [(b"", small), (b"", message("big", "b" * 3000))])
                fits = multiappend(client, b"c", b"INBOX", [(b"", small)] * 2, plus=True)
                return over_quota, too_big, fits
            finally:
                client.close()

        over_quota, too_big, fits = yield self.in_thread(scenario)
        # Refused before the third literal is sent (RFC 9208 OVERQUOTA, RFC 7889 TOOBIG).
        self.assertEqual(over_quota, [b"a NO [OVERQUOTA] Message does not fit in the mailbox "
                                      b"quota\r\n"])
        self.assertEqual(too_big, [b"b NO [TOOBIG] Message too big (limit 3000 octets)\r\n"])
        self.assertTrue(fits[-1].startswith(b"c OK [APPENDUID "), fits)
        self.assertEqual(len(self.rows("INBOX")), 2)


class MultiAppendPostgresTests(PostgresDatabaseMixin, MultiAppendTests):
    """The same on PostgreSQL, where one transaction holds the mailbox row lock."""
