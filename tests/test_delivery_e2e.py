"""Outbound delivery end to end: two mailgosend servers on one machine (tests/support/twoservers.py).

alice@alpha.test submits on 587 (STARTTLS + AUTH) with smtplib; alpha's queue worker looks up
beta.test's MX in the test DNS, connects from 127.0.0.2 to 127.0.0.3, signs with DKIM, and
beta stores the message with spf=pass dkim=pass dmarc=pass.  Failures end in RFC 3464 DSNs
in alice's INBOX, parsed back field by field.
"""

from __future__ import annotations

import email
import os
import smtplib
import subprocess
from typing import Any, Callable

from sqlalchemy import select
from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.db.schema import delivery_log
from mailgosend.delivery.dsn import parse_dsn
from mailgosend.store import queue as queue_store
from tests.support.dkimcheck import verify_with_mailauth
from tests.support.mailserver import PASSWORD
from tests.support.queueing import queue_raw
from tests.support.twoservers import ALPHA_IP, TwoServers

PERL_VERIFIER = os.path.join(os.path.dirname(__file__), "support", "dkimverify.pl")


def inject(server: Any, sender: str, rcpts: list[str], raw: bytes) -> int:
    """Queue a message directly (as the SMTP pipeline would) and wake the worker."""
    queue_id = queue_raw(server.engine, server.root.components["blob_store"],
                         server.root.components["keyring"], sender, rcpts, raw, server.now())
    server.root.components["delivery"].wake()
    return queue_id


def message(sender: str, to: str, subject: str, body: str = "Hello Bob.\r\n") -> bytes:
    return (f"From: Alice <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@alpha.test>\r\n"
            f"Date: Sun, 22 Nov 2026 08:00:00 +0000\r\n\r\n{body}").encode()


async def wait_for(check: Callable[[], Any], timeout: float = 30.0, step: float = 0.1) -> Any:
    """Poll ``check`` (run in a thread: it may use the database) until it returns truthy."""
    waited = 0.0
    while True:
        value = await threads.deferToThread(check)
        if value:
            return value
        if waited >= timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await task.deferLater(reactor, step, lambda: None)
        waited += step


class TwoServerTestCase(unittest.TestCase):
    timeout = 120
    alpha_settings: dict[str, Any] = {}
    beta_settings: dict[str, Any] = {}
    start_beta = True

    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        self.servers = TwoServers(self.mktemp(), alpha_settings=self.alpha_settings,
                                  beta_settings=self.beta_settings)
        self.addCleanup(self.servers.stop)
        yield self.servers.start(beta=self.start_beta)
        self.alpha, self.beta = self.servers.alpha, self.servers.beta

    def submit(self, raw: bytes, rcpts: list[str], sender: str = "alice@alpha.test") -> Any:
        def run() -> Any:
            with smtplib.SMTP(ALPHA_IP, self.alpha.ports["SUBMIT"], timeout=30,
                              local_hostname="laptop.test") as client:
                client.starttls(context=self.alpha.client_tls())
                client.login("alice@alpha.test", PASSWORD)
                return client.sendmail(sender, rcpts, raw)
        return threads.deferToThread(run)

    def log_rows(self, server: Any) -> list[Any]:
        return run_sync(server.engine, lambda c: c.execute(
            select(delivery_log).order_by(delivery_log.c.id)).all(), write=False)

    async def queue_drained(self, server: Any) -> None:
        """Wait (bounded) until ``server`` has recorded every outcome and emptied its queue.

        The receiving side stores a message before the sender has read the 250 and
        recorded it, so "beta has it" does not yet mean "alpha's queue is empty".
        """
        await wait_for(lambda: not run_sync(server.engine, queue_store.list_entries,
                                            write=False))

    def dsn_in_inbox(self) -> Any:
        found = [m for m in self.alpha.stored("alice@alpha.test")
                 if b"multipart/report" in m]
        return found[0] if found else None


