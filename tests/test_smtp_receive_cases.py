"""The receive pipeline case by case through the real listener: every SPF
result, DKIM rsa/ed25519, DMARC alignment and policy, bad input, SMTPUTF8,
and the fs storage back end.  Each case asserts the stored message's
Authentication-Results and folder, or the exact refusal and that nothing was stored."""

from __future__ import annotations

import os
import smtplib
import socket
from typing import Any

import dkim
from twisted.internet import defer, threads

from tests.support.mailserver import MailServerTestCase
from tests.test_mailauth_dkim import ED_PRIVATE, ED_RECORD, RSA_PRIVATE, RSA_RECORD
from tests.test_smtp_receive import message, split

ZONES: dict[str, Any] = {
    "spf-pass.test": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"]},
    "spf-fail.test": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
    "spf-softfail.test": {"TXT": ["v=spf1 ip4:192.0.2.1 ~all"]},
    "spf-neutral.test": {"TXT": ["v=spf1 ?all"]},
    "spf-none.test": {"A": ["192.0.2.7"]},
    "spf-permerror.test": {"TXT": ["v=spf1 ip4:300.1.2.3 -all"]},
    "spf-temperror.test": "SERVFAIL",
    # DMARC: example.org publishes reject with strict DKIM alignment; mail.example.org signs.
    "example.org": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
    "_dmarc.example.org": {"TXT": ["v=DMARC1; p=reject; adkim=s"]},
    "relaxed.example": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
    "_dmarc.relaxed.example": {"TXT": ["v=DMARC1; p=reject"]},
    "rsa._domainkey.mail.example.org": {"TXT": [RSA_RECORD]},
    "rsa._domainkey.mail.relaxed.example": {"TXT": [RSA_RECORD]},
    "rsa._domainkey.signer.example": {"TXT": [RSA_RECORD]},
    "ed._domainkey.signer.example": {"TXT": [ED_RECORD]},
    "signer.example": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
    "_dmarc.signer.example": {"TXT": ["v=DMARC1; p=quarantine"]},
}


def signed(raw: bytes, selector: bytes, domain: bytes, key: bytes = RSA_PRIVATE,
           algorithm: bytes = b"rsa-sha256") -> bytes:
    return dkim.sign(raw, selector, domain, key, signature_algorithm=algorithm,
                     include_headers=[b"from", b"to", b"subject", b"date"]) + raw


class CaseTestBase(MailServerTestCase):
    zones = ZONES

    def send(self, sender: str, raw: bytes, rcpt: str = "alice@example.com",
             **options: Any) -> Any:
        def run() -> Any:
            with smtplib.SMTP("127.0.0.1", self.server.ports["SMTP"], timeout=30,
                              local_hostname="client.test") as client:
                return client.sendmail(sender, [rcpt], raw, **options)
        return threads.deferToThread(run)

    def last(self) -> tuple[str, str]:
        """(folder, Authentication-Results) of the only stored message; clears nothing."""
        inbox = self.server.stored("alice@example.com")
        junk = self.server.stored("alice@example.com", "junk")
        self.assertEqual(len(inbox) + len(junk), 1)
        folder, data = ("inbox", inbox[0]) if inbox else ("junk", junk[0])
        added, _ = split(data)
        return folder, added[1]


class AuthenticationCases(CaseTestBase):
    @defer.inlineCallbacks
    def test_every_spf_result(self):  # type: ignore[no-untyped-def]
        cases = [("spf-pass.test", "spf=pass", "inbox"),
                 ("spf-fail.test", "spf=fail", "inbox"),
                 ("spf-softfail.test", "spf=softfail", "inbox"),
                 ("spf-neutral.test", "spf=neutral", "inbox"),
                 ("spf-none.test", "spf=none", "inbox"),
                 ("spf-permerror.test", "spf=permerror", "inbox"),
                 ("spf-temperror.test", "spf=temperror", "inbox")]
        for domain, expected, folder in cases:
            self.server.add_user(f"u-{domain}@example.com")
            yield self.send(f"someone@{domain}", message(f"someone@{domain}", "u"),
                            rcpt=f"u-{domain}@example.com")
            [data] = self.server.stored(f"u-{domain}@example.com", folder)
            added, _ = split(data)
            self.assertIn(expected, added[1], domain)
            self.assertIn(f"smtp.mailfrom={domain}" if "none" not in expected else "spf=none",
                          added[1], domain)

    @defer.inlineCallbacks
    def test_dkim_rsa_and_ed25519_both_pass(self):  # type: ignore[no-untyped-def]
        raw = message("news@signer.example", "alice@example.com")
        raw = signed(raw, b"rsa", b"signer.example")
        raw = signed(raw, b"ed", b"signer.example", ED_PRIVATE, b"ed25519-sha256")
        yield self.send("news@signer.example", raw)
        folder, results = self.last()
        self.assertEqual(folder, "inbox")
        self.assertIn("header.a=rsa-sha256", results)
        self.assertIn("header.a=ed25519-sha256", results)
        self.assertEqual(results.count("dkim=pass"), 2)
        self.assertIn("dmarc=pass", results)

    @defer.inlineCallbacks
    def test_dkim_aligned_relaxed_passes_dmarc_despite_spf_fail(self):  # type: ignore[no-untyped-def]
        raw = signed(message("a@relaxed.example", "alice@example.com"), b"rsa",
                     b"mail.relaxed.example")
        yield self.send("a@relaxed.example", raw)
        folder, results = self.last()
        self.assertIn("spf=fail", results)
        self.assertIn("dmarc=pass", results)
        self.assertEqual(folder, "inbox")

    @defer.inlineCallbacks
    def test_strict_alignment_subdomain_signature_is_rejected(self):  # type: ignore[no-untyped-def]
        raw = signed(message("a@example.org", "alice@example.com"), b"rsa", b"mail.example.org")
        failure = yield self.assertFailure(self.send("a@example.org", raw), smtplib.SMTPDataError)
        self.assertEqual(failure.smtp_code, 550)
        self.assertEqual(self.server.stored("alice@example.com"), [])

    @defer.inlineCallbacks
    def test_unaligned_quarantine_goes_to_junk(self):  # type: ignore[no-untyped-def]
        raw = signed(message("a@signer.example", "alice@example.com"), b"rsa",
                     b"spf-pass.test")  # that domain publishes no key: nothing aligns
        yield self.send("a@signer.example", raw)
        folder, results = self.last()
        self.assertIn("dmarc=fail", results)
        self.assertEqual(folder, "junk")


