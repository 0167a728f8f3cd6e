"""Python's poplib against real POP3 listeners on 127.0.0.1 over a real store.

What a client retrieves must be exactly the stored message, and what it deletes must be gone
(soft-deleted, as IMAP EXPUNGE does) only after QUIT.
"""

from __future__ import annotations

import base64
import poplib
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.pop3 import POP3Limits
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.pop3 import EMAIL, PASSWORD, POP3Fixture, RecordingRunner, command

DOTS = (b"Subject: dots\r\nFrom: a@example.org\r\n\r\n.leading dot\r\n.\r\n..two\r\n"
        b"plain\r\n. space\r\n")
PLAIN = b"Subject: plain\r\n\r\nHello.\r\n"
STARTS_WITH_DOT = b".X-Odd: header line starting with a dot\r\n\r\nbody\r\n"


def joined(lines: list[bytes]) -> bytes:
    """poplib strips CRLF and undoes dot-stuffing; put the line ends back."""
    return b"".join(line + b"\r\n" for line in lines)


def big_message(size: int) -> bytes:
    head = b"Subject: big\r\nFrom: a@example.org\r\n\r\n"
    lines = []
    total = len(head)
    n = 0
    while total < size:
        line = (b"." if n % 7 == 0 else b"") + b"line %08d of a big message ........\r\n" % n
        lines.append(line)
        total += len(line)
        n += 1
    return head + b"".join(lines)


