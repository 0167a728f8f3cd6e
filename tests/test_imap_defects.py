"""One regression test per defect of Twisted's IMAP4Server (library-notes §2, numbered as
there), and for the ones found while building on it (marked "new")."""

from __future__ import annotations

import base64
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend import passwords
from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import ALICE, PASSWORD, IMAPFixture, RawClient, deferLater, message


class DefectTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    max_message_size = 10_000

    @defer.inlineCallbacks
    def test_1_search_on_header_and_date_keys_works(self) -> Any:
        yield self.deliver(message("Invoice", sender="Alice <alice@example.com>"))
        yield self.deliver(message("café", sender="Bob <bob@example.org>"))
        raw = yield self.raw_session()
        cases = [(b"SEARCH SUBJECT invoice", b"* SEARCH 1\r\n"),
                 (b"SEARCH OR FROM alice FROM bob", b"* SEARCH 1 2\r\n"),
                 (b"SEARCH SINCE 1-Jan-2020", b"* SEARCH 1 2\r\n"),
                 (b"SEARCH CHARSET UTF-8 SUBJECT {5+}\r\ncaf\xc3\xa9", b"* SEARCH 2\r\n")]
        for command, expected in cases:
            lines = yield self.in_thread(raw.command, b"t", command)
            self.assertEqual(lines, [expected, b"t OK SEARCH completed\r\n"], command)

    @defer.inlineCallbacks
    def test_2_append_without_a_flag_list(self) -> Any:
        raw = yield self.raw_session(select=False)
        data = message("no flags")
        lines = yield self.in_thread(raw.command, b"a", b"APPEND INBOX {%d+}\r\n" % len(data)
                                     + data)
        self.assertRegex(lines[-1], rb"^a OK \[APPENDUID \d+ 1\] APPEND completed")

    @defer.inlineCallbacks
    def test_3_literal_plus_is_read_as_data_not_commands(self) -> Any:
        yield self.listen()
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        secret = b"x NOOP\r\n"
        run_sync(self.engine, accounts.set_password, ALICE,
                 passwords.hash_password(secret.decode(), 4), self.now, write=True)
        lines = yield self.in_thread(raw.command, b"a",
                                     b"LOGIN {%d+}\r\n%s {%d+}\r\n%s" % (
                                         len(ALICE), ALICE.encode(), len(secret), secret))
        self.assertEqual(len(lines), 1)
        self.assertTrue(lines[0].startswith(b"a OK [CAPABILITY"), lines)

    @defer.inlineCallbacks
    def test_4_starttls_does_not_run_commands_sent_before_the_handshake(self) -> Any:
        yield self.listen(loopback=False)
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)

        def inject() -> list[bytes]:
            raw.send(b"a STARTTLS\r\nb CAPABILITY\r\n")
            assert raw.line() == b"a OK Begin TLS negotiation now\r\n"
            raw.sock = self.client_tls.wrap_socket(raw.sock, server_hostname="localhost")
            raw.file = raw.sock.makefile("rb")
            return raw.command(b"c", b"NOOP")

        lines = yield self.in_thread(inject)
        self.assertEqual(lines, [b"c OK NOOP completed\r\n"])  # nothing for "b"

    @defer.inlineCallbacks
    def test_5_a_closed_connection_leaves_no_listener_behind(self) -> Any:
        raw = yield self.raw_session()
        box = self.mailbox("INBOX")
        self.assertEqual(self.factory.access.hub.watchers(box.id), 1)
        self.assertEqual(self.events.subscriber_count(self.alice.id), 1)
        yield self.in_thread(raw.close)
        while self.factory.open_connections():
            yield deferLater(0.01)
        self.assertEqual(self.factory.access.hub.watchers(box.id), 0)
        self.assertEqual(self.events.subscriber_count(self.alice.id), 0)

    @defer.inlineCallbacks
    def test_6_list_shows_mailbox_attributes_not_message_flags(self) -> Any:
        yield self.deliver(message("seen"), flags=("\\Seen", "\\Answered"))
        raw = yield self.raw_session(select=False)
        lines = yield self.in_thread(raw.command, b"l", b'LIST "" "*"')
        self.assertIn(b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n', lines)
        self.assertIn(b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n', lines)
        self.assertNotIn(b"\\Seen", b"".join(lines))

    @defer.inlineCallbacks
    def test_7a_idle_ends_only_on_done(self) -> Any:
        raw = yield self.raw_session()

        def idle() -> list[bytes]:
            raw.send(b"i IDLE\r\n")
            lines = [raw.line()]
            raw.send(b"x NOOP\r\n")
            lines.append(raw.line())
            raw.send(b"done\r\n")
            lines.append(raw.line())
            return lines

        lines = yield self.in_thread(idle)
        self.assertEqual(lines, [b"+ idling\r\n", b"* BAD Expected DONE to end IDLE\r\n",
                                 b"i OK IDLE terminated\r\n"])

    @defer.inlineCallbacks
    def test_7b_append_literal_over_the_size_limit_is_refused_before_it_is_read(self) -> Any:
        raw = yield self.raw_session(select=False)
        lines = yield self.in_thread(raw.command, b"a", b"APPEND INBOX {10001}")
        self.assertEqual(lines, [b"a NO [TOOBIG] Message too big (limit 10000 octets)\r\n"])
        lines = yield self.in_thread(raw.command, b"b", b"NOOP")
        self.assertEqual(lines, [b"b OK NOOP completed\r\n"])

    @defer.inlineCallbacks
    def test_7c_append_over_the_quota_is_refused_before_it_is_read(self) -> Any:
        run_sync(self.engine, accounts.set_quota, ALICE, 1000, write=True)
        raw = yield self.raw_session(select=False)
        lines = yield self.in_thread(raw.command, b"a", b"APPEND INBOX {1001}")
        self.assertEqual(lines, [b"a NO [OVERQUOTA] Message does not fit in the mailbox quota\r\n"])
        lines = yield self.in_thread(raw.command, b"b", b"APPEND INBOX {1001+}\r\n" + b"x" * 1001)
        self.assertEqual(lines, [b"b NO [OVERQUOTA] Message does not fit in the mailbox quota\r\n"])
        lines = yield self.in_thread(raw.command, b"c", b"NOOP")
        self.assertEqual(lines, [b"c OK NOOP completed\r\n"])
        self.assertEqual(self.rows("INBOX"), [])

    @defer.inlineCallbacks
    def test_8_copy_failures_are_no_not_bad(self) -> Any:
        yield self.deliver(message("one"))
        raw = yield self.raw_session()
        lines = yield self.in_thread(raw.command, b"c", b"COPY 1 Missing")
        self.assertEqual(lines, [b"c NO [TRYCREATE] Mailbox does not exist\r\n"])
        lines = yield self.in_thread(raw.command, b"s", b"STATUS Missing (MESSAGES)")
        self.assertEqual(lines[-1][:4], b"s NO")

    @defer.inlineCallbacks
    def test_uid_move_and_uid_expunge_are_uid_commands(self) -> Any:
        yield self.deliver(message("one"), flags=("\\Deleted",))
        yield self.deliver(message("two"))
        raw = yield self.raw_session()
        lines = yield self.in_thread(raw.command, b"e", b"UID EXPUNGE 1")
        self.assertEqual(lines, [b"* 1 EXPUNGE\r\n", b"e OK EXPUNGE completed\r\n"])
        lines = yield self.in_thread(raw.command, b"m", b"UID MOVE 2 Archive")
        self.assertRegex(lines[0], rb"^\* OK \[COPYUID \d+ 2 1\] Moved")
        self.assertEqual(lines[1:], [b"* 1 EXPUNGE\r\n", b"m OK MOVE completed\r\n"])

    @defer.inlineCallbacks
    def test_new_quoted_strings_take_backslash_escapes(self) -> Any:
        secret = 'p"w\\d'
        run_sync(self.engine, accounts.set_password, ALICE,
                 passwords.hash_password(secret, 4), self.now, write=True)
        yield self.listen()
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        lines = yield self.in_thread(raw.command, b"a", b'LOGIN "%s" "p\\"w\\\\d"' % ALICE.encode())
        self.assertTrue(lines[0].startswith(b"a OK"), lines)

    @defer.inlineCallbacks
    def test_new_pipelined_commands_are_answered_in_order(self) -> Any:
        yield self.deliver(message("one"))
        raw = yield self.raw_session()

        def pipeline() -> list[bytes]:
            raw.send(b"a FETCH 1 (BODY[])\r\nb STORE 1 +FLAGS (\\Flagged)\r\nc SEARCH FLAGGED\r\n")
            return [line for line in raw.until(b"c") if line[:2] in (b"a ", b"b ", b"c ")]

        lines = yield self.in_thread(pipeline)
        self.assertEqual(lines, [b"a OK FETCH completed\r\n", b"b OK STORE completed\r\n",
                                 b"c OK SEARCH completed\r\n"])

    @defer.inlineCallbacks
    def test_new_a_flood_of_pipelined_commands_is_answered(self) -> Any:
        raw = yield self.raw_session(select=False)

        def flood() -> list[bytes]:
            raw.send(b"".join(b"n%d NOOP\r\n" % i for i in range(3000)))
            return raw.until(b"n2999")

        lines = yield self.in_thread(flood)
        self.assertEqual(len(lines), 3000)

    @defer.inlineCallbacks
    def test_new_sasl_ir_and_continuation_plain(self) -> Any:
        yield self.listen()
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        token = base64.b64encode(b"\0" + ALICE.encode() + b"\0" + PASSWORD.encode())
        lines = yield self.in_thread(raw.command, b"a", b"AUTHENTICATE PLAIN " + token)
        self.assertTrue(lines[-1].startswith(b"a OK [CAPABILITY"), lines)
        second = yield self.in_thread(RawClient, self.port)
        self.addCleanup(second.close)

        def continuation() -> list[bytes]:
            second.send(b"b AUTHENTICATE PLAIN\r\n")
            assert second.line() == b"+ \r\n"
            second.send(token + b"\r\n")
            return second.until(b"b")

        lines = yield self.in_thread(continuation)
        self.assertTrue(lines[-1].startswith(b"b OK"), lines)
