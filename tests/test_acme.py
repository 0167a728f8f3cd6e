"""TLS_MODE = http01 / dns01 against Debian's pebble: issuance, renewal, swap, failures, status.

Every test starts its own pebble and pebble-challtestsrv on loopback ports
(tests/support/pebble.py), with PEBBLE_VA_NOSLEEP=1.  Certificates are checked with real
clients (smtplib STARTTLS, imaplib over implicit TLS, an HTTPS request over ssl) that trust
only the root of that pebble.
"""

from __future__ import annotations

import datetime
import imaplib
import io
import json
import os
import smtplib
import socket
import ssl
import sys
import time
from typing import Any

import requests
from cryptography import x509
from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest

from mailgosend.cli import main as cli_main
from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from mailgosend.service import makeService
from mailgosend.tls import acme, http01
from tests.support import pebble
from tests.support.config import make_config, make_config_file
from tests.support.net import free_ports

HOST = "mail.example.test"


def _skip_without_pebble() -> None:
    if not pebble.available():
        raise unittest.SkipTest("Debian packages pebble and pebble-challtestsrv are needed "
                                "(scripts/run-tests installs them)")


def _serial(der: bytes) -> int:
    return x509.load_der_x509_certificate(der).serial_number


def smtp_serial(port: int, context: ssl.SSLContext, name: str = HOST) -> int:
    """A fresh smtplib client: EHLO, STARTTLS verifying ``name``, the server's serial."""
    client = smtplib.SMTP(timeout=10)
    client._host = name  # type: ignore[attr-defined]  # the name STARTTLS verifies
    client.connect("127.0.0.1", port)
    try:
        client.starttls(context=context)
        sock: Any = client.sock
        return _serial(sock.getpeercert(binary_form=True))
    finally:
        client.quit()


class _IMAPByName(imaplib.IMAP4_SSL):
    """imaplib over implicit TLS to 127.0.0.1, verifying (and sending as SNI) ``host``."""

    def _create_socket(self, timeout: Any) -> Any:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout)
        return self.ssl_context.wrap_socket(raw, server_hostname=self.host)


def imap_serial(port: int, context: ssl.SSLContext, name: str = HOST) -> int:
    client = _IMAPByName(name, port, ssl_context=context, timeout=10)
    try:
        return _serial(client.sock.getpeercert(binary_form=True))
    finally:
        client.logout()


