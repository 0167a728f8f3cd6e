"""Defects found by real peers and an IMAP conformance tester (issue 9 §4), each through a
real listener with a raw or real client."""

from __future__ import annotations

import base64
from typing import Any

from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from mailgosend.imap.factory import _ANY, IMAPServerProtocol
from mailgosend.imap.server import Command
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.imap import ALICE, PASSWORD, IMAPFixture, RawClient, deferLater, message


class ConformanceTestsMixin(IMAPFixture):
    @defer.inlineCallbacks
    def test_open_bracket_in_mailbox_names_is_an_atom_char(self) -> Any:
        # RFC 3501 §9: "[" is an ATOM-CHAR, only "]" is a resp-special
        raw = yield self.raw_session(select=False)
        for command in [b"CREATE foo[bar", b"SELECT foo[bar", b"CREATE a[b",
                        b"RENAME a[b c]d", b"SELECT c]d"]:
            lines = yield self.in_thread(raw.command, b"t", command)
            self.assertTrue(lines[-1].startswith(b"t OK"), (command, lines))
        lines = yield self.in_thread(raw.command, b"t", b'LIST "" *')
        self.assertIn(b'* LIST (\\HasNoChildren) "/" "c]d"\r\n', lines)
        self.assertIn(b'* LIST (\\HasNoChildren) "/" "foo[bar"\r\n', lines)
        yield self.deliver(message("brackets"), target=self.mailbox("c]d").id)
        yield self.in_thread(raw.command, b"t", b"SELECT c]d")
        lines = yield self.in_thread(
            raw.command, b"t", b"FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.12>)")
        self.assertEqual(lines[0], b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)]<0> {12}\r\n")
        self.assertEqual(lines[1], b"Subject: bra")

    @defer.inlineCallbacks
    def test_comments_inside_an_angle_address_are_not_part_of_it(self) -> Any:
        # RFC 5322 §3.2.2: CFWS around the local part, "@" and the domain
        yield self.deliver(message("cfws", sender="<user-from (comment)@ (comment) domain.org>"))
        yield self.deliver(message("other", sender="Bob <bob@domain.org>"))
        raw = yield self.raw_session()
        lines = yield self.in_thread(raw.command, b"t", b"FETCH 1 ENVELOPE")
        self.assertIn(b'((NIL NIL "user-from" "domain.org"))', lines[0])
        lines = yield self.in_thread(raw.command, b"t", b"SEARCH FROM user-from@domain.org")
        self.assertEqual(lines[0], b"* SEARCH 1\r\n")
        lines = yield self.in_thread(raw.command, b"t", b"SEARCH FROM comment")
        self.assertEqual(lines[0], b"* SEARCH 1\r\n")

    @defer.inlineCallbacks
    def test_store_takes_an_empty_flag_list(self) -> Any:
        # RFC 3501 §9: flag-list = "(" [flag *(SP flag)] ")"
        yield self.deliver(message("flags"), flags=("\\Flagged",))
        raw = yield self.raw_session()
        for item in [b"+FLAGS", b"-FLAGS", b"+FLAGS.SILENT", b"-FLAGS.SILENT"]:
            lines = yield self.in_thread(raw.command, b"t", b"STORE 1 %s ()" % item)
            self.assertEqual(lines[-1], b"t OK STORE completed\r\n", (item, lines))
            if not item.endswith(b"SILENT"):
                self.assertEqual(lines[0], b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n")
        lines = yield self.in_thread(raw.command, b"t", b"STORE 1 FLAGS.SILENT ()")
        self.assertEqual(lines, [b"t OK STORE completed\r\n"])
        lines = yield self.in_thread(raw.command, b"t", b"STORE 1 FLAGS ()")
        self.assertEqual(lines, [b"* 1 FETCH (FLAGS (\\Recent))\r\n",
                                 b"t OK STORE completed\r\n"])
        lines = yield self.in_thread(raw.command, b"t", b"STORE 1 +FLAGS")
        self.assertTrue(lines[-1].startswith(b"t BAD"), lines)

    @defer.inlineCallbacks
    def test_deeply_nested_search_keys_are_bad_without_a_traceback(self) -> Any:
        yield self.deliver(message("one"))
        yield self.deliver(message("two"))
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        raw = yield self.raw_session()
        for command in [b"SEARCH " + b"OR SUBJECT x " * 500 + b"ALL",
                        b"SEARCH " + b"NOT " * 5000 + b"ALL",
                        b"SEARCH " + b"OR (NOT " * 30 + b"ALL" + b") ALL" * 30]:
            lines = yield self.in_thread(raw.command, b"t", command)
            self.assertEqual(lines, [b"t BAD Search keys nested too deeply\r\n"], command[:40])
        self.assertEqual([e for e in events if "log_failure" in e], [])
        # as deep as allowed still works, in the parser and the evaluator
        lines = yield self.in_thread(raw.command, b"t",
                                     b"SEARCH " + b"OR SUBJECT x " * 60 + b"SUBJECT two")
        self.assertEqual(lines[0], b"* SEARCH 2\r\n")
        lines = yield self.in_thread(raw.command, b"t", b"SEARCH " + b"NOT " * 61 + b"ALL")
        self.assertEqual(lines[0], b"* SEARCH\r\n")

    @defer.inlineCallbacks
    def test_a_recursion_error_is_bad_and_logged_in_one_line(self) -> Any:
        raw = yield self.raw_session(select=False)
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        async def deep(session: Any, tag: bytes, args: Any) -> Any:
            raise RecursionError("maximum recursion depth exceeded")

        table = IMAPServerProtocol.COMMANDS
        self.patch(IMAPServerProtocol, "COMMANDS", {**table, "NOOP": Command(deep, _ANY)})
        lines = yield self.in_thread(raw.command, b"t", b"NOOP")
        self.assertEqual(lines, [b"t BAD Command nested too deeply\r\n"])
        self.assertEqual([e for e in events if "log_failure" in e], [])

    @defer.inlineCallbacks
    def test_a_huge_folded_header_field_is_searched_and_fetched_whole(self) -> Any:
        # Linear header handling; the answers must stay exact (figures:
        # benchmarks/imap_big_header.py)
        folded = b"X-Big: start\r\n" + b"".join(b"\tword%07d folded text\r\n" % i
                                               for i in range(80_000))
        raw = (b"From: a@example.org\r\nSubject: big\r\n" + folded
               + b"To: bob@example.com\r\n\r\nbody\r\n")
        yield self.deliver(raw)
        yield self.deliver(message("small"))
        raw_client = yield self.raw_session()
        for command, expected in [(b"SEARCH HEADER X-Big word0079999", b"* SEARCH 1\r\n"),
                                  (b"SEARCH HEADER X-Big word0080000", b"* SEARCH\r\n"),
                                  (b'SEARCH TEXT "word0079999 folded"', b"* SEARCH 1\r\n"),
                                  (b"SEARCH TO bob@example.com", b"* SEARCH 1 2\r\n")]:
            lines = yield self.in_thread(raw_client.command, b"t", command)
            self.assertEqual(lines[0], expected, command)
        lines = yield self.in_thread(raw_client.command, b"t",
                                     b"FETCH 1 (BODY.PEEK[HEADER.FIELDS (X-BIG)])")
        self.assertEqual(lines[0], b"* 1 FETCH (BODY[HEADER.FIELDS (X-BIG)] {%d}\r\n"
                         % (len(folded) + 2))
        self.assertEqual(lines[1], folded + b"\r\n")

    @defer.inlineCallbacks
    def test_messages_that_arrived_before_the_first_select_are_recent(self) -> Any:
        # RFC 3501 §2.3.2: \Recent to the first session that selects the mailbox after they
        # arrived, whether or not the server ran meanwhile
        yield self.deliver(message("one"))
        yield self.deliver(message("two"), flags=("\\Seen",))
        yield self.listen()
        observer = yield self.raw_session(select=False, listen=False)
        lines = yield self.in_thread(observer.command, b"t", b"STATUS INBOX (RECENT)")
        self.assertEqual(lines[0], b'* STATUS "INBOX" (RECENT 2)\r\n')
        first = yield self.raw_session(select=False, listen=False)
        lines = yield self.in_thread(first.command, b"t", b"SELECT INBOX")
        self.assertIn(b"* 2 RECENT\r\n", lines)
        for command, expected in [(b"SEARCH NEW", b"* SEARCH 1\r\n"),
                                  (b"SEARCH RECENT", b"* SEARCH 1 2\r\n"),
                                  (b"SEARCH OLD", b"* SEARCH\r\n"),
                                  (b"FETCH 1 FLAGS", b"* 1 FETCH (FLAGS (\\Recent))\r\n")]:
            lines = yield self.in_thread(first.command, b"t", command)
            self.assertEqual(lines[0], expected, command)
        second = yield self.raw_session(select=False, listen=False)
        lines = yield self.in_thread(second.command, b"t", b"SELECT INBOX")
        self.assertIn(b"* 0 RECENT\r\n", lines)
        lines = yield self.in_thread(second.command, b"t", b"SEARCH OLD")
        self.assertEqual(lines[0], b"* SEARCH 1 2\r\n")
        lines = yield self.in_thread(observer.command, b"t", b"STATUS INBOX (RECENT)")
        self.assertEqual(lines[0], b'* STATUS "INBOX" (RECENT 0)\r\n')
        yield self.in_thread(first.close)
        yield self.in_thread(second.close)

        # a restart: a new listener with its own hub on the same database
        yield self.wait_for_floor(2)
        yield self.deliver(message("three"))
        yield self.listen()
        after = yield self.raw_session(select=False, listen=False)
        lines = yield self.in_thread(after.command, b"t", b"STATUS INBOX (RECENT)")
        self.assertEqual(lines[0], b'* STATUS "INBOX" (RECENT 1)\r\n')
        lines = yield self.in_thread(after.command, b"t", b"SELECT INBOX")
        self.assertIn(b"* 1 RECENT\r\n", lines)
        lines = yield self.in_thread(after.command, b"t", b"SEARCH RECENT")
        self.assertEqual(lines[0], b"* SEARCH 3\r\n")

    @defer.inlineCallbacks
    def wait_for_floor(self, floor: int) -> Any:
        """The floor is written after SELECT answers; wait for the write, not for a time."""
        for _ in range(500):
            if self.mailbox("INBOX").recent_floor >= floor:
                return
            yield deferLater(0.01)
        self.fail("the \\Recent floor was not stored")


    @defer.inlineCallbacks
    def test_a_new_keyword_is_announced_before_the_fetch_that_uses_it(self) -> Any:
        # As Dovecot: untagged FLAGS and OK [PERMANENTFLAGS] first (RFC 3501 §7.2.6, §7.1)
        yield self.deliver(message("one"))
        a = yield self.raw_session()
        b = yield self.raw_session(listen=False)
        system = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"
        lines = yield self.in_thread(a.command, b"t", b"STORE 1 +FLAGS (hello)")
        self.assertEqual(lines, [b"* FLAGS (%s hello)\r\n" % system,
                                 b"* OK [PERMANENTFLAGS (%s hello \\*)] Limited\r\n" % system,
                                 b"* 1 FETCH (FLAGS (hello \\Recent))\r\n",
                                 b"t OK STORE completed\r\n"])
        lines = yield self.in_thread(b.command, b"t", b"NOOP")
        self.assertEqual(lines, [b"* FLAGS (%s hello)\r\n" % system,
                                 b"* OK [PERMANENTFLAGS (%s hello \\*)] Limited\r\n" % system,
                                 b"* 1 FETCH (FLAGS (hello) UID 1)\r\n",
                                 b"t OK NOOP completed\r\n"])
        data = message("two")
        lines = yield self.in_thread(a.command, b"t", b"APPEND INBOX (world) {%d+}\r\n%s"
                                     % (len(data), data))
        self.assertEqual(lines[:3], [
            b"* FLAGS (%s hello world)\r\n" % system,
            b"* OK [PERMANENTFLAGS (%s hello world \\*)] Limited\r\n" % system,
            b"* 2 EXISTS\r\n"])
        lines = yield self.in_thread(b.command, b"t", b"NOOP")
        self.assertEqual(lines[:3], [
            b"* FLAGS (%s hello world)\r\n" % system,
            b"* OK [PERMANENTFLAGS (%s hello world \\*)] Limited\r\n" % system,
            b"* 2 EXISTS\r\n"])
        lines = yield self.in_thread(b.command, b"t", b"STORE 1 +FLAGS (world)")
        self.assertEqual(lines[0], b"* 1 FETCH (FLAGS (hello world))\r\n")  # known already


    @defer.inlineCallbacks
    def test_subscriptions_are_names_independent_of_mailboxes(self) -> Any:
        # RFC 3501 §6.3.6-7, §6.3.9
        raw = yield self.raw_session(select=False)

        @defer.inlineCallbacks
        def lsub(pattern: bytes) -> Any:
            lines = yield self.in_thread(raw.command, b"t", b'LSUB "" ' + pattern)
            self.assertEqual(lines[-1], b"t OK LSUB completed\r\n")
            return lines[:-1]

        yield self.in_thread(raw.command, b"t", b"CREATE Lists/dev")
        self.assertEqual((yield lsub(b"Lists*")), [])  # CREATE does not subscribe
        lines = yield self.in_thread(raw.command, b"t", b"SUBSCRIBE Lists/dev")
        self.assertEqual(lines, [b"t OK SUBSCRIBE completed\r\n"])
        self.assertEqual((yield lsub(b"%")), [b'* LSUB () "/" "INBOX"\r\n',
                                               b'* LSUB () "/" "Archive"\r\n',
                                               b'* LSUB () "/" "Drafts"\r\n',
                                               b'* LSUB (\\Noselect) "/" "Lists"\r\n',
                                               b'* LSUB () "/" "Sent"\r\n',
                                               b'* LSUB () "/" "Spam"\r\n',
                                               b'* LSUB () "/" "Trash"\r\n'])
        self.assertEqual((yield lsub(b"Lists*")), [b'* LSUB () "/" "Lists/dev"\r\n'])
        lines = yield self.in_thread(raw.command, b"t", b"DELETE Lists/dev")
        self.assertEqual(lines, [b"t OK DELETE completed\r\n"])
        self.assertEqual((yield lsub(b"Lists*")),  # DELETE keeps the subscription
                         [b'* LSUB (\\Noselect) "/" "Lists/dev"\r\n'])
        lines = yield self.in_thread(raw.command, b"t",
                                     b'LIST (SUBSCRIBED) "" "Lists*" RETURN (SUBSCRIBED)')
        self.assertEqual(lines[0], b'* LIST (\\NonExistent \\Subscribed) "/" "Lists/dev"\r\n')
        lines = yield self.in_thread(raw.command, b"t", b'LIST "" "Lists*"')
        self.assertEqual(lines, [b'* LIST (\\HasNoChildren) "/" "Lists"\r\n',
                                 b"t OK LIST completed\r\n"])
        lines = yield self.in_thread(raw.command, b"t", b"UNSUBSCRIBE Lists/dev")
        self.assertEqual(lines, [b"t OK UNSUBSCRIBE completed\r\n"])
        self.assertEqual((yield lsub(b"Lists*")), [])
        lines = yield self.in_thread(raw.command, b"t", b"SUBSCRIBE Later")  # no such mailbox
        self.assertEqual(lines, [b"t OK SUBSCRIBE completed\r\n"])
        yield self.in_thread(raw.command, b"t", b"CREATE Later")
        self.assertEqual((yield lsub(b"Later")), [b'* LSUB () "/" "Later"\r\n'])
        yield self.in_thread(raw.command, b"t", b"RENAME Later Sooner")  # moves with it
        self.assertEqual((yield lsub(b"Later")), [])
        self.assertEqual((yield lsub(b"Sooner")), [b'* LSUB () "/" "Sooner"\r\n'])


    @defer.inlineCallbacks
    def test_sessions_logins_and_their_end_are_logged_without_secrets(self) -> Any:
        # What an operator greps for, as Dovecot logs it; never a password or content
        yield self.deliver(message("subject-marker-5e1", body="body-marker-77ab\r\n"))
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        yield self.listen()
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        wrong = "pw-SECRET-wrong-imap-31"
        lines = yield self.in_thread(raw.command, b"a", b"LOGIN %s %s" % (ALICE.encode(),
                                                                         wrong.encode()))
        self.assertTrue(lines[-1].startswith(b"a NO [AUTHENTICATIONFAILED]"))
        yield self.in_thread(raw.command, b"b", b"LOGIN %s %s" % (ALICE.encode(),
                                                                 PASSWORD.encode()))
        yield self.in_thread(raw.command, b"c", b"SELECT INBOX")
        yield self.in_thread(raw.command, b"d", b"FETCH 1 (BODY[])")
        yield self.in_thread(raw.command, b"e", b"LOGOUT")
        for _ in range(500):
            if any("disconnect" in formatEvent(e) for e in events):
                break
            yield deferLater(0.01)
        text = [formatEvent(e) for e in events if e.get("log_namespace", "").startswith(
            "mailgosend.imap")]
        sid = text[0].split()[1]
        self.assertEqual(text, [
            f"imap {sid} connect from 127.0.0.1",
            f"imap {sid} login failed for '{ALICE}' from 127.0.0.1 (LOGIN): "
            "authentication failed",
            f"imap {sid} login {ALICE} from 127.0.0.1 (LOGIN)",
            f"imap {sid} disconnect (logout) user={ALICE}"])
        everything = "\n".join(formatEvent(e) for e in events)
        for secret in [wrong, PASSWORD, "subject-marker-5e1", "body-marker-77ab"]:
            self.assertNotIn(secret, everything)

    @defer.inlineCallbacks
    def test_a_tls_session_logs_its_tls_and_plain_login(self) -> Any:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        yield self.listen(implicit_tls=True)
        raw = yield self.in_thread(RawClient, self.port, self.client_tls)
        self.addCleanup(raw.close)
        token = base64.b64encode(b"\0" + ALICE.encode() + b"\0" + PASSWORD.encode())
        yield self.in_thread(raw.command, b"a", b"AUTHENTICATE PLAIN " + token)
        text = [formatEvent(e) for e in events if e.get("log_namespace", "").startswith(
            "mailgosend.imap")]
        self.assertRegex(text[0], r"^imap \w+ connect from 127.0.0.1 \(implicit TLS\)$")
        self.assertRegex(text[1], r"^imap \w+ TLS TLSv1\.[23] \S+$")
        self.assertRegex(text[2], rf"^imap \w+ login {ALICE} from 127.0.0.1 \(PLAIN, TLS\)$")


class ConformanceSQLiteTests(SQLiteDatabaseMixin, ConformanceTestsMixin, unittest.TestCase):
    pass


class ConformancePostgresTests(PostgresDatabaseMixin, ConformanceTestsMixin, unittest.TestCase):
    pass
