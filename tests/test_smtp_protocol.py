"""mailgosend.smtp.protocol / commands / factory, driven through a StringTransport and a Clock.

Each stock twisted.mail defect of library-notes §1 has a regression test here, named after it.
"""

from __future__ import annotations

import base64
from typing import Any, cast

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ITLSTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from mailgosend.listeners import IDrainable
from mailgosend.smtp.factory import SMTPLimits, SMTPServerFactory
from mailgosend.smtp.replies import SMTPReply
from mailgosend.smtp.session import SMTPSession
from tests.support.smtp import MemoryBackend

HOST = "mx.example.net"
TLS = object()  # the protocol passes it to transport.startTLS untouched
USER, PASSWORD = "alice@example.com", "correct horse"


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode("utf-8"))


@implementer(ITLSTransport)
class TLSStringTransport(StringTransport):  # type: ignore[misc]  # TCP options are never used
    """A StringTransport that records startTLS, as a TCP transport would accept it."""

    def __init__(self, peer: str = "192.0.2.7") -> None:
        super().__init__(
            hostAddress=IPv4Address("TCP", "198.51.100.1", 25),
            peerAddress=IPv4Address("TCP", peer, 40000),
        )
        self.tls_context: Any = None
        self.written_before_tls = b""

    def startTLS(self, ctx: Any, normal: bool = True) -> None:
        self.tls_context = ctx
        self.written_before_tls = self.value()