class ClientTestsMixin(POP3Fixture):
    # --- logging in ------------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_login_over_stls(self) -> Any:
        self.deliver(PLAIN)
        _, port = self.listen()

        def session() -> tuple[Any, ...]:
            client = self.pop(port, tls="stls")
            try:
                return client.stat()
            finally:
                client.quit()

        self.assertEqual((yield self.in_thread(session)), (1, len(PLAIN)))

    @defer.inlineCallbacks
    def test_login_over_implicit_tls(self) -> Any:
        self.deliver(PLAIN)
        _, port = self.listen(implicit_tls=True)

        def session() -> tuple[Any, ...]:
            client = self.pop(port, tls="implicit")
            try:
                return client.stat()
            finally:
                client.quit()

        self.assertEqual((yield self.in_thread(session)), (1, len(PLAIN)))

    @defer.inlineCallbacks
    def test_capa_before_tls_offers_stls_and_no_login(self) -> Any:
        _, port = self.listen()

        def capa() -> dict[str, Any]:
            client = self.pop(port, tls="plain", login=False)
            try:
                return client.capa()
            finally:
                client.quit()

        caps = yield self.in_thread(capa)
        self.assertEqual(set(caps), {"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE",
                                     "PIPELINING", "STLS"})

    @defer.inlineCallbacks
    def test_capa_after_stls_offers_user_and_sasl_plain_and_no_stls(self) -> Any:
        _, port = self.listen()

        def capa() -> dict[str, Any]:
            client = self.pop(port, tls="stls", login=False)
            try:
                return client.capa()
            finally:
                client.quit()

        caps = yield self.in_thread(capa)
        self.assertEqual(set(caps), {"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE",
                                     "PIPELINING", "USER", "SASL"})
        self.assertEqual(caps["SASL"], ["PLAIN"])

    @defer.inlineCallbacks
    def test_user_and_auth_refused_before_tls_and_no_password_is_checked(self) -> Any:
        _, port = self.listen()

        def attempt() -> list[str]:
            client = self.pop(port, tls="plain", login=False)
            errors = []
            for line in ("USER " + EMAIL, "PASS " + PASSWORD, "AUTH PLAIN " + plain_b64()):
                try:
                    command(client, line)
                except poplib.error_proto as e:
                    errors.append(e.args[0].decode())
            client.quit()
            return errors

        errors = yield self.in_thread(attempt)
        self.assertEqual(len(errors), 3)
        for error in errors:
            self.assertTrue(error.startswith("-ERR [AUTH] Plaintext authentication disallowed"),
                            error)
        self.assertEqual(self.login_attempts(), 0)

    @defer.inlineCallbacks
    def test_plaintext_login_from_loopback_when_allowed(self) -> Any:
        self.deliver(PLAIN)
        _, port = self.listen(allow_plaintext_loopback=True)

        def session() -> tuple[Any, ...]:
            client = self.pop(port, tls="plain")
            try:
                return client.stat()
            finally:
                client.quit()

        self.assertEqual((yield self.in_thread(session)), (1, len(PLAIN)))

    @defer.inlineCallbacks
    def test_wrong_password_gets_auth_code_and_a_retry_works(self) -> Any:
        _, port = self.listen(implicit_tls=True)

        def attempt() -> tuple[str, Any]:
            client = self.pop(port, tls="implicit", login=False)
            client.user(EMAIL)
            with self.assertRaises(poplib.error_proto) as refused:
                client.pass_("wrong password")
            client.user(EMAIL)
            client.pass_(PASSWORD)
            stat = client.stat()
            client.quit()
            return refused.exception.args[0].decode(), stat

        error, stat = yield self.in_thread(attempt)
        self.assertEqual(error, "-ERR [AUTH] Authentication failed")
        self.assertEqual(stat, (0, 0))

    @defer.inlineCallbacks
    def test_unknown_user_gets_the_same_reply_as_a_wrong_password(self) -> Any:
        _, port = self.listen(implicit_tls=True)

        def attempt() -> str:
            client = self.pop(port, tls="implicit", login=False)
            client.user("nobody@example.com")
            with self.assertRaises(poplib.error_proto) as refused:
                client.pass_(PASSWORD)
            client.quit()
            return refused.exception.args[0].decode()

        self.assertEqual((yield self.in_thread(attempt)), "-ERR [AUTH] Authentication failed")

    @defer.inlineCallbacks
    def test_banned_ip_is_refused_at_connect(self) -> Any:
        _, port = self.listen(implicit_tls=True)
        self.ban("127.0.0.1")

        def connect() -> str:
            with self.assertRaises(poplib.error_proto) as refused:
                self.pop(port, tls="implicit", login=False)
            return refused.exception.args[0].decode()

        error = yield self.in_thread(connect)
        self.assertTrue(error.startswith("-ERR [SYS/TEMP] "), error)
        self.assertEqual(self.login_attempts(), 0)

    @defer.inlineCallbacks
    def test_ban_during_a_session_refuses_the_login_with_sys_temp_and_closes(self) -> Any:
        _, port = self.listen(implicit_tls=True)

        def connect() -> poplib.POP3:
            client = self.pop(port, tls="implicit", login=False)
            client.user(EMAIL)
            return client

        client = yield self.in_thread(connect)
        self.ban("127.0.0.1")

        def login() -> tuple[str, bytes]:
            with self.assertRaises(poplib.error_proto) as refused:
                client.pass_(PASSWORD)
            return refused.exception.args[0].decode(), client.file.read()

        error, rest = yield self.in_thread(login)
        self.assertTrue(error.startswith("-ERR [SYS/TEMP] "), error)
        self.assertEqual(rest, b"")  # closed

    # --- SASL PLAIN (RFC 5034) ---------------------------------------------------------------

    @defer.inlineCallbacks
    def test_auth_plain_with_initial_response(self) -> Any:
        _, port = self.listen(implicit_tls=True)

        def session() -> tuple[bytes, Any]:
            client = self.pop(port, tls="implicit", login=False)
            reply = command(client, "AUTH PLAIN " + plain_b64())
            stat = client.stat()
            client.quit()
            return reply, stat

        reply, stat = yield self.in_thread(session)
        self.assertTrue(reply.startswith(b"+OK Logged in"), reply)
        self.assertEqual(stat, (0, 0))

    @defer.inlineCallbacks
    def test_auth_plain_with_continuation_and_cancel(self) -> Any:
        _, port = self.listen(implicit_tls=True)

        def session() -> list[bytes]:
            client = self.pop(port, tls="implicit", login=False)
            replies = [command(client, "AUTH PLAIN")]
            with self.assertRaises(poplib.error_proto) as cancelled:
                command(client, "*")
            replies.append(cancelled.exception.args[0])
            replies.append(command(client, "AUTH PLAIN"))
            replies.append(command(client, plain_b64()))
            client.quit()
            return replies

        replies = yield self.in_thread(session)
        self.assertEqual(replies[:3], [b"+ ", b"-ERR Authentication cancelled", b"+ "])
        self.assertTrue(replies[3].startswith(b"+OK Logged in"), replies[3])

    @defer.inlineCallbacks
    def test_auth_plain_wrong_password_gets_auth_code(self) -> Any:
        _, port = self.listen(implicit_tls=True)

        def session() -> bytes:
            client = self.pop(port, tls="implicit", login=False)
            with self.assertRaises(poplib.error_proto) as refused:
                command(client, "AUTH PLAIN " + plain_b64(password="nope"))
            client.quit()
            return refused.exception.args[0]

        self.assertEqual((yield self.in_thread(session)), b"-ERR [AUTH] Authentication failed")

    # --- reading --------------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_stat_list_and_uidl(self) -> Any:
        first, second = self.deliver(PLAIN), self.deliver(DOTS)
        validity = self.inbox().uidvalidity
        _, port = self.listen()

        def session() -> list[Any]:
            client = self.pop(port)
            try:
                return [client.stat(), client.list()[1], client.list(2), client.uidl()[1],
                        client.uidl(1)]
            finally:
                client.quit()

        stat, listing, one, uidls, uidl = yield self.in_thread(session)
        self.assertEqual(stat, (2, len(PLAIN) + len(DOTS)))
        self.assertEqual(listing, [b"1 %d" % len(PLAIN), b"2 %d" % len(DOTS)])
        self.assertEqual(one, b"+OK 2 %d" % len(DOTS))
        self.assertEqual(uidls, [f"1 {validity}.{first.uid}".encode(),
                                 f"2 {validity}.{second.uid}".encode()])
        self.assertEqual(uidl, f"+OK 1 {validity}.{first.uid}".encode())

    @defer.inlineCallbacks
    def test_retr_is_byte_exact_with_dot_stuffing(self) -> Any:
        for raw in (PLAIN, DOTS, STARTS_WITH_DOT):
            self.deliver(raw)
        _, port = self.listen()

        def session() -> list[tuple[Any, ...]]:
            client = self.pop(port)
            try:
                return [client.retr(n) for n in (1, 2, 3)]
            finally:
                client.quit()

        results = yield self.in_thread(session)
        for raw, (status, lines, octets) in zip((PLAIN, DOTS, STARTS_WITH_DOT), results):
            self.assertEqual(status, b"+OK %d octets" % len(raw))
            self.assertEqual(joined(lines), raw)
            self.assertEqual(octets, len(raw))

    @defer.inlineCallbacks
    def test_top_sends_header_and_n_body_lines(self) -> Any:
        self.deliver(DOTS)
        _, port = self.listen()

        def session() -> list[bytes]:
            client = self.pop(port)
            try:
                return [joined(client.top(1, n)[1]) for n in (0, 2, 100)]
            finally:
                client.quit()

        none, two, everything = yield self.in_thread(session)
        header = b"Subject: dots\r\nFrom: a@example.org\r\n\r\n"
        self.assertEqual(none, header)
        self.assertEqual(two, header + b".leading dot\r\n.\r\n")
        self.assertEqual(everything, DOTS)

    @defer.inlineCallbacks
    def test_a_5mb_message_is_streamed_in_chunks(self) -> Any:
        raw = big_message(5 * 1024 * 1024)
        self.deliver(raw)
        recorder = RecordingRunner(self.runner)
        limits = POP3Limits()
        _, port = self.listen(runner=recorder, limits=limits)

        def session() -> tuple[Any, ...]:
            client = self.pop(port)
            try:
                return client.retr(1)
            finally:
                client.quit()

        status, lines, octets = yield self.in_thread(session)
        self.assertEqual(status, b"+OK %d octets" % len(raw))
        self.assertTrue(joined(lines) == raw, "the 5 MB message differs")
        self.assertEqual(octets, len(raw))
        lengths = [length for _, length in recorder.ranges]
        self.assertGreaterEqual(len(lengths), 5)
        self.assertLessEqual(max(lengths), limits.chunk_size)
        self.assertEqual(sum(lengths), len(raw))

    @defer.inlineCallbacks
    def test_top_of_a_large_message_reads_only_the_first_chunk(self) -> Any:
        self.deliver(big_message(3 * 1024 * 1024))
        recorder = RecordingRunner(self.runner)
        _, port = self.listen(runner=recorder)

        def session() -> list[bytes]:
            client = self.pop(port)
            try:
                return client.top(1, 3)[1]
            finally:
                client.quit()

        lines = yield self.in_thread(session)
        self.assertEqual(len(lines), 3 + 3)  # two header lines, the blank line, three lines
        self.assertEqual(recorder.ranges, [(0, POP3Limits().chunk_size)])

    # --- deleting -------------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_dele_then_quit_soft_deletes_in_the_store(self) -> Any:
        first, second = self.deliver(PLAIN), self.deliver(DOTS)
        _, port = self.listen()

        def session() -> tuple[bytes, bytes]:
            client = self.pop(port)
            deleted = client.dele(1)
            return deleted, client.quit()

        deleted, bye = yield self.in_thread(session)
        self.assertEqual((deleted, bye), (b"+OK Message 1 deleted",
                                          b"+OK Bye, 1 messages deleted"))
        rows = {row.uid: row for row in self.rows()}
        self.assertIsNotNone(rows[first.uid].deleted_at)
        self.assertIsNone(rows[second.uid].deleted_at)

        def next_session() -> tuple[Any, ...]:
            client = self.pop(port)
            try:
                return client.stat()
            finally:
                client.quit()

        self.assertEqual((yield self.in_thread(next_session)), (1, len(DOTS)))

    @defer.inlineCallbacks
    def test_dele_then_dropped_connection_removes_nothing(self) -> Any:
        self.deliver(PLAIN)
        self.deliver(DOTS)
        recorder = RecordingRunner(self.runner)
        factory, port = self.listen(runner=recorder)

        def session() -> None:
            client = self.pop(port)
            client.dele(1)
            client.dele(2)
            client.sock.close()  # no QUIT

        yield self.in_thread(session)
        yield self.wait_for(lambda: not factory.open_connections(), "the server to notice")
        self.assertEqual(recorder.writes, [])
        self.assertEqual([row.deleted_at for row in self.rows()], [None, None])

    @defer.inlineCallbacks
    def test_rset_unmarks_everything(self) -> Any:
        self.deliver(PLAIN)
        self.deliver(DOTS)
        _, port = self.listen()

        def session() -> list[Any]:
            client = self.pop(port)
            client.dele(1)
            stat_marked = client.stat()
            reset = client.rset()
            return [stat_marked, reset, client.stat(), client.quit()]

        marked, reset, stat, bye = yield self.in_thread(session)
        self.assertEqual(marked, (1, len(DOTS)))
        self.assertEqual(reset, b"+OK Maildrop has 2 messages (%d octets)"
                         % (len(PLAIN) + len(DOTS)))
        self.assertEqual(stat, (2, len(PLAIN) + len(DOTS)))
        self.assertEqual(bye, b"+OK Bye, 0 messages deleted")
        self.assertEqual([row.deleted_at for row in self.rows()], [None, None])

    @defer.inlineCallbacks
    def test_retrieved_messages_are_seen_after_quit_only(self) -> Any:
        self.deliver(PLAIN)
        self.deliver(DOTS)
        _, port = self.listen()

        def session() -> poplib.POP3:
            client = self.pop(port)
            client.retr(2)
            client.top(1, 0)
            return client

        client = yield self.in_thread(session)
        self.assertEqual([row.flags for row in self.rows()], ["", ""])
        yield self.in_thread(client.quit)
        self.assertEqual([row.flags for row in self.rows()], ["", "\\Seen"])

    @defer.inlineCallbacks
    def test_failed_update_is_reported_and_deletes_nothing(self) -> Any:
        self.deliver(PLAIN)
        _, port = self.listen(runner=RecordingRunner(self.runner, fail_writes=True))

        def session() -> str:
            client = self.pop(port)
            client.dele(1)
            with self.assertRaises(poplib.error_proto) as failed:
                client.quit()
            return failed.exception.args[0].decode()

        error = yield self.in_thread(session)
        self.assertTrue(error.startswith("-ERR [SYS/TEMP] Messages were not deleted"), error)
        self.assertIsNone(self.rows()[0].deleted_at)
        self.flushLoggedErrors(RuntimeError)

    @defer.inlineCallbacks
    def test_concurrent_sessions_keep_their_own_view(self) -> Any:
        self.deliver(PLAIN)
        self.deliver(DOTS)
        _, port = self.listen()

        def sessions() -> list[Any]:
            first, second = self.pop(port), self.pop(port)
            first.dele(1)
            first.quit()
            retrieved = joined(second.retr(1)[1])  # gone for others, still readable here
            second.dele(1)
            second.dele(2)
            bye = second.quit()
            return [retrieved, bye]

        retrieved, bye = yield self.in_thread(sessions)
        self.assertEqual(retrieved, PLAIN)
        self.assertEqual(bye, b"+OK Bye, 1 messages deleted")
        self.assertTrue(all(row.deleted_at is not None for row in self.rows()))

    @defer.inlineCallbacks
    def test_mail_delivered_during_a_session_shows_in_the_next(self) -> Any:
        self.deliver(PLAIN)
        _, port = self.listen()
        client = yield self.in_thread(self.pop, port)
        self.deliver(DOTS)
        before = yield self.in_thread(client.stat)
        yield self.in_thread(client.quit)

        def next_session() -> tuple[Any, ...]:
            again = self.pop(port)
            try:
                return again.stat()
            finally:
                again.quit()

        after = yield self.in_thread(next_session)
        self.assertEqual((before, after), ((1, len(PLAIN)), (2, len(PLAIN) + len(DOTS))))


def plain_b64(user: str = EMAIL, password: str = PASSWORD) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class ClientSQLiteTests(SQLiteDatabaseMixin, ClientTestsMixin, unittest.TestCase):
    pass


class ClientPostgresTests(PostgresDatabaseMixin, ClientTestsMixin, unittest.TestCase):
    pass


class ClientFileBlobsTests(SQLiteDatabaseMixin, ClientTestsMixin, unittest.TestCase):
    blob_backend = "fs"
