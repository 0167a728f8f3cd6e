"""The queue worker against misbehaving peers (tests/support/peers.py) and a smarthost: each case
ends in the right queue state, delivery log and DSN.

alpha is a whole in-process server (tests/support/mailserver.py) whose DNS sends peer.test's
MX to 127.0.0.1, where a scripted peer listens on DELIVERY_PORT.
"""

from __future__ import annotations

import email
import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from sqlalchemy import select
from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.db.schema import delivery_log, queue
from mailgosend.delivery.client import Timeouts
from mailgosend.delivery.dsn import parse_dsn
from mailgosend.store import queue as queue_store
from tests.support.certs import make_ca, make_cert
from tests.support.mailserver import MailServer
from tests.support.net import free_ports
from tests.support.peers import Peer, PeerScript
from tests.test_delivery_e2e import inject, message, wait_for

ZONE = {"peer.test": {"MX": [[10, "mx.peer.test"]]}, "mx.peer.test": {"A": ["127.0.0.1"]},
        "relay.test": {"A": ["127.0.0.1"]}}


class WorkerTestCase(unittest.TestCase):
    timeout = 60
    settings: dict[str, Any] = {}

    async def start(self, script: PeerScript, **settings: Any) -> None:
        self.peer = Peer(script)
        self.peer.start()
        self.addCleanup(self.peer.stop)
        self.alpha = MailServer(self.mktemp(), dict(ZONE), hostname="mx.alpha.test",
                                DELIVERY_PAUSED="false", DELIVERY_PORT=str(self.peer.port),
                                QUEUE_RETRY_MINS="1,2", **settings)
        await self.alpha.start()
        self.addCleanup(self.alpha.stop)
        self.alpha.add_domain("alpha.test")
        self.alpha.add_user("alice@alpha.test")
        self.worker = self.alpha.root.components["delivery"]

    def shorten(self, **timeouts: float) -> None:
        self.worker.settings = replace(self.worker.settings, timeouts=Timeouts(**timeouts))

    def log_rows(self) -> list[Any]:
        return run_sync(self.alpha.engine, lambda c: c.execute(
            select(delivery_log).order_by(delivery_log.c.id)).all(), write=False)

    def entries(self) -> list[queue_store.QueueEntry]:
        return run_sync(self.alpha.engine, queue_store.list_entries, write=False)

    def reports(self) -> list[bytes]:
        return [m for m in self.alpha.stored("alice@alpha.test") if b"multipart/report" in m]

    def send(self, rcpts: list[str], subject: str = "hello", created: Optional[datetime] = None
             ) -> int:
        queue_id = inject(self.alpha, "alice@alpha.test", rcpts,
                          message("alice@alpha.test", rcpts[0], subject))
        if created is not None:
            run_sync(self.alpha.engine, lambda c: c.execute(queue.update().where(
                queue.c.id == queue_id).values(created_at=created)).rowcount, write=True)
        return queue_id


def run(coroutine: Any) -> Any:
    return defer.Deferred.fromCoroutine(coroutine)