class BadInputCases(CaseTestBase):
    settings = {"MAX_MESSAGE_SIZE": "64K"}

    def raw_session(self, script: bytes) -> Any:
        """Send bytes as they are (no client-side fixing) and return everything the server said."""
        def run() -> bytes:
            with socket.create_connection(("127.0.0.1", self.server.ports["SMTP"]), 30) as sock:
                sock.sendall(script)
                sock.shutdown(socket.SHUT_WR)
                chunks = []
                while True:
                    data = sock.recv(65536)
                    if not data:
                        return b"".join(chunks)
                    chunks.append(data)
        return threads.deferToThread(run)

    @defer.inlineCallbacks
    def test_oversized_message_552_and_nothing_stored(self):  # type: ignore[no-untyped-def]
        big = message("a@spf-pass.test", "alice@example.com", body="x" * 998 + "\r\n") * 1
        big += (b"y" * 998 + b"\r\n") * 80
        failure = yield self.assertFailure(
            self.send("a@spf-pass.test", big, mail_options=[]), smtplib.SMTPException)
        self.assertIn(552, (getattr(failure, "smtp_code", None),
                            *[r[0] for r in getattr(failure, "recipients", {}).values()]))
        self.assertEqual(self.server.stored("alice@example.com"), [])

    @defer.inlineCallbacks
    def test_protocol_abuse_gets_exact_codes_and_stores_nothing(self):  # type: ignore[no-untyped-def]
        script = (b"EHLO client.test\r\n"
                  b"DATA\r\n"                                           # 503: no RCPT yet
                  + b"NOOP " + b"a" * 2000 + b"\r\n"                    # 500: line too long
                  + b"MAIL FROM:<a@spf-pass.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n"
                  b"Subject: nul\r\n\r\nnul \x00 here\r\n.\r\n"         # 554 5.6.0
                  b"MAIL FROM:<a@spf-pass.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n"
                  b"Subject: bare\r\n\r\nbare\nLF\r\n.\r\n"             # 554 5.5.2
                  b"MAIL FROM:<not an address>\r\n"                     # 501
                  b"QUIT\r\n")
        replies = yield self.raw_session(script)
        codes = [line[:3] for line in replies.split(b"\r\n") if line[3:4] == b" "]
        self.assertEqual(codes, [b"220", b"250", b"503", b"500", b"250", b"250", b"354", b"554",
                                 b"250", b"250", b"354", b"554", b"501", b"221"])
        self.assertEqual(self.server.stored("alice@example.com"), [])

class InternationalCases(CaseTestBase):
    @defer.inlineCallbacks
    def test_deep_mime_nesting_is_stored_intact(self):  # type: ignore[no-untyped-def]
        depth = 10_000
        head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                        for i in range(depth))
        tail = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
        raw = (b"From: a@spf-pass.test\r\nTo: alice@example.com\r\nSubject: deep\r\n"
               b"MIME-Version: 1.0\r\n" + head + b"Content-Type: text/plain\r\n\r\nleaf" + tail)
        self.server.add_user("deep@example.com")
        yield self.send("a@spf-pass.test", raw, rcpt="deep@example.com")
        [data] = self.server.stored("deep@example.com")
        self.assertTrue(data.endswith(raw))

    @defer.inlineCallbacks
    def test_smtputf8_recipient_and_8bit_body(self):  # type: ignore[no-untyped-def]
        self.server.add_user("jörg@example.com")
        raw = ("From: Zoë <zoe@spf-pass.test>\r\nTo: jörg@example.com\r\nSubject: Grüße\r\n"
               "\r\nHällo wörld\r\n").encode("utf-8")
        yield self.send("zoe@spf-pass.test", raw, rcpt="jörg@example.com",
                        mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        [data] = self.server.stored("jörg@example.com")
        self.assertTrue(data.endswith(raw))
        self.assertIn(b"with UTF8SMTP", data)


class FileStorageCases(CaseTestBase):
    settings = {"STORAGE_BACKEND": "fs"}

    @defer.inlineCallbacks
    def test_fs_backend_stores_encrypted_files(self):  # type: ignore[no-untyped-def]
        raw = message("a@spf-pass.test", "alice@example.com", body="secret words here\r\n")
        yield self.send("a@spf-pass.test", raw)
        [data] = self.server.stored("alice@example.com")
        self.assertTrue(data.endswith(raw))
        root = self.server.config["STORAGE_PATH"]
        files = [open(os.path.join(d, f), "rb").read() for d, _, fs in os.walk(root) for f in fs]
        self.assertEqual(len(files), 1)
        self.assertNotIn(b"secret words", files[0])



