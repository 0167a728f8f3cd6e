"""Tests for mailgosend.tls.context (and the pure matching in mailgosend.tls.sni).

Handshake tests run a line protocol behind real listeners on 127.0.0.1 port 0, reached by Python's
``ssl`` module in a thread, both as implicit TLS (SSL4ServerEndpoint) and as STARTTLS over a
plaintext listener, the way SMTP/IMAP will use ServerTLS.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import warnings
from dataclasses import dataclass
from typing import Protocol, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from twisted.internet import reactor
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IOpenSSLContextFactory, IOpenSSLServerConnectionCreator
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.protocols.basic import LineReceiver
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from mailgosend.tls import sni
from mailgosend.tls.context import (
    ServerTLS,
    TLSConfigError,
    build_server_tls,
    load_certificate_pair,
    tls_summary,
)
from tests.support.certs import CA, certificate_from_der, client_context, make_ca, make_cert

_CLIENT_TIMEOUT = 20  # seconds; only so a broken server fails the test instead of hanging it
_TLS12 = ssl.TLSVersion.TLSv1_2
_HANDSHAKE_FAILURE = "SSLV3_ALERT_HANDSHAKE_FAILURE"
_PROTOCOL_VERSION = "TLSV1_ALERT_PROTOCOL_VERSION"

Pair = tuple[str, str]


class _StartsTLS(Protocol):
    """ITLSTransport as mypy can see it (zope interfaces have no self in their signatures)."""

    def startTLS(self, contextFactory: object) -> None: ...


class _LineService(LineReceiver):
    """SUMMARY → the server's tls_summary of this connection; STARTTLS → upgrade; else echo."""

    def lineReceived(self, line: bytes) -> None:
        if line == b"STARTTLS":
            # As ESMTP does: the reply goes out in plaintext, then the TLS layer takes over.
            self.sendLine(b"READY")
            cast(_StartsTLS, self.transport).startTLS(self.factory.server_tls)
        elif line == b"SUMMARY":
            self.sendLine(tls_summary(self.transport).encode("ascii") or b"-")
        else:
            self.sendLine(b"ECHO " + line)


@dataclass
class _Seen:
    """What a client observed in one connection."""

    version: str
    cipher: str
    certificate: x509.Certificate
    server_summary: str


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"connection closed after {data!r}")
        data += chunk
    return data[:-2]


def _request(sock: socket.socket, line: bytes) -> bytes:
    sock.sendall(line + b"\r\n")
    return _read_line(sock)


def _open(
    port: int, context: ssl.SSLContext, server_hostname: str | None, starttls: bool = False
) -> ssl.SSLSocket:
    """Blocking client: connect, optionally STARTTLS, complete the handshake (runs in a thread)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=_CLIENT_TIMEOUT)
    try:
        if starttls and _request(raw, b"STARTTLS") != b"READY":
            raise ConnectionError("server did not accept STARTTLS")
        return context.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise


def _session(
    port: int, context: ssl.SSLContext, server_hostname: str | None, starttls: bool = False
) -> _Seen:
    with _open(port, context, server_hostname, starttls) as tls:
        cipher = tls.cipher()
        der = tls.getpeercert(binary_form=True)
        assert cipher is not None and der is not None
        summary = _request(tls, b"SUMMARY").decode("ascii")
        return _Seen(str(tls.version()), cipher[0], certificate_from_der(der), summary)


def _resumed(port: int, context: ssl.SSLContext, server_hostname: str) -> tuple[bool, bool]:
    """Connect twice, offering the first connection's session the second time."""
    with _open(port, context, server_hostname) as first:
        _request(first, b"SUMMARY")  # TLS 1.3 tickets arrive after the handshake
        session = first.session
        first_reused = first.session_reused
    raw = socket.create_connection(("127.0.0.1", port), timeout=_CLIENT_TIMEOUT)
    with context.wrap_socket(raw, server_hostname=server_hostname, session=session) as second:
        _request(second, b"SUMMARY")
        return first_reused, second.session_reused


