"""Per-service certificates and SNI across domains, with real TLS clients asking for names.

The server has a global certificate (mail.a.test), SMTP's own (mx.a.test), and one more
domain's through TLS_SNI_CERTS (*.b.test and b.test). Each client asks (SNI) for one name and
must get the certificate covering it; SIGHUP-style reload re-reads all of them.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
from typing import Any

from cryptography import x509
from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from mailgosend.config import ConfigError
from mailgosend.service import makeService
from mailgosend.tls import sni
from tests.support.certs import client_context, make_ca, make_cert
from tests.support.config import make_config, make_config_file
from tests.support.net import free_ports


def serial_of(path: str) -> int:
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read()).serial_number


def served(port: int, context: ssl.SSLContext, name: str) -> int:
    """The serial a client asking for ``name`` gets (hostname verification on)."""
    with socket.create_connection(("127.0.0.1", port), 10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


class PerServiceAndSNITests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_each_name_gets_its_certificate_on_each_service(self) -> Any:
        directory = os.path.abspath(self.mktemp())
        pki = os.path.join(directory, "pki")
        ca = make_ca(pki)
        main = make_cert(pki, ["mail.a.test"], ca=ca, name="main")
        smtp = make_cert(pki, ["mx.a.test"], ca=ca, name="smtp")
        other = make_cert(pki, ["b.test", "*.b.test"], ca=ca, name="other")
        smtps_port, imaps_port = free_ports(2)
        config = make_config(os.path.join(directory, "server"), TLS_MODE="file",
                             TLS_CERT=main[0], TLS_KEY=main[1], SMTP_TLS_CERT=smtp[0],
                             SMTP_TLS_KEY=smtp[1], TLS_SNI_CERTS=f"{other[0]}:{other[1]}",
                             SMTPS_PORT=smtps_port, IMAPS_PORT=imaps_port)
        root = makeService(config, reactor=reactor)
        root.privilegedStartService()
        root.startService()
        self.addCleanup(root.stopService)
        context = client_context(ca)

        def ask(port: int, name: str) -> int:
            return served(port, context, name)

        expected = {
            # SMTP: its own certificate by default; the others for the names they cover.
            (smtps_port, "mx.a.test"): smtp[0],
            (smtps_port, "mail.a.test"): main[0],
            (smtps_port, "imap.b.test"): other[0],
            (smtps_port, "b.test"): other[0],
            # IMAP: the global certificate by default, SMTP's for its name, b.test's for its.
            (imaps_port, "mail.a.test"): main[0],
            (imaps_port, "mx.a.test"): smtp[0],
            (imaps_port, "mail.b.test"): other[0],
        }
        for (port, name), path in expected.items():
            got = yield threads.deferToThread(ask, port, name)
            self.assertEqual(got, serial_of(path), f"port {port}, name {name}")

        # A name nobody covers gets the listener's default (and fails verification there).
        with self.assertRaises(ssl.SSLCertVerificationError):
            yield threads.deferToThread(ask, imaps_port, "unknown.c.test")

        # SIGHUP re-reads every certificate, the SNI ones too.
        renewed = make_cert(pki, ["b.test", "*.b.test"], ca=ca, name="other-renewed")
        shutil.copy(renewed[1], other[1])
        shutil.copy(renewed[0], other[0])
        root.reload()
        got = yield threads.deferToThread(ask, imaps_port, "mail.b.test")
        self.assertEqual(got, serial_of(renewed[0]))

    def test_tls_status_lists_every_configured_certificate(self) -> None:
        import io

        from mailgosend.cli import main as cli_main

        directory = os.path.abspath(self.mktemp())
        pki = os.path.join(directory, "pki")
        ca = make_ca(pki)
        main = make_cert(pki, ["mail.a.test"], ca=ca, name="main")
        smtp = make_cert(pki, ["mx.a.test"], ca=ca, name="smtp")
        path = make_config_file(os.path.join(directory, "server"), TLS_MODE="file",
                                TLS_CERT=main[0], TLS_KEY=main[1], SMTP_TLS_CERT=smtp[0],
                                SMTP_TLS_KEY=smtp[1]).path
        out = io.StringIO()
        self.assertEqual(cli_main(["--config", path, "tls", "status"], stdout=out), 0,
                         out.getvalue())
        text = out.getvalue()
        self.assertIn(f"TLS_CERT: {main[0]}", text)
        self.assertIn(f"SMTP_TLS_CERT: {smtp[0]}", text)
        self.assertIn("names:       mail.a.test", text)
        self.assertIn("names:       mx.a.test", text)
        self.assertIn("expires:", text)

    def test_bad_sni_pairs_are_refused_naming_the_key(self) -> None:
        directory = os.path.abspath(self.mktemp())
        with self.assertRaises(ConfigError) as caught:
            make_config(directory, TLS_MODE="selfsigned", TLS_SNI_CERTS="only-a-cert.pem")
        self.assertIn("TLS_SNI_CERTS: 'only-a-cert.pem' must be cert.pem:key.pem",
                      str(caught.exception))
        with self.assertRaises(ConfigError) as caught:
            make_config(directory, TLS_MODE="selfsigned", TLS_SNI_CERTS="/no/c.pem:/no/k.pem")
        self.assertIn("'/no/c.pem': not a readable file", str(caught.exception))


class SNITableTests(unittest.TestCase):
    def test_earlier_certificates_keep_their_names_and_bad_names_are_skipped(self) -> None:
        table = sni.table_from_names([(["mail.a.test", "127.0.0.1"], "first"),
                                      (["mail.a.test", "*.a.test", "x*.a.test"], "second")])
        self.assertEqual(table, {"mail.a.test": "first", "*.a.test": "second"})
        self.assertEqual(sni.select("imap.a.test", table), "second")
        self.assertEqual(sni.select("mail.a.test", table), "first")


class ACMEConfigTests(unittest.TestCase):
    def test_what_the_acme_modes_need_is_checked(self) -> None:
        directory = os.path.abspath(self.mktemp())
        cases = [
            ({"TLS_MODE": "dns01"}, "ACME_DNS_PROVIDER is empty but TLS_MODE = dns01 needs it"),
            ({"TLS_MODE": "dns01", "ACME_DNS_PROVIDER": "hook"},
             "ACME_DNS_HOOK is empty but ACME_DNS_PROVIDER = hook"),
            ({"TLS_MODE": "http01", "ACME_DOMAINS": "*.example.com", "HTTP_PORT": "10080"},
             "ACME_DOMAINS: *.example.com: wildcard names can only be proven through DNS"),
            ({"TLS_MODE": "http01", "HTTP_PORT": "0"}, "TLS_MODE = http01 needs HTTP_PORT"),
        ]
        for values, message in cases:
            with self.assertRaises(ConfigError) as caught:
                make_config(directory, **values)
            self.assertIn(message, str(caught.exception))

    def test_directory_defaults_to_lets_encrypt_staging_on_request(self) -> None:
        from mailgosend.tls import acme

        directory = os.path.abspath(self.mktemp())
        values = {"TLS_MODE": "dns01", "ACME_DNS_PROVIDER": "cloudflare"}
        production = acme.ACMESettings.from_config(make_config(directory, **values))
        self.assertEqual(production.directory, acme.LETS_ENCRYPT)
        self.assertEqual(production.cache_dir, os.path.join(directory, "data", "acme"))
        staging = acme.ACMESettings.from_config(
            make_config(directory, ACME_STAGING="true", **values))
        self.assertEqual(staging.directory, acme.LETS_ENCRYPT_STAGING)
        private = acme.ACMESettings.from_config(
            make_config(directory, ACME_STAGING="true",
                        ACME_DIRECTORY="https://ca.internal/dir", **values))
        self.assertEqual(private.directory, "https://ca.internal/dir")

    def test_lexicon_credentials_in_the_file_are_passed_through(self) -> None:
        directory = os.path.abspath(self.mktemp())
        config = make_config(directory)
        with open(config.path, "a", encoding="utf-8") as handle:
            handle.write("LEXICON_CLOUDFLARE_AUTH_TOKEN = secret-token\n")
        from mailgosend.config import load
        again = load(config.path, environ={"MAILGO_TLS_MODE": "dns01",
                                           "MAILGO_ACME_DNS_PROVIDER": "cloudflare"})
        self.assertEqual(dict(again["LEXICON_OPTIONS"]),
                         {"LEXICON_CLOUDFLARE_AUTH_TOKEN": "secret-token"})
        from mailgosend.tls.acme import ACMESettings
        settings = ACMESettings.from_config(again)
        self.assertEqual(settings.dns_provider, "cloudflare")
        self.assertNotIn("secret-token", repr(settings))