class Harness:
    """One connection: ``send`` octets, ``read`` the reply lines written since the last read."""

    def __init__(
        self,
        listener: str = "inbound",
        backend: MemoryBackend | None = None,
        tls: bool = True,
        limits: SMTPLimits | None = None,
        peer: str = "192.0.2.7",
        factory: SMTPServerFactory | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.backend = backend or MemoryBackend(users={USER: PASSWORD})
        self.factory = factory or SMTPServerFactory(
            self.backend, HOST, listener, TLS if tls else None, self.clock, limits  # type: ignore[arg-type]
        )
        self.proto = self.factory.buildProtocol(IPv4Address("TCP", peer, 40000))
        self.transport = TLSStringTransport(peer)
        self.proto.makeConnection(self.transport)
        self._seen = 0

    @property
    def session(self) -> SMTPSession:
        assert self.proto.session is not None
        return self.proto.session

    def send(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    def read(self) -> list[str]:
        out = self.transport.value()[self._seen :]
        self._seen += len(out)
        return [line.decode("utf-8") for line in out.split(b"\r\n")[:-1]]

    def chat(self, data: bytes) -> list[str]:
        self.send(data)
        return self.read()

    def ehlo(self) -> list[str]:
        return self.chat(b"EHLO client.example.org\r\n")

    def start_tls(self) -> None:
        assert self.chat(b"STARTTLS\r\n") == ["220 2.0.0 Ready to start TLS"]
        self.proto.handshakeCompleted()

    def login(self) -> None:
        """EHLO, STARTTLS (unless smtps), EHLO, AUTH PLAIN."""
        self.read()
        if not self.session.tls:
            self.ehlo()
            self.start_tls()
        self.ehlo()
        reply = self.chat(b"AUTH PLAIN " + b64(f"\0{USER}\0{PASSWORD}") + b"\r\n")
        assert reply == ["235 2.7.0 Authentication successful"], reply

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    def lose(self) -> None:
        self.proto.connectionLost(Failure(ConnectionDone("gone")))


def greeted(**kwargs: Any) -> Harness:
    h = Harness(**kwargs)
    h.read()
    return h


class GreetingTests(TestCase):
    def test_greeting_names_host_without_version(self) -> None:
        self.assertEqual(Harness().read(), [f"220 {HOST} ESMTP"])

    def test_backend_421_at_connect_replaces_greeting_and_closes(self) -> None:
        backend = MemoryBackend()
        backend.connect_reply = SMTPReply(421, "4.7.0", "Banned")
        h = Harness(backend=backend)
        self.assertEqual(h.read(), ["421 4.7.0 Banned"])
        self.assertTrue(h.closed)

    def test_backend_554_at_connect_answers_503_until_quit(self) -> None:
        # RFC 5321 §3.1: after 554 the server waits for QUIT and answers 503 to the rest.
        backend = MemoryBackend()
        backend.connect_reply = SMTPReply(554, "5.7.1", "No SMTP service here")
        h = Harness(backend=backend)
        self.assertEqual(h.read(), ["554 5.7.1 No SMTP service here"])
        self.assertFalse(h.closed)
        self.assertEqual(h.chat(b"EHLO x\r\nMAIL FROM:<a@b.org>\r\n")[1][:9], "503 5.5.1")
        self.assertEqual(h.chat(b"QUIT\r\n"), [f"221 2.0.0 {HOST} closing connection"])
        self.assertTrue(h.closed)

    def test_greeting_waits_for_backend_and_early_talker_is_queued(self) -> None:
        backend = MemoryBackend()
        backend.hold("connection_made")
        h = Harness(backend=backend)
        self.assertEqual(h.chat(b"NOOP\r\n"), [])
        backend.release_all()
        self.assertEqual(h.read(), [f"220 {HOST} ESMTP", "250 2.0.0 OK"])

    def test_mail_before_helo_is_refused(self) -> None:
        # Stock ESMTP presets _helo, so MAIL without HELO was accepted (library notes §1).
        h = greeted()
        self.assertEqual(h.chat(b"MAIL FROM:<a@b.org>\r\n"), ["503 5.5.1 Error: send HELO/EHLO first"])

    def test_helo_reply_and_no_extensions(self) -> None:
        h = greeted()
        self.assertEqual(h.chat(b"HELO client.example.org\r\n"), [f"250 {HOST}"])
        self.assertEqual(h.session.helo, "client.example.org")
        self.assertFalse(h.session.esmtp)

    def test_ehlo_and_helo_need_an_argument(self) -> None:
        h = greeted()
        self.assertEqual(h.chat(b"EHLO\r\nHELO\r\n"), ["501 Syntax: EHLO hostname", "501 Syntax: HELO hostname"])


class ExtensionTests(TestCase):
    def keywords(self, h: Harness) -> list[str]:
        lines = h.ehlo()
        self.assertEqual(lines[0], f"250-{HOST}")
        return [line[4:] for line in lines[1:]]

    def test_inbound_with_tls_lists_extensions_without_auth(self) -> None:
        self.assertEqual(
            self.keywords(greeted()),
            ["PIPELINING", "SIZE 26214400", "STARTTLS", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8"],
        )

    def test_size_keyword_shows_the_configured_limit(self) -> None:
        h = greeted(limits=SMTPLimits(max_message_size=1000))
        self.assertIn("SIZE 1000", self.keywords(h))

    def test_starttls_not_offered_without_tls_configured(self) -> None:
        self.assertNotIn("STARTTLS", self.keywords(greeted(tls=False)))

    def test_chunking_not_offered(self) -> None:
        self.assertNotIn("CHUNKING", self.keywords(greeted(listener="submission")))

    def test_submission_offers_auth_only_after_tls(self) -> None:
        h = greeted(listener="submission")
        before = self.keywords(h)
        self.assertIn("STARTTLS", before)
        self.assertFalse([k for k in before if k.startswith("AUTH")])
        h.start_tls()
        after = self.keywords(h)
        self.assertIn("AUTH PLAIN LOGIN", after)
        self.assertNotIn("STARTTLS", after)

    def test_inbound_never_offers_auth_even_under_tls(self) -> None:
        h = greeted()
        h.ehlo()
        h.start_tls()
        self.assertFalse([k for k in self.keywords(h) if k.startswith("AUTH")])

    def test_smtps_starts_in_tls_offers_auth_and_no_starttls(self) -> None:
        h = greeted(listener="smtps")
        self.assertTrue(h.session.tls)
        keywords = self.keywords(h)
        self.assertIn("AUTH PLAIN LOGIN", keywords)
        self.assertNotIn("STARTTLS", keywords)

    def test_every_reply_after_greeting_carries_an_enhanced_code(self) -> None:
        # RFC 2034 §3: all but the greeting, HELO/EHLO replies and 3xx.
        h = greeted(listener="submission")
        h.login()
        h.send(
            b"NOOP\r\nRSET\r\nVRFY bob\r\nEXPN list\r\nHELP\r\nFOO\r\nSTARTTLS x\r\nDATA\r\n"
            b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@elsewhere.org>\r\nRCPT TO:<bad\r\n"
            b"DATA\r\nhello\r\n.\r\nMAIL FROM:<x@y.z> FOO=1\r\nAUTH PLAIN\r\nQUIT\r\n"
        )
        lines = h.read()
        self.assertEqual(len(lines), 16, lines)
        for line in lines:
            if line.startswith("354"):
                continue
            self.assertRegex(line, r"^[245]\d\d [245]\.\d{1,3}\.\d{1,3} ")
            self.assertEqual(line[0], line[4])


class SimpleCommandTests(TestCase):
    def test_noop(self) -> None:
        # Stock server: "500 Command not implemented"; RFC 5321 §4.5.1 makes NOOP mandatory.
        self.assertEqual(greeted().chat(b"NOOP\r\nNOOP anything\r\n"), ["250 2.0.0 OK"] * 2)

    def test_quit_closes(self) -> None:
        h = greeted()
        self.assertEqual(h.chat(b"QUIT\r\n"), [f"221 2.0.0 {HOST} closing connection"])
        self.assertTrue(h.closed)

    def test_connection_is_aborted_if_the_peer_never_completes_the_close(self) -> None:
        # Over TLS, loseConnection waits for the peer's close_notify; a peer that never
        # sends it would hold the connection forever (seen with Twisted's TLS transport).
        h = greeted()
        aborted: list[bool] = []
        h.transport.abortConnection = lambda: aborted.append(True)  # type: ignore[method-assign]
        h.chat(b"QUIT\r\n")
        h.clock.advance(29)
        self.assertEqual(aborted, [])
        h.clock.advance(2)
        self.assertEqual(aborted, [True])

    def test_no_abort_after_a_normal_close(self) -> None:
        h = greeted()
        aborted: list[bool] = []
        h.transport.abortConnection = lambda: aborted.append(True)  # type: ignore[method-assign]
        h.chat(b"QUIT\r\n")
        h.proto.connectionLost(Failure(ConnectionDone()))
        h.clock.advance(60)
        self.assertEqual(aborted, [])

    def test_input_after_quit_is_ignored(self) -> None:
        h = greeted()
        self.assertEqual(h.chat(b"QUIT\r\nNOOP\r\n"), [f"221 2.0.0 {HOST} closing connection"])

    def test_help(self) -> None:
        self.assertTrue(greeted().chat(b"HELP\r\n")[0].startswith("214 2.0.0 "))

    def test_vrfy_neither_confirms_nor_denies(self) -> None:
        h = greeted()
        self.assertEqual(h.chat(b"VRFY bob\r\n"), ["252 2.0.0 Cannot VRFY user; try RCPT to attempt delivery"])
        self.assertEqual(h.chat(b"VRFY\r\n"), ["501 5.5.4 Syntax: VRFY address"])

    def test_expn_not_available(self) -> None:
        self.assertEqual(greeted().chat(b"EXPN staff\r\n"), ["502 5.5.1 Error: EXPN not available"])

    def test_unknown_command(self) -> None:
        # Stock ESMTP: a non-ASCII verb raised UnicodeDecodeError out of dataReceived.
        h = greeted()
        expected = ["500 5.5.2 Error: command not recognized"] * 4
        self.assertEqual(h.chat(b"FOO\r\nBDAT 10 LAST\r\n\xc3\xa9t\xc3\xa9\r\n\r\n"), expected)

    def test_inherited_handlers_are_not_reachable(self) -> None:
        # Only known verbs dispatch; "UNKNOWN" must not call do_UNKNOWN by name trickery alone.
        self.assertEqual(greeted().chat(b"TIMEOUTCONNECTION\r\n"), ["500 5.5.2 Error: command not recognized"])

    def test_rset_clears_the_transaction(self) -> None:
        h = greeted()
        h.ehlo()
        h.chat(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<x@example.com>\r\n")
        self.assertEqual(h.chat(b"RSET\r\n"), ["250 2.0.0 OK"])
        self.assertIsNone(h.session.mail_from)
        self.assertEqual(h.session.recipients, [])
        self.assertEqual(h.chat(b"RCPT TO:<x@example.com>\r\n"), ["503 5.5.1 Error: need MAIL command"])
        self.assertEqual(h.chat(b"RSET now\r\n"), ["501 5.5.4 Syntax: RSET"])

    def test_commands_are_case_insensitive(self) -> None:
        h = greeted()
        self.assertEqual(h.chat(b"ehlo x\r\n")[0], f"250-{HOST}")
        self.assertEqual(h.chat(b"mail from:<a@b.org>\r\n"), ["250 2.1.0 Sender OK"])

    def test_sequence_errors(self) -> None:
        h = greeted()
        h.ehlo()
        self.assertEqual(h.chat(b"DATA\r\n"), ["503 5.5.1 Error: need MAIL command"])
        self.assertEqual(h.chat(b"MAIL FROM:<a@b.org>\r\n"), ["250 2.1.0 Sender OK"])
        self.assertEqual(h.chat(b"DATA\r\n"), ["503 5.5.1 Error: need RCPT command"])
        self.assertEqual(h.chat(b"MAIL FROM:<a@b.org>\r\n"), ["503 5.5.1 Error: nested MAIL command"])
        self.assertEqual(h.chat(b"DATA now\r\n"), ["501 5.5.4 Syntax: DATA"])

    def test_ehlo_resets_the_transaction(self) -> None:
        h = greeted()
        h.ehlo()
        h.chat(b"MAIL FROM:<a@b.org>\r\n")
        h.ehlo()
        self.assertEqual(h.chat(b"MAIL FROM:<a@b.org>\r\n"), ["250 2.1.0 Sender OK"])

    def test_inherited_send_code_gets_an_enhanced_code(self) -> None:
        h = greeted()
        h.proto.sendCode(250, b"hello")
        h.proto.sendCode(550, b"5.1.1 unknown")
        self.assertEqual(h.read(), ["250 2.0.0 hello", "550 5.1.1 unknown"])

    def test_command_counter(self) -> None:
        h = greeted()
        h.chat(b"NOOP\r\nNOOP\r\nFOO\r\n")
        self.assertEqual(h.session.commands, 3)


class AddressTests(TestCase):
    def transaction(self, mail: bytes, rcpt: bytes | None = None) -> list[str]:
        h = greeted()
        h.ehlo()
        self.harness = h
        data = b"MAIL FROM:" + mail + b"\r\n"
        if rcpt is not None:
            data += b"RCPT TO:" + rcpt + b"\r\n"
        return h.chat(data)

    def test_null_reverse_path(self) -> None:
        self.assertEqual(self.transaction(b"<>"), ["250 2.1.0 Sender OK"])
        self.assertEqual(self.harness.session.mail_from, "")
        self.assertIn(("validate_sender", ""), self.harness.backend.calls)

    def test_null_forward_path_is_a_syntax_error(self) -> None:
        self.assertEqual(self.transaction(b"<>", b"<>")[1], "501 5.1.3 Bad recipient address syntax")

    def test_postmaster_without_domain_is_a_recipient(self) -> None:
        # RFC 5321 §4.5.1
        self.assertEqual(self.transaction(b"<>", b"<Postmaster>")[1], "250 2.1.5 Recipient OK")
        self.assertEqual(self.harness.session.recipients, ["postmaster"])

    def test_source_route_is_stripped(self) -> None:
        # RFC 5321 §4.1.1.3 / appendix C
        replies = self.transaction(b"<@relay.example,@hop.example:a@b.org>", b"<@relay.example:bob@example.com>")
        self.assertEqual(replies, ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK"])
        self.assertEqual(self.harness.session.mail_from, "a@b.org")
        self.assertEqual(self.harness.session.recipients, ["bob@example.com"])

    def test_quoted_local_part(self) -> None:
        replies = self.transaction(b'<"john smith"@b.org>', b'<"bob\\"s"@example.com>')
        self.assertEqual(replies, ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK"])
        self.assertEqual(self.harness.session.mail_from, '"john smith"@b.org')
        self.assertEqual(self.harness.session.recipients, ['"bob\\"s"@example.com'])

    def test_domain_literal(self) -> None:
        self.assertEqual(self.transaction(b"<a@[192.0.2.1]>"), ["250 2.1.0 Sender OK"])
        self.assertEqual(self.harness.session.mail_from, "a@[192.0.2.1]")

    def test_domain_is_lowercased_local_part_kept(self) -> None:
        self.transaction(b"<Alice@B.ORG>")
        self.assertEqual(self.harness.session.mail_from, "Alice@b.org")

    def test_space_after_colon_and_missing_brackets_are_tolerated(self) -> None:
        self.assertEqual(self.transaction(b" <a@b.org>", b"bob@example.com"), ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK"])

    def test_utf8_addresses_need_smtputf8(self) -> None:
        # RFC 6531 §3.5: 553 5.6.7 for a non-ASCII address without SMTPUTF8.
        replies = self.transaction("<pelé@b.org>".encode())
        self.assertEqual(replies, ["553 5.6.7 Non-ASCII addresses require SMTPUTF8"])
        replies = self.harness.chat("MAIL FROM:<a@b.org>\r\nRCPT TO:<jörg@example.com>\r\n".encode())
        self.assertEqual(replies, ["250 2.1.0 Sender OK", "553 5.6.7 Non-ASCII addresses require SMTPUTF8"])

    def test_utf8_addresses_with_smtputf8(self) -> None:
        # Stock twisted: "501 Syntax error" (ASCII-only grammar), and a crash in its log line.
        replies = self.transaction("<pelé@bücher.example> SMTPUTF8".encode(), "<jörg@example.com>".encode())
        self.assertEqual(replies, ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK"])
        self.assertEqual(self.harness.session.mail_from, "pelé@xn--bcher-kva.example")
        self.assertEqual(self.harness.session.recipients, ["jörg@example.com"])
        self.assertTrue(self.harness.session.mail_params.smtputf8)

    def test_idna_domain_normalised_to_a_label(self) -> None:
        replies = self.transaction(b"<a@b.org> SMTPUTF8", "<x@EXAMPLE.com>".encode())
        self.assertEqual(replies[1], "250 2.1.5 Recipient OK")
        self.harness.chat("RCPT TO:<y@Bücher.Example>\r\n".encode())
        self.assertIn(("validate_recipient", "y@xn--bcher-kva.example"), self.harness.backend.calls)

    def test_bad_sender_syntax(self) -> None:
        for path in (b"<a@>", b"<a..b@c.d>", b"<a@b.org", b"<a@b.org>x", b"<@x>", b"<a@-b.org>"):
            self.assertEqual(self.transaction(path), ["501 5.1.7 Bad sender address syntax"], path)

    def test_bad_recipient_syntax(self) -> None:
        for path in (b"<a@>", b"<a b@c.d>", b"<x@[300.1.1.1]>", b"<postmaster@>"):
            self.assertEqual(self.transaction(b"<>", path)[1], "501 5.1.3 Bad recipient address syntax", path)

    def test_invalid_utf8_in_address_is_a_syntax_error(self) -> None:
        self.assertEqual(self.transaction(b"<a\xff@b.org> SMTPUTF8"), ["501 5.1.7 Bad sender address syntax"])

    def test_missing_from_or_to(self) -> None:
        h = greeted()
        h.ehlo()
        self.assertEqual(h.chat(b"MAIL <a@b.org>\r\n"), ["501 5.5.4 Syntax: MAIL FROM:<address>"])
        h.chat(b"MAIL FROM:<a@b.org>\r\n")
        self.assertEqual(h.chat(b"RCPT <a@b.org>\r\n"), ["501 5.5.4 Syntax: RCPT TO:<address>"])

    def test_backend_refusals_are_sent_as_is(self) -> None:
        backend = MemoryBackend(mailboxes={"bob"})
        backend.rejected_senders.add("spam@bad.example")
        h = greeted(backend=backend)
        h.ehlo()
        self.assertEqual(h.chat(b"MAIL FROM:<spam@bad.example>\r\n"), ["553 5.7.1 Sender address rejected"])
        h.chat(b"MAIL FROM:<a@b.org>\r\n")
        replies = h.chat(b"RCPT TO:<nobody@example.com>\r\nRCPT TO:<x@relay.example>\r\n")
        self.assertEqual(replies, ["550 5.1.1 Recipient address rejected: User unknown", "550 5.7.1 Relay access denied"])

    def test_backend_crash_is_451_without_details(self) -> None:
        backend = MemoryBackend()
        backend.validate_sender = lambda *a: 1 / 0  # type: ignore[method-assign, assignment]
        h = greeted(backend=backend)
        h.ehlo()
        self.assertEqual(h.chat(b"MAIL FROM:<a@b.org>\r\n"), ["451 4.3.0 Requested action aborted: local error in processing"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 0)
        self.assertEqual(h.chat(b"NOOP\r\n"), ["250 2.0.0 OK"])


class ParameterTests(TestCase):
    def mail(self, params: bytes, limits: SMTPLimits | None = None) -> list[str]:
        self.harness = h = greeted(limits=limits)
        h.ehlo()
        return h.chat(b"MAIL FROM:<a@b.org> " + params + b"\r\n")

    def test_size_over_limit_refused_at_mail(self) -> None:
        # Stock twisted ignored SIZE=999999999999 and answered 250 (library notes §1).
        replies = self.mail(b"SIZE=1001", SMTPLimits(max_message_size=1000))
        self.assertEqual(replies, ["552 5.3.4 Message size exceeds fixed maximum message size"])
        self.assertEqual(self.mail(b"SIZE=999999999999"), ["552 5.3.4 Message size exceeds fixed maximum message size"])

    def test_size_within_limit_is_recorded(self) -> None:
        self.assertEqual(self.mail(b"SIZE=1000", SMTPLimits(max_message_size=1000)), ["250 2.1.0 Sender OK"])
        self.assertEqual(self.harness.session.mail_params.size, 1000)

    def test_bad_size_value(self) -> None:
        self.assertEqual(self.mail(b"SIZE=12k"), ["501 5.5.4 Bad SIZE syntax"])

    def test_body_8bitmime_and_7bit(self) -> None:
        self.assertEqual(self.mail(b"BODY=8BITMIME"), ["250 2.1.0 Sender OK"])
        self.assertEqual(self.harness.session.mail_params.body, "8BITMIME")
        self.assertEqual(self.mail(b"body=7bit"), ["250 2.1.0 Sender OK"])
        self.assertEqual(self.harness.session.mail_params.body, "7BIT")

    def test_body_binarymime_is_not_supported(self) -> None:
        self.assertEqual(self.mail(b"BODY=BINARYMIME"), ["555 5.5.4 Unsupported option: BODY=BINARYMIME"])

    def test_auth_parameter_accepted_and_ignored(self) -> None:
        self.assertEqual(self.mail(b"AUTH=<> SIZE=10"), ["250 2.1.0 Sender OK"])
        self.assertEqual(self.mail(b"AUTH=a+2Bb@c.d"), ["250 2.1.0 Sender OK"])

    def test_unknown_and_duplicate_parameters(self) -> None:
        self.assertEqual(self.mail(b"FOO=bar"), ["555 5.5.4 Unsupported option: FOO"])
        self.assertEqual(self.mail(b"SIZE=1 SIZE=2"), ["555 5.5.4 Duplicate option: SIZE"])
        self.assertEqual(self.mail(b"SMTPUTF8 smtputf8"), ["555 5.5.4 Duplicate option: SMTPUTF8"])

    def test_rcpt_parameters_are_not_supported(self) -> None:
        self.mail(b"")
        replies = self.harness.chat(b"RCPT TO:<x@example.com> NOTIFY=NEVER\r\n")
        self.assertEqual(replies, ["555 5.5.4 Unsupported option: NOTIFY"])


class LaterBackend(MemoryBackend):
    """Answers every validation after a clock delay: later commands answer *sooner*."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.delay = 10.0

    def outcome(self, name: str, args: tuple[Any, ...], outcome: Any = None, refusal: SMTPReply | None = None) -> Deferred[Any]:
        if name not in ("validate_sender", "validate_recipient", "finish"):
            return super().outcome(name, args, outcome, refusal)
        d: Deferred[Any] = Deferred()
        self.delay -= 1
        if refusal is not None:
            self.clock.callLater(self.delay, d.errback, refusal)
        else:
            self.clock.callLater(self.delay, d.callback, outcome)
        return d


class PipeliningTests(TestCase):
    """RFC 2920 with asynchronous validators: twisted/twisted#8126 regression tests."""

    def test_pipelined_transaction_replies_in_order_with_held_backend(self) -> None:
        backend = MemoryBackend()
        backend.hold("validate_sender", "validate_recipient", "finish")
        h = greeted(backend=backend)
        h.ehlo()
        h.send(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<x@example.com>\r\nRCPT TO:<y@relay.example>\r\nDATA\r\n")
        self.assertEqual(h.read(), [])
        self.assertEqual(h.transport.producerState, "paused")
        # One call at a time: the next command is not even looked at before the reply.
        self.assertEqual([p.name for p in backend.pending], ["validate_sender"])
        backend.release_all()
        self.assertEqual(h.read(), ["250 2.1.0 Sender OK"])
        self.assertEqual([p.name for p in backend.pending], ["validate_recipient"])
        backend.release_all()
        backend.release_all()
        self.assertEqual(
            h.read(),
            ["250 2.1.5 Recipient OK", "550 5.7.1 Relay access denied", "354 End data with <CR><LF>.<CR><LF>"],
        )
        self.assertEqual(h.transport.producerState, "producing")
        h.send(b"Subject: one\r\n\r\nbody\r\n.\r\nMAIL FROM:<c@d.org>\r\nRCPT TO:<z@example.com>\r\nDATA\r\n")
        self.assertEqual(h.read(), [])
        self.assertEqual([p.name for p in backend.pending], ["finish"])
        backend.release_all()
        backend.release_all()
        backend.release_all()
        lines = h.read()
        self.assertRegex(lines[0], r"^250 2\.0\.0 Ok: queued as ")
        self.assertEqual(lines[1:], ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "354 End data with <CR><LF>.<CR><LF>"])
        self.assertEqual(backend.messages[0].data, b"Subject: one\r\n\r\nbody\r\n")
        self.assertEqual(backend.messages[0].recipients, ["x@example.com"])

    def test_deferreds_firing_in_reverse_order_still_reply_in_order(self) -> None:
        clock = Clock()
        backend = LaterBackend(clock)
        h = greeted(backend=backend, clock=clock)
        h.ehlo()
        h.send(
            b"MAIL FROM:<a@b.org>\r\nRCPT TO:<x@example.com>\r\nRCPT TO:<y@relay.example>\r\n"
            b"RCPT TO:<z@example.com>\r\nDATA\r\nhi\r\n.\r\nNOOP\r\n"
        )
        clock.pump([1.0] * 60)
        lines = h.read()
        self.assertEqual(
            lines[:5],
            [
                "250 2.1.0 Sender OK",
                "250 2.1.5 Recipient OK",
                "550 5.7.1 Relay access denied",
                "250 2.1.5 Recipient OK",
                "354 End data with <CR><LF>.<CR><LF>",
            ],
        )
        self.assertRegex(lines[5], r"^250 2\.0\.0 Ok: queued as ")
        self.assertEqual(lines[6:], ["250 2.0.0 OK"])
        self.assertEqual(backend.messages[0].recipients, ["x@example.com", "z@example.com"])

    def test_many_pipelined_commands_in_one_segment(self) -> None:
        h = greeted(limits=SMTPLimits(max_junk_commands=500))  # NOOP is junk: see LimitTests
        self.assertEqual(h.chat(b"NOOP\r\n" * 500), ["250 2.0.0 OK"] * 500)

    def test_all_recipients_refused_then_data_is_refused(self) -> None:
        h = greeted()
        h.ehlo()
        replies = h.chat(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<y@relay.example>\r\nDATA\r\nQUIT\r\n")
        self.assertEqual(
            replies,
            [
                "250 2.1.0 Sender OK",
                "550 5.7.1 Relay access denied",
                "503 5.5.1 Error: need RCPT command",
                f"221 2.0.0 {HOST} closing connection",
            ],
        )

    def test_no_command_timeout_while_the_backend_is_pending(self) -> None:
        backend = MemoryBackend()
        backend.hold("validate_sender")
        h = greeted(backend=backend)
        h.ehlo()
        h.send(b"MAIL FROM:<a@b.org>\r\n")
        h.clock.advance(10_000)
        self.assertFalse(h.closed)
        backend.release_all()
        self.assertEqual(h.read(), ["250 2.1.0 Sender OK"])
        h.clock.advance(301)
        self.assertTrue(h.closed)


class StartTLSTests(TestCase):
    def test_starttls_starts_tls_with_the_configured_object(self) -> None:
        h = greeted()
        h.ehlo()
        self.assertEqual(h.chat(b"STARTTLS\r\n"), ["220 2.0.0 Ready to start TLS"])
        self.assertIs(h.transport.tls_context, TLS)
        self.assertTrue(h.session.tls)

    def test_starttls_pipelined_command_is_discarded(self) -> None:
        # CVE-2011-0411 class: stock ESMTP executed the plaintext RSET inside TLS ("250 I
        # remember nothing.") because LineOnlyReceiver iterates lines it already split.
        h = greeted()
        h.ehlo()
        self.assertEqual(h.chat(b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@x.org>\r\n"), ["220 2.0.0 Ready to start TLS"])
        h.proto.handshakeCompleted()
        self.assertEqual(h.read(), [])
        self.assertEqual(h.chat(b"NOOP\r\n"), ["250 2.0.0 OK"])
        self.assertNotIn(("validate_sender", "evil@x.org"), h.backend.calls)

    def test_starttls_discards_queued_input_behind_a_pending_reply(self) -> None:
        backend = MemoryBackend()
        backend.hold("connection_made")
        h = Harness(backend=backend)
        h.send(b"EHLO x\r\nSTARTTLS\r\nRSET\r\n")
        backend.release_all()
        lines = h.read()
        self.assertEqual(lines[-1], "220 2.0.0 Ready to start TLS")
        self.assertNotIn("250 2.0.0 OK", lines)

    def test_starttls_resets_session_state(self) -> None:
        # RFC 3207 §4.2: the client must EHLO again; nothing from before TLS survives.
        h = greeted()
        h.ehlo()
        h.start_tls()
        self.assertIsNone(h.session.helo)
        self.assertEqual(h.chat(b"MAIL FROM:<a@b.org>\r\n"), ["503 5.5.1 Error: send HELO/EHLO first"])

    def test_starttls_twice(self) -> None:
        h = greeted()
        h.ehlo()
        h.start_tls()
        h.ehlo()
        self.assertEqual(h.chat(b"STARTTLS\r\n"), ["503 5.5.1 Error: TLS already active"])

    def test_starttls_on_smtps_is_refused(self) -> None:
        h = greeted(listener="smtps")
        h.ehlo()
        self.assertEqual(h.chat(b"STARTTLS\r\n"), ["503 5.5.1 Error: TLS already active"])

    def test_starttls_with_argument(self) -> None:
        h = greeted()
        h.ehlo()
        self.assertEqual(h.chat(b"STARTTLS now\r\n"), ["501 5.5.4 Syntax: STARTTLS"])
        self.assertIsNone(h.transport.tls_context)

    def test_starttls_without_tls_configured(self) -> None:
        h = greeted(tls=False)
        h.ehlo()
        self.assertEqual(h.chat(b"STARTTLS\r\n"), ["502 5.5.1 Error: command not implemented"])

    def test_starttls_needs_ehlo_and_no_transaction(self) -> None:
        h = greeted()
        self.assertEqual(h.chat(b"STARTTLS\r\n"), ["503 5.5.1 Error: send HELO/EHLO first"])
        h.ehlo()
        h.chat(b"MAIL FROM:<a@b.org>\r\n")
        self.assertEqual(h.chat(b"STARTTLS\r\n"), ["503 5.5.1 Error: MAIL transaction in progress"])


class SubmissionTests(TestCase):
    def test_auth_refused_before_starttls_on_submission(self) -> None:
        # Stock ESMTP advertised and accepted AUTH PLAIN in cleartext (library notes §1).
        h = greeted(listener="submission")
        h.ehlo()
        replies = h.chat(b"AUTH PLAIN " + b64(f"\0{USER}\0{PASSWORD}") + b"\r\n")
        self.assertEqual(replies, ["538 5.7.11 Encryption required for requested authentication mechanism"])
        self.assertNotIn(("authenticate", USER), h.backend.calls)

    def test_mail_needs_tls_then_auth_on_submission(self) -> None:
        h = greeted(listener="submission")
        h.ehlo()
        self.assertEqual(h.chat(b"MAIL FROM:<a@b.org>\r\n"), ["530 5.7.0 Must issue a STARTTLS command first"])
        h.start_tls()
        h.ehlo()
        self.assertEqual(h.chat(b"MAIL FROM:<a@b.org>\r\n"), ["530 5.7.0 Authentication required"])

    def test_smtps_needs_auth_before_mail(self) -> None:
        h = greeted(listener="smtps")
        h.ehlo()
        self.assertEqual(h.chat(b"MAIL FROM:<a@b.org>\r\n"), ["530 5.7.0 Authentication required"])

    def test_inbound_refuses_auth_even_under_tls(self) -> None:
        h = greeted()
        h.ehlo()
        h.start_tls()
        h.ehlo()
        replies = h.chat(b"AUTH PLAIN " + b64(f"\0{USER}\0{PASSWORD}") + b"\r\n")
        self.assertEqual(replies, ["503 5.5.1 Error: authentication not enabled"])
        self.assertNotIn(("authenticate", USER), h.backend.calls)

    def test_inbound_denies_relay_to_foreign_domains(self) -> None:
        h = greeted()
        h.ehlo()
        replies = h.chat(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<x@relay.example>\r\n")
        self.assertEqual(replies[1], "550 5.7.1 Relay access denied")

    def test_authenticated_submission_relays(self) -> None:
        h = greeted(listener="submission")
        h.login()
        replies = h.chat(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<x@relay.example>\r\nDATA\r\nhi\r\n.\r\n")
        self.assertEqual(replies[:3], ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "354 End data with <CR><LF>.<CR><LF>"])
        stored = h.backend.messages[0]
        self.assertEqual((stored.authenticated, stored.tls, stored.listener), (USER, True, "submission"))


class AuthTests(TestCase):
    def ready(self, listener: str = "submission", backend: MemoryBackend | None = None, **kw: Any) -> Harness:
        h = greeted(listener=listener, backend=backend, **kw)
        h.ehlo()
        if listener == "submission":
            h.start_tls()
            h.ehlo()
        return h

    def test_auth_plain_initial_response(self) -> None:
        h = self.ready()
        replies = h.chat(b"AUTH PLAIN " + b64(f"\0{USER}\0{PASSWORD}") + b"\r\n")
        self.assertEqual(replies, ["235 2.7.0 Authentication successful"])
        self.assertEqual(h.session.authenticated, USER)

    def test_auth_plain_with_authzid_equal_to_user(self) -> None:
        h = self.ready()
        replies = h.chat(b"AUTH PLAIN " + b64(f"{USER}\0{USER}\0{PASSWORD}") + b"\r\n")
        self.assertEqual(replies, ["235 2.7.0 Authentication successful"])

    def test_auth_plain_for_another_identity_is_refused(self) -> None:
        h = self.ready()
        replies = h.chat(b"AUTH PLAIN " + b64(f"bob@example.com\0{USER}\0{PASSWORD}") + b"\r\n")
        self.assertEqual(replies, ["535 5.7.8 Authentication credentials invalid"])

    def test_auth_plain_after_empty_challenge(self) -> None:
        h = self.ready()
        self.assertEqual(h.chat(b"AUTH PLAIN\r\n"), ["334 "])
        self.assertEqual(h.chat(b64(f"\0{USER}\0{PASSWORD}") + b"\r\n"), ["235 2.7.0 Authentication successful"])

    def test_auth_login(self) -> None:
        h = self.ready(listener="smtps")
        self.assertEqual(h.chat(b"AUTH LOGIN\r\n"), ["334 VXNlcm5hbWU6"])
        self.assertEqual(h.chat(b64(USER) + b"\r\n"), ["334 UGFzc3dvcmQ6"])
        self.assertEqual(h.chat(b64(PASSWORD) + b"\r\n"), ["235 2.7.0 Authentication successful"])
        self.assertEqual(h.session.authenticated, USER)

    def test_auth_login_with_initial_username(self) -> None:
        h = self.ready()
        self.assertEqual(h.chat(b"AUTH LOGIN " + b64(USER) + b"\r\n"), ["334 UGFzc3dvcmQ6"])
        self.assertEqual(h.chat(b64(PASSWORD) + b"\r\n"), ["235 2.7.0 Authentication successful"])

    def test_utf8_password(self) -> None:
        backend = MemoryBackend(users={"jörg@example.com": "pässwörd"})
        h = self.ready(backend=backend)
        replies = h.chat(b"AUTH PLAIN " + b64("\0jörg@example.com\0pässwörd") + b"\r\n")
        self.assertEqual(replies, ["235 2.7.0 Authentication successful"])

    def test_auth_cancel(self) -> None:
        h = self.ready()
        h.chat(b"AUTH LOGIN\r\n")
        self.assertEqual(h.chat(b"*\r\n"), ["501 5.7.0 Authentication cancelled"])
        self.assertEqual(h.chat(b"NOOP\r\n"), ["250 2.0.0 OK"])

    def test_auth_bad_base64(self) -> None:
        h = self.ready()
        self.assertEqual(h.chat(b"AUTH PLAIN !!!notbase64\r\n"), ["501 5.5.2 Cannot decode response"])
        h.chat(b"AUTH LOGIN\r\n")
        self.assertEqual(h.chat(b"%%%\r\n"), ["501 5.5.2 Cannot decode response"])
        self.assertEqual(h.chat(b"NOOP\r\n"), ["250 2.0.0 OK"])

    def test_auth_plain_without_nul_separators(self) -> None:
        # Stock server: IllegalClientResponse, unhandled traceback, connection dropped.
        h = self.ready()
        self.assertEqual(h.chat(b"AUTH PLAIN " + b64("alice password") + b"\r\n"), ["501 5.5.2 Cannot decode response"])
        self.assertFalse(h.closed)
        self.assertEqual(h.chat(b"NOOP\r\n"), ["250 2.0.0 OK"])

    def test_auth_plain_malformed_as_imap_and_pop3_refuse_it(self) -> None:
        # Regression: SMTP had its own PLAIN decoder that passed an empty password and fields
        # over 255 octets on to the password check; now one decoder serves all three.
        h = self.ready()
        for raw in (b"\0alice\0", b"\0alice\0" + b"p" * 256):
            self.assertEqual(h.chat(b"AUTH PLAIN " + base64.b64encode(raw) + b"\r\n"),
                             ["501 5.5.2 Cannot decode response"])
        self.assertFalse(h.closed)

    def test_auth_without_mechanism(self) -> None:
        # Stock server: IndexError, unhandled traceback, connection dropped.
        h = self.ready()
        self.assertEqual(h.chat(b"AUTH\r\n"), ["501 5.5.4 Syntax: AUTH mechanism"])
        self.assertFalse(h.closed)

    def test_auth_unknown_mechanism(self) -> None:
        h = self.ready()
        self.assertEqual(h.chat(b"AUTH CRAM-MD5\r\n"), ["504 5.5.4 Unrecognized authentication type"])

    def test_auth_twice(self) -> None:
        h = self.ready()
        h.chat(b"AUTH PLAIN " + b64(f"\0{USER}\0{PASSWORD}") + b"\r\n")
        self.assertEqual(h.chat(b"AUTH LOGIN\r\n"), ["503 5.5.1 Error: already authenticated"])

    def test_auth_wrong_password(self) -> None:
        h = self.ready()
        replies = h.chat(b"AUTH PLAIN " + b64(f"\0{USER}\0wrong") + b"\r\n")
        self.assertEqual(replies, ["535 5.7.8 Authentication credentials invalid"])
        self.assertIsNone(h.session.authenticated)

    def test_auth_backend_temporary_failure_is_passed_through(self) -> None:
        backend = MemoryBackend(users={USER: PASSWORD})
        backend.authenticate = lambda *a: fail(SMTPReply(454, "4.7.0", "Try later"))  # type: ignore[method-assign]
        h = self.ready(backend=backend)
        replies = h.chat(b"AUTH PLAIN " + b64(f"\0{USER}\0{PASSWORD}") + b"\r\n")
        self.assertEqual(replies, ["454 4.7.0 Try later"])

    def test_auth_backend_returning_no_identity_is_not_a_success(self) -> None:
        backend = MemoryBackend(users={USER: PASSWORD})
        backend.authenticate = lambda *a: succeed(None)  # type: ignore[method-assign]
        h = self.ready(backend=backend)
        replies = h.chat(b"AUTH PLAIN " + b64(f"\0{USER}\0{PASSWORD}") + b"\r\n")
        self.assertEqual(replies, ["454 4.7.0 Temporary authentication failure"])
        self.assertIsNone(h.session.authenticated)

    def test_auth_backend_crash_is_a_temporary_failure(self) -> None:
        backend = MemoryBackend(users={USER: PASSWORD})
        backend.authenticate = lambda *a: 1 / 0  # type: ignore[method-assign, assignment]
        h = self.ready(backend=backend)
        replies = h.chat(b"AUTH PLAIN " + b64(f"\0{USER}\0{PASSWORD}") + b"\r\n")
        self.assertEqual(replies, ["454 4.7.0 Temporary authentication failure"])

    def test_too_many_auth_failures_close_the_session(self) -> None:
        h = self.ready()
        wrong = b"AUTH PLAIN " + b64(f"\0{USER}\0wrong") + b"\r\n"
        self.assertEqual(h.chat(wrong + wrong), ["535 5.7.8 Authentication credentials invalid"] * 2)
        self.assertFalse(h.closed)
        self.assertEqual(h.chat(wrong), [f"421 4.7.0 {HOST} Error: too many authentication failures"])
        self.assertTrue(h.closed)

    def test_malformed_responses_count_as_failures(self) -> None:
        h = self.ready(limits=SMTPLimits(max_auth_failures=2))
        h.chat(b"AUTH PLAIN xx\r\n")
        self.assertEqual(h.chat(b"AUTH PLAIN xx\r\n"), [f"421 4.7.0 {HOST} Error: too many authentication failures"])

    def test_auth_before_ehlo(self) -> None:
        h = greeted(listener="smtps")
        self.assertEqual(h.chat(b"AUTH LOGIN\r\n"), ["503 5.5.1 Error: send HELO/EHLO first"])

    def test_auth_response_line_too_long(self) -> None:
        h = self.ready()
        h.chat(b"AUTH LOGIN\r\n")
        self.assertEqual(h.chat(b"A" * 13000 + b"\r\n"), ["500 5.5.6 Authentication Exchange line is too long"])
        self.assertEqual(h.chat(b"NOOP\r\n"), ["250 2.0.0 OK"])

    def test_credentials_and_content_never_logged(self) -> None:
        events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        h = self.ready()
        h.chat(b"AUTH PLAIN " + b64(f"\0{USER}\0wrong-{PASSWORD}") + b"\r\n")
        h.chat(b"AUTH LOGIN\r\n" + b64(USER) + b"\r\n" + b64(PASSWORD) + b"\r\n")
        h.chat(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<x@relay.example>\r\nDATA\r\nSecret-Header: topsecret\r\n.\r\n")
        text = "\n".join(formatEvent(e) + repr(e) for e in events)
        self.assertIn("authenticated as", text)  # the observer did see the session's events
        for secret in (PASSWORD, b64(PASSWORD).decode(), b64(f"\0{USER}\0wrong-{PASSWORD}").decode(), "topsecret"):
            self.assertNotIn(secret, text)


class DataTests(TestCase):
    def in_data(self, listener: str = "inbound", mail_params: bytes = b"", **kw: Any) -> Harness:
        h = greeted(listener=listener, **kw)
        if listener == "inbound":
            h.ehlo()
        else:
            h.login()
        replies = h.chat(b"MAIL FROM:<alice@example.com>" + mail_params + b"\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
        self.assertEqual(replies[-1], "354 End data with <CR><LF>.<CR><LF>")
        return h

    def test_message_is_stored_dot_unstuffed(self) -> None:
        h = self.in_data()
        replies = h.chat(b"..starts with a dot\r\nSubject: x\r\n\r\n...two dots\r\n.\r\n.. \r\nend\r\n.\r\n")
        self.assertRegex(replies[0], r"^250 2\.0\.0 Ok: queued as [0-9a-f]{16}$")
        self.assertEqual(h.backend.messages[0].data, b".starts with a dot\r\nSubject: x\r\n\r\n..two dots\r\n")
        # The lines after the terminator are commands again: ".. ", "end", ".".
        self.assertEqual(replies[1:], ["500 5.5.2 Error: command not recognized"] * 3)

    def test_empty_message(self) -> None:
        h = self.in_data()
        self.assertRegex(h.chat(b".\r\n")[0], r"^250 2\.0\.0 ")
        self.assertEqual(h.backend.messages[0].data, b"")

    def test_terminator_and_stuffing_split_across_segments(self) -> None:
        h = self.in_data()
        stream = b"a\r\n..b\r\n.\r\nNOOP\r\n"
        for index in range(len(stream)):
            h.send(stream[index : index + 1])
        replies = h.read()
        self.assertRegex(replies[0], r"^250 2\.0\.0 ")
        self.assertEqual(replies[1:], ["250 2.0.0 OK"])
        self.assertEqual(h.backend.messages[0].data, b"a\r\n.b\r\n")

    def test_message_reaches_the_sink_in_large_slices(self) -> None:
        # Not a Python call per line (library notes §1: that is what makes 100 KB mail slow).
        h = self.in_data()
        body = b"".join(b"line %05d of a long message, quite ordinary text\r\n" % n for n in range(2000))
        for start in range(0, len(body), 32768):
            h.send(body[start : start + 32768])
        h.send(b".\r\n")
        self.assertEqual(h.backend.messages[0].data, body)
        self.assertLessEqual(h.backend.messages[0].chunks, 5)  # one write per segment received

    def test_long_body_line_does_not_leave_data_mode(self) -> None:
        # Stock server: the 16 KB MAX_LENGTH returned to COMMAND mode mid-message and the body
        # line "HELO smuggled.example" was answered "250 ... Hello" (library notes §1).
        h = self.in_data()
        body = b"Subject: x\r\n\r\n" + b"x" * 20000 + b"\r\nHELO smuggled.example\r\n"
        replies = h.chat(body + b".\r\n")
        self.assertEqual(len(replies), 1)
        self.assertRegex(replies[0], r"^250 2\.0\.0 ")
        self.assertEqual(h.backend.messages[0].data, body)
        self.assertNotEqual(h.session.helo, "smuggled.example")

    def test_only_crlf_dot_crlf_ends_the_data(self) -> None:
        # SMTP smuggling (CVE-2023-51764): "\n.\n" and "\n.\r\n" are not the end of data.
        h = self.in_data()
        replies = h.chat(b"Subject: x\r\n\r\nhi\n.\nMAIL FROM:<evil@x.org>\r\nRCPT TO:<v@example.com>\r\nDATA\r\n")
        self.assertEqual(replies, [])
        replies = h.chat(b"smuggled\r\n.\r\n")
        self.assertEqual(replies, ["554 5.5.2 Message rejected: bare <CR> or <LF> received"])
        self.assertNotIn(("validate_sender", "evil@x.org"), h.backend.calls)
        self.assertEqual(h.backend.messages, [])
        self.assertTrue(h.backend.sinks[0].aborted)
        self.assertEqual(h.chat(b"NOOP\r\n"), ["250 2.0.0 OK"])

    def test_bare_cr_in_data_rejects_the_message(self) -> None:
        h = self.in_data()
        self.assertEqual(h.chat(b"a\rb\r\n\r.\r\n.\r\n"), ["554 5.5.2 Message rejected: bare <CR> or <LF> received"])
        self.assertEqual(h.backend.messages, [])

    def test_nul_in_data_rejects_the_message(self) -> None:
        h = self.in_data()
        self.assertEqual(h.chat(b"a\x00b\r\n.\r\n"), ["554 5.6.0 Message rejected: NUL character in message"])
        self.assertEqual(h.backend.messages, [])
        self.assertIsNone(h.session.mail_from)

    def test_8bit_without_8bitmime_is_accepted_on_inbound(self) -> None:
        h = self.in_data()
        self.assertRegex(h.chat("Subject: é\r\n.\r\n".encode())[0], r"^250 2\.0\.0 ")
        self.assertTrue(h.backend.messages[0].body_8bit)

    def test_7bit_message_is_flagged_7bit(self) -> None:
        h = self.in_data()
        h.chat(b"Subject: e\r\n.\r\n")
        self.assertFalse(h.backend.messages[0].body_8bit)

    def test_8bit_without_8bitmime_is_refused_on_submission(self) -> None:
        h = self.in_data(listener="submission")
        replies = h.chat("Subject: é\r\n.\r\n".encode())
        self.assertEqual(replies, ["554 5.6.0 Message rejected: 8-bit data without BODY=8BITMIME or SMTPUTF8"])
        self.assertEqual(h.backend.messages, [])

    def test_8bit_with_8bitmime_is_accepted_on_submission(self) -> None:
        h = self.in_data(listener="submission", mail_params=b" BODY=8BITMIME")
        self.assertRegex(h.chat("Subject: é\r\n.\r\n".encode())[0], r"^250 2\.0\.0 ")
        self.assertEqual(h.backend.messages[0].data, "Subject: é\r\n".encode())

    def test_8bit_with_smtputf8_is_accepted_on_smtps(self) -> None:
        h = self.in_data(listener="smtps", mail_params=b" SMTPUTF8")
        self.assertRegex(h.chat("Subject: é\r\n.\r\n".encode())[0], r"^250 2\.0\.0 ")

    def test_oversize_message_is_refused_and_not_buffered(self) -> None:
        h = self.in_data(limits=SMTPLimits(max_message_size=1000))
        for _ in range(10):
            h.send(b"y" * 498 + b"\r\n")
        replies = h.chat(b".\r\nNOOP\r\n")
        self.assertEqual(replies, ["552 5.3.4 Message size exceeds fixed maximum message size", "250 2.0.0 OK"])
        sink = h.backend.sinks[0]
        self.assertLessEqual(sink.size, 1000)
        self.assertTrue(sink.aborted)
        self.assertEqual(h.backend.messages, [])

    def test_message_of_exactly_the_limit_is_accepted(self) -> None:
        h = self.in_data(limits=SMTPLimits(max_message_size=1000))
        self.assertRegex(h.chat(b"z" * 998 + b"\r\n.\r\n")[0], r"^250 2\.0\.0 ")

    def test_sink_refusal_is_sent_after_the_data(self) -> None:
        backend = MemoryBackend()
        backend.quota = 100
        h = self.in_data(backend=backend)
        self.assertEqual(h.chat(b"q" * 200 + b"\r\n"), [])
        self.assertEqual(h.chat(b"more\r\n.\r\nNOOP\r\n"), ["552 5.2.2 Mailbox full", "250 2.0.0 OK"])
        self.assertTrue(backend.sinks[0].aborted)

    def test_finish_failure_is_mapped(self) -> None:
        backend = MemoryBackend()
        backend.finish_reply = SMTPReply(452, "4.3.1", "Insufficient system storage")
        h = self.in_data(backend=backend)
        self.assertEqual(h.chat(b"hi\r\n.\r\n"), ["452 4.3.1 Insufficient system storage"])
        self.assertIsNone(h.session.mail_from)

    def test_250_only_once_the_message_is_durable(self) -> None:
        backend = MemoryBackend()
        backend.hold("finish")
        h = self.in_data(backend=backend)
        self.assertEqual(h.chat(b"hi\r\n.\r\n"), [])
        backend.release_all()
        self.assertRegex(h.read()[0], r"^250 2\.0\.0 ")

    def test_begin_message_refusal(self) -> None:
        backend = MemoryBackend()

        def refuse(session: SMTPSession) -> Any:
            raise SMTPReply(451, "4.3.0", "Queue unavailable")

        backend.begin_message = refuse  # type: ignore[method-assign]
        h = greeted(backend=backend)
        h.ehlo()
        replies = h.chat(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nNOOP\r\n")
        self.assertEqual(replies[2:], ["451 4.3.0 Queue unavailable", "250 2.0.0 OK"])

    def test_connection_lost_mid_data_aborts_the_sink(self) -> None:
        h = self.in_data()
        h.send(b"Subject: half\r\n")
        h.lose()
        self.assertTrue(h.backend.sinks[0].aborted)
        self.assertEqual(h.backend.messages, [])

    def test_finish_after_connection_lost_does_not_crash(self) -> None:
        backend = MemoryBackend()
        backend.hold("finish")
        h = self.in_data(backend=backend)
        h.send(b"hi\r\n.\r\n")
        written = h.transport.value()
        h.lose()
        backend.release_all()
        self.assertEqual(h.transport.value(), written)
        self.assertFalse(backend.sinks[0].aborted)  # finish() was already called: no abort

    def test_transaction_is_reset_after_the_message(self) -> None:
        h = self.in_data()
        h.chat(b"hi\r\n.\r\n")
        self.assertIsNone(h.session.mail_from)
        self.assertEqual(h.session.recipients, [])
        self.assertEqual(h.chat(b"DATA\r\n"), ["503 5.5.1 Error: need MAIL command"])

    def test_two_messages_in_one_session_get_distinct_transaction_ids(self) -> None:
        h = self.in_data()
        first = h.chat(b"one\r\n.\r\n")[0]
        h.chat(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n")
        second = h.chat(b"two\r\n.\r\n")[0]
        self.assertNotEqual(first, second)
        self.assertEqual([m.data for m in h.backend.messages], [b"one\r\n", b"two\r\n"])


class BadInputTests(TestCase):
    def test_command_line_too_long(self) -> None:
        # RFC 5321 §4.5.3.1.4: 512 octets. Answered once the line ends; the session goes on.
        # Stock ESMTP silently dropped the commands after an over-long line in one segment.
        h = greeted()
        self.assertEqual(h.chat(b"NOOP " + b"a" * 2000 + b"\r\nNOOP\r\n"), ["500 5.5.2 Line too long", "250 2.0.0 OK"])

    def test_command_line_too_long_across_segments_is_not_buffered(self) -> None:
        # Stock ESMTP kept every octet of an endless line (6.5 MB after 100 reads) and sent
        # "500 Line too long" once per read.
        h = greeted()
        for _ in range(20):
            self.assertEqual(h.chat(b"x" * 1000), [])
        self.assertEqual(len(h.proto._input), 0)
        self.assertEqual(h.chat(b"\r\nNOOP\r\n"), ["500 5.5.2 Line too long", "250 2.0.0 OK"])

    def test_line_of_exactly_512_octets_is_accepted(self) -> None:
        h = greeted()
        self.assertEqual(h.chat(b"NOOP " + b"a" * 505 + b"\r\n"), ["250 2.0.0 OK"])
        self.assertEqual(h.chat(b"NOOP " + b"a" * 506 + b"\r\n"), ["500 5.5.2 Line too long"])

    def test_mail_line_may_be_longer_for_its_parameters(self) -> None:
        h = greeted()
        h.ehlo()
        line = b"MAIL FROM:<a@b.org> SIZE=100 BODY=8BITMIME AUTH=" + b"x" * 480 + b"\r\n"
        self.assertGreater(len(line), 512)
        self.assertEqual(h.chat(line), ["250 2.1.0 Sender OK"])
        self.assertEqual(h.chat(b"RSET\r\nMAIL FROM:<a@b.org> AUTH=" + b"x" * 2000 + b"\r\n")[1], "500 5.5.2 Line too long")

    def test_nul_in_command(self) -> None:
        h = greeted()
        self.assertEqual(h.chat(b"NOOP\x00\r\nNOOP\r\n"), ["500 5.5.2 Syntax error: NUL character in command", "250 2.0.0 OK"])

    def test_bare_lf_ends_no_command(self) -> None:
        h = greeted()
        replies = h.chat(b"EHLO x\nMAIL FROM:<a@b.org>\n")
        self.assertEqual(replies, ["500 5.5.2 Syntax error: bare <CR> or <LF> received"] * 2)
        self.assertEqual(h.backend.calls[-1][0], "connection_made")
        self.assertEqual(h.chat(b"NOOP\r\n"), ["250 2.0.0 OK"])

    def test_bare_cr_in_command(self) -> None:
        h = greeted()
        self.assertEqual(h.chat(b"NOOP\rRSET\r\n"), ["500 5.5.2 Syntax error: bare <CR> or <LF> received"])


class LimitTests(TestCase):
    def test_recipient_limit(self) -> None:
        # RFC 5321 §4.5.3.1.10; stock server: no limit at all.
        h = greeted(limits=SMTPLimits(max_recipients=2))
        h.ehlo()
        replies = h.chat(
            b"MAIL FROM:<a@b.org>\r\nRCPT TO:<x@example.com>\r\nRCPT TO:<y@example.com>\r\nRCPT TO:<z@example.com>\r\n"
        )
        self.assertEqual(replies[3], "452 4.5.3 Error: too many recipients")
        self.assertEqual(h.session.recipients, ["x@example.com", "y@example.com"])

    def test_duplicate_recipients_are_kept_once(self) -> None:
        h = greeted()
        h.ehlo()
        h.chat(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<x@example.com>\r\nRCPT TO:<x@EXAMPLE.com>\r\n")
        self.assertEqual(h.session.recipients, ["x@example.com"])

    def test_command_limit(self) -> None:
        h = greeted(limits=SMTPLimits(max_junk_commands=3))
        replies = h.chat(b"NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n")
        self.assertEqual(replies, ["250 2.0.0 OK"] * 3 + [f"421 4.7.0 {HOST} Error: too many commands"])
        self.assertTrue(h.closed)

    def test_failed_commands_rset_vrfy_help_are_junk(self) -> None:
        # issue 9 item 3: like Postfix's smtpd_junk_command_limit.
        h = greeted(limits=SMTPLimits(max_junk_commands=4))
        h.ehlo()
        replies = h.chat(b"RSET\r\nVRFY x\r\nHELP\r\nBOGUS\r\nMAIL FROM:<a@b.org>\r\n"
                         b"RCPT TO:<y@relay.example>\r\n")
        self.assertEqual(replies[-1], f"421 4.7.0 {HOST} Error: too many commands")
        self.assertEqual(replies[4], "250 2.1.0 Sender OK")  # a real command is not junk
        self.assertTrue(h.closed)

    def test_transactions_are_never_cut_off(self) -> None:
        # 1,000 commands used to end the session (~334 messages); only junk counts now,
        # and its count restarts with each accepted message.
        h = greeted(limits=SMTPLimits(max_junk_commands=2))
        h.ehlo()
        for i in range(400):
            replies = h.chat(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n"
                             b"Subject: %d\r\n\r\nbody\r\n.\r\nRSET\r\nNOOP\r\n" % i)
            self.assertEqual([r[:3] for r in replies],
                             ["250", "250", "354", "250", "250", "250"], (i, replies))
        self.assertFalse(h.closed)
        self.assertEqual(len(h.backend.messages), 400)

    def test_connection_limit_per_ip(self) -> None:
        clock = Clock()
        backend = MemoryBackend()
        factory = SMTPServerFactory(backend, HOST, "inbound", None, clock, SMTPLimits(max_connections_per_ip=2))
        first = Harness(factory=factory, backend=backend)
        Harness(factory=factory, backend=backend)
        third = Harness(factory=factory, backend=backend)
        self.assertEqual(third.read(), [f"421 4.7.0 {HOST} Error: too many connections"])
        self.assertTrue(third.closed)
        self.assertEqual(len(backend.sessions), 2)  # the backend never saw the third
        other = Harness(factory=factory, backend=backend, peer="192.0.2.99")
        self.assertEqual(other.read(), [f"220 {HOST} ESMTP"])
        third.lose()
        first.lose()
        self.assertEqual(Harness(factory=factory, backend=backend).read(), [f"220 {HOST} ESMTP"])

    def test_connection_limit_total(self) -> None:
        backend = MemoryBackend()
        factory = SMTPServerFactory(backend, HOST, "inbound", None, Clock(), SMTPLimits(max_connections=1))
        Harness(factory=factory, backend=backend)
        self.assertEqual(
            Harness(factory=factory, backend=backend, peer="192.0.2.8").read(),
            [f"421 4.7.0 {HOST} Error: too many connections"],
        )

    def test_open_connections_are_tracked_and_drained(self) -> None:
        backend = MemoryBackend()
        factory = SMTPServerFactory(backend, HOST, "inbound", None, Clock())
        idle = Harness(factory=factory, backend=backend)
        self.assertEqual(factory.connections, {idle.proto})
        backend.hold("validate_sender")
        busy = Harness(factory=factory, backend=backend, peer="192.0.2.8")
        busy.read()
        busy.send(b"EHLO x\r\nMAIL FROM:<a@b.org>\r\n")
        drained = factory.close_all()
        self.assertEqual(idle.read()[-1], f"421 4.3.2 {HOST} Service shutting down")
        self.assertTrue(idle.closed)
        self.assertFalse(busy.closed)  # its pending reply goes out first
        backend.release_all()
        self.assertEqual(busy.read()[-2:], ["250 2.1.0 Sender OK", f"421 4.3.2 {HOST} Service shutting down"])
        self.assertNoResult(drained)
        idle.lose()
        busy.lose()
        self.successResultOf(drained)
        self.assertEqual(factory.connections, set())

    def test_shutdown_during_data_lets_the_message_finish(self) -> None:
        h = greeted()
        h.ehlo()
        h.chat(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nfirst half\r\n")
        h.proto.server_shutting_down()
        self.assertFalse(h.closed)
        lines = h.chat(b"second half\r\n.\r\nMAIL FROM:<c@d.org>\r\n")
        self.assertRegex(lines[0], r"^250 2\.0\.0 ")
        self.assertEqual(lines[1:], [f"421 4.3.2 {HOST} Service shutting down"])
        self.assertTrue(h.closed)
        self.assertEqual(h.backend.messages[0].data, b"first half\r\nsecond half\r\n")

    def test_factory_is_drainable_by_the_listener_service(self) -> None:
        h = greeted()
        self.assertTrue(IDrainable.providedBy(h.factory))
        self.assertEqual(set(h.factory.open_connections()), {h.proto})
        h.proto.server_shutting_down()
        self.assertEqual(h.read(), [f"421 4.3.2 {HOST} Service shutting down"])
        h.lose()
        self.assertEqual(set(h.factory.open_connections()), set())

    def test_factory_refuses_submission_without_tls(self) -> None:
        self.assertRaises(ValueError, SMTPServerFactory, MemoryBackend(), HOST, "submission", None, Clock())
        self.assertRaises(ValueError, SMTPServerFactory, MemoryBackend(), HOST, "pop3", None, Clock())
        self.assertRaises(ValueError, SMTPLimits, max_recipients=0)


class TimeoutTests(TestCase):
    def test_command_timeout(self) -> None:
        # RFC 5321 §4.5.3.2.7; stock server: one 600 s idle timeout for every state.
        h = greeted()
        h.clock.advance(299)
        self.assertFalse(h.closed)
        h.clock.advance(2)
        self.assertEqual(h.read(), [f"421 4.4.2 {HOST} Error: timeout exceeded"])
        self.assertTrue(h.closed)

    def test_activity_resets_the_command_timeout(self) -> None:
        h = greeted()
        h.clock.advance(200)
        h.chat(b"NOOP\r\n")
        h.clock.advance(200)
        self.assertFalse(h.closed)

    def test_data_timeout_is_longer_and_aborts_the_message(self) -> None:
        h = greeted()
        h.ehlo()
        h.chat(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<x@example.com>\r\nDATA\r\npartial\r\n")
        h.clock.advance(599)
        self.assertFalse(h.closed)
        h.chat(b"more\r\n")
        h.clock.advance(599)
        self.assertFalse(h.closed)
        h.clock.advance(2)
        self.assertEqual(h.read(), [f"421 4.4.2 {HOST} Error: timeout exceeded"])
        self.assertTrue(h.closed)
        self.assertTrue(h.backend.sinks[0].aborted)

    def test_command_timeout_applies_again_after_data(self) -> None:
        h = greeted(limits=SMTPLimits(command_timeout=10, data_timeout=100))
        h.ehlo()
        h.chat(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n")
        h.clock.advance(50)
        h.chat(b"x\r\n.\r\n")
        h.clock.advance(11)
        self.assertTrue(h.closed)

    def test_timeout_in_auth_exchange(self) -> None:
        h = greeted(listener="smtps")
        h.ehlo()
        h.chat(b"AUTH LOGIN\r\n")
        h.clock.advance(301)
        self.assertEqual(h.read(), [f"421 4.4.2 {HOST} Error: timeout exceeded"])