def _serial(cert_path: str) -> int:
    with open(cert_path, "rb") as handle:
        return x509.load_pem_x509_certificates(handle.read())[0].serial_number


def _any_name_context(ca: CA) -> ssl.SSLContext:
    """Chain still verified against the CA, host name not: for unknown or absent SNI names."""
    context = client_context(ca)
    context.check_hostname = False
    return context


class _ListenerMixin:
    """Starts the line service behind a ServerTLS, implicit or STARTTLS, on 127.0.0.1 port 0."""

    async def listen(self, server_tls: object, starttls: bool = False) -> int:
        factory = Factory.forProtocol(_LineService)
        factory.server_tls = server_tls  # type: ignore[attr-defined]
        if starttls:
            endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
            port = await endpoint.listen(factory)
        else:
            tls_endpoint = SSL4ServerEndpoint(reactor, 0, server_tls, interface="127.0.0.1")
            port = await tls_endpoint.listen(factory)
        self.addCleanup(port.stopListening)  # type: ignore[attr-defined]
        return port.getHost().port


class PolicyTests(_ListenerMixin, unittest.TestCase):
    """Protocol versions, suites and groups that are offered and refused."""

    def setUp(self) -> None:
        self.directory = self.mktemp()
        self.ca = make_ca(self.directory)
        self.pair = make_cert(self.directory, ["a.test", "127.0.0.1"], self.ca)
        self.rsa_pair = make_cert(self.directory, ["a.test"], self.ca, key_type="rsa", name="rsa")

    async def _handshake(
        self, client: ssl.SSLContext, pair: Pair | None = None, min_version: str = "1.2"
    ) -> _Seen:
        port = await self.listen(build_server_tls(*(pair or self.pair), min_version=min_version))
        return await deferToThread(_session, port, client, "a.test")

    async def _refusal(
        self, client: ssl.SSLContext, pair: Pair | None = None, min_version: str = "1.2"
    ) -> str:
        """The reason the client's handshake failed with: the alert the server sent."""
        try:
            seen = await self._handshake(client, pair, min_version)
        except ssl.SSLError as error:
            return str(error.reason)
        self.fail(f"handshake unexpectedly succeeded: {seen.version} {seen.cipher}")

    async def test_tls13_handshake_verifies_chain_against_test_ca(self) -> None:
        seen = await self._handshake(client_context(self.ca))
        self.assertEqual(seen.version, "TLSv1.3")
        self.assertEqual(seen.certificate.serial_number, _serial(self.pair[0]))

    async def test_tls12_handshake_uses_ecdhe_with_aead(self) -> None:
        for pair in (self.pair, self.rsa_pair):
            seen = await self._handshake(client_context(self.ca, maximum=_TLS12), pair)
            self.assertEqual(seen.version, "TLSv1.2")
            self.assertTrue(seen.cipher.startswith("ECDHE-"), seen.cipher)
            aead = ("GCM-SHA256", "GCM-SHA384", "CHACHA20-POLY1305")
            self.assertTrue(seen.cipher.endswith(aead), seen.cipher)

    async def test_certificate_chain_with_intermediate_is_sent(self) -> None:
        intermediate = make_ca(self.directory, "intermediate", parent=self.ca)
        pair = make_cert(self.directory, ["a.test"], intermediate, name="via-intermediate")
        # The client trusts only the root: verification needs the intermediate from the server.
        seen = await self._handshake(client_context(intermediate), pair)
        self.assertEqual(seen.certificate.serial_number, _serial(pair[0]))

    async def test_tls11_client_is_refused(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # ssl deprecates TLSv1 constants
            client = client_context(
                self.ca, minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1
            )
        client.set_ciphers("DEFAULT:@SECLEVEL=0")  # so the client really offers TLS 1.1
        self.assertEqual(await self._refusal(client), _PROTOCOL_VERSION)

    async def test_min_version_13_refuses_tls12_client(self) -> None:
        client = client_context(self.ca, maximum=_TLS12)
        self.assertEqual(await self._refusal(client, min_version="1.3"), _PROTOCOL_VERSION)

    async def test_tls12_rsa_key_exchange_suite_is_refused(self) -> None:
        # RSA key exchange needs an RSA certificate; OpenSSL's defaults would accept it.
        client = client_context(self.ca, maximum=_TLS12)
        client.set_ciphers("AES128-SHA")
        self.assertEqual(await self._refusal(client, self.rsa_pair), _HANDSHAKE_FAILURE)

    async def test_tls12_ecdhe_cbc_suite_is_refused(self) -> None:
        client = client_context(self.ca, maximum=_TLS12)
        client.set_ciphers("ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES128-SHA")
        self.assertEqual(await self._refusal(client, self.rsa_pair), _HANDSHAKE_FAILURE)

    async def test_server_cipher_preference_wins_over_client_order(self) -> None:
        client = client_context(self.ca, maximum=_TLS12)
        client.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384")
        seen = await self._handshake(client)
        self.assertEqual(seen.cipher, "ECDHE-ECDSA-AES256-GCM-SHA384")

    async def test_client_offering_only_p521_is_refused(self) -> None:
        client = client_context(self.ca)
        client.set_ecdh_curve("secp521r1")  # OpenSSL's own defaults would accept it
        self.assertEqual(await self._refusal(client), _HANDSHAKE_FAILURE)

    async def test_client_offering_only_p384_is_accepted(self) -> None:
        client = client_context(self.ca)
        client.set_ecdh_curve("secp384r1")
        seen = await self._handshake(client)
        self.assertEqual(seen.version, "TLSv1.3")

    async def test_tls_summary_reports_negotiated_version_and_cipher(self) -> None:
        for maximum in (_TLS12, ssl.TLSVersion.TLSv1_3):
            seen = await self._handshake(client_context(self.ca, maximum=maximum))
            self.assertEqual(seen.server_summary, f"{seen.version} {seen.cipher}")

    async def test_tls_summary_is_empty_without_tls(self) -> None:
        port = await self.listen(build_server_tls(*self.pair), starttls=True)

        def plain() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=_CLIENT_TIMEOUT) as sock:
                return _request(sock, b"SUMMARY")

        self.assertEqual(await deferToThread(plain), b"-")

    async def test_sessions_resume_on_default_and_sni_certificates(self) -> None:
        b_pair = make_cert(self.directory, ["b.test"], self.ca, name="b")
        port = await self.listen(build_server_tls(*self.pair, extra={"b.test": b_pair}))
        for maximum in (_TLS12, ssl.TLSVersion.TLSv1_3):
            for name in ("a.test", "b.test"):
                client = client_context(self.ca, maximum=maximum)
                reused = await deferToThread(_resumed, port, client, name)
                self.assertEqual(reused, (False, True), (maximum, name))

    def test_invalid_min_version_is_refused(self) -> None:
        self.assertRaises(ValueError, build_server_tls, *self.pair, min_version="1.1")


