"""Real listeners on 127.0.0.1 port 0, real clients: Python's smtplib (in a thread) and swaks.

The bytes the backend stores must be exactly what the client meant to send (after the
client's dot-stuffing is undone).
"""

from __future__ import annotations

import base64
import os
import shutil
import smtplib
from typing import Any, Callable, cast

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase

from mailgosend.smtp.factory import SMTPLimits, SMTPServerFactory
from mailgosend.tls.context import ServerTLS
from tests.support.certs import client_context, make_ca, make_cert
from tests.support.smtp import MemoryBackend

HOST = "mx.example.net"
USER, PASSWORD = "alice@example.com", "correct horse battery"
SWAKS = shutil.which("swaks") or "/usr/bin/swaks"

MESSAGE = (
    b"From: a@b.org\r\nTo: bob@example.com\r\nSubject: integration\r\n\r\n"
    b"Hello.\r\n.a line that starts with a dot\r\n..two dots\r\n.\r\nlast line\r\n"
)


class ListenerTestCase(TestCase):
    """Starts listeners on demand and stops them after the test."""

    def setUp(self) -> None:
        directory = self.mktemp()
        self.ca = make_ca(directory)
        cert, key = make_cert(directory, ["localhost", "127.0.0.1"], self.ca)
        self.tls = ServerTLS(cert, key)
        self.client_tls = client_context(self.ca)
        self.backend = MemoryBackend(users={USER: PASSWORD})

    @inlineCallbacks
    def listen(self, listener: str, limits: SMTPLimits | None = None) -> Any:
        factory = SMTPServerFactory(
            self.backend, HOST, listener, self.tls, reactor, limits  # type: ignore[arg-type]
        )
        if listener == "smtps":
            endpoint: Any = SSL4ServerEndpoint(reactor, 0, self.tls, interface="127.0.0.1")
        else:
            endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port: IListeningPort = yield endpoint.listen(factory)
        self.addCleanup(port.stopListening)
        self.addCleanup(factory.close_all)
        return cast(IPv4Address, port.getHost()).port

    def in_thread(self, func: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Blocking clients run in a thread so the reactor keeps serving them."""
        return deferToThread(func, *args)

    @inlineCallbacks
    def swaks(self, *args: str) -> Any:
        if not os.path.exists(SWAKS):
            raise SkipTest("swaks is not installed")
        out, err, code = yield getProcessOutputAndValue(SWAKS, list(args), env=dict(os.environ))
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), code


class PlainClientTests(ListenerTestCase):
    @inlineCallbacks
    def test_plain_send_with_smtplib(self) -> Any:
        port = yield self.listen("inbound")

        def send() -> dict[str, Any]:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                return client.sendmail("a@b.org", ["bob@example.com"], MESSAGE)

        refused = yield self.in_thread(send)
        self.assertEqual(refused, {})
        stored = self.backend.messages[0]
        self.assertEqual(stored.data, MESSAGE)
        self.assertEqual((stored.mail_from, stored.recipients), ("a@b.org", ["bob@example.com"]))
        self.assertFalse(stored.tls)

    @inlineCallbacks
    def test_several_messages_on_one_connection(self) -> Any:
        port = yield self.listen("inbound")

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                for n in range(5):
                    client.sendmail("a@b.org", ["bob@example.com"], b"Subject: %d\r\n\r\nbody\r\n" % n)

        yield self.in_thread(send)
        self.assertEqual([m.data for m in self.backend.messages], [b"Subject: %d\r\n\r\nbody\r\n" % n for n in range(5)])

    @inlineCallbacks
    def test_inbound_relay_is_denied(self) -> Any:
        port = yield self.listen("inbound")

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.sendmail("a@b.org", ["x@elsewhere.example"], MESSAGE)

        failure = yield self.assertFailure(self.in_thread(send), smtplib.SMTPRecipientsRefused)
        self.assertEqual(failure.recipients["x@elsewhere.example"][0], 550)

    @inlineCallbacks
    def test_8bitmime(self) -> Any:
        port = yield self.listen("inbound")
        message = "Subject: café\r\n\r\nnaïve façade\r\n".encode("utf-8")

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.sendmail("a@b.org", ["bob@example.com"], message, mail_options=["BODY=8BITMIME"])

        yield self.in_thread(send)
        stored = self.backend.messages[0]
        self.assertEqual(stored.data, message)
        self.assertEqual(stored.params.body, "8BITMIME")
        self.assertTrue(stored.body_8bit)

    @inlineCallbacks
    def test_smtputf8_recipient(self) -> Any:
        port = yield self.listen("inbound")
        message = "From: pelé@bücher.example\r\nTo: jörg@example.com\r\nSubject: ünïcode\r\n\r\nhi\r\n".encode()

        def send() -> dict[str, Any]:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                return client.sendmail(
                    "pelé@bücher.example", ["jörg@example.com"], message, mail_options=["SMTPUTF8", "BODY=8BITMIME"]
                )

        yield self.in_thread(send)
        stored = self.backend.messages[0]
        self.assertEqual(stored.data, message)
        self.assertEqual(stored.mail_from, "pelé@xn--bcher-kva.example")
        self.assertEqual(stored.recipients, ["jörg@example.com"])
        self.assertTrue(stored.params.smtputf8)

    @inlineCallbacks
    def test_size_rejection(self) -> Any:
        port = yield self.listen("inbound", SMTPLimits(max_message_size=1000))
        message = b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n"
        message *= 20

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.sendmail("a@b.org", ["bob@example.com"], message)  # adds SIZE=

        failure = yield self.assertFailure(self.in_thread(send), smtplib.SMTPSenderRefused)
        self.assertEqual((failure.smtp_code, failure.smtp_error[:5]), (552, b"5.3.4"))
        self.assertEqual(self.backend.messages, [])

    @inlineCallbacks
    def test_size_enforced_on_the_data_without_size_parameter(self) -> Any:
        port = yield self.listen("inbound", SMTPLimits(max_message_size=1000))

        def send() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.ehlo()
                client.mail("a@b.org")
                client.rcpt("bob@example.com")
                return client.data(b"x" * 5000 + b"\r\n")

        code, text = yield self.in_thread(send)
        self.assertEqual((code, text[:5]), (552, b"5.3.4"))

    @inlineCallbacks
    def test_large_message_is_stored_exactly(self) -> Any:
        port = yield self.listen("inbound")
        lines = [b"." * (n % 3) + b"line %06d " % n + b"z" * (n % 200) for n in range(5000)]
        message = b"Subject: large\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
                client.sendmail("a@b.org", ["bob@example.com"], message)

        yield self.in_thread(send)
        self.assertEqual(self.backend.messages[0].data, message)


class SubmissionClientTests(ListenerTestCase):
    def send_authenticated(self, port: int, mechanism: str, message: bytes = MESSAGE) -> dict[str, Any]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.starttls(context=self.client_tls)
            client.ehlo()
            client.user, client.password = USER, PASSWORD
            auth = client.auth_plain if mechanism == "PLAIN" else client.auth_login
            code, _ = client.auth(mechanism, auth, initial_response_ok=mechanism == "PLAIN")
            assert code == 235, code
            return client.sendmail(USER, ["x@elsewhere.example"], message)

    @inlineCallbacks
    def test_starttls_and_auth_plain(self) -> Any:
        port = yield self.listen("submission")
        yield self.in_thread(self.send_authenticated, port, "PLAIN")
        stored = self.backend.messages[0]
        self.assertEqual(stored.data, MESSAGE)
        self.assertEqual((stored.authenticated, stored.tls), (USER, True))
        self.assertRegex(stored.tls_summary, r"^TLSv1\.[23] \S+$")

    @inlineCallbacks
    def test_starttls_and_auth_login(self) -> Any:
        port = yield self.listen("submission")
        yield self.in_thread(self.send_authenticated, port, "LOGIN")
        self.assertEqual(self.backend.messages[0].authenticated, USER)

    @inlineCallbacks
    def test_smtplib_login_picks_a_mechanism(self) -> Any:
        port = yield self.listen("submission")

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.starttls(context=self.client_tls)
                client.login(USER, PASSWORD)
                client.sendmail(USER, ["bob@example.com"], MESSAGE)

        yield self.in_thread(send)
        self.assertEqual(len(self.backend.messages), 1)

    @inlineCallbacks
    def test_wrong_password(self) -> Any:
        port = yield self.listen("submission")

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.starttls(context=self.client_tls)
                client.login(USER, "wrong")

        failure = yield self.assertFailure(self.in_thread(send), smtplib.SMTPAuthenticationError)
        self.assertEqual(failure.smtp_code, 535)

    @inlineCallbacks
    def test_auth_refused_before_starttls(self) -> Any:
        port = yield self.listen("submission")

        def attempt() -> tuple[bool, tuple[int, bytes], tuple[int, bytes]]:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.ehlo()
                offered = client.has_extn("auth")
                token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
                auth = client.docmd("AUTH", "PLAIN " + token)
                mail = client.docmd("MAIL", "FROM:<a@b.org>")
                return offered, auth, mail

        offered, auth, mail = yield self.in_thread(attempt)
        self.assertFalse(offered)
        self.assertEqual(auth, (538, b"5.7.11 Encryption required for requested authentication mechanism"))
        self.assertEqual(mail, (530, b"5.7.0 Must issue a STARTTLS command first"))
        self.assertNotIn(("authenticate", USER), self.backend.calls)

    @inlineCallbacks
    def test_implicit_tls_on_smtps(self) -> Any:
        port = yield self.listen("smtps")

        def send() -> None:
            with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=self.client_tls) as client:
                client.login(USER, PASSWORD)
                client.sendmail(USER, ["x@elsewhere.example"], MESSAGE)

        yield self.in_thread(send)
        stored = self.backend.messages[0]
        self.assertEqual(stored.data, MESSAGE)
        self.assertEqual((stored.listener, stored.tls, stored.authenticated), ("smtps", True, USER))
        self.assertRegex(stored.tls_summary, r"^TLSv1\.[23] \S+$")

    @inlineCallbacks
    def test_smtps_factory_wraps_a_plain_tcp_port(self) -> Any:
        factory = SMTPServerFactory(self.backend, HOST, "smtps", self.tls, reactor)
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port = yield endpoint.listen(factory.smtps_factory())
        self.addCleanup(port.stopListening)
        number = port.getHost().port

        def send() -> None:
            with smtplib.SMTP_SSL("127.0.0.1", number, timeout=10, context=self.client_tls) as client:
                client.login(USER, PASSWORD)
                client.sendmail(USER, ["bob@example.com"], MESSAGE)

        yield self.in_thread(send)
        self.assertEqual(self.backend.messages[0].data, MESSAGE)
        yield factory.close_all()

    @inlineCallbacks
    def test_8bit_submission_needs_8bitmime(self) -> Any:
        port = yield self.listen("submission")
        message = "Subject: é\r\n\r\nx\r\n".encode()

        def send() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.starttls(context=self.client_tls)
                client.login(USER, PASSWORD)
                client.mail(USER)
                client.rcpt("bob@example.com")
                return client.data(message)

        code, text = yield self.in_thread(send)
        self.assertEqual((code, text[:5]), (554, b"5.6.0"))


class SwaksTests(ListenerTestCase):
    @inlineCallbacks
    def test_swaks_plain_send(self) -> Any:
        port = yield self.listen("inbound")
        out, err, code = yield self.swaks(
            "--server", "127.0.0.1", "--port", str(port), "--from", "a@b.org", "--to", "bob@example.com",
            "--header", "Subject: from swaks", "--body", "hello from swaks\n.leading dot\n",
        )
        self.assertEqual(code, 0, out + err)
        data = self.backend.messages[0].data
        self.assertIn(b"Subject: from swaks\r\n", data)
        self.assertIn(b"\r\n.leading dot\r\n", data)
        self.assertTrue(data.endswith(b"\r\n"))

    @inlineCallbacks
    def test_swaks_pipelining(self) -> Any:
        port = yield self.listen("inbound")
        out, err, code = yield self.swaks(
            "--pipeline", "--server", "127.0.0.1", "--port", str(port), "--from", "a@b.org",
            "--to", "bob@example.com,carol@example.com,x@elsewhere.example", "--body", "pipelined",
        )
        # swaks exits non-zero when a recipient is refused; the message still goes to the others.
        self.assertIn("550 5.7.1 Relay access denied", out)
        self.assertNotIn("<** 503", out)
        self.assertIn(" 354 End data", out)
        stored = self.backend.messages[0]
        self.assertEqual(stored.recipients, ["bob@example.com", "carol@example.com"])
        self.assertIn(b"pipelined", stored.data)
        self.assertIn(code, (0, 24))

    @inlineCallbacks
    def test_swaks_starttls_auth_plain_and_login(self) -> Any:
        port = yield self.listen("submission")
        for mechanism in ("PLAIN", "LOGIN"):
            out, err, code = yield self.swaks(
                "--server", "127.0.0.1", "--port", str(port), "-tls", "--auth", mechanism,
                "--auth-user", USER, "--auth-password", PASSWORD, "--from", USER, "--to", "x@elsewhere.example",
                "--body", f"via {mechanism}",
            )
            self.assertEqual(code, 0, out + err)
            self.assertIn("235 2.7.0 Authentication successful", out)
        self.assertEqual([m.authenticated for m in self.backend.messages], [USER, USER])

    @inlineCallbacks
    def test_swaks_tls_on_connect(self) -> Any:
        port = yield self.listen("smtps")
        out, err, code = yield self.swaks(
            "--server", "127.0.0.1", "--port", str(port), "--tls-on-connect", "--auth", "LOGIN",
            "--auth-user", USER, "--auth-password", PASSWORD, "--from", USER, "--to", "bob@example.com",
        )
        self.assertEqual(code, 0, out + err)
        self.assertTrue(self.backend.messages[0].tls)

    @inlineCallbacks
    def test_swaks_auth_without_tls_is_refused(self) -> Any:
        port = yield self.listen("submission")
        out, err, code = yield self.swaks(
            "--server", "127.0.0.1", "--port", str(port), "--auth", "PLAIN", "--auth-user", USER,
            "--auth-password", PASSWORD, "--from", USER, "--to", "bob@example.com",
        )
        self.assertNotEqual(code, 0)
        self.assertEqual(self.backend.messages, [])
        self.assertNotIn(("authenticate", USER), self.backend.calls)
