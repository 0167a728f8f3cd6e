"""makeService: wiring, start-up errors, health endpoint, draining on stop."""

from __future__ import annotations

import json
import socket
import urllib.request
from typing import Any

from twisted.internet import defer, protocol, reactor, threads
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial import unittest
from zope.interface import implementer

from mailgosend.errors import StartupError
from mailgosend.listeners import IDrainable, ListenerService, bind_error_message
from mailgosend.service import makeService
from tests.support.config import make_config
from tests.support.net import free_port


def _fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class ServiceTests(unittest.TestCase):
    def start(self, **values: Any) -> Any:
        config = make_config(self.mktemp(), **values)
        root = makeService(config, reactor=reactor)
        root.privilegedStartService()
        root.startService()
        self.addCleanup(lambda: root.stopService() if root.running else None)
        return root

    @defer.inlineCallbacks
    def test_admin_port_serves_health_with_security_headers(self):  # type: ignore[no-untyped-def]
        port = free_port()
        self.start(ADMIN_PORT=port)
        status, headers, body = yield threads.deferToThread(
            _fetch, f"http://127.0.0.1:{port}/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["status"], "ok")
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        self.assertIn("default-src 'none'", headers["Content-Security-Policy"])
        status, _, _ = yield threads.deferToThread(_fetch, f"http://127.0.0.1:{port}/nothing")
        self.assertEqual(status, 404)

    @defer.inlineCallbacks
    def test_every_listening_address_is_logged(self):  # type: ignore[no-untyped-def]
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        port = free_port()
        root = self.start(ADMIN_PORT=port)
        lines = [e for e in events if e.get("log_format", "").endswith("listening on {host}:{port} ({kind})")]
        self.assertEqual([(e["name"], e["host"], e["port"]) for e in lines],
                         [("admin", "127.0.0.1", port)])
        yield root.stopService()

    @defer.inlineCallbacks
    def test_stop_closes_the_port_and_the_database(self):  # type: ignore[no-untyped-def]
        port = free_port()
        root = self.start(ADMIN_PORT=port)
        yield root.stopService()
        with socket.socket() as sock:
            self.assertNotEqual(sock.connect_ex(("127.0.0.1", port)), 0)
        self.assertFalse(root.runner.running)

    def test_first_start_logs_once_that_a_new_encryption_key_must_be_backed_up(self) -> None:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        directory = self.mktemp()
        config = make_config(directory)
        makeService(config, reactor=reactor).runner.engine.dispose()
        makeService(make_config(directory), reactor=reactor).runner.engine.dispose()
        notices = [e for e in events if "NEW ENCRYPTION_KEY" in str(e.get("notice", ""))]
        self.assertEqual(len(notices), 1)
        self.assertEqual(notices[0]["log_level"], LogLevel.warn)
        self.assertIn(config.path, notices[0]["notice"])

    def test_port_in_use_fails_with_one_line_naming_the_key(self) -> None:
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        self.addCleanup(blocker.close)
        config = make_config(self.mktemp(), ADMIN_PORT=blocker.getsockname()[1])
        root = makeService(config, reactor=reactor)
        with self.assertRaises(StartupError) as caught:
            root.privilegedStartService()
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertIn("ADMIN_PORT", message)
        self.assertIn("already in use", message)
        # Which file and profile the port came from: --profile does not change an existing file.
        self.assertIn(f"settings from {config.path}, generated with PROFILE = local", message)

    def test_web_tls_without_a_certificate_refuses_to_start_and_says_why(self) -> None:
        config = make_config(self.mktemp(), WEB_PORT=free_port(), WEB_TLS="true",
                             TLS_MODE="off")
        with self.assertRaises(StartupError) as caught:
            makeService(config, reactor=reactor)
        self.assertIn("WEB_TLS = true needs a certificate", str(caught.exception))
        self.assertIn("TLS_MODE = dns01, http01, file or selfsigned", str(caught.exception))

    def test_bind_error_messages_name_key_and_fix(self) -> None:
        import errno

        cases = [
            (errno.EACCES, 25, ["SMTP_PORT", "CAP_NET_BIND_SERVICE", "--uid", ">= 1024"]),
            (errno.EADDRINUSE, 2525, ["SMTP_PORT", "already in use"]),
            (errno.EADDRNOTAVAIL, 2525, ["SMTP_BIND", "not an address of this machine"]),
        ]
        for code, port, needles in cases:
            message = bind_error_message("smtp", "SMTP_PORT", "SMTP_BIND", "192.0.2.1", port,
                                         OSError(code, "x"))
            for needle in needles:
                self.assertIn(needle, message, msg=(code, message))

    def test_changed_encryption_key_refuses_to_start(self) -> None:
        directory = self.mktemp()
        config = make_config(directory)
        makeService(config, reactor=reactor).runner.engine.dispose()
        other = config.replace(ENCRYPTION_KEY=bytes(32))
        with self.assertRaises(StartupError) as caught:
            makeService(other, reactor=reactor)
        self.assertIn("ENCRYPTION_KEY does not match", str(caught.exception))
        self.assertNotIn(config["ENCRYPTION_KEY"].hex(), str(caught.exception))
        rotated = other.replace(ENCRYPTION_KEYS_OLD=(config["ENCRYPTION_KEY"],))
        makeService(rotated, reactor=reactor).runner.engine.dispose()

    def test_unreachable_postgres_fails_naming_db_dsn_without_password(self) -> None:
        port = free_port()
        config = make_config(self.mktemp(), DB_DRIVER="postgres",
                             DB_DSN=f"postgresql://mg:hunter2secret@127.0.0.1:{port}/mg")
        with self.assertRaises(StartupError) as caught:
            makeService(config, reactor=reactor)
        self.assertIn("cannot open the database (DB_DSN = postgresql://mg:***@127.0.0.1",
                      str(caught.exception))
        self.assertNotIn("hunter2secret", str(caught.exception))


class _Hold(protocol.Protocol):
    def connectionMade(self) -> None:
        self.factory.open.add(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.open.discard(self)


@implementer(IDrainable)
class _HoldFactory(protocol.Factory):
    protocol = _Hold

    def __init__(self) -> None:
        self.open: set[_Hold] = set()

    def open_connections(self) -> Any:
        return self.open


class DrainTests(unittest.TestCase):
    def listener(self, grace: float) -> tuple[ListenerService, _HoldFactory]:
        factory = _HoldFactory()
        svc = ListenerService("test", "TEST_PORT", "TEST_BIND", "127.0.0.1", 0, factory,
                              reactor, grace_seconds=grace)
        svc.privilegedStartService()
        svc.startService()
        return svc, factory

    @defer.inlineCallbacks
    def connect(self, svc: ListenerService, factory: _HoldFactory):  # type: ignore[no-untyped-def]
        sock = socket.create_connection(("127.0.0.1", svc.bound_port))
        self.addCleanup(sock.close)
        while not factory.open:
            yield threads.deferToThread(lambda: None)
        return sock

    @defer.inlineCallbacks
    def test_stop_waits_for_sessions_to_finish(self):  # type: ignore[no-untyped-def]
        svc, factory = self.listener(grace=30)
        sock = yield self.connect(svc, factory)
        stopped = svc.stopService()
        for _ in range(5):
            yield threads.deferToThread(lambda: None)
        self.assertFalse(stopped.called, "stopService returned while a session was open")
        sock.close()
        yield stopped
        self.assertEqual(factory.open, set())

    @defer.inlineCallbacks
    def test_sessions_still_open_after_grace_are_closed(self):  # type: ignore[no-untyped-def]
        svc, factory = self.listener(grace=0.2)
        yield self.connect(svc, factory)
        yield svc.stopService()
        while factory.open:
            yield threads.deferToThread(lambda: None)
        self.assertEqual(factory.open, set())


class ReloadTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_reload_swaps_the_certificate_for_new_connections(self):  # type: ignore[no-untyped-def]
        import os
        import shutil

        from tests.support.certs import client_context, make_ca, make_cert

        directory = os.path.abspath(self.mktemp())
        ca = make_ca(os.path.join(directory, "pki"))
        cert, key = make_cert(os.path.join(directory, "pki"), ["localhost"], ca=ca, name="one")
        port = free_port()
        config = make_config(os.path.join(directory, "server"), TLS_MODE="file",
                             TLS_CERT=cert, TLS_KEY=key, SMTPS_PORT=port)
        root = makeService(config, reactor=reactor)
        root.privilegedStartService()
        root.startService()
        self.addCleanup(root.stopService)

        def serial() -> int:
            context = client_context(ca)
            with socket.create_connection(("127.0.0.1", port), 10) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    der = tls.getpeercert(binary_form=True)
            from cryptography import x509
            return x509.load_der_x509_certificate(der).serial_number

        before = yield threads.deferToThread(serial)
        new_cert, new_key = make_cert(os.path.join(directory, "pki"), ["localhost"], ca=ca,
                                      name="two")
        shutil.copy(new_cert, cert)
        shutil.copy(new_key, key)
        root.reload()                       # what SIGHUP does
        after = yield threads.deferToThread(serial)
        self.assertNotEqual(before, after)


class PerServiceCertificateTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_smtp_tls_cert_overrides_the_default_for_smtp_listeners(self):  # type: ignore[no-untyped-def]
        import os

        from cryptography import x509

        from mailgosend.config import ConfigError
        from tests.support.certs import client_context, make_ca, make_cert

        directory = os.path.abspath(self.mktemp())
        pki = os.path.join(directory, "pki")
        ca = make_ca(pki)
        default = make_cert(pki, ["localhost"], ca=ca, name="default")
        smtp = make_cert(pki, ["localhost"], ca=ca, name="smtp")
        port = free_port()
        config = make_config(os.path.join(directory, "server"), TLS_MODE="file",
                             TLS_CERT=default[0], TLS_KEY=default[1], SMTP_TLS_CERT=smtp[0],
                             SMTP_TLS_KEY=smtp[1], SMTPS_PORT=port)
        root = makeService(config, reactor=reactor)
        root.privilegedStartService()
        root.startService()
        self.addCleanup(root.stopService)

        def served() -> bytes:
            with socket.create_connection(("127.0.0.1", port), 10) as raw:
                with client_context(ca).wrap_socket(raw, server_hostname="localhost") as tls:
                    return tls.getpeercert(binary_form=True)
        der = yield threads.deferToThread(served)
        with open(smtp[0], "rb") as handle:
            expected = x509.load_pem_x509_certificate(handle.read())
        self.assertEqual(x509.load_der_x509_certificate(der).serial_number,
                         expected.serial_number)
        with self.assertRaises(ConfigError) as caught:
            make_config(os.path.join(directory, "other"), TLS_MODE="file", TLS_CERT=default[0],
                        TLS_KEY=default[1], SMTP_TLS_CERT=smtp[0])
        self.assertIn("SMTP_TLS_CERT is set but SMTP_TLS_KEY is not", str(caught.exception))


class SocketOptionTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_mail_protocols_disable_nagle(self):  # type: ignore[no-untyped-def]
        from tests.support.mailserver import MailServer

        server = MailServer(self.mktemp())
        self.addCleanup(server.stop)
        yield server.start()
        def connect(port: int) -> socket.socket:
            sock = socket.create_connection(("127.0.0.1", port), 10)
            sock.recv(1024)                       # the greeting: the session exists
            return sock
        for name in ("SMTP", "IMAP", "POP3"):
            sock = yield threads.deferToThread(connect, server.ports[name])
            self.addCleanup(sock.close)
        seen = {}
        for listener in server.root.listeners:
            for proto in listener.factory.open_connections():
                tcp = getattr(proto.transport, "socket", None)
                if tcp is not None:
                    seen[listener.name] = tcp.getsockopt(socket.IPPROTO_TCP,
                                                         socket.TCP_NODELAY)
        self.assertEqual(seen, {"smtp": 1, "imap": 1, "pop3": 1})