class StartTLSAndInterfaceTests(_ListenerMixin, unittest.TestCase):
    """One ServerTLS works for implicit TLS, for startTLS, and for getContext() consumers."""

    def setUp(self) -> None:
        self.directory = self.mktemp()
        self.ca = make_ca(self.directory)
        self.pair = make_cert(self.directory, ["mx.a.test"], self.ca, name="a")
        self.b_pair = make_cert(self.directory, ["mx.b.test"], self.ca, name="b")
        self.server_tls = build_server_tls(*self.pair, extra={"mx.b.test": self.b_pair})

    def test_provides_both_twisted_context_interfaces(self) -> None:
        verifyObject(IOpenSSLServerConnectionCreator, self.server_tls)
        verifyObject(IOpenSSLContextFactory, self.server_tls)
        # twisted.mail's ESMTP and IMAP4Server offer STARTTLS only `if self.ctx`.
        self.assertTrue(self.server_tls)

    async def test_starttls_upgrade_serves_certificate_by_sni(self) -> None:
        port = await self.listen(self.server_tls, starttls=True)
        for name, pair in (("mx.a.test", self.pair), ("mx.b.test", self.b_pair)):
            seen = await deferToThread(_session, port, client_context(self.ca), name, True)
            self.assertEqual(seen.certificate.serial_number, _serial(pair[0]))
            self.assertEqual(seen.server_summary, f"{seen.version} {seen.cipher}")

    async def test_getcontext_only_consumer_gets_sni_and_reloads(self) -> None:
        @implementer(IOpenSSLContextFactory)
        class OldStyle:
            def __init__(self, wrapped: ServerTLS) -> None:
                self.wrapped = wrapped

            def getContext(self) -> object:
                return self.wrapped.getContext()

        port = await self.listen(OldStyle(self.server_tls))
        seen = await deferToThread(_session, port, client_context(self.ca), "mx.b.test")
        self.assertEqual(seen.certificate.serial_number, _serial(self.b_pair[0]))
        renewed = make_cert(self.directory, ["mx.a.test"], self.ca, name="a")
        self.server_tls.reload()
        seen = await deferToThread(_session, port, client_context(self.ca), "mx.a.test")
        self.assertEqual(seen.certificate.serial_number, _serial(renewed[0]))