class DeliveryTests(TwoServerTestCase):
    def test_submitted_mail_reaches_beta_signed_and_authenticated(self) -> Any:
        return defer.Deferred.fromCoroutine(self._signed_and_authenticated())

    async def _signed_and_authenticated(self) -> None:
        self.servers.publish_dkim(self.alpha, "alpha.test", "rsa2048", "ed25519")
        raw = message("alice@alpha.test", "bob@beta.test", "first contact")
        await self.submit(raw, ["bob@beta.test"])
        stored = await wait_for(lambda: self.beta.stored("bob@beta.test"))
        self.assertEqual(len(stored), 1)
        parsed = email.message_from_bytes(stored[0])
        results = " ".join(parsed.get_all("Authentication-Results", []))
        self.assertIn("spf=pass", results)
        self.assertIn("dkim=pass", results)
        self.assertIn("dmarc=pass", results)
        self.assertIn("header.a=ed25519-sha256", results)
        self.assertIn("header.a=rsa-sha256", results)
        self.assertTrue(stored[0].endswith(b"\r\n\r\nHello Bob.\r\n"))
        # The queue is empty again and the attempt was logged with the TLS version.
        await self.queue_drained(self.alpha)
        rows = self.log_rows(self.alpha)
        self.assertEqual([(r.status, r.code, r.mx_host) for r in rows],
                         [("delivered", 250, "mx.beta.test")])
        self.assertTrue(rows[0].tls_version.startswith("TLSv1."), rows[0].tls_version)
        # An implementation other than dkimpy agrees (Perl Mail::DKIM, same test DNS).
        signed = stored[0][stored[0].index(b"DKIM-Signature"):]
        # In a thread: the test DNS server answers from this reactor.
        done = await threads.deferToThread(
            subprocess.run, ["perl", PERL_VERIFIER, str(self.servers.dns.port)], input=signed,
            capture_output=True, timeout=60, check=True)
        out = done.stdout.decode()
        lines = [line.split("\t") for line in out.splitlines()]
        verdicts = {fields[3]: fields[0] for fields in lines[1:]}
        self.assertEqual(verdicts["rsa-sha256"], "pass", out)
        # Debian's Mail::DKIM has no ed25519: npm mailauth checks both algorithms.
        checked = await verify_with_mailauth(signed, self.servers.dns.port)
        self.assertEqual(sorted((v[3], v[0]) for v in checked),
                         [("ed25519-sha256", "pass"), ("rsa-sha256", "pass")])

    def test_unknown_user_at_beta_bounces_to_alices_inbox(self) -> Any:
        return defer.Deferred.fromCoroutine(self._unknown_user())

    async def _unknown_user(self) -> None:
        raw = message("alice@alpha.test", "nobody@beta.test", "to nobody")
        await self.submit(raw, ["nobody@beta.test", "bob@beta.test"])
        report = await wait_for(self.dsn_in_inbox)
        self.assertEqual(len(self.beta.stored("bob@beta.test")), 1)
        dsn = parse_dsn(report)
        self.assertEqual(dsn.report_type, "delivery-status")
        self.assertEqual(dsn.per_message["reporting-mta"], "dns; mx.alpha.test")
        self.assertIn("arrival-date", dsn.per_message)
        self.assertEqual(len(dsn.recipients), 1)
        fields = dsn.recipients[0]
        self.assertEqual(fields["final-recipient"], "rfc822;nobody@beta.test")
        self.assertEqual(fields["action"], "failed")
        self.assertEqual(fields["status"], "5.1.1")
        self.assertEqual(fields["remote-mta"], "dns; mx.beta.test")
        self.assertTrue(fields["diagnostic-code"].startswith("smtp; 550 5.1.1"),
                        fields["diagnostic-code"])
        self.assertIn(b"Subject: to nobody", dsn.returned)
        self.assertNotIn(b"Hello Bob.", dsn.returned)      # headers, never the body
        headers = email.message_from_bytes(report)
        self.assertEqual(headers["From"], "Mail Delivery System <MAILER-DAEMON@mx.alpha.test>")
        self.assertEqual(headers["In-Reply-To"], "<to-nobody@alpha.test>")
        self.assertEqual(headers["Auto-Submitted"], "auto-replied")
        await self.queue_drained(self.alpha)

    def test_null_mx_and_unresolvable_domains_bounce_at_once(self) -> Any:
        return defer.Deferred.fromCoroutine(self._null_mx())

    async def _null_mx(self) -> None:
        self.servers.dns.update_records({"nomail.test": {"MX": [[0, "."]]}})
        await self.submit(message("alice@alpha.test", "x@nomail.test", "null mx"),
                          ["x@nomail.test"])
        await self.submit(message("alice@alpha.test", "y@nowhere.test", "no domain"),
                          ["y@nowhere.test"])

        def both() -> list[bytes]:
            found = [m for m in self.alpha.stored("alice@alpha.test") if b"multipart/report" in m]
            return found if len(found) == 2 else []
        reports = {parse_dsn(r).recipients[0]["final-recipient"]: parse_dsn(r).recipients[0]
                   for r in await wait_for(both)}
        self.assertEqual(reports["rfc822;x@nomail.test"]["status"], "5.1.10")
        self.assertEqual(reports["rfc822;y@nowhere.test"]["status"], "5.1.2")
        self.assertNotIn("remote-mta", reports["rfc822;y@nowhere.test"])

    def test_no_bounce_for_a_bounce(self) -> Any:
        return defer.Deferred.fromCoroutine(self._no_double_bounce())

    async def _no_double_bounce(self) -> None:
        # A message with the null reverse-path that fails makes no DSN (RFC 3464 §2).
        inject(self.alpha, "", ["nobody@beta.test"],
               message("mailer-daemon@alpha.test", "nobody@beta.test", "a bounce"))
        await wait_for(lambda: any(r.status == "failed" for r in self.log_rows(self.alpha)))
        await self.queue_drained(self.alpha)
        self.assertIsNone(self.dsn_in_inbox())


class BetaDownTests(TwoServerTestCase):
    start_beta = False

    def test_beta_down_then_up_is_retried_with_backoff_and_delivered_once(self) -> Any:
        return defer.Deferred.fromCoroutine(self._down_then_up())

    async def _down_then_up(self) -> None:
        await self.submit(message("alice@alpha.test", "bob@beta.test", "patience"),
                          ["bob@beta.test"])
        await wait_for(lambda: self.log_rows(self.alpha))
        rows = self.log_rows(self.alpha)
        self.assertEqual(rows[0].status, "deferred")
        self.assertEqual(rows[0].code // 100, 4)
        entry = run_sync(self.alpha.engine, queue_store.list_entries, write=False)[0]
        rcpt = entry.recipients[0]
        self.assertEqual((rcpt.status, rcpt.attempts), ("queued", 1))
        delay = (rcpt.next_attempt_at - rows[0].attempted_at).total_seconds()
        self.assertTrue(54 <= delay <= 66, delay)           # QUEUE_RETRY_MINS=1,2 with jitter
        await self.servers.start_beta()
        # The operator (or the timer, a minute later) retries: delivered exactly once.
        run_sync(self.alpha.engine, queue_store.retry_now, None, self.alpha.now(), write=True)
        self.alpha.root.components["delivery"].wake()
        await wait_for(lambda: self.beta.stored("bob@beta.test"))
        await self.queue_drained(self.alpha)
        self.assertEqual(len(self.beta.stored("bob@beta.test")), 1)
        self.assertEqual([r.status for r in self.log_rows(self.alpha)], ["deferred", "delivered"])