def https_serial(port: int, context: ssl.SSLContext, name: str = HOST) -> int:
    """An HTTPS request (GET /healthz-less: any answer will do) over a verified TLS socket."""
    with socket.create_connection(("127.0.0.1", port), 10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            assert tls.recv(12).startswith(b"HTTP/1.1")
            return _serial(tls.getpeercert(binary_form=True))


def tls_status(config_path: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli_main(["--config", config_path, "tls", "status"], stdout=out, stderr=out)
    return code, out.getvalue()


class HTTP01ServiceTests(unittest.TestCase):
    """The whole server in TLS_MODE = http01: issued at start-up, renewed, swapped in."""

    timeout = 180

    @defer.inlineCallbacks
    def test_issued_at_start_renewed_near_expiry_and_seen_on_smtp_imap_https(self) -> Any:
        _skip_without_pebble()
        directory = os.path.abspath(self.mktemp())
        http_port, smtp_port, imaps_port, web_port = free_ports(4)
        ca = pebble.Pebble(os.path.join(directory, "pebble"), http_port, nonce_reject=30,
                           taken=(smtp_port, imaps_port, web_port)).start()
        self.addCleanup(ca.stop)
        config = make_config_file(
            os.path.join(directory, "server"), TLS_MODE="http01", HOSTNAME=HOST,
            DNS_PRIMARY=ca.dns, ACME_DIRECTORY=ca.directory_url, ACME_CA_FILE=ca.ca_file,
            ACME_EMAIL="postmaster@example.test", HTTP_PORT=http_port, SMTP_PORT=smtp_port,
            IMAPS_PORT=imaps_port, WEB_PORT=web_port, WEB_TLS="true")
        clock = task.Clock()
        clock.advance(time.time())
        root = makeService(config, reactor=reactor, clock=clock)
        # A local domain: its client setup names join the certificate (challtestsrv resolves
        # every name to 127.0.0.1, so they exist in DNS).
        run_sync(root.runner.engine, accounts.add_domain, "example.test",
                 datetime.datetime.now(datetime.timezone.utc), write=True)
        service = root.getServiceNamed("acme")
        root.privilegedStartService()
        root.startService()
        self.addCleanup(root.stopService)
        yield service.pending()
        status = root.components["acme_status"]()[0]
        self.assertIsNone(status["last_error"], ca.logs()[-3000:])
        self.assertFalse(status["placeholder"])
        mta_sts = config.values.get("MTA_STS_MODE", "none") != "none"  # a key of autoconf's
        self.assertEqual(status["names"], [HOST, "autoconfig.example.test",
                                           "autodiscover.example.test"]
                         + (["mta-sts.example.test"] if mta_sts else []))
        self.assertIn("Pebble", status["issuer"])
        key_mode = os.stat(os.path.join(acme.cache_dir(config), "account.key")).st_mode & 0o777
        self.assertEqual(key_mode, 0o600)

        # A restart finds the certificate valid: nothing is requested.
        again = acme.ACMEService(acme.ACMESettings.from_config(config), reactor=reactor,
                                 clock=clock, on_change=lambda: None, config=config)
        self.assertIsNone(again.needs_issuance(status["names"]))
        self.assertEqual(again.needs_issuance([HOST, "new.example.test"]),
                         "names missing: new.example.test")

        context = yield threads.deferToThread(ca.client_context)

        def serials() -> tuple[int, int, int]:
            return (smtp_serial(smtp_port, context), imap_serial(imaps_port, context),
                    https_serial(web_port, context))
        first = yield threads.deferToThread(serials)
        self.assertEqual(len(set(first)), 1, "every listener serves the ACME certificate")
        self.assertEqual(format(first[0], "x"), status["serial"])

        # HTTP_PORT: everything but challenges goes to HTTPS on the web port (301, same host
        # and path).
        reply = yield threads.deferToThread(
            requests.get, f"http://127.0.0.1:{http_port}/mail/inbox?page=2",
            headers={"Host": f"{HOST}:{http_port}", "Connection": "close"}, allow_redirects=False,
            timeout=10)
        self.assertEqual(reply.status_code, 301)
        self.assertEqual(reply.headers["location"], f"https://{HOST}:{web_port}/mail/inbox?page=2")
        missing = yield threads.deferToThread(
            requests.get, f"http://127.0.0.1:{http_port}/.well-known/acme-challenge/nope",
            headers={"Connection": "close"}, timeout=10)
        self.assertEqual(missing.status_code, 404)

        # Nothing to do 12 hours later; 29 days before expiry the 12-hour check renews.
        clock.advance(acme.CHECK_INTERVAL)
        yield service.pending()
        self.assertEqual(root.components["acme_status"]()[0]["serial"], status["serial"])
        not_after = datetime.datetime.fromisoformat(status["not_after"]).timestamp()
        clock.advance(not_after - 29 * 86400 - clock.seconds())
        yield service.pending()
        renewed = root.components["acme_status"]()[0]
        self.assertIsNone(renewed["last_error"])
        self.assertNotEqual(renewed["serial"], status["serial"])
        second = yield threads.deferToThread(serials)
        self.assertEqual(set(second), {int(renewed["serial"], 16)},
                         "SMTP, IMAP and HTTPS serve the renewed certificate without a restart")

        code, text = tls_status(config.path)
        self.assertEqual(code, 0, text)
        self.assertIn(HOST, text)
        self.assertIn("Pebble Intermediate", text)
        self.assertIn("last success", text)


class DNS01Tests(unittest.TestCase):
    timeout = 180

    def settings(self, directory: str, ca: pebble.Pebble, names: tuple[str, ...],
                 **changes: Any) -> acme.ACMESettings:
        hook = os.path.join(directory, "hook.sh")
        with open(hook, "w", encoding="utf-8") as handle:
            handle.write(f"#!/bin/sh\nCHALLTESTSRV_API={ca.api} exec {sys.executable} "
                         f'{pebble.HOOK} "$@"\n')
        os.chmod(hook, 0o755)
        cache = os.path.join(directory, "acme")
        acme.ensure_placeholder(cache, "localhost", datetime.datetime.now(datetime.timezone.utc))
        values: dict[str, Any] = dict(
            mode="dns01", cache_dir=cache, directory=ca.directory_url, ca_file=ca.ca_file,
            names=names, dns_provider="hook", dns_hook=hook, dns_primary=ca.dns,
            propagation_timeout=30.0)
        values.update(changes)
        return acme.ACMESettings(**values)

    @defer.inlineCallbacks
    def test_wildcard_through_the_hook_provider_with_rejected_nonces(self) -> Any:
        _skip_without_pebble()
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        (unused_http,) = free_ports(1)
        # Half the valid nonces refused: the library alone retries once, we keep going.
        ca = pebble.Pebble(os.path.join(directory, "pebble"), unused_http,
                           nonce_reject=50).start()
        self.addCleanup(ca.stop)
        settings = self.settings(directory, ca, ("example.test", "*.example.test"))
        changes: list[int] = []
        service = acme.ACMEService(settings, reactor=reactor, clock=task.Clock(),
                                   on_change=lambda: changes.append(1))
        service.startService()
        self.addCleanup(service.stopService)
        yield service.pending()
        status = service.certificate_status()[0]
        self.assertIsNone(status["last_error"], ca.logs()[-3000:])
        self.assertEqual(changes, [1])
        self.assertGreater(status["bad_nonce_retries"], 0)
        with open(service.cert_path, "rb") as handle:
            chain = x509.load_pem_x509_certificates(handle.read())
        names = chain[0].extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        self.assertEqual(sorted(names), ["*.example.test", "example.test"])
        # The hook removed its records once the order was done.
        reply = yield threads.deferToThread(
            requests.post, f"{ca.api}/clear-txt", json={"host": "_acme-challenge.example.test."},
            timeout=10)
        self.assertEqual(reply.status_code, 200)

    @defer.inlineCallbacks
    def test_whole_server_serves_the_wildcard_to_any_name_of_the_domain(self) -> Any:
        """TLS_MODE = dns01 through makeService: the wildcard reaches IMAP and SMTP clients
        asking for different names, without a restart."""
        _skip_without_pebble()
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        unused_http, smtp_port, imaps_port = free_ports(3)
        ca = pebble.Pebble(os.path.join(directory, "pebble"), unused_http,
                           taken=(smtp_port, imaps_port)).start()
        self.addCleanup(ca.stop)
        hook = self.settings(directory, ca, ()).dns_hook
        config = make_config(os.path.join(directory, "server"), TLS_MODE="dns01",
                             HOSTNAME="mail.example.test",
                             ACME_DOMAINS="example.test, *.example.test",
                             ACME_DNS_PROVIDER="hook", ACME_DNS_HOOK=hook,
                             DNS_PRIMARY=ca.dns, ACME_DIRECTORY=ca.directory_url,
                             ACME_CA_FILE=ca.ca_file, SMTP_PORT=smtp_port,
                             IMAPS_PORT=imaps_port)
        root = makeService(config, reactor=reactor, clock=task.Clock())
        root.privilegedStartService()
        root.startService()
        self.addCleanup(root.stopService)
        yield root.getServiceNamed("acme").pending()
        status = root.components["acme_status"]()[0]
        self.assertIsNone(status["last_error"], ca.logs()[-3000:])
        context = yield threads.deferToThread(ca.client_context)
        expected = int(status["serial"], 16)
        for name in ("imap.example.test", "mail.example.test"):
            got = yield threads.deferToThread(imap_serial, imaps_port, context, name)
            self.assertEqual(got, expected, name)
        got = yield threads.deferToThread(smtp_serial, smtp_port, context, "mx.example.test")
        self.assertEqual(got, expected)

    @defer.inlineCallbacks
    def test_a_failing_hook_is_reported_and_retried_with_backoff(self) -> Any:
        _skip_without_pebble()
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        (unused_http,) = free_ports(1)
        ca = pebble.Pebble(os.path.join(directory, "pebble"), unused_http).start()
        self.addCleanup(ca.stop)
        failing = os.path.join(directory, "failing.sh")
        with open(failing, "w", encoding="utf-8") as handle:
            handle.write('#!/bin/sh\necho "token for $2 is $3"\nexit 3\n')
        os.chmod(failing, 0o755)
        settings = self.settings(directory, ca, ("example.test",), dns_hook=failing)
        clock = task.Clock()
        clock.advance(1_800_000_000)
        service = acme.ACMEService(settings, reactor=reactor, clock=clock, on_change=lambda: None)
        logged: list[dict[str, Any]] = []
        from twisted.logger import globalLogPublisher
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        service.startService()
        self.addCleanup(service.stopService)
        yield service.pending()
        status = service.certificate_status()[0]
        self.assertIn("ACME_DNS_HOOK add _acme-challenge.example.test: exit status 3",
                      status["last_error"])
        self.assertEqual(status["failures"], 1)
        hook_lines = [e.get("output", "") for e in logged if "output" in e]
        self.assertTrue(hook_lines and all("[redacted]" in line for line in hook_lines),
                        hook_lines)
        self.assertEqual(status["next_check"], acme._iso(1_800_000_000 + acme.BACKOFF[0]))


class HTTP01FailureTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_challenge_not_served_is_retried_with_backoff_and_shown_by_tls_status(self) -> Any:
        _skip_without_pebble()
        directory = os.path.abspath(self.mktemp())
        # pebble's VA asks a port where nothing listens; ours is elsewhere.
        (nothing_listens, smtp_port, http_port) = free_ports(3)
        ca = pebble.Pebble(os.path.join(directory, "pebble"), nothing_listens,
                           taken=(smtp_port, http_port)).start()
        self.addCleanup(ca.stop)
        config = make_config_file(
            os.path.join(directory, "server"), TLS_MODE="http01", HOSTNAME=HOST,
            ACME_DIRECTORY=ca.directory_url, ACME_CA_FILE=ca.ca_file, SMTP_PORT=smtp_port,
            HTTP_PORT=http_port)
        clock = task.Clock()
        clock.advance(1_800_000_000)
        root = makeService(config, reactor=reactor, clock=clock)
        service = root.getServiceNamed("acme")
        root.privilegedStartService()
        root.startService()
        self.addCleanup(root.stopService)
        yield service.pending()
        first = root.components["acme_status"]()[0]
        self.assertIn("validation failed", first["last_error"])
        self.assertIn(HOST, first["last_error"])
        self.assertEqual(first["failures"], 1)
        self.assertTrue(first["placeholder"])
        self.assertEqual(first["next_check"], acme._iso(clock.seconds() + acme.BACKOFF[0]))

        clock.advance(acme.BACKOFF[0])          # the retry, which fails again: longer wait
        yield service.pending()
        second = root.components["acme_status"]()[0]
        self.assertEqual(second["failures"], 2)
        self.assertEqual(second["next_check"], acme._iso(clock.seconds() + acme.BACKOFF[1]))

        # Meanwhile the listeners serve the placeholder (STARTTLS still works).
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        serial = yield threads.deferToThread(smtp_serial, smtp_port, context)
        self.assertEqual(format(serial, "x"), second["serial"])

        code, text = tls_status(config.path)
        self.assertEqual(code, 0, text)
        self.assertIn("last error:   validation failed", text)
        self.assertIn("2 failed in a row", text)
        self.assertIn("self-signed placeholder", text)
        out = io.StringIO()
        cli_main(["--config", config.path, "tls", "status", "--json"], stdout=out)
        entries = json.loads(out.getvalue())
        self.assertEqual(entries[0]["failures"], 2)


class HTTPPortTests(unittest.TestCase):
    """The HTTP_PORT resource on its own: tokens served from the store, nothing else."""

    def request(self, path: bytes, host: bytes = b"mail.example.test") -> Any:
        from twisted.web.test.requesthelper import DummyRequest

        request = DummyRequest(path.lstrip(b"/").split(b"/"))
        request.path = path
        request.uri = path
        request.requestHeaders.setRawHeaders(b"host", [host])
        request.getRequestHostname = lambda: host.split(b":")[0]  # type: ignore[method-assign]
        return request

    def test_token_served_then_gone(self) -> None:
        store = http01.ChallengeStore()
        store.add("tok-1", "tok-1.thumbprint")
        page = http01.HTTPPort(store, 443)
        request = self.request(b"/.well-known/acme-challenge/tok-1")
        self.assertEqual(page.render(request), b"tok-1.thumbprint")
        store.remove("tok-1")
        request = self.request(b"/.well-known/acme-challenge/tok-1")
        page.render(request)
        self.assertEqual(request.responseCode, 404)

    def test_redirect_omits_the_default_port(self) -> None:
        page = http01.HTTPPort(None, 443)
        request = self.request(b"/login?next=/")
        page.render(request)
        self.assertEqual(request.responseCode, 301)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"location"),
                         [b"https://mail.example.test/login?next=/"])
