"""RCPT TO:<postmaster> and <postmaster@DOMAIN> (RFC 5321 §4.5.1), issue 9 item 3: accepted
on port 25 for every local domain and delivered to the domain's postmaster alias, or to
the first administrator when there is none."""

from __future__ import annotations

import smtplib
from typing import Any

from twisted.internet import defer, threads
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from tests.support.mailserver import MailServer
from tests.test_smtp_receive import message

ZONES = {"pass.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}}


class PostmasterTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        self.server = MailServer(self.mktemp(), ZONES)
        self.addCleanup(self.server.stop)
        yield self.server.start()
        for domain in ("example.com", "other.test", "third.test"):
            self.server.add_domain(domain)
        for user in ("alice@example.com", "root@other.test", "carol@third.test"):
            self.server.add_user(user)
        run_sync(self.server.engine, accounts.set_user_admin, "root@other.test", True,
                 write=True)
        self.server.add_alias("postmaster@third.test", "carol@third.test")

    def send(self, rcpts: list[str]) -> Any:
        def run() -> Any:
            with smtplib.SMTP("127.0.0.1", self.server.ports["SMTP"], timeout=30,
                              local_hostname="client.test") as client:
                return client.sendmail("someone@pass.test", rcpts,
                                       message("someone@pass.test", "postmaster"))
        return threads.deferToThread(run)

    @defer.inlineCallbacks
    def test_postmaster_of_every_domain_is_accepted_and_delivered(self):  # type: ignore[no-untyped-def]
        refused = yield self.send(["postmaster", "PostMaster@example.com",
                                   "postmaster@other.test"])
        self.assertEqual(refused, {})
        # One copy for the administrator, whatever the number of postmaster addresses.
        self.assertEqual(len(self.server.stored("root@other.test")), 1)
        refused = yield self.send(["postmaster@third.test"])
        self.assertEqual(refused, {})
        self.assertEqual(len(self.server.stored("carol@third.test")), 1)
        self.assertEqual(len(self.server.stored("root@other.test")), 1)