class SNITests(_ListenerMixin, unittest.TestCase):
    """The certificate a client sees depends on the server name it sends."""

    def setUp(self) -> None:
        self.directory = self.mktemp()
        self.ca = make_ca(self.directory)
        self.default = make_cert(self.directory, ["mail.default.test"], self.ca, name="default")
        self.a = make_cert(self.directory, ["a.test"], self.ca, name="a", key_type="rsa")
        self.b = make_cert(self.directory, ["b.test"], self.ca, name="b")
        self.wild = make_cert(self.directory, ["*.wild.test"], self.ca, name="wild")
        self.exact = make_cert(self.directory, ["exact.wild.test"], self.ca, name="exact")
        extra = {
            "a.test": self.a,
            "B.Test.": self.b,
            "*.wild.test": self.wild,
            "exact.wild.test": self.exact,
        }
        self.server_tls = build_server_tls(*self.default, extra=extra)

    async def _serial_for(self, name: str | None, verify_name: bool = True) -> int:
        port = await self.listen(self.server_tls)
        client = client_context(self.ca) if verify_name else _any_name_context(self.ca)
        seen = await deferToThread(_session, port, client, name)
        return seen.certificate.serial_number

    async def test_each_configured_name_gets_its_certificate(self) -> None:
        cases = [
            ("a.test", self.a),
            ("b.test", self.b),
            ("x.wild.test", self.wild),
            ("exact.wild.test", self.exact),
            ("mail.default.test", self.default),
        ]
        for name, pair in cases:
            self.assertEqual(await self._serial_for(name), _serial(pair[0]), name)

    async def test_unknown_and_absent_names_get_default(self) -> None:
        default = _serial(self.default[0])
        for name in ("unknown.test", "a.b.wild.test", "wild.test", None):
            self.assertEqual(await self._serial_for(name, verify_name=False), default, name)

    def test_certificate_for_matches_what_clients_get(self) -> None:
        self.assertEqual(self.server_tls.certificate_for("X.Wild.Test.").cert_path, self.wild[0])
        self.assertEqual(self.server_tls.certificate_for(None).cert_path, self.default[0])

    def test_invalid_sni_name_is_a_config_error_naming_the_file(self) -> None:
        error = self.assertRaises(
            TLSConfigError, build_server_tls, *self.default, extra={"*.test": self.b}
        )
        self.assertIn(self.b[0], str(error))

    def test_name_not_covered_by_its_certificate_is_a_warning(self) -> None:
        found = build_server_tls(*self.default, extra={"c.test": self.b}).warnings
        self.assertTrue(any(self.b[0] in w and "c.test" in w for w in found), found)


