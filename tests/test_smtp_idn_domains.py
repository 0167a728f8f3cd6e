"""Internationalised domains end to end: a domain an operator adds in U-label form receives
the mail SMTP clients send to it, in U-labels (SMTPUTF8) or A-labels (issue 10, item 5).

The bug this guards: the accounts store converted domains with Python's IDNA 2003 codec
(``straße.de`` -> ``strasse.de``) while SMTP uses IDNA 2008 (``xn--strae-oqa.de``), so the
domain refused the mail sent to it.
"""

from __future__ import annotations

import io
import smtplib
from typing import Any

from twisted.internet import defer, threads
from twisted.trial import unittest

from mailgosend import cli
from tests.support.mailserver import MailServer

ZONES: dict[str, Any] = {"spf-pass.test": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"]}}
PASSWORD = "a long enough passphrase, unguessable"


class IDNDomainDeliveryTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        self.server = MailServer(self.mktemp(), ZONES)
        self.addCleanup(self.server.stop)
        yield self.server.start()

    def admin(self, *argv: str, stdin: str = "") -> str:
        """Run a management command against the running server's configuration file."""
        out, err = io.StringIO(), io.StringIO()
        status = cli.main(["--config", self.server.config.path, *argv],
                          stdin=io.StringIO(stdin), stdout=out, stderr=err)
        self.assertEqual((status, err.getvalue()), (0, ""), argv)
        return out.getvalue()

    def send(self, rcpt: str, raw: bytes, **options: Any) -> Any:
        def run() -> Any:
            with smtplib.SMTP("127.0.0.1", self.server.ports["SMTP"], timeout=30,
                              local_hostname="client.test") as client:
                return client.sendmail("zoe@spf-pass.test", [rcpt], raw, **options)
        return threads.deferToThread(run)

    @defer.inlineCallbacks
    def test_domain_added_in_u_label_form_receives_smtputf8_mail(self):  # type: ignore[no-untyped-def]
        self.admin("domain", "add", "straße.de")
        self.admin("user", "add", "anna@straße.de", "--password-stdin", stdin=PASSWORD)
        raw = ("From: Zoë <zoe@spf-pass.test>\r\nTo: anna@straße.de\r\nSubject: Grüße\r\n"
               "\r\nHallo Anna\r\n").encode("utf-8")
        refused = yield self.send("anna@straße.de", raw,
                                  mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        self.assertEqual(refused, {})
        [data] = self.server.stored("anna@xn--strae-oqa.de")
        self.assertTrue(data.endswith(raw))

    @defer.inlineCallbacks
    def test_domain_added_in_u_label_form_receives_mail_to_its_a_labels(self):  # type: ignore[no-untyped-def]
        self.admin("domain", "add", "straße.de")
        self.admin("user", "add", "anna@straße.de", "--password-stdin", stdin=PASSWORD)
        raw = b"From: zoe@spf-pass.test\r\nTo: anna@xn--strae-oqa.de\r\nSubject: hi\r\n\r\nhi\r\n"
        refused = yield self.send("anna@xn--strae-oqa.de", raw)
        self.assertEqual(refused, {})
        [data] = self.server.stored("anna@straße.de")
        self.assertTrue(data.endswith(raw))
