"""DKIM on mail as real clients write it, end to end (issue 9 item 2), and the success
reports of RFC 3461 NOTIFY=SUCCESS across the two servers (item 3).

Messages shaped like Thunderbird, Apple Mail, Outlook and mutt output (long h= lists, folded
and raw 8-bit headers) are submitted by alice on alpha's port 587 with smtplib, signed by
alpha's queue worker with rsa-sha256 and ed25519-sha256, delivered to beta, and the stored
copies are verified by Perl's Mail::DKIM and the npm package mailauth, not only by dkimpy
(which signed them).
"""

from __future__ import annotations

import email
import smtplib
from typing import Any

from twisted.internet import defer, threads

from mailgosend.delivery.dsn import parse_dsn
from tests.support.clientmessages import client_messages
from tests.support.dkimcheck import verify_with_mailauth, verify_with_perl
from tests.support.mailserver import PASSWORD
from tests.support.twoservers import ALPHA_IP
from tests.test_delivery_e2e import TwoServerTestCase, wait_for


def mail_options(raw: bytes) -> list[str]:
    """What the client says in MAIL FROM: BODY=8BITMIME for 8-bit content (RFC 6152), as
    Thunderbird and mutt do; smtplib adds nothing by itself for bytes."""
    return ["BODY=8BITMIME"] if any(b > 127 for b in raw) else []


class ClientMessagesDKIMTests(TwoServerTestCase):
    def test_client_shaped_messages_verify_at_the_receiver(self) -> Any:
        return defer.Deferred.fromCoroutine(self._client_messages())

    async def _client_messages(self) -> None:
        self.servers.publish_dkim(self.alpha, "alpha.test", "rsa2048", "ed25519")
        messages = client_messages("alice@alpha.test", "bob@beta.test")
        # No Date or Message-ID: submission adds them (RFC 6409 §8), before signing.
        messages["bare"] = (b"From: alice@alpha.test\r\nTo: bob@beta.test\r\n"
                            b"Subject: bare\r\n\r\nHi.\r\n")

        def submit_all() -> None:
            with smtplib.SMTP(ALPHA_IP, self.alpha.ports["SUBMIT"], timeout=30,
                              local_hostname="laptop.test") as client:
                client.starttls(context=self.alpha.client_tls())
                client.login("alice@alpha.test", PASSWORD)
                for raw in messages.values():
                    client.sendmail("alice@alpha.test", ["bob@beta.test"], raw,
                                    mail_options=mail_options(raw))
        await threads.deferToThread(submit_all)

        def all_stored() -> list[bytes]:
            found = self.beta.stored("bob@beta.test")
            return found if len(found) == len(messages) else []
        stored = await wait_for(all_stored)
        port = self.servers.dns.port
        for copy in stored:
            subject = email.message_from_bytes(copy)["Subject"]
            results = " ".join(email.message_from_bytes(copy).get_all(
                "Authentication-Results", []))
            self.assertIn("dkim=pass header.d=alpha.test header.s=", results, subject)
            self.assertIn("dmarc=pass", results, subject)
            self.assertNotIn("dkim=fail", results, subject)
            signed = copy[copy.index(b"DKIM-Signature"):]
            for name in (b"date", b"message-id"):
                self.assertIn(name, signed.split(b"bh=")[0], subject)  # in every h=
            verdicts, ed25519 = await verify_with_perl(signed, port)
            by_algorithm = {v[3]: v[0] for v in verdicts}
            self.assertEqual(by_algorithm["rsa-sha256"], "pass", (subject, verdicts))
            if ed25519:
                self.assertEqual(by_algorithm["ed25519-sha256"], "pass", (subject, verdicts))
            checked = await verify_with_mailauth(signed, port)
            self.assertEqual(sorted((v[3], v[0]) for v in checked),
                             [("ed25519-sha256", "pass"), ("rsa-sha256", "pass")],
                             (subject, checked))


class SuccessReportTests(TwoServerTestCase):
    """NOTIFY=SUCCESS submitted on 587 (RFC 3461, issue 9 item 3): beta's port 25 does not
    advertise DSN, so alpha reports "relayed" once beta took the message (§5.2.2)."""

    def test_relayed_report_when_the_next_hop_has_no_dsn(self) -> Any:
        return defer.Deferred.fromCoroutine(self._relayed())

    async def _relayed(self) -> None:
        raw = (b"From: alice@alpha.test\r\nTo: bob@beta.test\r\nSubject: tell me\r\n"
               b"Message-ID: <tell-me@alpha.test>\r\n\r\nHello Bob.\r\n")

        def submit() -> Any:
            with smtplib.SMTP(ALPHA_IP, self.alpha.ports["SUBMIT"], timeout=30,
                              local_hostname="laptop.test") as client:
                client.starttls(context=self.alpha.client_tls())
                client.login("alice@alpha.test", PASSWORD)
                return client.sendmail("alice@alpha.test", ["bob@beta.test"], raw,
                                       mail_options=["ENVID=tell-me-1"],
                                       rcpt_options=["NOTIFY=SUCCESS,FAILURE",
                                                     "ORCPT=rfc822;bob@beta.test"])
        self.assertEqual(await threads.deferToThread(submit), {})
        await wait_for(lambda: self.beta.stored("bob@beta.test"))
        report = parse_dsn(await wait_for(self.dsn_in_inbox))
        self.assertEqual(report.per_message["original-envelope-id"], "tell-me-1")
        [fields] = report.recipients
        self.assertEqual(fields["action"], "relayed")
        self.assertEqual(fields["status"], "2.0.0")
        self.assertEqual(fields["final-recipient"], "rfc822;bob@beta.test")
        self.assertEqual(fields["original-recipient"], "rfc822;bob@beta.test")
        self.assertEqual(fields["remote-mta"], "dns; mx.beta.test")
        self.assertTrue(fields["diagnostic-code"].startswith("smtp; 250"), fields)
