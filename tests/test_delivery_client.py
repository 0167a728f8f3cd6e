"""The outbound SMTP client, three ways:

- protocol level, over a fake transport and a ``Clock``: timeouts, flow
  control, STARTTLS injection, lost connections -- everything where time or
  buffering must be controlled exactly;
- against scripted peers (``tests/support/peers.py``) on real sockets: the
  misbehaving servers a queue meets;
- against a whole mailgosend server: delivery read back from its store.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from mailgosend.delivery.client import (
    BytesSource,
    ClientSession,
    ClientSettings,
    Envelope,
    Recipient,
    SessionFailed,
    Timeouts,
    TransactionResult,
    connect,
    open_session,
)
from mailgosend.delivery.clientprotocol import SMTPClientProtocol
from tests.support.certs import make_ca, make_cert
from tests.support.mailserver import HOSTNAME, PASSWORD, MailServer
from tests.support.peers import Peer, PeerScript

MESSAGE = (b"From: someone@pass.test\r\nTo: alice@example.com\r\nSubject: test\r\n"
           b"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <t1@pass.test>\r\n\r\n"
           b"Hello.\r\n.\r\n..two dots\r\n.leading dot\r\nlast line\r\n")
SETTINGS = ClientSettings(helo_name="client.test")


def inline(test: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., defer.Deferred[Any]]:
    """Let trial run an ``async def`` test."""
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        return defer.ensureDeferred(test(*args, **kwargs))
    return run


def envelope(*rcpts: str, sender: str = "someone@pass.test", size: int = len(MESSAGE),
             **kw: Any) -> Envelope:
    return Envelope(sender, tuple(Recipient(r) for r in rcpts), size=size, **kw)


# --- protocol level ---------------------------------------------------------------------

class FakeTransport(StringTransport):
    """Buffers writes; pauses a registered producer past ``limit`` bytes until ``drain``."""

    def __init__(self, limit: int | None = None) -> None:
        super().__init__()
        self.limit = limit
        self.paused = False
        self.tls: Any = None
        self.sent = bytearray()
        self.high_water = 0

    def write(self, data: bytes) -> None:
        super().write(data)
        self.high_water = max(self.high_water, len(self.value()))
        if (self.limit is not None and self.producer is not None and not self.paused
                and len(self.value()) > self.limit):
            self.paused = True
            self.producer.pauseProducing()

    def take(self) -> bytes:
        data = self.value()
        self.sent += data
        self.clear()
        return data

    def drain(self) -> None:
        self.take()
        if self.paused and self.producer is not None:
            self.paused = False
            self.producer.resumeProducing()

    def startTLS(self, creator: Any) -> None:
        self.tls = creator

    def loseConnection(self) -> None:
        self.abortConnection()

    def abortConnection(self) -> None:
        if not self.disconnecting:
            self.disconnecting = True
            self.protocol.connectionLost(Failure(ConnectionDone()))


class ProtocolTestBase(unittest.TestCase):
    def open(self, settings: ClientSettings = SETTINGS, ehlo: bytes = b"250-mx.test\r\n"
             b"250-PIPELINING\r\n250 SIZE 1000000\r\n", limit: int | None = None
             ) -> ClientSession:
        self.clock = task.Clock()
        self.protocol = SMTPClientProtocol(self.clock, settings.timeouts.greeting)
        self.transport = FakeTransport(limit)
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        d = open_session(self.protocol, "mx.test", settings)
        self.feed(b"220 mx.test ESMTP\r\n")
        self.assertEqual(self.transport.take(), b"EHLO client.test\r\n")
        self.feed(ehlo)
        return self.successResultOf(d)

    def feed(self, data: bytes) -> None:
        self.protocol.dataReceived(data)


class ProtocolTests(ProtocolTestBase):
    def test_pipelines_mail_rcpt_and_data_in_one_write(self) -> None:
        session = self.open()
        d = session.send(envelope("a@x.test", "b@x.test"), BytesSource(b"hi\r\n"))
        self.assertEqual(self.transport.take(), b"MAIL FROM:<someone@pass.test> SIZE=%d\r\n"
                         b"RCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n" % len(MESSAGE))
        self.feed(b"250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n354 go\r\n")
        self.assertEqual(self.transport.take(), b"hi\r\n.\r\n")
        self.feed(b"250 2.0.0 queued as 1\r\n")
        result = self.successResultOf(d)
        self.assertEqual(str(result.recipients["a@x.test"]), "250 2.0.0 queued as 1")
        self.assertEqual(str(result.recipients["b@x.test"]), "550 5.1.1 no such user")
        self.assertFalse(result.session_lost)

    def test_stall_after_data_times_out_and_loses_the_session(self) -> None:
        session = self.open()
        d = session.send(envelope("a@x.test"), BytesSource(MESSAGE))
        self.feed(b"250 ok\r\n250 ok\r\n354 go\r\n")
        self.assertTrue(self.transport.take().endswith(b"\r\n.\r\n"))
        self.clock.advance(Timeouts().data_done - 1)
        self.assertNoResult(d)
        self.clock.advance(1)
        result = self.successResultOf(d)
        self.assertTrue(result.session_lost)
        reply = result.recipients["a@x.test"]
        self.assertEqual((reply.code, reply.enhanced, reply.local), (421, "4.4.2", True))
        self.assertEqual(reply.text, "timeout waiting for reply to end of data")
        self.assertTrue(self.transport.disconnecting)
        self.assertTrue(session.lost)
        again = self.successResultOf(session.send(envelope("c@x.test"), BytesSource(b"x")))
        self.assertTrue(again.session_lost)
        self.assertTrue(again.recipients["c@x.test"].temporary)

    def test_rcpt_timeout_names_the_command(self) -> None:
        session = self.open(ehlo=b"250 mx.test\r\n")
        d = session.send(envelope("a@x.test"), BytesSource(MESSAGE))
        self.feed(b"250 ok\r\n")
        self.clock.advance(Timeouts().rcpt)
        reply = self.successResultOf(d).recipients["a@x.test"]
        self.assertEqual(reply.text, "timeout waiting for reply to RCPT")

    def test_greeting_timeout_fails_the_connect(self) -> None:
        self.clock = task.Clock()
        protocol = SMTPClientProtocol(self.clock, 300)
        transport = FakeTransport()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        d = open_session(protocol, "mx.test", SETTINGS)
        self.clock.advance(300)
        failure = self.failureResultOf(d, SessionFailed)
        self.assertEqual(failure.value.reply.text, "timeout waiting for reply to greeting")
        self.assertTrue(failure.value.reply.temporary)

    def test_421_at_rcpt_resolves_everything_left_as_that_421(self) -> None:
        session = self.open()
        d = session.send(envelope("a@x.test", "b@x.test", "c@x.test"), BytesSource(MESSAGE))
        self.transport.take()
        self.feed(b"250 ok\r\n550 5.1.1 unknown\r\n421 4.3.2 shutting down\r\n")
        result = self.successResultOf(d)
        self.assertTrue(result.session_lost)
        self.assertEqual(result.recipients["a@x.test"].code, 550)
        self.assertEqual(str(result.recipients["b@x.test"]), "421 4.3.2 shutting down")
        self.assertEqual(str(result.recipients["c@x.test"]), "421 4.3.2 shutting down")
        self.assertFalse(result.recipients["b@x.test"].local)

    def test_connection_lost_after_the_dot_leaves_recipients_temporary(self) -> None:
        session = self.open()
        d = session.send(envelope("a@x.test"), BytesSource(MESSAGE))
        self.feed(b"250 ok\r\n250 ok\r\n354 go\r\n")
        self.protocol.connectionLost(Failure(ConnectionDone("peer went away")))
        result = self.successResultOf(d)
        reply = result.recipients["a@x.test"]
        self.assertTrue(result.session_lost)
        self.assertTrue(reply.temporary)
        self.assertIn("connection lost waiting for reply to end of data", reply.text)

    def test_unsolicited_reply_while_idle_ends_the_session(self) -> None:
        session = self.open()
        self.feed(b"250 surprise\r\n")
        self.assertTrue(session.lost)
        self.assertTrue(self.transport.disconnecting)

    def test_over_long_reply_line_ends_the_session(self) -> None:
        session = self.open()
        d = session.send(envelope("a@x.test"), BytesSource(MESSAGE))
        self.feed(b"250 " + b"x" * 10_000)
        reply = self.successResultOf(d).recipients["a@x.test"]
        self.assertEqual(reply.text, "protocol error: reply line too long")

    def test_garbage_lines_are_skipped(self) -> None:
        session = self.open()
        d = session.send(envelope("a@x.test"), BytesSource(b"x\r\n"))
        self.feed(b"** hello **\r\n250 ok\r\nnonsense\r\n250 ok\r\n354 go\r\n250 done\r\n")
        self.assertEqual(self.successResultOf(d).recipients["a@x.test"].code, 250)

    def test_source_error_cuts_the_connection_without_the_final_dot(self) -> None:
        class Broken(BytesSource):
            def read_chunk(self) -> defer.Deferred[bytes]:
                if self.reads == 1:
                    return defer.fail(OSError("disk on fire"))
                return super().read_chunk()

        session = self.open()
        d = session.send(envelope("a@x.test"), Broken(b"partial message\r\n", chunk_size=4))
        self.feed(b"250 ok\r\n250 ok\r\n354 go\r\n")
        result = self.successResultOf(d)
        self.assertNotIn(b"\r\n.\r\n", bytes(self.transport.sent) + self.transport.value())
        reply = result.recipients["a@x.test"]
        self.assertEqual((reply.code, reply.enhanced), (451, "4.3.0"))
        self.assertIn("OSError", reply.text)
        self.assertNotIn("disk on fire", reply.text)  # exception text may hold content
        self.assertTrue(result.session_lost and self.transport.disconnecting)

    def test_without_pipelining_commands_go_one_at_a_time(self) -> None:
        session = self.open(ehlo=b"250 mx.test\r\n")
        d = session.send(envelope("a@x.test", "b@x.test"), BytesSource(b"x\r\n"))
        self.assertEqual(self.transport.take(), b"MAIL FROM:<someone@pass.test>\r\n")
        self.feed(b"250 ok\r\n")
        self.assertEqual(self.transport.take(), b"RCPT TO:<a@x.test>\r\n")
        self.feed(b"250 ok\r\n")
        self.assertEqual(self.transport.take(), b"RCPT TO:<b@x.test>\r\n")
        self.feed(b"250 ok\r\n")
        self.assertEqual(self.transport.take(), b"DATA\r\n")
        self.feed(b"354 go\r\n")
        self.assertEqual(self.transport.take(), b"x\r\n.\r\n")
        self.feed(b"250 ok\r\n")
        self.assertEqual(len(self.successResultOf(d).delivered), 2)

    def test_rset_only_after_a_transaction_left_open(self) -> None:
        session = self.open()
        d = session.send(envelope("a@x.test"), BytesSource(b"x\r\n"))
        self.transport.take()
        self.feed(b"250 ok\r\n550 no\r\n554 no valid recipients\r\n")
        self.assertEqual(self.successResultOf(d).recipients["a@x.test"].code, 550)
        d = session.send(envelope("b@x.test"), BytesSource(b"x\r\n"))
        self.assertTrue(self.transport.take().startswith(b"RSET\r\nMAIL FROM:"))
        self.feed(b"250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        self.transport.take()
        self.feed(b"250 queued\r\n")
        self.assertEqual(self.successResultOf(d).recipients["b@x.test"].code, 250)
        d = session.send(envelope("c@x.test"), BytesSource(b"x\r\n"))
        self.assertTrue(self.transport.take().startswith(b"MAIL FROM:"))  # no RSET needed

    def test_abort_during_a_transaction_reports_it_lost(self) -> None:
        session = self.open()
        d = session.send(envelope("a@x.test"), BytesSource(MESSAGE))
        session.abort()
        result = self.successResultOf(d)
        self.assertTrue(result.session_lost and self.transport.disconnecting)
        self.assertEqual(result.recipients["a@x.test"].enhanced, "4.3.2")

    def test_a_second_send_while_one_runs_is_refused(self) -> None:
        session = self.open()
        session.send(envelope("a@x.test"), BytesSource(b"x"))
        self.failureResultOf(session.send(envelope("a@x.test"), BytesSource(b"x")), RuntimeError)


class FlowControlTests(ProtocolTestBase):
    def test_source_is_read_only_as_fast_as_the_transport_drains(self) -> None:
        message = b"".join(b"line %06d with some text to make it longer\r\n" % i
                           for i in range(40_000))  # about 2 MB
        source = BytesSource(message, chunk_size=16 * 1024)
        session = self.open(limit=64 * 1024)
        d = session.send(envelope("a@x.test"), source)
        self.transport.take()
        self.feed(b"250 ok\r\n250 ok\r\n354 go\r\n")
        rounds = 0
        while not self.transport.value().endswith(b"\r\n.\r\n"):
            # Paused: nothing more is read until the transport has drained.
            self.assertTrue(self.transport.paused)
            reads = source.reads
            self.clock.advance(1)
            self.assertEqual(source.reads, reads)
            self.transport.drain()
            rounds += 1
        self.transport.take()
        self.assertGreater(rounds, 20)
        self.assertLessEqual(self.transport.high_water, 64 * 1024 + 16 * 1024)
        self.assertEqual(bytes(self.transport.sent).split(b"DATA\r\n", 1)[-1],
                         message + b".\r\n")
        self.assertGreater(session.write_pauses, 20)
        self.feed(b"250 ok\r\n")
        self.assertEqual(self.successResultOf(d).recipients["a@x.test"].code, 250)

    def test_a_transport_that_never_drains_hits_the_data_block_timeout(self) -> None:
        session = self.open(limit=1024)
        d = session.send(envelope("a@x.test"), BytesSource(b"x" * 100_000))
        self.feed(b"250 ok\r\n250 ok\r\n354 go\r\n")
        self.clock.advance(Timeouts().data_block)
        reply = self.successResultOf(d).recipients["a@x.test"]
        self.assertEqual(reply.text, "timeout sending message data")


class StartTLSProtocolTests(ProtocolTestBase):
    def test_bytes_after_the_starttls_reply_are_discarded(self) -> None:
        session_d = self._open_to_starttls()
        # One read: the 220 and an injected EHLO reply announcing AUTH.
        self.feed(b"220 go ahead\r\n250-evil.test\r\n250 AUTH PLAIN\r\n")
        self.assertIsNotNone(self.transport.tls)
        self.assertEqual(self.transport.take(), b"EHLO client.test\r\n")
        self.assertNoResult(session_d)  # the injected reply was not taken as the answer
        self.protocol.handshakeCompleted()
        self.feed(b"250-mx.test\r\n250 PIPELINING\r\n")
        session = self.successResultOf(session_d)
        self.assertEqual(session.extensions, {"PIPELINING": ""})
        self.assertIn("discarded 31 bytes sent in clear after the STARTTLS reply", session.notes)

    def test_tls_required_but_refused(self) -> None:
        d = self._open_to_starttls(ClientSettings("client.test", tls="encrypt"))
        self.feed(b"454 4.7.0 TLS not available\r\n")
        self.assertEqual(self.transport.take(), b"QUIT\r\n")
        self.feed(b"221 bye\r\n")
        failure = self.failureResultOf(d, SessionFailed)
        self.assertEqual(failure.value.reply.enhanced, "4.7.4")
        self.assertIn("STARTTLS was refused", failure.value.reply.text)

    def test_starttls_refused_with_may_goes_on_in_clear(self) -> None:
        d = self._open_to_starttls()
        self.feed(b"454 4.7.0 TLS not available\r\n")
        session = self.successResultOf(d)
        self.assertIsNone(session.tls_version)
        self.assertIn("STARTTLS refused: 454 4.7.0 TLS not available", session.notes)

    def test_credentials_are_never_sent_in_clear(self) -> None:
        self.clock = task.Clock()
        self.protocol = SMTPClientProtocol(self.clock, 300)
        self.transport = FakeTransport()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        d = open_session(self.protocol, "mx.test",
                         ClientSettings("client.test", auth=("user", "s3cret-pw")))
        self.feed(b"220 mx\r\n")
        self.feed(b"250-mx\r\n250 AUTH PLAIN LOGIN\r\n")
        self.feed(b"221 bye\r\n")
        failure = self.failureResultOf(d, SessionFailed)
        self.assertIn("never sent without TLS", failure.value.reply.text)
        self.assertNotIn(b"AUTH", bytes(self.transport.sent) + self.transport.value())

    def _open_to_starttls(self, settings: ClientSettings = SETTINGS) -> defer.Deferred[Any]:
        self.clock = task.Clock()
        self.protocol = SMTPClientProtocol(self.clock, 300)
        self.transport = FakeTransport()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        d = open_session(self.protocol, "mx.test", settings)
        self.feed(b"220 mx\r\n")
        self.transport.take()
        self.feed(b"250-mx\r\n250 STARTTLS\r\n")
        self.assertEqual(self.transport.take(), b"STARTTLS\r\n")
        return d


# --- scripted peers on real sockets ------------------------------------------------------

class PeerTestBase(unittest.TestCase):
    def peer(self, **script: Any) -> Peer:
        peer = Peer(PeerScript(**script))
        peer.start()
        self.addCleanup(peer.stop)
        return peer

    def pki(self) -> str:
        return os.path.abspath(self.mktemp())

    async def session(self, peer: Peer, settings: ClientSettings = SETTINGS,
                      host: str = "peer.test") -> ClientSession:
        session = await connect(reactor, "127.0.0.1", peer.port, host, settings)
        self.addCleanup(session.quit)
        return session

    async def deliver(self, peer: Peer, env: Envelope, data: bytes = MESSAGE,
                      settings: ClientSettings = SETTINGS) -> TransactionResult:
        session = await self.session(peer, settings)
        result = await session.send(env, BytesSource(data))
        await session.quit()
        return result


class ScriptedPeerTests(PeerTestBase):
    @inline
    async def test_421_mid_session_makes_the_rest_temporary(self) -> None:
        peer = self.peer(rcpt_replies={"b@peer.test": b"421 4.3.2 Service shutting down"})
        session = await self.session(peer)
        result = await session.send(envelope("a@peer.test", "b@peer.test", "c@peer.test"),
                                    BytesSource(MESSAGE))
        self.assertTrue(result.session_lost)
        self.assertEqual([str(r.reply) for r in result.results],
                         ["421 4.3.2 Service shutting down"] * 3)
        self.assertTrue(all(r.reply.temporary for r in result.results))
        self.assertEqual(peer.received, [])

    @inline
    async def test_stall_after_data_is_a_lost_session(self) -> None:
        peer = self.peer(final_reply=None)
        settings = ClientSettings("client.test", timeouts=Timeouts(data_done=0.2))
        result = await self.deliver(peer, envelope("a@peer.test"), settings=settings)
        self.assertTrue(result.session_lost)
        self.assertEqual(result.recipients["a@peer.test"].text,
                         "timeout waiting for reply to end of data")

    @inline
    async def test_one_refused_recipient_of_three(self) -> None:
        peer = self.peer(rcpt_replies={"b@peer.test": b"550 5.1.1 <b@peer.test>: unknown"})
        result = await self.deliver(peer, envelope("a@peer.test", "b@peer.test", "c@peer.test"))
        self.assertEqual([r.reply.code for r in result.results], [250, 550, 250])
        self.assertEqual(result.recipients["b@peer.test"].enhanced, "5.1.1")
        self.assertEqual(peer.received[0].rcpts, ["a@peer.test", "c@peer.test"])
        self.assertEqual(peer.received[0].message, MESSAGE)

    @inline
    async def test_pipelining_sends_the_whole_envelope_before_any_reply(self) -> None:
        # This peer answers MAIL and RCPT only once DATA is in: lockstep would hang.
        peer = self.peer(hold_until_data=True)
        settings = ClientSettings("client.test", timeouts=Timeouts(mail=5, rcpt=5))
        result = await self.deliver(peer, envelope("a@peer.test", "b@peer.test"),
                                    settings=settings)
        self.assertEqual(len(result.delivered), 2)

    @inline
    async def test_without_pipelining_the_client_waits_for_each_reply(self) -> None:
        peer = self.peer(extensions=["SIZE 1000000", "8BITMIME"])
        result = await self.deliver(peer, envelope("a@peer.test", "b@peer.test", "c@peer.test"))
        self.assertEqual(len(result.delivered), 3)
        self.assertEqual(peer.same_read_commands, 0)

    @inline
    async def test_ehlo_refused_falls_back_to_helo_without_extensions(self) -> None:
        peer = self.peer(ehlo_reply=b"502 5.5.1 EHLO not implemented")
        session = await self.session(peer)
        self.assertFalse(session.esmtp)
        result = await session.send(envelope("a@peer.test", body_8bit=True),
                                    BytesSource(MESSAGE))
        self.assertEqual(result.recipients["a@peer.test"].code, 250)
        self.assertEqual(peer.commands()[:3], ["EHLO", "HELO", "MAIL"])
        self.assertEqual(peer.received[0].mail, "MAIL FROM:<someone@pass.test>")
        self.assertIn("8-bit message sent to a server without 8BITMIME", result.notes)

    @inline
    async def test_message_above_the_peer_size_limit_is_refused_unsent(self) -> None:
        peer = self.peer(extensions=["PIPELINING", "SIZE 100"])
        result = await self.deliver(peer, envelope("a@peer.test", "b@peer.test"))
        self.assertEqual({str(r.reply)[:9] for r in result.results}, {"552 5.3.4"})
        self.assertNotIn("MAIL", peer.commands())

    @inline
    async def test_without_smtputf8(self) -> None:
        peer = self.peer()
        result = await self.deliver(peer, envelope("a@peer.test", "j\u00f6rg@peer.test"))
        self.assertEqual(result.recipients["a@peer.test"].code, 250)
        self.assertEqual(str(result.recipients["j\u00f6rg@peer.test"])[:9], "553 5.6.7")
        self.assertEqual(peer.received[0].rcpts, ["a@peer.test"])
        result = await self.deliver(peer, envelope("a@peer.test", smtputf8=True))
        self.assertEqual(str(result.recipients["a@peer.test"])[:9], "554 5.6.9")
        self.assertEqual(len(peer.received), 1)

    @inline
    async def test_smtputf8_and_dsn_parameters_when_offered(self) -> None:
        peer = self.peer(extensions=["PIPELINING", "SMTPUTF8", "DSN", "8BITMIME"])
        env = Envelope("someone@pass.test",
                       (Recipient("j\u00f6rg@peer.test", notify="FAILURE",
                                  orcpt="utf-8;j\u00f6rg@peer.test"),),
                       size=len(MESSAGE), body_8bit=True, envid="Q1", ret="HDRS")
        result = await self.deliver(peer, env)
        self.assertEqual(result.recipients["j\u00f6rg@peer.test"].code, 250)
        mail, rcpt = [line for _, line in peer.log if line.split()[0] in ("MAIL", "RCPT")]
        self.assertEqual(mail, "MAIL FROM:<someone@pass.test> BODY=8BITMIME SMTPUTF8 RET=HDRS "
                               "ENVID=Q1")
        self.assertEqual(rcpt, "RCPT TO:<j\u00f6rg@peer.test> NOTIFY=FAILURE "
                               "ORCPT=utf-8;j\\x{F6}rg@peer.test")

    @inline
    async def test_two_messages_over_one_connection(self) -> None:
        peer = self.peer()
        session = await self.session(peer)
        first = await session.send(envelope("a@peer.test"), BytesSource(MESSAGE))
        second = await session.send(envelope("b@peer.test", sender=""),
                                    BytesSource(b"Subject: 2\r\n\r\nbody two\r\n"))
        await session.quit()
        self.assertEqual((first.recipients["a@peer.test"].code,
                          second.recipients["b@peer.test"].code), (250, 250))
        self.assertEqual(len(peer.connections), 1)
        self.assertEqual([r.mail.split(" ")[1] for r in peer.received],
                         ["FROM:<someone@pass.test>", "FROM:<>"])
        self.assertNotIn("RSET", peer.commands())
        self.assertEqual(peer.commands()[-1], "QUIT")

    @inline
    async def test_dot_stuffing_and_line_endings_on_the_wire(self) -> None:
        peer = self.peer()
        data = b"Subject: dots\r\n\r\n.\r\n..\r\n.x\nbare lf\n.\nend"
        await self.deliver(peer, envelope("a@peer.test"), data)
        [received] = peer.received
        self.assertEqual(received.data,
                         b"Subject: dots\r\n\r\n..\r\n...\r\n..x\r\nbare lf\r\n..\r\nend\r\n")
        self.assertEqual(received.message,
                         b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nbare lf\r\n.\r\nend\r\n")

    @inline
    async def test_connection_refused_is_a_temporary_session_failure(self) -> None:
        # Bound but not listening: the kernel refuses connections, and no other test gets it.
        closed = socket.socket()
        self.addCleanup(closed.close)
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        try:
            await connect(reactor, "127.0.0.1", port, "down.test", SETTINGS)
        except SessionFailed as failure:
            reply = failure.reply
        else:
            self.fail("connected to a closed port")
        self.assertEqual((reply.code, reply.enhanced), (421, "4.4.1"))
        self.assertIn(f"cannot connect to down.test [127.0.0.1]:{port}: connection refused",
                      reply.text)

    @inline
    async def test_20_mb_message_is_streamed_not_loaded(self) -> None:
        line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789\r\n"
        message = b"Subject: big\r\n\r\n" + line * (20 * 1024 * 1024 // len(line))
        peer = self.peer(keep_data=False, stop_reading_after=1024 * 1024)
        session = await self.session(peer)
        # Small kernel buffers, so what is in flight is bounded by our own flow control.
        session.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)

        class Watched(BytesSource):
            ahead = 0

            def read_chunk(self) -> defer.Deferred[bytes]:
                # Read from the source but not yet received by the peer: what we hold.
                self.ahead = max(self.ahead, self.offset - peer.data_bytes)
                return super().read_chunk()

        source = Watched(message, chunk_size=64 * 1024)

        def resume_once_paused() -> None:
            if session.write_pauses and peer.stopped is not None:
                peer.resume_reading()
                poll.stop()

        poll = task.LoopingCall(resume_once_paused)
        poll.start(0.01)
        self.addCleanup(lambda: poll.running and poll.stop())
        result = await session.send(envelope("a@peer.test", size=len(message)), source)
        self.assertEqual(result.recipients["a@peer.test"].code, 250)
        [received] = peer.received
        self.assertEqual(received.sha256, hashlib.sha256(message + b".\r\n").hexdigest())
        self.assertGreater(source.reads, 300)
        self.assertGreater(session.write_pauses, 0)
        self.assertLess(source.ahead, 4 * 1024 * 1024)


class ScriptedTLSTests(PeerTestBase):
    @inline
    async def test_self_signed_certificate_with_may_delivers_and_notes_it(self) -> None:
        cert = make_cert(self.pki(), ["peer.test"])
        peer = self.peer(tls_cert=cert)
        session = await self.session(peer)
        self.assertTrue(session.tls_version and session.tls_version.startswith("TLSv1."))
        self.assertFalse(session.tls_verified)
        self.assertEqual(session.tls_note, "certificate verify failed: self-signed certificate")
        result = await session.send(envelope("a@peer.test"), BytesSource(MESSAGE))
        self.assertEqual(result.recipients["a@peer.test"].code, 250)
        self.assertTrue(all(tls for tls, line in peer.log if line.startswith("MAIL")))

    @inline
    async def test_trusted_certificate_for_another_name_is_noted(self) -> None:
        directory = self.pki()
        ca = make_ca(directory)
        peer = self.peer(tls_cert=make_cert(directory, ["other.test"], ca=ca))
        session = await self.session(peer, ClientSettings("client.test", ca_file=ca.cert_path))
        self.assertFalse(session.tls_verified)
        self.assertEqual(session.tls_note,
                         "certificate name mismatch: not valid for peer.test")

    @inline
    async def test_smarthost_with_verified_tls_and_auth(self) -> None:
        directory = self.pki()
        ca = make_ca(directory)
        peer = self.peer(tls_cert=make_cert(directory, ["relay.test"], ca=ca),
                         auth=("relay-user", "relay-pw-123"), auth_in_clear=True)
        settings = ClientSettings("client.test", tls="encrypt", verify_hostname="relay.test",
                                  ca_file=ca.cert_path, auth=("relay-user", "relay-pw-123"))
        session = await self.session(peer, settings, host="relay.test")
        self.assertTrue(session.tls_verified and session.authenticated)
        auth_lines = [(tls, line) for tls, line in peer.log if line.startswith("AUTH")]
        self.assertEqual(len(auth_lines), 1)
        self.assertTrue(auth_lines[0][0], "AUTH was sent before TLS")
        result = await session.send(envelope("a@peer.test"), BytesSource(MESSAGE))
        self.assertEqual(result.recipients["a@peer.test"].code, 250)

    @inline
    async def test_smarthost_certificate_not_verified_ends_before_auth(self) -> None:
        cert = make_cert(self.pki(), ["relay.test"])  # self-signed
        peer = self.peer(tls_cert=cert, auth=("u", "pw-never-sent"))
        settings = ClientSettings("client.test", tls="encrypt", verify_hostname="relay.test",
                                  auth=("u", "pw-never-sent"))
        with self.assertRaises(SessionFailed) as caught:
            await self.session(peer, settings, host="relay.test")
        reply = caught.exception.reply
        self.assertEqual((reply.code, reply.enhanced), (421, "4.7.5"))
        self.assertIn("self-signed certificate", reply.text)
        self.assertNotIn("AUTH", peer.commands())

    @inline
    async def test_encrypt_without_starttls_offered_refuses_to_continue(self) -> None:
        peer = self.peer()
        with self.assertRaises(SessionFailed) as caught:
            await self.session(peer, ClientSettings("client.test", tls="encrypt"))
        self.assertEqual(caught.exception.reply.enhanced, "4.7.4")
        self.assertEqual(peer.commands(), ["EHLO", "QUIT"])

    @inline
    async def test_auth_offered_in_clear_is_not_used(self) -> None:
        peer = self.peer(auth=("u", "pw-in-clear"), auth_in_clear=True)
        with self.assertRaises(SessionFailed):
            await self.session(peer, ClientSettings("client.test", auth=("u", "pw-in-clear")))
        self.assertNotIn("AUTH", peer.commands())
        self.assertFalse(any("pw-in-clear" in line for _, line in peer.log))

    @inline
    async def test_broken_handshake_is_reported_as_a_tls_failure(self) -> None:
        peer = self.peer(tls_cert=make_cert(self.pki(), ["peer.test"]), fake_tls=True)
        with self.assertRaises(SessionFailed) as caught:
            await self.session(peer)
        self.assertTrue(caught.exception.tls_failed)
        self.assertIn("TLS handshake failed", caught.exception.reply.text)
        self.assertTrue(caught.exception.reply.temporary)

    @inline
    async def test_tls_none_never_starts_tls(self) -> None:
        peer = self.peer(tls_cert=make_cert(self.pki(), ["peer.test"]))
        session = await self.session(peer, ClientSettings("client.test", tls="none"))
        self.assertIsNone(session.tls_version)
        self.assertNotIn("STARTTLS", peer.commands())


# --- a whole mailgosend server as the peer ---------------------------------------------------

ZONES = {"pass.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}}


class MailServerTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.server = MailServer(self.mktemp(), ZONES)
        self.addCleanup(self.server.stop)
        yield self.server.start()
        self.server.add_domain("example.com")
        for user in ("alice@example.com", "bob@example.com"):
            self.server.add_user(user)
        self.settings = ClientSettings("client.test", ca_file=self.server.ca.root_path)

    async def session(self, kind: str = "SMTP", settings: ClientSettings | None = None
                      ) -> ClientSession:
        session = await connect(reactor, "127.0.0.1", self.server.ports[kind], HOSTNAME,
                                settings or self.settings)
        self.addCleanup(session.quit)
        return session

    @inline
    async def test_delivered_bytes_are_stored_exactly_after_verified_tls(self) -> None:
        session = await self.session()
        self.assertTrue(session.tls_verified, session.tls_note)
        self.assertEqual(session.tls_version, "TLSv1.3")
        prefix = b"DKIM-Signature: v=1; a=ed25519-sha256; d=pass.test; s=x;\r\n b=AAAA\r\n"
        source = BytesSource(MESSAGE, chunk_size=7, prefix=prefix)
        result = await session.send(envelope("alice@example.com", size=len(MESSAGE) +
                                             len(prefix)), source)
        await session.quit()
        self.assertEqual(str(result.recipients["alice@example.com"])[:9], "250 2.0.0")
        [stored] = self.server.stored("alice@example.com")
        self.assertTrue(stored.endswith(prefix + MESSAGE), stored[-300:])

    @inline
    async def test_unknown_recipient_refused_and_the_other_delivered(self) -> None:
        session = await self.session()
        result = await session.send(envelope("nobody@example.com", "bob@example.com"),
                                    BytesSource(MESSAGE))
        self.assertTrue(result.recipients["nobody@example.com"].permanent)
        self.assertEqual(result.recipients["bob@example.com"].code, 250)
        self.assertEqual(len(self.server.stored("bob@example.com")), 1)

    @inline
    async def test_connection_reuse_stores_both_messages(self) -> None:
        session = await self.session()
        for n in range(2):
            raw = MESSAGE.replace(b"Subject: test", b"Subject: number %d" % n)
            result = await session.send(envelope("bob@example.com"), BytesSource(raw))
            self.assertEqual(result.recipients["bob@example.com"].code, 250)
        await session.quit()
        stored = self.server.stored("bob@example.com")
        self.assertEqual(len(stored), 2)
        self.assertIn(b"Subject: number 0", stored[0] + stored[1])
        self.assertIn(b"Subject: number 1", stored[0] + stored[1])

    @inline
    async def test_smarthost_submission_with_starttls_and_auth(self) -> None:
        settings = ClientSettings("client.test", tls="encrypt", verify_hostname=HOSTNAME,
                                  ca_file=self.server.ca.root_path,
                                  auth=("alice@example.com", PASSWORD))
        session = await self.session("SUBMIT", settings)
        self.assertTrue(session.authenticated and session.tls_verified)
        raw = MESSAGE.replace(b"From: someone@pass.test", b"From: alice@example.com")
        result = await session.send(envelope("bob@example.com", sender="alice@example.com"),
                                    BytesSource(raw))
        self.assertEqual(result.recipients["bob@example.com"].code, 250)
        [stored] = self.server.stored("bob@example.com")
        self.assertTrue(stored.endswith(raw))

    @inline
    async def test_wrong_password_is_a_temporary_failure(self) -> None:
        settings = ClientSettings("client.test", tls="encrypt", ca_file=self.server.ca.root_path,
                                  auth=("alice@example.com", "not-the-password"))
        with self.assertRaises(SessionFailed) as caught:
            await self.session("SUBMIT", settings)
        reply = caught.exception.reply
        self.assertEqual((reply.code, reply.enhanced), (454, "4.7.0"))
        self.assertNotIn("not-the-password", reply.text)
