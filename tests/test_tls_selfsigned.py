"""TLS_MODE = selfsigned: validity, names and renewal, read back from the real certificate.

Every decision takes ``now`` from the caller; these tests use fixed dates far from today's, so
a comparison with the wall clock anywhere would show.
"""

from __future__ import annotations

import datetime
import imaplib
import os
import ssl
from typing import Any

from cryptography import x509
from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from mailgosend.service import makeService
from mailgosend.tls.selfsigned import RENEW_BEFORE, VALID_DAYS, ensure_self_signed
from tests.support.config import make_config
from tests.support.net import free_port

NOW = datetime.datetime(2031, 3, 14, 9, 26, tzinfo=datetime.timezone.utc)


def load(cert_path: str) -> x509.Certificate:
    with open(cert_path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def names(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    """(DNS names, IP addresses) of the subjectAltName."""
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (set(san.get_values_for_type(x509.DNSName)),
            {str(ip) for ip in san.get_values_for_type(x509.IPAddress)})


class SelfSignedTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())

    def make(self, now: datetime.datetime = NOW, addresses: Any = ("0.0.0.0",),
             hostname: str = "mail.example.test") -> x509.Certificate:
        cert_path, key_path = ensure_self_signed(self.dir, hostname, addresses, now=now)
        self.assertEqual(os.stat(key_path).st_mode & 0o777, 0o600)
        return load(cert_path)

    def test_new_certificate_is_valid_397_days_from_the_given_now(self) -> None:
        cert = self.make()
        self.assertEqual(VALID_DAYS, 397)
        self.assertEqual(cert.not_valid_after_utc, NOW + datetime.timedelta(days=397))
        self.assertLessEqual(cert.not_valid_before_utc, NOW)
        self.assertLessEqual(cert.not_valid_after_utc - cert.not_valid_before_utc,
                             datetime.timedelta(days=398))

    def test_certificate_names_hostname_loopback_and_each_specific_bind_address(self) -> None:
        cert = self.make(addresses=("192.0.2.25", "0.0.0.0", "2001:db8::25", "::",
                                    "192.0.2.25", "127.0.0.1"))
        dns, ips = names(cert)
        self.assertEqual(dns, {"mail.example.test", "localhost"})
        self.assertEqual(ips, {"127.0.0.1", "192.0.2.25", "2001:db8::25"})
        common = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        self.assertEqual(common, "mail.example.test")

    def test_certificate_is_kept_while_valid_for_more_than_the_renewal_margin(self) -> None:
        first = self.make()
        later = first.not_valid_after_utc - RENEW_BEFORE - datetime.timedelta(hours=1)
        self.assertEqual(self.make(now=later).serial_number, first.serial_number)

    def test_certificate_is_renewed_at_start_within_the_renewal_margin(self) -> None:
        first = self.make()
        late = first.not_valid_after_utc - RENEW_BEFORE + datetime.timedelta(hours=1)
        renewed = self.make(now=late)
        self.assertNotEqual(renewed.serial_number, first.serial_number)
        self.assertEqual(renewed.not_valid_after_utc, late + datetime.timedelta(days=397))

    def test_expired_certificate_is_renewed(self) -> None:
        first = self.make()
        after = first.not_valid_after_utc + datetime.timedelta(days=400)
        self.assertNotEqual(self.make(now=after).serial_number, first.serial_number)

    def test_certificate_from_the_future_is_replaced(self) -> None:
        # The clock went back (or the file came from elsewhere): not yet valid is not usable.
        first = self.make()
        before = NOW - datetime.timedelta(days=10)
        self.assertNotEqual(self.make(now=before).serial_number, first.serial_number)

    def test_new_bind_address_or_hostname_makes_a_new_certificate(self) -> None:
        first = self.make(addresses=("192.0.2.25",))
        second = self.make(addresses=("192.0.2.25", "192.0.2.26"))
        self.assertNotEqual(second.serial_number, first.serial_number)
        self.assertIn("192.0.2.26", names(second)[1])
        third = self.make(addresses=("192.0.2.25", "192.0.2.26"), hostname="mx.example.test")
        self.assertIn("mx.example.test", names(third)[0])
        # A subset of what is named is fine: the certificate is kept.
        self.assertEqual(self.make(addresses=("192.0.2.26",), hostname="mx.example.test")
                         .serial_number, third.serial_number)


class ServiceSelfSignedTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_client_checking_the_bound_address_accepts_the_certificate(
            self):  # type: ignore[no-untyped-def]
        port = free_port("127.0.0.2")
        config = make_config(self.mktemp(), TLS_MODE="selfsigned", HOSTNAME="mx.example.test",
                             IMAPS_BIND="127.0.0.2", IMAPS_PORT=port)
        self.assertEqual(config.bind_addresses(), ("127.0.0.2",))
        root = makeService(config, reactor=reactor)
        root.privilegedStartService()
        root.startService()
        self.addCleanup(lambda: root.stopService() if root.running else None)
        cert_path = os.path.join(config["DATA_DIR"], "tls", "selfsigned.crt")
        cert = load(cert_path)
        dns, ips = names(cert)
        self.assertEqual((dns, ips), ({"mx.example.test", "localhost"},
                                      {"127.0.0.1", "127.0.0.2"}))
        # Its validity starts from the reactor's clock, the one the renewal decision uses.
        now = datetime.datetime.fromtimestamp(reactor.seconds(), datetime.timezone.utc)
        self.assertEqual(cert.not_valid_after_utc.date(),
                         (now + datetime.timedelta(days=397)).date())

        def handshake() -> str:
            # A real client that verifies the name against the address it connects to.
            context = ssl.create_default_context(cafile=cert_path)
            client = imaplib.IMAP4_SSL("127.0.0.2", port, ssl_context=context, timeout=20)
            try:
                return client.welcome.decode()
            finally:
                client.logout()

        welcome = yield threads.deferToThread(handshake)
        self.assertTrue(welcome.startswith("* OK"), welcome)


class _SkewedReactor:
    """The real reactor whose clock reads NOW (years from the wall clock)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)

    def seconds(self) -> float:
        return NOW.timestamp()


class ServiceClockTests(unittest.TestCase):
    def test_certificate_checks_use_the_reactor_clock_that_made_the_certificate(self) -> None:
        """Regression: the self-signed certificate was made valid from the reactor's clock,
        but the listeners' TLS checked its validity (expired / not yet valid warnings, and
        again at each reload) against the wall clock: one decision, two clocks."""
        config = make_config(self.mktemp(), TLS_MODE="selfsigned", HOSTNAME="mx.example.test",
                             IMAPS_PORT=free_port())  # built, never started: nothing listens
        root = makeService(config, reactor=_SkewedReactor())
        assert root.runner is not None
        self.addCleanup(root.runner.engine.dispose)
        tls = root.components["tls_imap"]
        self.assertEqual(tls.default_certificate.not_after.date(),
                         (NOW + datetime.timedelta(days=VALID_DAYS)).date())
        self.assertEqual([w for w in tls.warnings if "valid" in w or "expired" in w], [])
        reloaded = tls.reload()
        self.assertEqual([w for w in reloaded if "valid" in w or "expired" in w], [])
