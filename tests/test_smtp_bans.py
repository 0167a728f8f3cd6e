"""The scope of a ban earned by failed logins (BAN_SCOPE), issue 9 item 3: by default it
closes only the listeners that accept a login, so a banned address still delivers inbound
mail on port 25; with "smtp" in the scope port 25 refuses it too."""

from __future__ import annotations

import smtplib
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet import defer, threads
from twisted.internet.task import Clock
from twisted.trial import unittest

from mailgosend.auth.bans import BanCache
from mailgosend.config import ConfigError
from tests.support.config import make_config
from tests.support.mailserver import MailServerTestCase
from tests.test_smtp_receive import message

ZONES = {"pass.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}}


class BanScopeTestBase(MailServerTestCase):
    zones = ZONES

    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        yield super().setUp()
        self.server.root.components["bans"].note("127.0.0.1",
                                                 self.server.now() + timedelta(hours=1))

    def send_inbound(self) -> Any:
        def run() -> Any:
            with smtplib.SMTP("127.0.0.1", self.server.ports["SMTP"], timeout=30,
                              local_hostname="client.test") as client:
                return client.sendmail("someone@pass.test", ["alice@example.com"],
                                       message("someone@pass.test", "alice@example.com"))
        return threads.deferToThread(run)

    def connect(self, kind: str) -> Any:
        return threads.deferToThread(smtplib.SMTP, "127.0.0.1", self.server.ports[kind],
                                     timeout=30, local_hostname="client.test")


class DefaultScopeTests(BanScopeTestBase):
    @defer.inlineCallbacks
    def test_banned_address_still_delivers_on_port_25(self):  # type: ignore[no-untyped-def]
        self.assertEqual((yield self.send_inbound()), {})
        self.assertEqual(len(self.server.stored("alice@example.com")), 1)

    @defer.inlineCallbacks
    def test_banned_address_refused_on_submission_and_smtps(self):  # type: ignore[no-untyped-def]
        failure = yield self.assertFailure(self.connect("SUBMIT"), smtplib.SMTPConnectError)
        self.assertEqual(failure.smtp_code, 421)
        failure = yield self.assertFailure(threads.deferToThread(
            smtplib.SMTP_SSL, "127.0.0.1", self.server.ports["SMTPS"], timeout=30,
            context=self.server.client_tls()), smtplib.SMTPConnectError)
        self.assertEqual(failure.smtp_code, 421)


class SMTPInScopeTests(BanScopeTestBase):
    settings = {"BAN_SCOPE": "SMTP, submission,imap"}

    @defer.inlineCallbacks
    def test_port_25_refuses_a_banned_address_when_in_scope(self):  # type: ignore[no-untyped-def]
        failure = yield self.assertFailure(self.connect("SMTP"), smtplib.SMTPConnectError)
        self.assertEqual(failure.smtp_code, 421)


class ScopeSettingTests(unittest.TestCase):
    def test_default_is_every_listener_with_a_login(self) -> None:
        config = make_config(self.mktemp())
        self.assertEqual(config["BAN_SCOPE"], ("submission", "imap", "pop3", "web", "dav"))

    def test_unknown_listener_is_a_clear_error(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            make_config(self.mktemp(), BAN_SCOPE="smtp,ftp")
        self.assertIn("BAN_SCOPE", str(caught.exception))
        self.assertIn("unknown ftp: each item must be one of: smtp, submission, imap, "
                      "pop3, web, dav", str(caught.exception))

    def test_listener_views_follow_the_scope(self) -> None:
        class Security:
            pass
        cache = BanCache(Security(), Clock(), scope=("imap",))  # type: ignore[arg-type]
        cache.note("192.0.2.1", datetime.max.replace(tzinfo=timezone.utc))
        self.assertTrue(cache.for_service("imap").is_banned("192.0.2.1"))
        self.assertFalse(cache.for_service("pop3").is_banned("192.0.2.1"))
        self.assertFalse(cache.refuses("192.0.2.1", "smtp"))
        self.assertRaises(ValueError, BanCache, Security(), Clock(), scope=("ftp",))