class ReloadTests(_ListenerMixin, unittest.TestCase):
    """reload() swaps certificates for new connections only, and only when everything loads."""

    def setUp(self) -> None:
        self.directory = self.mktemp()
        self.ca = make_ca(self.directory)
        self.pair = make_cert(self.directory, ["a.test"], self.ca)
        self.b = make_cert(self.directory, ["b.test"], self.ca, name="b")
        self.server_tls = build_server_tls(*self.pair, extra={"b.test": self.b})
        self.first_serial = _serial(self.pair[0])

    async def _serial_now(self, port: int, name: str = "a.test") -> int:
        seen = await deferToThread(_session, port, client_context(self.ca), name)
        return seen.certificate.serial_number

    async def test_new_connections_see_new_certificate_and_open_ones_keep_working(self) -> None:
        port = await self.listen(self.server_tls)
        existing = await deferToThread(_open, port, client_context(self.ca), "a.test")
        self.addCleanup(existing.close)
        make_cert(self.directory, ["a.test"], self.ca)  # renewal: same paths, new key and serial
        self.assertEqual(self.server_tls.reload(), [])
        new_serial = await self._serial_now(port)
        self.assertEqual(new_serial, _serial(self.pair[0]))
        self.assertNotEqual(new_serial, self.first_serial)
        reply = await deferToThread(_request, existing, b"still here")
        self.assertEqual(reply, b"ECHO still here")
        der = existing.getpeercert(binary_form=True)
        assert der is not None
        self.assertEqual(certificate_from_der(der).serial_number, self.first_serial)

    async def test_mismatched_pair_is_reported_and_previous_certificate_kept(self) -> None:
        port = await self.listen(self.server_tls)
        other_cert, _ = make_cert(self.directory, ["a.test"], self.ca, name="other")
        os.replace(other_cert, self.pair[0])  # new certificate, old key: a half-done renewal
        error = self.assertRaises(TLSConfigError, self.server_tls.reload)
        self.assertIn(self.pair[0], str(error))
        self.assertIn("does not match", str(error))
        self.assertEqual(await self._serial_now(port), self.first_serial)

    async def test_broken_key_is_reported_and_previous_certificate_kept(self) -> None:
        port = await self.listen(self.server_tls)
        with open(self.pair[1], "wb") as handle:
            handle.write(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
        error = self.assertRaises(TLSConfigError, self.server_tls.reload)
        self.assertEqual(error.path, self.pair[1])
        self.assertEqual(await self._serial_now(port), self.first_serial)

    async def test_failure_of_one_sni_pair_keeps_every_previous_certificate(self) -> None:
        port = await self.listen(self.server_tls)
        make_cert(self.directory, ["a.test"], self.ca)  # the default renews fine...
        os.remove(self.b[1])  # ...but b.test's key is gone
        error = self.assertRaises(TLSConfigError, self.server_tls.reload)
        self.assertEqual(error.path, self.b[1])
        self.assertEqual(await self._serial_now(port), self.first_serial)

    def test_reload_returns_warnings_of_new_certificates(self) -> None:
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
        make_cert(self.directory, ["a.test"], self.ca, not_after=past)
        found = self.server_tls.reload()
        self.assertTrue(any(self.pair[0] in w and "expired" in w for w in found), found)
        self.assertEqual(self.server_tls.default_certificate.not_after.date(), past.date())


class LoadTests(unittest.TestCase):
    """load_certificate_pair: what loads, and errors that name the file and the problem."""

    def setUp(self) -> None:
        self.directory = self.mktemp()
        self.ca = make_ca(self.directory)
        names = ["Mail.Example.Test", "*.Example.Test", "127.0.0.1"]
        self.cert, self.key = make_cert(self.directory, names, self.ca)

    def _file(self, name: str, data: bytes) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, 0o600)
        return path

    def _read(self, path: str) -> bytes:
        with open(path, "rb") as handle:
            return handle.read()

    def _error(self, cert_path: str, key_path: str) -> TLSConfigError:
        return self.assertRaises(TLSConfigError, load_certificate_pair, cert_path, key_path)

    def test_loads_san_dns_names_in_lower_case_and_expiry(self) -> None:
        loaded = load_certificate_pair(self.cert, self.key)
        self.assertEqual(loaded.hostnames, ("mail.example.test", "*.example.test"))
        leaf = x509.load_pem_x509_certificate(self._read(self.cert))
        self.assertEqual(loaded.not_after, leaf.not_valid_after_utc)
        self.assertEqual(loaded.warnings, ())

    def test_combined_pem_with_key_and_chain_in_one_file_loads(self) -> None:
        combined = self._file("combined.pem", self._read(self.key) + self._read(self.cert))
        self.assertEqual(load_certificate_pair(combined, combined).serial, _serial(self.cert))

    def test_file_errors_name_the_path(self) -> None:
        missing = os.path.join(self.directory, "missing.pem")
        garbage = self._file("garbage.pem", b"this is not PEM\n")
        broken_cert = self._file(
            "broken.crt", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        cases = [
            ((missing, self.key), missing, "does not exist"),
            ((self.cert, missing), missing, "does not exist"),
            ((self.directory, self.key), self.directory, "directory"),
            ((self.cert, self.directory), self.directory, "directory"),
            ((garbage, self.key), garbage, "no PEM certificate"),
            ((self.cert, garbage), garbage, "no PEM private key"),
            ((self.key, self.key), self.key, "no PEM certificate"),
            ((self.cert, self.cert), self.cert, "no PEM private key"),
            ((broken_cert, self.key), broken_cert, "malformed"),
        ]
        for (cert_path, key_path), named, problem in cases:
            error = self._error(cert_path, key_path)
            self.assertEqual(error.path, named)
            self.assertIn(named, str(error))
            self.assertIn(problem, str(error))

    def test_key_not_matching_certificate_names_both_and_never_the_key(self) -> None:
        _, other_key = make_cert(self.directory, ["other.test"], self.ca, name="other")
        error = self._error(self.cert, other_key)
        self.assertIn(self.cert, str(error))
        self.assertIn(other_key, str(error))
        for line in self._read(other_key).splitlines()[1:-1]:
            self.assertNotIn(line.decode("ascii"), str(error))

    def test_chain_with_leaf_not_first_is_explained(self) -> None:
        intermediate = make_ca(self.directory, "intermediate", parent=self.ca)
        cert, key = make_cert(self.directory, ["a.test"], intermediate, name="leaf")
        leaf, issuer = x509.load_pem_x509_certificates(self._read(cert))
        pem = serialization.Encoding.PEM
        swapped = self._file("swapped.crt", issuer.public_bytes(pem) + leaf.public_bytes(pem))
        self.assertIn("must start with the certificate", str(self._error(swapped, key)))

    def test_encrypted_key_is_refused(self) -> None:
        key = serialization.load_pem_private_key(self._read(self.key), password=None)
        encrypted = self._file(
            "encrypted.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ),
        )
        error = self._error(self.cert, encrypted)
        self.assertIn(encrypted, str(error))
        self.assertIn("encrypted", str(error))

    def test_weak_and_unsupported_key_types_are_refused(self) -> None:
        cases: list[tuple[rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, str]] = [
            (rsa.generate_private_key(public_exponent=65537, key_size=1024), "at least 2048"),
            (ed25519.Ed25519PrivateKey.generate(), "use an RSA or EC key"),
        ]
        for key, problem in cases:
            data = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            path = self._file("odd.key", data)
            error = self._error(self.cert, path)
            self.assertEqual(error.path, path)
            self.assertIn(problem, str(error))

    def test_expired_certificate_loads_with_a_warning(self) -> None:
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
        cert, key = make_cert(self.directory, ["old.test"], self.ca, not_after=past, name="old")
        loaded = load_certificate_pair(cert, key)
        self.assertEqual(len(loaded.warnings), 1)
        self.assertIn(cert, loaded.warnings[0])
        self.assertIn("expired", loaded.warnings[0])

    def test_expiry_is_judged_by_the_injected_clock(self) -> None:
        clock = Clock()
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=60)
        clock.advance(later.timestamp())
        found = build_server_tls(self.cert, self.key, clock=clock).warnings
        self.assertTrue(any("expired" in w for w in found), found)

    def test_world_readable_key_is_a_warning(self) -> None:
        os.chmod(self.key, 0o644)
        loaded = load_certificate_pair(self.cert, self.key)
        self.assertEqual(len(loaded.warnings), 1)
        self.assertIn(self.key, loaded.warnings[0])

    def test_certificate_without_dns_names_is_a_warning(self) -> None:
        cert, key = make_cert(self.directory, ["127.0.0.1"], self.ca, name="ip-only")
        loaded = load_certificate_pair(cert, key)
        self.assertEqual(loaded.hostnames, ())
        self.assertIn("no DNS names", " ".join(loaded.warnings))

    def test_repr_never_shows_key_material(self) -> None:
        loaded = load_certificate_pair(self.cert, self.key)
        self.assertNotIn("PRIVATE", repr(loaded))
        self.assertNotIn(self._read(self.key).decode("ascii").splitlines()[1], repr(loaded))


