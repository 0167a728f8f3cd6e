"""SMTP receive end to end: real listeners, real clients (smtplib, swaks), real
DNS (a local twisted.names server), messages read back decrypted from the store."""

from __future__ import annotations

import base64
import time
import smtplib
import subprocess
from typing import Any

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet import defer, threads

from tests.support.mailserver import HOSTNAME, PASSWORD, MailServerTestCase

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PEM = RSA_KEY.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
RSA_PUB = base64.b64encode(RSA_KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()

ZONES = {
    "pass.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
    "_dmarc.pass.test": {"TXT": ["v=DMARC1; p=reject"]},
    "sel._domainkey.pass.test": {"TXT": [f"v=DKIM1; k=rsa; p={RSA_PUB}"]},
    "fail.test": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
    "reject.test": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
    "_dmarc.reject.test": {"TXT": ["v=DMARC1; p=reject"]},
    "quarantine.test": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
    "_dmarc.quarantine.test": {"TXT": ["v=DMARC1; p=quarantine"]},
    "1.0.0.127.bl.test": {"A": ["127.0.0.2"], "TXT": ["listed for testing"]},
}


def message(sender: str, to: str, subject: str = "Hello", body: str = "Hi there.\r\n",
            **headers: str) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
             "Date: Sun, 22 Nov 2026 10:00:00 +0000", f"Message-ID: <{subject.replace(' ', '')}@x>"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def split(stored: bytes) -> tuple[list[str], bytes]:
    """Our added trace headers (in order) and the rest, which must be the original bytes."""
    added = []
    rest = stored
    names = (b"Received:", f"Authentication-Results: {HOSTNAME};".encode(), b"X-Spam-Flag:",
             b"X-Spam-Score:", b"X-Spam-Report:")
    for name in names:
        if not rest.startswith(name):
            continue
        end = 0
        while True:
            end = rest.index(b"\r\n", end) + 2
            if rest[end:end + 1] not in (b" ", b"\t"):
                break
        added.append(rest[:end].decode())
        rest = rest[end:]
    return added, rest


class ReceiveTestBase(MailServerTestCase):
    zones = ZONES
    users = ("alice@example.com", "bob@example.com", "postmaster@example.com")

    def smtp(self, kind: str = "SMTP") -> smtplib.SMTP:
        port = self.server.ports[kind]
        if kind == "SMTPS":
            return smtplib.SMTP_SSL("127.0.0.1", port, timeout=30,
                                    context=self.server.client_tls(),
                                    local_hostname="client.test")
        client = smtplib.SMTP("127.0.0.1", port, timeout=30, local_hostname="client.test")
        return client

    def send(self, sender: str, rcpts: list[str], raw: bytes, kind: str = "SMTP",
             login: str | None = None, **options: Any) -> Any:
        def run() -> Any:
            with self.smtp(kind) as client:
                if kind == "SUBMIT":
                    client.starttls(context=self.server.client_tls())
                if login:
                    client.login(login, PASSWORD)
                return client.sendmail(sender, rcpts, raw, **options)
        return threads.deferToThread(run)

    def refused(self, exc_type: type, sender: str, rcpts: list[str], raw: bytes,
                **kw: Any) -> Any:
        return self.assertFailure(self.send(sender, rcpts, raw, **kw), exc_type)


class InboundTests(ReceiveTestBase):
    @defer.inlineCallbacks
    def test_stored_message_is_the_received_bytes_under_our_trace_headers(self):  # type: ignore[no-untyped-def]
        raw = message("someone@pass.test", "alice@example.com")
        yield self.send("someone@pass.test", ["alice@example.com"], raw)
        [stored] = self.server.stored("alice@example.com")
        added, rest = split(stored)
        self.assertEqual(rest, raw)
        self.assertTrue(added[0].startswith("Received: from client.test ([127.0.0.1])"))
        self.assertIn(f"by {HOSTNAME}", added[0])
        self.assertIn("for <alice@example.com>", added[0])
        self.assertTrue(added[1].startswith(f"Authentication-Results: {HOSTNAME};"))
        self.assertIn("spf=pass", added[1])
        self.assertIn("X-Spam-Score: ", "".join(added))

    @defer.inlineCallbacks
    def test_subaddress_alias_and_catch_all_reach_their_users(self):  # type: ignore[no-untyped-def]
        self.server.add_alias("team@example.com", "bob@example.com")
        self.server.add_alias("@example.com", "postmaster@example.com")
        raw = message("someone@pass.test", "x@example.com")
        yield self.send("someone@pass.test", ["alice+news@example.com", "team@example.com",
                                              "nobody@example.com"], raw)
        for user in ("alice@example.com", "bob@example.com", "postmaster@example.com"):
            self.assertEqual(len(self.server.stored(user)), 1, user)

    @defer.inlineCallbacks
    def test_unknown_user_and_relay_refused_at_rcpt(self):  # type: ignore[no-untyped-def]
        raw = message("someone@pass.test", "ghost@example.com")
        failure = yield self.refused(smtplib.SMTPRecipientsRefused, "someone@pass.test",
                                     ["ghost@example.com", "x@elsewhere.example"], raw)
        codes = {rcpt: reply[0] for rcpt, reply in failure.recipients.items()}
        self.assertEqual(codes, {"ghost@example.com": 550, "x@elsewhere.example": 550})
        self.assertIn(b"5.1.1", failure.recipients["ghost@example.com"][1])
        self.assertIn(b"5.7.1 Relay access denied", failure.recipients["x@elsewhere.example"][1])
        self.assertEqual(self.server.queued(), [])

    @defer.inlineCallbacks
    def test_delivery_publishes_a_new_mail_event_after_commit(self):  # type: ignore[no-untyped-def]
        alice = self.server.add_user("carol@example.com")
        seen: list[Any] = []
        events = self.server.root.components["events"]
        unsubscribe = events.subscribe(alice.id, seen.append)
        self.addCleanup(unsubscribe)
        yield self.send("someone@pass.test", ["carol@example.com"],
                        message("someone@pass.test", "carol@example.com"))
        self.assertEqual([(batch.user_id, change.uid) for batch in seen
                          for change in batch.changes], [(alice.id, 1)])
        self.assertEqual(len(self.server.stored("carol@example.com")), 1)

    @defer.inlineCallbacks
    def test_bare_postmaster_is_accepted(self):  # type: ignore[no-untyped-def]
        yield self.send("someone@pass.test", ["postmaster"], message("someone@pass.test", "pm"))
        self.assertEqual(len(self.server.stored("postmaster@example.com")), 1)

    @defer.inlineCallbacks
    def test_over_quota_refused_at_rcpt_with_size_and_at_data_without(self):  # type: ignore[no-untyped-def]
        self.server.add_user("small@example.com", quota=2000)
        big = message("someone@pass.test", "small@example.com", body="x" * 3000 + "\r\n")
        # smtplib declares SIZE= itself when the server offers SIZE (RFC 1870).
        failure = yield self.refused(smtplib.SMTPRecipientsRefused, "someone@pass.test",
                                     ["small@example.com"], big)
        self.assertEqual(failure.recipients["small@example.com"][0], 452)
        self.assertIn(b"4.2.2", failure.recipients["small@example.com"][1])

        def undeclared() -> tuple[int, bytes]:
            with self.smtp() as client:
                client.ehlo()
                client.mail("someone@pass.test")          # no SIZE parameter
                self.assertEqual(client.rcpt("small@example.com")[0], 250)
                self.assertEqual(client.rcpt("alice@example.com")[0], 250)
                return client.data(big)
        code, text = yield threads.deferToThread(undeclared)
        self.assertEqual(code, 452)
        self.assertIn(b"4.2.2", text)
        # All or nothing: the other recipient did not get a copy either.
        self.assertEqual(self.server.stored("alice@example.com"), [])
        self.assertEqual(self.server.stored("small@example.com"), [])

    @defer.inlineCallbacks
    def test_spf_fail_is_recorded(self):  # type: ignore[no-untyped-def]
        yield self.send("someone@fail.test", ["alice@example.com"],
                        message("someone@fail.test", "alice@example.com"))
        added, _ = split(self.server.stored("alice@example.com")[0])
        self.assertIn("spf=fail", added[1])
        self.assertIn("SPF_FAIL=3", "".join(added))

    @defer.inlineCallbacks
    def test_dmarc_reject_refuses_the_message_and_stores_nothing(self):  # type: ignore[no-untyped-def]
        failure = yield self.refused(smtplib.SMTPDataError, "someone@reject.test",
                                     ["alice@example.com"],
                                     message("someone@reject.test", "alice@example.com"))
        self.assertEqual(failure.smtp_code, 550)
        self.assertIn(b"5.7.1", failure.smtp_error)
        self.assertIn(b"DMARC", failure.smtp_error)
        self.assertEqual(self.server.stored("alice@example.com"), [])

    @defer.inlineCallbacks
    def test_dmarc_quarantine_files_in_junk(self):  # type: ignore[no-untyped-def]
        yield self.send("someone@quarantine.test", ["alice@example.com"],
                        message("someone@quarantine.test", "alice@example.com"))
        self.assertEqual(self.server.stored("alice@example.com"), [])
        [stored] = self.server.stored("alice@example.com", "junk")
        self.assertIn(b"dmarc=fail", stored)
        self.assertIn(b"X-Spam-Flag: YES", stored)

    @defer.inlineCallbacks
    def test_dkim_signature_verified_through_dns(self):  # type: ignore[no-untyped-def]
        raw = message("someone@pass.test", "alice@example.com", subject="Signed")
        signature = dkim.sign(raw, b"sel", b"pass.test", RSA_PEM,
                              include_headers=[b"from", b"to", b"subject", b"date"])
        yield self.send("someone@pass.test", ["alice@example.com"], signature + raw)
        added, _ = split(self.server.stored("alice@example.com")[0])
        self.assertIn("dkim=pass", added[1])
        self.assertIn("header.d=pass.test", added[1])
        self.assertIn("dmarc=pass", added[1])

    @defer.inlineCallbacks
    def test_tampered_dkim_body_fails(self):  # type: ignore[no-untyped-def]
        raw = message("someone@pass.test", "alice@example.com", subject="Signed")
        signature = dkim.sign(raw, b"sel", b"pass.test", RSA_PEM)
        yield self.send("someone@pass.test", ["alice@example.com"],
                        signature + raw.replace(b"Hi there", b"Hi thare"))
        added, _ = split(self.server.stored("alice@example.com")[0])
        self.assertIn("dkim=fail", added[1])

    @defer.inlineCallbacks
    def test_forged_authentication_results_claiming_us_are_removed(self):  # type: ignore[no-untyped-def]
        raw = (f"Authentication-Results: {HOSTNAME}; spf=pass smtp.mailfrom=bank.example\r\n"
               "Authentication-Results: other.example; dkim=none\r\n").encode() + \
            message("someone@fail.test", "alice@example.com")
        yield self.send("someone@fail.test", ["alice@example.com"], raw)
        added, rest = split(self.server.stored("alice@example.com")[0])
        self.assertNotIn(b"bank.example", rest)
        self.assertIn(b"Authentication-Results: other.example; dkim=none", rest)
        self.assertIn("spf=fail", added[1])

    @defer.inlineCallbacks
    def test_banned_address_gets_421_at_connect(self):  # type: ignore[no-untyped-def]
        # On submission; port 25 is outside the default BAN_SCOPE (tests/test_smtp_bans.py).
        from datetime import timedelta
        self.server.root.components["bans"].note("127.0.0.1", self.server.now()
                                                 + timedelta(hours=1))
        failure = yield self.assertFailure(threads.deferToThread(self.smtp, "SUBMIT"),
                                           smtplib.SMTPConnectError)
        self.assertEqual(failure.smtp_code, 421)


class DNSBLTests(ReceiveTestBase):
    settings = {"DNSBL_ZONES": "bl.test"}

    @defer.inlineCallbacks
    def test_listed_client_scores_and_with_spf_fail_goes_to_junk(self):  # type: ignore[no-untyped-def]
        yield self.send("someone@pass.test", ["alice@example.com"],
                        message("someone@pass.test", "alice@example.com"))
        [stored] = self.server.stored("alice@example.com")
        self.assertIn(b"DNSBL(bl.test)=4", stored)
        yield self.send("someone@fail.test", ["alice@example.com"],
                        message("someone@fail.test", "alice@example.com", subject="again"))
        self.assertEqual(len(self.server.stored("alice@example.com", "junk")), 1)


class SubmissionTests(ReceiveTestBase):
    @defer.inlineCallbacks
    def test_submission_delivers_local_and_queues_remote(self):  # type: ignore[no-untyped-def]
        raw = message("alice@example.com", "bob@example.com, carol@remote.example")
        yield self.send("alice@example.com", ["bob@example.com", "carol@remote.example",
                                              "dave@remote.example"], raw,
                        kind="SUBMIT", login="alice@example.com")
        [stored] = self.server.stored("bob@example.com")
        added, rest = split(stored)
        self.assertEqual(rest, raw)
        self.assertIn("with ESMTPSA (TLSv1.3", added[0])
        self.assertEqual(len(added), 1, "no spam/auth headers on authenticated submission")
        [(row, rcpts)] = self.server.queued()
        self.assertEqual(row.sender, "alice@example.com")
        self.assertEqual(row.size, len(stored))
        self.assertEqual([(r.recipient, r.domain, r.status, r.attempts) for r in rcpts],
                         [("carol@remote.example", "remote.example", "queued", 0),
                          ("dave@remote.example", "remote.example", "queued", 0)])
        store = self.server.root.components["blob_store"]
        keyring = self.server.root.components["keyring"]
        with store.open_blob(self.server.engine, keyring, "queue", row.blob_id) as reader:
            self.assertEqual(b"".join(reader), stored)

    @defer.inlineCallbacks
    def test_sender_not_owned_is_refused(self):  # type: ignore[no-untyped-def]
        failure = yield self.refused(smtplib.SMTPSenderRefused, "bob@example.com",
                                     ["carol@remote.example"],
                                     message("bob@example.com", "carol@remote.example"),
                                     kind="SUBMIT", login="alice@example.com")
        self.assertEqual(failure.smtp_code, 553)
        self.assertIn(b"5.7.1", failure.smtp_error)
        self.assertEqual(self.server.queued(), [])

    @defer.inlineCallbacks
    def test_from_header_not_owned_is_refused_after_data(self):  # type: ignore[no-untyped-def]
        raw = message("ceo@example.com", "carol@remote.example")
        failure = yield self.refused(smtplib.SMTPDataError, "alice@example.com",
                                     ["carol@remote.example"], raw, kind="SUBMIT",
                                     login="alice@example.com")
        self.assertEqual(failure.smtp_code, 553)
        self.assertIn(b"ceo@example.com", failure.smtp_error)
        self.assertEqual(self.server.queued(), [])

    @defer.inlineCallbacks
    def test_relay_refused_on_every_port_without_auth(self):  # type: ignore[no-untyped-def]
        def attempt(kind: str) -> tuple[int, int]:
            with self.smtp(kind) as client:
                if kind == "SUBMIT":
                    client.starttls(context=self.server.client_tls())
                client.ehlo()
                code, _ = client.mail("alice@example.com")
                if code != 250:
                    return code, 0
                return code, client.rcpt("carol@remote.example")[0]
        results = {}
        for kind in ("SMTP", "SUBMIT", "SMTPS"):
            results[kind] = yield threads.deferToThread(attempt, kind)
        self.assertEqual(results, {"SMTP": (250, 550), "SUBMIT": (530, 0), "SMTPS": (530, 0)})
        self.assertEqual(self.server.queued(), [])

    @defer.inlineCallbacks
    def test_wrong_password_is_535(self):  # type: ignore[no-untyped-def]
        def run() -> None:
            with self.smtp("SUBMIT") as client:
                client.starttls(context=self.server.client_tls())
                client.login("alice@example.com", "not the password")
        failure = yield self.assertFailure(threads.deferToThread(run),
                                           smtplib.SMTPAuthenticationError)
        self.assertEqual(failure.smtp_code, 535)

    @defer.inlineCallbacks
    def test_smtps_implicit_tls_with_alias_sender(self):  # type: ignore[no-untyped-def]
        self.server.add_alias("sales@example.com", "alice@example.com")
        raw = message("sales@example.com", "bob@example.com")
        yield self.send("sales@example.com", ["bob@example.com"], raw, kind="SMTPS",
                        login="alice")
        self.assertEqual(len(self.server.stored("bob@example.com")), 1)

    @defer.inlineCallbacks
    def test_swaks_starttls_auth_submission(self):  # type: ignore[no-untyped-def]
        args = ["swaks", "--server", "127.0.0.1", "--port", str(self.server.ports["SUBMIT"]),
                "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.com",
                "--auth-password", PASSWORD, "--from", "alice@example.com",
                "--to", "bob@example.com", "--helo", "client.test",
                "--header", "Subject: via swaks", "--body", "sent by swaks"]
        result = yield threads.deferToThread(subprocess.run, args, capture_output=True,
                                             text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        [stored] = self.server.stored("bob@example.com")
        self.assertIn(b"Subject: via swaks", stored)
        self.assertIn(b"sent by swaks", stored)


class ReadBackOverPOP3Tests(ReceiveTestBase):
    @defer.inlineCallbacks
    def test_message_received_over_smtp_is_retrieved_byte_exact_over_pop3s(self):  # type: ignore[no-untyped-def]
        import poplib

        raw = message("someone@pass.test", "alice@example.com", body=".dot line\r\nend\r\n")
        yield self.send("someone@pass.test", ["alice@example.com"], raw)
        [stored] = self.server.stored("alice@example.com")

        def fetch() -> bytes:
            client = poplib.POP3_SSL("127.0.0.1", self.server.ports["POP3S"], timeout=30,
                                     context=self.server.client_tls())
            try:
                client.user("alice@example.com")
                client.pass_(PASSWORD)
                _, lines, _ = client.retr(1)
                client.dele(1)
            finally:
                client.quit()
            return b"\r\n".join(lines) + b"\r\n"
        retrieved = yield threads.deferToThread(fetch)
        self.assertEqual(retrieved, stored)
        self.assertEqual(self.server.stored("alice@example.com"), [])


class ReadBackOverIMAPTests(ReceiveTestBase):
    @defer.inlineCallbacks
    def test_idle_client_sees_an_smtp_delivery_and_fetches_it_byte_exact(self):  # type: ignore[no-untyped-def]
        import threading

        from imapclient import IMAPClient

        raw = message("someone@pass.test", "alice@example.com", subject="Pushed")
        idling = threading.Event()

        def watch() -> tuple[list[Any], bytes]:
            client = IMAPClient("127.0.0.1", port=self.server.ports["IMAPS"], ssl=True,
                                ssl_context=self.server.client_tls(), timeout=30)
            client.login("alice@example.com", PASSWORD)
            client.select_folder("INBOX")
            client.idle()
            idling.set()
            responses: list[Any] = []
            for _ in range(20):          # a bound, not a timing assertion
                responses += client.idle_check(timeout=1)
                if any(r[1] == b"EXISTS" for r in responses if len(r) > 1):
                    break
            client.idle_done()
            fetched = client.fetch([1], ["BODY.PEEK[]"])
            body = next(iter(fetched.values()))[b"BODY[]"]
            client.logout()
            return responses, body
        watcher = threads.deferToThread(watch)
        yield threads.deferToThread(idling.wait, 30)
        yield self.send("someone@pass.test", ["alice@example.com"], raw)
        responses, body = yield watcher
        self.assertIn((1, b"EXISTS"), responses)
        self.assertEqual(body, self.server.stored("alice@example.com")[0])


class IMAPLoginBase(ReceiveTestBase):
    def imap_login(self, starttls: bool) -> Any:
        import imaplib

        def run() -> tuple[str, bytes]:
            client = imaplib.IMAP4("127.0.0.1", self.server.ports["IMAP"], timeout=30)
            try:
                caps = b" ".join(client.capabilities and
                                 [c.encode() for c in client.capabilities])
                if starttls:
                    client.starttls(ssl_context=self.server.client_tls())
                try:
                    typ, _ = client.login("alice@example.com", PASSWORD)
                except imaplib.IMAP4.error as exc:
                    return f"refused: {exc}", caps
                return typ, caps
            finally:
                try:
                    client.logout()
                except Exception:
                    pass
        return threads.deferToThread(run)


class IMAPLoginPolicyTests(IMAPLoginBase):
    @defer.inlineCallbacks
    def test_plaintext_login_refused_then_allowed_after_starttls(self):  # type: ignore[no-untyped-def]
        outcome, caps = yield self.imap_login(starttls=False)
        self.assertIn(b"LOGINDISABLED", caps)
        self.assertTrue(outcome.startswith("refused"), outcome)
        outcome, _ = yield self.imap_login(starttls=True)
        self.assertEqual(outcome, "OK")


class IMAPLoopbackPlaintextTests(IMAPLoginBase):
    settings = {"PLAINTEXT_AUTH_LOOPBACK": "true"}

    @defer.inlineCallbacks
    def test_operator_may_allow_plaintext_login_from_loopback(self):  # type: ignore[no-untyped-def]
        outcome, caps = yield self.imap_login(starttls=False)
        self.assertNotIn(b"LOGINDISABLED", caps)
        self.assertEqual(outcome, "OK")


class JunkTrainingTests(ReceiveTestBase):
    @defer.inlineCallbacks
    def test_moving_mail_into_junk_over_imap_trains_the_users_classifier(self):  # type: ignore[no-untyped-def]
        import imaplib

        from mailgosend.db.runner import run_sync
        from mailgosend.store import accounts as accounts_store
        from mailgosend.store.bayes import totals

        yield self.send("someone@pass.test", ["alice@example.com"],
                        message("someone@pass.test", "alice@example.com",
                                subject="Cheap watches", body="buy cheap watches now\r\n"))

        def move_to_junk() -> None:
            client = imaplib.IMAP4_SSL("127.0.0.1", self.server.ports["IMAPS"],
                                       ssl_context=self.server.client_tls())
            client.login("alice@example.com", PASSWORD)
            client.select("INBOX")
            typ, _ = client.uid("MOVE", "1", "Spam")
            assert typ == "OK", typ
            client.logout()
        yield threads.deferToThread(move_to_junk)
        user = run_sync(self.server.engine, accounts_store.get_user, "alice@example.com",
                        write=False)
        for _ in range(100):  # the trainer runs after the MOVE's reply; bounded wait
            counted = run_sync(self.server.engine, totals, user.id, write=False)
            if counted.spam_messages:
                break
            yield threads.deferToThread(time.sleep, 0.05)
        self.assertEqual((counted.ham_messages, counted.spam_messages), (0, 1))