class PeerFaultTests(WorkerTestCase):
    def test_421_mid_session_defers_without_bounce(self) -> Any:
        return run(self._421())

    async def _421(self) -> None:
        await self.start(PeerScript(rcpt_replies={"bob@peer.test": b"421 4.3.2 Shutting down"}))
        self.send(["bob@peer.test"])
        await wait_for(self.log_rows)
        row = self.log_rows()[0]
        self.assertEqual((row.status, row.code, row.mx_host), ("deferred", 421, "mx.peer.test"))
        rcpt = self.entries()[0].recipients[0]
        self.assertEqual((rcpt.status, rcpt.attempts, rcpt.last_mx),
                         ("queued", 1, "mx.peer.test"))
        self.assertEqual(self.reports(), [])
        self.assertEqual(self.peer.received, [])

    def test_peer_that_stalls_after_data_defers_after_the_timeout(self) -> Any:
        return run(self._stall())

    async def _stall(self) -> None:
        await self.start(PeerScript(final_reply=None))
        self.shorten(data_done=1.0)
        self.send(["bob@peer.test"])
        await wait_for(self.log_rows)
        row = self.log_rows()[0]
        self.assertEqual(row.status, "deferred")
        self.assertIn("timeout", row.text.lower())
        self.assertEqual(self.entries()[0].recipients[0].status, "queued")

    def test_invalid_certificate_is_noted_and_delivery_continues(self) -> Any:
        return run(self._bad_cert())

    async def _bad_cert(self) -> None:
        pki = os.path.abspath(self.mktemp())
        ca = make_ca(pki, "untrusted")
        cert, key = make_cert(pki, ["somebody-else.test"], ca=ca)
        await self.start(PeerScript(tls_cert=(cert, key),
                                    extensions=["PIPELINING", "SIZE 1000000", "STARTTLS"]))
        self.send(["bob@peer.test"], "over tls")
        await wait_for(lambda: self.peer.received)
        await wait_for(self.log_rows)
        row = self.log_rows()[0]
        self.assertEqual((row.status, row.code), ("delivered", 250))
        self.assertTrue(row.tls_version.startswith("TLSv1."), row.tls_version)
        self.assertIn(b"Subject: over tls", self.peer.received[0].message)
        self.assertEqual(self.entries(), [])

    def test_one_refused_recipient_of_two_bounces_alone(self) -> Any:
        return run(self._one_refused())

    async def _one_refused(self) -> None:
        await self.start(PeerScript(rcpt_replies={
            "gone@peer.test": b"550 5.1.1 <gone@peer.test>: no such user"}))
        self.send(["bob@peer.test", "gone@peer.test"], "half")
        report = (await wait_for(self.reports))[0]
        self.assertEqual([r.rcpts for r in self.peer.received], [["bob@peer.test"]])
        fields = parse_dsn(report).recipients
        self.assertEqual([(f["final-recipient"], f["status"]) for f in fields],
                         [("rfc822;gone@peer.test", "5.1.1")])
        self.assertIn("no such user", fields[0]["diagnostic-code"])
        self.assertEqual(sorted(r.status for r in self.log_rows()), ["delivered", "failed"])
        self.assertEqual(self.entries(), [])

    def test_bounce_for_a_remote_sender_is_queued_and_sent_with_the_null_sender(self) -> Any:
        return run(self._remote_bounce())

    async def _remote_bounce(self) -> None:
        # Forwarded mail (an alias to another domain) that fails: the report goes back to
        # the remote original sender, through the queue, from MAIL FROM:<>.
        await self.start(PeerScript(rcpt_replies={
            "gone@peer.test": b"550 5.1.1 no such user"}))
        inject(self.alpha, "carol@peer.test", ["gone@peer.test"],
               message("carol@peer.test", "gone@peer.test", "forwarded"))
        await wait_for(lambda: self.peer.received)
        sent = self.peer.received[0]
        self.assertTrue(sent.mail.startswith("MAIL FROM:<> "), sent.mail)
        self.assertEqual(sent.rcpts, ["carol@peer.test"])
        fields = parse_dsn(sent.message).recipients[0]
        self.assertEqual((fields["final-recipient"], fields["status"]),
                         ("rfc822;gone@peer.test", "5.1.1"))
        await wait_for(lambda: not self.entries())
        self.assertEqual([r.status for r in self.log_rows()], ["failed", "delivered"])

    def test_message_older_than_the_maximum_age_expires_with_a_dsn(self) -> Any:
        return run(self._expired())

    async def _expired(self) -> None:
        await self.start(PeerScript(rcpt_replies={"bob@peer.test": b"451 4.7.1 Try later"}),
                         QUEUE_MAX_AGE_HOURS="2")
        self.send(["bob@peer.test"], "old news",
                  created=datetime.now(timezone.utc) - timedelta(hours=3))
        report = (await wait_for(self.reports))[0]
        fields = parse_dsn(report).recipients[0]
        self.assertEqual((fields["action"], fields["status"]), ("failed", "5.4.7"))
        self.assertEqual(self.log_rows()[0].status, "expired")
        self.assertEqual(self.entries(), [])

    def test_delay_warning_is_sent_once(self) -> Any:
        return run(self._delay())

    async def _delay(self) -> None:
        await self.start(PeerScript(rcpt_replies={"bob@peer.test": b"451 4.7.1 Try later"}),
                         DELAY_WARNING_HOURS="4")
        queue_id = self.send(["bob@peer.test"], "slow",
                             created=datetime.now(timezone.utc) - timedelta(hours=5))
        report = (await wait_for(self.reports))[0]
        parsed = parse_dsn(report)
        self.assertEqual(email.message_from_bytes(report)["Subject"],
                         "Delayed Mail (still being retried)")
        self.assertEqual((parsed.recipients[0]["action"], parsed.recipients[0]["status"]),
                         ("delayed", "4.7.1"))
        self.assertIn("will-retry-until", parsed.recipients[0])
        # Still queued; a second failed attempt sends no second warning.
        run_sync(self.alpha.engine, queue_store.retry_now, queue_id, self.alpha.now(),
                 write=True)
        self.worker.wake()
        await wait_for(lambda: len(self.log_rows()) == 2)
        self.assertEqual(len(self.reports()), 1)
        self.assertEqual(self.entries()[0].message.delay_warned, True)


class SmarthostTests(WorkerTestCase):
    async def start_relay(self, cert_names: list[str]) -> None:
        pki = os.path.abspath(self.mktemp())
        ca = make_ca(pki, "relay-ca")
        cert, key = make_cert(pki, cert_names, ca=ca)
        port = free_ports(1)[0]
        await self.start(PeerScript(tls_cert=(cert, key), auth=("relayuser", "pw-SECRET-relay-7"),
                                    extensions=["PIPELINING", "SIZE 1000000", "STARTTLS"]),
                         RELAY_USER="relayuser", RELAY_PASSWORD="pw-SECRET-relay-7",
                         RELAY_CA_FILE=ca.cert_path, RELAY_HOST=f"relay.test:{port}")
        # The relay listens where RELAY_HOST says; the MX of peer.test is never asked.
        self.worker.settings = replace(self.worker.settings, relay=("relay.test", self.peer.port))

    def test_smarthost_gets_auth_over_verified_tls(self) -> Any:
        return run(self._relay_ok())

    async def _relay_ok(self) -> None:
        await self.start_relay(["relay.test"])
        self.send(["carol@elsewhere.test"], "via relay")
        await wait_for(lambda: self.peer.received)
        self.assertEqual(self.peer.received[0].rcpts, ["carol@elsewhere.test"])
        tls_of = {line.split(" ", 1)[0].upper(): tls for tls, line in self.peer.log}
        self.assertTrue(tls_of["AUTH"], "AUTH must only be sent under TLS")
        await wait_for(lambda: not self.entries())
        self.assertEqual(self.log_rows()[0].mx_host, "relay.test")

    def test_smarthost_with_an_unverifiable_certificate_gets_no_password(self) -> Any:
        return run(self._relay_bad())

    async def _relay_bad(self) -> None:
        await self.start_relay(["impostor.test"])
        self.send(["carol@elsewhere.test"], "via relay")
        await wait_for(self.log_rows)
        self.assertEqual(self.log_rows()[0].status, "deferred")
        self.assertNotIn("AUTH", self.peer.commands())
        self.assertEqual(self.peer.received, [])
