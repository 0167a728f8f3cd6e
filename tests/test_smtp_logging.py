"""What the SMTP server logs for an operator (issue 9 item 6): one line per session start
and end, the login result with the user name (never the password), each refusal with the
command, code and reason, the accepted message with the id of its 250 -- never content."""

from __future__ import annotations

import os
import smtplib
from typing import Any, cast

from twisted.internet import defer, threads
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from mailgosend import cli
from tests.support.mailserver import PASSWORD, MailServer
from tests.test_smtp_protocol import USER, b64, greeted

SECRET = "pw-SECRET-smtp-logging-31"


def capture(test: TestCase) -> list[str]:
    lines: list[str] = []
    observer = cast(ILogObserver, lambda event: lines.append(formatEvent(event) or ""))
    globalLogPublisher.addObserver(observer)
    test.addCleanup(globalLogPublisher.removeObserver, observer)
    return lines


class ProtocolLogTests(TestCase):
    def test_session_login_refusals_and_message_are_logged(self) -> None:
        lines = capture(self)
        h = greeted(listener="submission", peer="192.0.2.9")
        h.ehlo()
        h.start_tls()
        h.ehlo()
        h.chat(b"AUTH PLAIN " + b64(f"\0{USER}\0{SECRET}") + b"\r\n")
        h.chat(b"AUTH PLAIN " + b64(f"\0{USER}\0correct horse") + b"\r\n")
        h.chat(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bad address>\r\n"
               b"RCPT TO:<bob@example.com>\r\nDATA\r\nSubject: body-marker\r\n\r\nhi\r\n.\r\n"
               b"BOGUS secret-arg\r\nQUIT\r\n")
        h.lose()
        text = "\n".join(lines)
        sid = h.session.session_id
        self.assertIn(f"smtp {sid} connect from 192.0.2.9 on submission", text)
        self.assertIn(f"smtp {sid} login failed for {USER} from 192.0.2.9: 535 5.7.8", text)
        self.assertIn(f"smtp {sid} login succeeded: authenticated as {USER} from 192.0.2.9",
                      text)
        self.assertIn(f"smtp {sid} 192.0.2.9 refused AUTH: 535 5.7.8 Authentication "
                      "credentials invalid", text)
        self.assertIn(f"smtp {sid} 192.0.2.9 refused RCPT TO:<bad address>: 501 5.1.3 Bad "
                      "recipient address syntax", text)
        self.assertIn(f"smtp {sid} 192.0.2.9 refused BOGUS: 500 5.5.2", text)
        self.assertIn(f"from=<alice@example.com> size=", text)
        self.assertIn(f"smtp {sid} disconnect after", text)
        for secret in (SECRET, "correct horse", "body-marker", "secret-arg"):
            self.assertNotIn(secret, text)

    def test_refused_recipient_on_port_25_is_logged(self) -> None:
        lines = capture(self)
        h = greeted(peer="192.0.2.10")
        h.ehlo()
        h.chat(b"MAIL FROM:<a@b.org>\r\nRCPT TO:<x@relay.example>\r\n")
        self.assertIn("192.0.2.10 refused RCPT TO:<x@relay.example>: 550 5.7.1 Relay access "
                      "denied", "\n".join(lines))


class QueueIdTests(TestCase):
    """The id in ``250 ... queued as ID`` is the one ``mailgosend queue show`` takes."""

    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        self.server = MailServer(self.mktemp(), {})
        self.addCleanup(self.server.stop)
        yield self.server.start()
        self.server.add_domain("example.com")
        self.server.add_user("alice@example.com")

    def submit(self, rcpt: str) -> Any:
        def run() -> Any:
            with smtplib.SMTP("127.0.0.1", self.server.ports["SUBMIT"], timeout=30,
                              local_hostname="laptop.test") as client:
                client.starttls(context=self.server.client_tls())
                client.login("alice@example.com", PASSWORD)
                client.mail("alice@example.com")
                client.rcpt(rcpt)
                return client.data(b"From: alice@example.com\r\nSubject: q\r\n\r\nhi\r\n")
        return threads.deferToThread(run)

    @defer.inlineCallbacks
    def test_queued_as_is_the_queue_id(self):  # type: ignore[no-untyped-def]
        lines = capture(self)
        code, text = yield self.submit("friend@elsewhere.example")
        self.assertEqual(code, 250)
        queue_id = text.decode().rsplit(" ", 1)[1]
        [(row, _)] = self.server.queued()
        self.assertEqual(queue_id, str(row.id))
        config = os.path.join(self.server.directory, "server", "app_config.conf")
        out = yield threads.deferToThread(self.run_cli, config, queue_id)
        self.assertIn(f"queue id {queue_id}", out)
        self.assertIn("<friend@elsewhere.example>  queued", out)
        self.assertIn(f"queue id {queue_id}", "\n".join(lines))  # and the log names it

    @defer.inlineCallbacks
    def test_local_delivery_id_is_in_the_log(self):  # type: ignore[no-untyped-def]
        lines = capture(self)
        code, text = yield self.submit("alice@example.com")
        self.assertEqual(code, 250)
        local_id = text.decode().rsplit(" ", 1)[1]
        self.assertTrue(any(line.startswith(f"{local_id}: accepted") for line in lines), lines)
        self.assertEqual(self.server.queued(), [])

    @staticmethod
    def run_cli(config: str, queue_id: str) -> str:
        import io
        out, err = io.StringIO(), io.StringIO()
        status = cli.main(["--config", config, "queue", "show", queue_id], stdin=io.StringIO(),
                          stdout=out, stderr=err)
        assert status == 0, err.getvalue()
        return out.getvalue()
