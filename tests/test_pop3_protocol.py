"""The POP3 session on the wire: exact replies, pipelining, STLS injection, over-long lines,
malformed commands, timeouts, shutdown and connection limits (raw sockets, real listeners)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from mailgosend.pop3 import POP3Limits
from mailgosend.pop3.protocol import is_loopback
from tests.support.db import SQLiteDatabaseMixin
from tests.support.pop3 import EMAIL, PASSWORD, POP3Fixture, RawClient, RecordingRunner

MESSAGE = b"Subject: wire\r\n\r\n.dot\r\n.\r\nlast\r\n"
LOGIN = f"USER {EMAIL}\r\nPASS {PASSWORD}\r\n".encode()
GREETING = b"+OK mail.example.com POP3 server ready\r\n"


class LoopbackTests(unittest.TestCase):
    def test_which_peers_count_as_loopback(self) -> None:
        cases = [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True),
                 ("::ffff:127.0.0.1", True), ("10.0.0.1", False), ("::ffff:10.0.0.1", False),
                 ("192.0.2.1", False), ("fe80::1%eth0", False), ("", False), ("unix", False)]
        for host, expected in cases:
            self.assertEqual(is_loopback(host), expected, host)


class ProtocolTests(SQLiteDatabaseMixin, POP3Fixture, unittest.TestCase):
    def logged_in(self, port: int) -> RawClient:
        """A raw client over implicit TLS, past the greeting and the login replies."""
        client = self.raw(port, implicit_tls=True)
        client.line()
        client.send(LOGIN)
        client.lines(2)
        return client

    @defer.inlineCallbacks
    def test_greeting_names_the_host_and_offers_no_apop(self) -> Any:
        _, port = self.listen()

        def greet() -> bytes:
            client = self.raw(port)
            try:
                return client.line()
            finally:
                client.close()

        self.assertEqual((yield self.in_thread(greet)), GREETING)  # no "<timestamp>"

    @defer.inlineCallbacks
    def test_commands_pipelined_before_stls_are_discarded(self) -> Any:
        # CVE-2011-0411 class: plaintext injected behind STLS must not run inside TLS.
        _, port = self.listen()

        def inject() -> tuple[bytes, bytes]:
            client = self.raw(port)
            client.line()
            client.send(b"STLS\r\nCAPA\r\nNOOP\r\n")
            begin = client.line()
            client.starttls()
            client.send(b"QUIT\r\n")
            return begin, client.read_to_end()

        begin, after = yield self.in_thread(inject)
        self.assertEqual(begin, b"+OK Begin TLS negotiation\r\n")
        self.assertEqual(after, b"+OK Bye\r\n")

    @defer.inlineCallbacks
    def test_user_given_before_stls_is_forgotten(self) -> Any:
        _, port = self.listen(allow_plaintext_loopback=True)

        def session() -> list[bytes]:
            client = self.raw(port)
            client.line()
            client.send(f"USER {EMAIL}\r\n".encode())
            replies = [client.line()]
            client.send(b"STLS\r\n")
            replies.append(client.line())
            client.starttls()
            client.send(f"PASS {PASSWORD}\r\nQUIT\r\n".encode())
            replies.append(client.read_to_end())
            return replies

        user, begin, rest = yield self.in_thread(session)
        self.assertEqual((user, begin), (b"+OK Send PASS\r\n", b"+OK Begin TLS negotiation\r\n"))
        self.assertEqual(rest, b"-ERR USER first\r\n+OK Bye\r\n")

    @defer.inlineCallbacks
    def test_pipelined_login_and_commands_are_answered_in_order(self) -> Any:
        delivered = self.deliver(MESSAGE)
        validity = self.inbox().uidvalidity
        _, port = self.listen(implicit_tls=True)

        def session() -> bytes:
            client = self.raw(port, implicit_tls=True)
            client.line()
            client.send(LOGIN + b"STAT\r\nLIST\r\nUIDL 1\r\nDELE 1\r\nSTAT\r\nQUIT\r\n")
            return client.read_to_end()

        size = len(MESSAGE)
        expected = (b"+OK Send PASS\r\n"
                    b"+OK Logged in, 1 messages (%d octets)\r\n"
                    b"+OK 1 %d\r\n"
                    b"+OK 1 messages (%d octets)\r\n1 %d\r\n.\r\n"
                    b"+OK 1 %d.%d\r\n"
                    b"+OK Message 1 deleted\r\n"
                    b"+OK 0 0\r\n"
                    b"+OK Bye, 1 messages deleted\r\n"
                    % (size, size, size, size, validity, delivered.uid))
        self.assertEqual((yield self.in_thread(session)), expected)

    @defer.inlineCallbacks
    def test_retr_wire_bytes_are_the_message_dot_stuffed(self) -> Any:
        self.deliver(MESSAGE)
        _, port = self.listen(implicit_tls=True)

        def session() -> tuple[bytes, bytes]:
            client = self.logged_in(port)
            client.send(b"RETR 1\r\n")
            status = client.line()
            body = client.multiline()
            client.close()
            return status, body

        status, body = yield self.in_thread(session)
        self.assertEqual(status, b"+OK %d octets\r\n" % len(MESSAGE))
        self.assertEqual(body, b"Subject: wire\r\n\r\n..dot\r\n..\r\nlast\r\n")

    @defer.inlineCallbacks
    def test_retr_sends_a_bare_cr_as_a_line_end_and_stuffs_the_dot_after_it(self) -> Any:
        # Regression: POP3 had its own stuffer that sent "first\r.\r\n" as stored, so a
        # client that ends lines at CR read "." as the end of the message.
        self.deliver(b"Subject: cr\r\n\r\nfirst\r.\r\nafter\r\n")
        _, port = self.listen(implicit_tls=True)

        def session() -> bytes:
            client = self.logged_in(port)
            client.send(b"RETR 1\r\n")
            client.line()
            body = client.multiline()
            client.close()
            return body

        body = yield self.in_thread(session)
        self.assertEqual(body, b"Subject: cr\r\n\r\nfirst\r\n..\r\nafter\r\n")

    @defer.inlineCallbacks
    def test_a_50kb_command_line_is_refused_and_the_session_goes_on(self) -> Any:
        _, port = self.listen(implicit_tls=True)

        def session() -> list[bytes]:
            client = self.raw(port, implicit_tls=True)
            client.line()
            client.send(b"USER " + b"x" * 50_000 + b"\r\n")
            replies = [client.line()]
            client.send(LOGIN)
            replies += client.lines(2)
            client.send(b"NOOP " + b"y" * 50_000 + b"\r\nNOOP\r\n")
            replies += client.lines(2)
            client.close()
            return replies

        replies = yield self.in_thread(session)
        self.assertEqual(replies[0], b"-ERR Line too long\r\n")
        self.assertTrue(replies[2].startswith(b"+OK Logged in"), replies)
        self.assertEqual(replies[3:], [b"-ERR Line too long\r\n", b"+OK\r\n"])

    @defer.inlineCallbacks
    def test_unknown_and_out_of_state_commands(self) -> Any:
        _, port = self.listen(implicit_tls=True)

        def session() -> list[bytes]:
            client = self.raw(port, implicit_tls=True)
            client.line()
            client.send(b"XYZZY\r\nSTAT\r\nAPOP alice 0123456789abcdef\r\nLAST\r\n\r\n")
            replies = client.lines(5)
            client.send(LOGIN + b"USER bob\r\nSTLS\r\nNOOP\r\n")
            replies += client.lines(5)[2:]
            client.close()
            return replies

        self.assertEqual((yield self.in_thread(session)), [
            b"-ERR Unknown command\r\n", b"-ERR Log in first\r\n", b"-ERR Unknown command\r\n",
            b"-ERR Unknown command\r\n", b"-ERR Unknown command\r\n",
            b"-ERR Already logged in\r\n", b"-ERR Already logged in\r\n", b"+OK\r\n"])

    @defer.inlineCallbacks
    def test_malformed_arguments_get_syntax_replies(self) -> Any:
        # twisted.mail.pop3 raises inside its own error handler for each of these.
        self.deliver(MESSAGE)
        _, port = self.listen(implicit_tls=True)
        commands = [b"RETR x", b"RETR", b"DELE", b"DELE -1", b"TOP 1", b"LIST 1 2", b"STAT 1",
                    b"UIDL +1", b"RETR 0", b"RETR 2", b"TOP 1 x"]

        def session() -> list[bytes]:
            client = self.logged_in(port)
            client.send(b"".join(c + b"\r\n" for c in commands) + b"NOOP\r\n")
            replies = client.lines(len(commands) + 1)
            client.close()
            return replies

        self.assertEqual((yield self.in_thread(session)), [
            b"-ERR Syntax: RETR msg\r\n", b"-ERR Syntax: RETR msg\r\n",
            b"-ERR Syntax: DELE msg\r\n", b"-ERR Syntax: DELE msg\r\n",
            b"-ERR Syntax: TOP msg n\r\n", b"-ERR Syntax: LIST [msg]\r\n",
            b"-ERR Syntax: STAT\r\n", b"-ERR Syntax: UIDL [msg]\r\n",
            b"-ERR No such message\r\n", b"-ERR No such message 2\r\n",
            b"-ERR Syntax: TOP msg n\r\n", b"+OK\r\n"])

    @defer.inlineCallbacks
    def test_deleted_message_cannot_be_read_or_deleted_again(self) -> Any:
        self.deliver(MESSAGE)
        _, port = self.listen(implicit_tls=True)

        def session() -> list[bytes]:
            client = self.logged_in(port)
            client.send(b"DELE 1\r\nRETR 1\r\nTOP 1 0\r\nLIST 1\r\nUIDL 1\r\nDELE 1\r\nLIST\r\n")
            replies = client.lines(8)
            client.close()
            return replies

        self.assertEqual((yield self.in_thread(session)), [
            b"+OK Message 1 deleted\r\n", b"-ERR No such message 1\r\n",
            b"-ERR No such message 1\r\n", b"-ERR No such message 1\r\n",
            b"-ERR No such message 1\r\n", b"-ERR Message 1 already deleted\r\n",
            b"+OK 0 messages (0 octets)\r\n", b".\r\n"])

    @defer.inlineCallbacks
    def test_auth_without_mechanism_lists_plain(self) -> Any:
        _, port = self.listen(implicit_tls=True)

        def session() -> list[bytes]:
            client = self.raw(port, implicit_tls=True)
            client.line()
            client.send(b"AUTH\r\nAUTH CRAM-MD5\r\n")
            replies = client.lines(4)
            client.close()
            return replies

        self.assertEqual((yield self.in_thread(session)), [
            b"+OK Mechanisms follow\r\n", b"PLAIN\r\n", b".\r\n",
            b"-ERR Unsupported authentication mechanism\r\n"])

    @defer.inlineCallbacks
    def test_stls_is_refused_on_the_implicit_tls_port(self) -> Any:
        _, port = self.listen(implicit_tls=True)

        def session() -> bytes:
            client = self.raw(port, implicit_tls=True)
            client.line()
            client.send(b"STLS\r\n")
            reply = client.line()
            client.close()
            return reply

        self.assertEqual((yield self.in_thread(session)), b"-ERR Already using TLS\r\n")

    @defer.inlineCallbacks
    def test_without_tls_logins_are_refused_with_sys_perm(self) -> Any:
        _, port = self.listen(tls=None)

        def session() -> list[bytes]:
            client = self.raw(port)
            client.line()
            client.send(b"STLS\r\nUSER alice\r\n")
            replies = client.lines(2)
            client.close()
            return replies

        self.assertEqual((yield self.in_thread(session)), [
            b"-ERR TLS is not available on this port\r\n",
            b"-ERR [SYS/PERM] Logins need TLS, which is not available on this port\r\n"])

    @defer.inlineCallbacks
    def test_connection_closes_after_three_failed_logins(self) -> Any:
        _, port = self.listen(implicit_tls=True)

        def session() -> bytes:
            client = self.raw(port, implicit_tls=True)
            client.line()
            client.send(f"USER {EMAIL}\r\nPASS bad\r\n".encode() * 3)
            return client.read_to_end()

        self.assertEqual((yield self.in_thread(session)),
                         b"+OK Send PASS\r\n-ERR [AUTH] Authentication failed\r\n" * 3)

    @defer.inlineCallbacks
    def test_idle_timeout_logs_out_without_applying_deletions(self) -> Any:
        self.deliver(MESSAGE)
        clock = task.Clock()
        recorder = RecordingRunner(self.runner)
        factory, port = self.listen(implicit_tls=True, clock=clock, runner=recorder)

        def start() -> RawClient:
            client = self.logged_in(port)
            client.send(b"DELE 1\r\n")
            client.line()
            return client

        client = yield self.in_thread(start)
        clock.advance(POP3Limits().idle_timeout - 1)
        clock.advance(1)
        rest = yield self.in_thread(client.read_to_end)
        self.assertEqual(rest, b"-ERR Autologout: idle for too long\r\n")
        client.close()
        yield self.wait_for(lambda: not factory.open_connections(), "the session to end")
        self.assertEqual(recorder.writes, [])
        self.assertIsNone(self.rows()[0].deleted_at)

    @defer.inlineCallbacks
    def test_shutdown_closes_idle_sessions_with_sys_temp(self) -> Any:
        factory, port = self.listen(implicit_tls=True)
        client = yield self.in_thread(self.logged_in, port)
        for session in factory.open_connections():
            session.server_shutting_down()
        rest = yield self.in_thread(client.read_to_end)
        self.assertEqual(rest, b"-ERR [SYS/TEMP] Server shutting down\r\n")
        client.close()
        yield self.wait_for(lambda: not factory.open_connections(), "sessions to close")

    @defer.inlineCallbacks
    def test_a_client_that_never_closes_is_dropped_after_the_close_grace(self) -> Any:
        clock = task.Clock()
        factory, port = self.listen(implicit_tls=True, clock=clock)
        client = yield self.in_thread(lambda: self.raw(port, implicit_tls=True))
        yield self.in_thread(client.line)
        client.send(b"QUIT\r\n")
        self.assertEqual((yield self.in_thread(client.read_to_end)), b"+OK Bye\r\n")
        self.assertEqual(len(factory.open_connections()), 1)  # TLS waits for close_notify
        clock.advance(POP3Limits().close_grace)
        yield self.wait_for(lambda: not factory.open_connections(), "the abort")
        client.close()

    @defer.inlineCallbacks
    def test_connections_per_ip_are_limited(self) -> Any:
        _, port = self.listen(limits=POP3Limits(max_connections_per_ip=1))

        def session() -> tuple[bytes, bytes]:
            first = self.raw(port)
            second = self.raw(port)
            greeting = first.line()
            refused = second.read_to_end()
            first.close()
            return greeting, refused

        greeting, refused = yield self.in_thread(session)
        self.assertEqual(greeting, GREETING)
        self.assertEqual(refused, b"-ERR [SYS/TEMP] Too many connections; try again later\r\n")