class ServerNameMatchingTests(unittest.TestCase):
    """mailgosend.tls.sni: normalising, validating and matching names (RFC 6066, RFC 6125)."""

    def test_normalise_server_name(self) -> None:
        cases: list[tuple[bytes | str | None, str | None]] = [
            (b"Mail.Example.ORG", "mail.example.org"),
            ("mx.example.org.", "mx.example.org"),
            (b"xn--bcher-kva.example", "xn--bcher-kva.example"),
            (None, None),
            (b"", None),
            (b"127.0.0.1", None),
            (b"bad name.example", None),
            (b"-lead.example", None),
            ("b\u00fccher.example", None),
            (b"\xff.example", None),
            (b"a" * 64 + b".example", None),
        ]
        for raw, expected in cases:
            self.assertEqual(sni.normalise_server_name(raw), expected, raw)

    def test_validate_pattern(self) -> None:
        self.assertEqual(sni.validate_pattern("*.Example.COM."), "*.example.com")
        self.assertEqual(sni.validate_pattern("MX.example.com"), "mx.example.com")
        bad = ("*.com", "*", "mx*.example.com", "a.*.example.com", "**.example.com", "a b", "")
        for pattern in bad:
            self.assertRaises(ValueError, sni.validate_pattern, pattern)

    def test_select_prefers_exact_then_single_label_wildcard(self) -> None:
        table = {"a.example.com": "exact", "*.example.com": "wild", "example.com": "apex"}
        cases = [
            ("a.example.com", "exact"),
            ("b.example.com", "wild"),
            ("example.com", "apex"),
            ("x.b.example.com", None),
            ("com", None),
            ("other.test", None),
            (None, None),
        ]
        for name, expected in cases:
            self.assertEqual(sni.select(name, table), expected, name)

    def test_covers(self) -> None:
        cases = [
            (("mx.example.com",), "mx.example.com", True),
            (("*.example.com",), "mx.example.com", True),
            (("*.example.com",), "example.com", False),
            (("*.example.com",), "a.mx.example.com", False),
            (("*.example.com",), "*.example.com", True),
            (("mx.example.com",), "*.example.com", False),
        ]
        for names, name, expected in cases:
            self.assertEqual(sni.covers(names, name), expected, (names, name))
