"""Login: TLS before passwords (LOGINDISABLED, STARTTLS, IMAPS), SASL PLAIN, brute-force
bans through the shared Portal, BYE for banned addresses."""

from __future__ import annotations

import base64
import imaplib
from datetime import datetime, timedelta, timezone
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from twisted.internet import defer
from twisted.trial import unittest

from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import ALICE, PASSWORD, IMAPFixture, RawClient, message


class TLSLoginTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_passwords_are_refused_before_starttls(self) -> Any:
        yield self.listen(loopback=False)
        client = yield self.in_thread(self.imaplib_client, login=False)
        self.addCleanup(self.in_thread, client.shutdown)
        self.assertTrue({"STARTTLS", "LOGINDISABLED"} <= set(client.capabilities))
        self.assertNotIn("AUTH=PLAIN", client.capabilities)
        error = yield self.assertFailure(self.in_thread(client.login, ALICE, PASSWORD),
                                         imaplib.IMAP4.error)
        self.assertIn("PRIVACYREQUIRED", str(error))
        typ, data = yield self.in_thread(client._simple_command, "AUTHENTICATE", "PLAIN",
                                         base64.b64encode(b"\0a\0b").decode())
        self.assertEqual((typ, data), ("NO", [b"[PRIVACYREQUIRED] Authentication needs TLS first"]))

    @defer.inlineCallbacks
    def test_imaplib_starttls_then_login(self) -> Any:
        yield self.listen(loopback=False)

        def run() -> Any:
            client = imaplib.IMAP4("127.0.0.1", self.port, timeout=20)
            client.starttls(self.client_tls)
            caps = client.capabilities
            client.login(ALICE, PASSWORD)
            typ, data = client.select("INBOX")
            client.logout()
            return caps, typ

        caps, typ = yield self.in_thread(run)
        self.assertIn("AUTH=PLAIN", caps)
        self.assertNotIn("STARTTLS", caps)
        self.assertEqual(typ, "OK")

    @defer.inlineCallbacks
    def test_imapclient_starttls_then_plain_login(self) -> Any:
        yield self.listen(loopback=False)

        def run() -> Any:
            client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=20)
            client.starttls(self.client_tls)
            client.plain_login(ALICE, PASSWORD)
            folders = client.list_folders()
            client.logout()
            return folders

        folders = yield self.in_thread(run)
        self.assertIn("INBOX", [name for _, _, name in folders])

    @defer.inlineCallbacks
    def test_implicit_tls_with_both_clients(self) -> Any:
        yield self.listen(implicit_tls=True, loopback=False)

        def with_imaplib() -> Any:
            client = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=self.client_tls,
                                       timeout=20)
            caps = client.capabilities
            client.login(ALICE, PASSWORD)
            client.logout()
            return caps

        def with_imapclient() -> Any:
            client = IMAPClient("127.0.0.1", port=self.port, ssl=True,
                                ssl_context=self.client_tls, timeout=20)
            client.login(ALICE, PASSWORD)
            client.select_folder("INBOX")
            body = client.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"]
            client.logout()
            return body

        raw = message("over TLS") + b"z" * (2 << 20) + b"\r\n"  # streamed in chunks
        yield self.deliver(raw)
        caps = yield self.in_thread(with_imaplib)
        self.assertIn("AUTH=PLAIN", caps)
        self.assertNotIn("STARTTLS", caps)
        self.assertEqual((yield self.in_thread(with_imapclient)), raw)

    @defer.inlineCallbacks
    def test_starttls_twice_is_bad(self) -> Any:
        yield self.listen(loopback=False)

        def run() -> list[bytes]:
            raw = RawClient(self.port)
            try:
                raw.command(b"a", b"STARTTLS")
                raw.sock = self.client_tls.wrap_socket(raw.sock, server_hostname="localhost")
                raw.file = raw.sock.makefile("rb")
                return raw.command(b"b", b"STARTTLS") + raw.command(b"c", b"CAPABILITY")
            finally:
                raw.close()

        lines = yield self.in_thread(run)
        self.assertEqual(lines[0], b"b BAD TLS is already active\r\n")
        self.assertNotIn(b"LOGINDISABLED", lines[1])

    @defer.inlineCallbacks
    def test_no_tls_configured_means_no_starttls(self) -> Any:
        yield self.listen(tls=None, loopback=False)
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        self.assertNotIn(b"STARTTLS", raw.greeting)
        self.assertIn(b"LOGINDISABLED", raw.greeting)
        lines = yield self.in_thread(raw.command, b"a", b"STARTTLS")
        self.assertEqual(lines, [b"a NO TLS is not available\r\n"])


class SASLTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_plain_with_imaplib_and_bare_user_name(self) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client, login=False)
        self.addCleanup(self.in_thread, client.shutdown)
        typ, _ = yield self.in_thread(client.authenticate, "PLAIN",
                                      lambda _: b"\0alice\0" + PASSWORD.encode())
        self.assertEqual(typ, "OK")
        self.assertEqual(client.state, "AUTH")

    @defer.inlineCallbacks
    def test_plain_not_utf8_or_without_password_is_malformed(self) -> Any:
        # Regression: IMAP had its own PLAIN decoder that took any octets (decoded with
        # replacement characters) and an empty password to the password check.
        yield self.listen()
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        for plain in (b"\0alice\0\xff\xfe", b"\0alice\0"):
            lines = yield self.in_thread(raw.command, b"b",
                                         b"AUTHENTICATE PLAIN " + base64.b64encode(plain))
            self.assertEqual(lines, [b"b BAD Malformed PLAIN response\r\n"])

    @defer.inlineCallbacks
    def test_sasl_errors(self) -> Any:
        yield self.listen()
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)

        def cancel() -> list[bytes]:
            raw.send(b"a AUTHENTICATE PLAIN\r\n")
            raw.line()
            raw.send(b"*\r\n")
            return raw.until(b"a")

        self.assertEqual((yield self.in_thread(cancel)), [b"a BAD Authentication cancelled\r\n"])
        cases = [(b"AUTHENTICATE PLAIN !!!", b"b BAD Invalid base64 in authentication response"),
                 (b"AUTHENTICATE PLAIN " + base64.b64encode(b"no-nuls"),
                  b"b BAD Malformed PLAIN response"),
                 (b"AUTHENTICATE PLAIN " + base64.b64encode(b"bob@example.com\0" + ALICE.encode()
                                                             + b"\0" + PASSWORD.encode()),
                  b"b NO [AUTHORIZATIONFAILED] Authorization identity must be empty or the user")]
        for command, expected in cases:
            lines = yield self.in_thread(raw.command, b"b", command)
            self.assertEqual(lines, [expected + b"\r\n"])


class BanTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_banned_address_gets_bye_at_connect(self) -> Any:
        yield self.listen()
        self.bans.note("127.0.0.1", datetime.now(timezone.utc) + timedelta(hours=1))
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        self.assertEqual(raw.greeting,
                         b"* BYE Too many failed logins from your address; try later\r\n")
        yield self.assertFailure(self.in_thread(raw.line), ConnectionError)

    @defer.inlineCallbacks
    def test_three_failures_close_the_connection(self) -> Any:
        yield self.listen()
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        for tag in (b"a", b"b"):
            lines = yield self.in_thread(raw.command, tag, b"LOGIN %s wrong" % ALICE.encode())
            self.assertEqual(lines, [tag + b" NO [AUTHENTICATIONFAILED] Authentication failed\r\n"])
        lines = yield self.in_thread(raw.command, b"c", b"LOGIN %s wrong" % ALICE.encode())
        self.assertEqual(lines, [b"c NO [AUTHENTICATIONFAILED] Authentication failed\r\n"])
        self.assertEqual((yield self.in_thread(raw.line)),
                         b"* BYE Too many failed logins on this connection\r\n")

    @defer.inlineCallbacks
    def test_brute_force_ban_applies_to_imap(self) -> Any:
        yield self.listen()
        for _ in range(2):  # BRUTE_MAX_TRIES = 5 in the fixture
            raw = yield self.in_thread(RawClient, self.port)
            self.addCleanup(raw.close)
            for tag in (b"a", b"b", b"c"):
                yield self.in_thread(raw.command, tag, b"LOGIN %s wrong" % ALICE.encode())
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        self.assertTrue(raw.greeting.startswith(b"* BYE"), raw.greeting)

    @defer.inlineCallbacks
    def test_imapclient_login_refused(self) -> Any:
        yield self.listen()

        def run() -> None:
            client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=20)
            try:
                client.login(ALICE, "wrong")
            finally:
                client.shutdown()

        yield self.assertFailure(self.in_thread(run), LoginError)
