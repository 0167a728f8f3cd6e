"""The one builder of server TLS contexts (DESIGN.md §7): policy, certificate loading, SNI, reload.

Policy, for every listener (SMTP 25/465/587, IMAP, POP3, HTTPS, DAV):

- TLS 1.2 minimum, 1.3 allowed and preferred (RFC 8996 deprecates 1.0/1.1; RFC 8314 §4.1 asks mail
  servers for TLS 1.2 or later); ``min_version="1.3"`` for listeners that can afford it.
- TLS 1.2 suites: ECDHE key exchange with AEAD only (``ECDHE+AESGCM:ECDHE+CHACHA20``, RFC 9325
  §4.2); TLS 1.3 suites: the three AEAD suites OpenSSL enables by default, CCM left out.
- Server cipher preference, no compression (CRIME, RFC 9325 §3.3), no renegotiation, key exchange
  groups limited to X25519MLKEM768 (when OpenSSL ≥ 3.5 has it), X25519, P-256 and P-384.
- Session resumption stays on (tickets and the session cache), under one session id context.

``ServerTLS`` is what services hold. It provides both interfaces ``TLSMemoryBIOFactory`` accepts
(see ``twisted.protocols._tls_legacy._convertToAppropriateFactory``):
``IOpenSSLServerConnectionCreator``, which Twisted prefers for servers, and
``IOpenSSLContextFactory`` (``getContext()``) for code written against
``ssl.DefaultOpenSSLContextFactory``. Implicit TLS (``SSL4ServerEndpoint`` → ``listenSSL``)
and STARTTLS (``transport.startTLS(ctx)`` from ESMTP/IMAP4Server) both build a
``TLSMemoryBIOFactory`` from it, so one object serves both, and reload reaches both.
"""

from __future__ import annotations

import datetime
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, Union

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory, IOpenSSLServerConnectionCreator
from zope.interface import implementer

from mailgosend.tls import sni

_openssl_lib: Any
try:  # private binding, see restrict_groups; its absence must not stop TLS from working
    from OpenSSL._util import lib as _openssl_lib
except ImportError:  # pragma: no cover - depends on the installed pyOpenSSL
    _openssl_lib = None

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]


class Clock(Protocol):
    """The part of ``IReactorTime`` used here: the reactor or ``twisted.internet.task.Clock``."""

    def seconds(self) -> float: ...


MIN_VERSIONS: Mapping[str, int] = MappingProxyType(
    {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}
)
TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20"
TLS13_CIPHERSUITES = b"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
# "?" marks a group OpenSSL may not know (3.5+ syntax); older OpenSSL rejects the "?" form, hence
# the plain fallback.
_GROUP_LISTS = (b"?X25519MLKEM768:X25519:P-256:P-384", b"X25519:P-256:P-384")
# OpenSSL refuses to resume sessions without one once peer verification is on (client
# certificates); set now so that turning it on later cannot silently disable resumption.
SESSION_ID_CONTEXT = b"mailgosend"
_OPTIONS = (
    SSL.OP_NO_COMPRESSION
    | SSL.OP_CIPHER_SERVER_PREFERENCE
    | SSL.OP_SINGLE_ECDH_USE
    # Absent from pyOpenSSL built against OpenSSL < 1.1.1; client renegotiation is then still
    # refused by OpenSSL 3's default (no SSL_OP_ALLOW_CLIENT_RENEGOTIATION).
    | getattr(SSL, "OP_NO_RENEGOTIATION", 0)
)
_MAX_PEM_BYTES = 1 << 20  # a certificate chain or key is a few KiB; more means a wrong path
_MIN_RSA_BITS = 2048  # below this OpenSSL's default security level refuses the key anyway


class TLSConfigError(Exception):
    """A certificate or key file cannot be used; ``path`` names the file, ``problem`` says why.

    Messages never quote file contents, so they can be logged and shown in the admin UI as is.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _read_pem(path: str, what: str) -> bytes:
    """File contents, with every way of not being a readable file turned into a TLSConfigError."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_PEM_BYTES + 1)
    except FileNotFoundError:
        raise TLSConfigError(path, f"{what} file does not exist") from None
    except IsADirectoryError:
        raise TLSConfigError(path, f"{what} path is a directory, not a file") from None
    except PermissionError:
        problem = f"{what} file is not readable by this process (permission denied)"
        raise TLSConfigError(path, problem) from None
    except OSError as error:
        raise TLSConfigError(path, f"{what} file cannot be read: {error.strerror}") from None
    if len(data) > _MAX_PEM_BYTES:
        raise TLSConfigError(path, f"{what} file is larger than 1 MiB; not a PEM {what}")
    return data


def _load_chain(path: str) -> tuple[x509.Certificate, ...]:
    data = _read_pem(path, "certificate")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise TLSConfigError(path, "contains no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise TLSConfigError(path, "contains a malformed PEM certificate") from None


def _load_key(path: str) -> PrivateKey:
    data = _read_pem(path, "private key")
    if b"PRIVATE KEY-----" not in data:
        raise TLSConfigError(path, "contains no PEM private key (-----BEGIN ... PRIVATE KEY-----)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        # cryptography raises TypeError when a password would be needed.
        problem = "private key is encrypted; provide it without a passphrase"
        raise TLSConfigError(path, problem) from None
    except (ValueError, UnsupportedAlgorithm):
        # Never chain the parser's exception: keep anything derived from key bytes out of logs.
        raise TLSConfigError(path, "contains a malformed or unsupported PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _MIN_RSA_BITS:
            problem = f"RSA key has {key.key_size} bits; at least {_MIN_RSA_BITS} are required"
            raise TLSConfigError(path, problem)
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key
    raise TLSConfigError(path, f"{type(key).__name__} keys are not supported; use an RSA or EC key")


def _spki(public_key: CertificatePublicKeyTypes) -> bytes:
    """DER SubjectPublicKeyInfo: equal for a certificate and its private key, and nothing secret."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _dns_names(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    names = extension.value.get_values_for_type(x509.DNSName)
    return tuple(name.lower().rstrip(".") for name in names)


def _certificate_warnings(
    cert_path: str, key_path: str, chain: tuple[x509.Certificate, ...], now: datetime.datetime
) -> list[str]:
    """Problems worth an operator's attention that must not stop the server from starting."""
    leaf = chain[0]
    found: list[str] = []
    if leaf.not_valid_after_utc <= now:
        end = leaf.not_valid_after_utc
        found.append(f"{cert_path}: certificate expired on {end:%Y-%m-%d %H:%M}Z")
    if leaf.not_valid_before_utc > now:
        start = leaf.not_valid_before_utc
        found.append(f"{cert_path}: certificate is not valid before {start:%Y-%m-%d %H:%M}Z")
    if not _dns_names(leaf):
        found.append(f"{cert_path}: certificate has no DNS names in subjectAltName")
    for position, (child, parent) in enumerate(zip(chain, chain[1:]), start=1):
        if child.issuer != parent.subject:
            found.append(
                f"{cert_path}: certificate {position + 1} in the file did not issue certificate"
                f" {position}; the chain must be leaf first, then each issuer"
            )
            break
    try:
        mode = os.stat(key_path).st_mode
    except OSError:
        mode = 0
    if mode & stat.S_IROTH:
        found.append(f"{key_path}: private key file is readable by every user; chmod 600 it")
    return found


@dataclass(frozen=True)
class LoadedCertificate:
    """A certificate chain and its private key, checked to belong together; makes contexts."""

    cert_path: str
    key_path: str
    chain: tuple[x509.Certificate, ...] = field(repr=False)  # leaf first, then intermediates
    key: PrivateKey = field(repr=False)
    hostnames: tuple[str, ...]  # subjectAltName DNS names, lower case, wildcards as written
    not_after: datetime.datetime  # UTC
    warnings: tuple[str, ...] = ()

    @property
    def serial(self) -> int:
        """The leaf's serial number: what logs and tests use to tell two certificates apart."""
        return self.chain[0].serial_number

    def make_context(self, min_version: str = "1.2") -> SSL.Context:
        """A fresh server ``SSL.Context`` with the module's policy and this certificate."""
        version = _min_version_constant(min_version)
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(version)
        context.set_options(_OPTIONS)
        context.set_cipher_list(TLS12_CIPHERS)
        if hasattr(context, "set_tls13_ciphersuites"):  # pyOpenSSL >= 25.2; same as the default
            context.set_tls13_ciphersuites(TLS13_CIPHERSUITES)
        restrict_groups(context)
        context.set_session_id(SESSION_ID_CONTEXT)
        try:
            context.use_certificate(self.chain[0])
            for intermediate in self.chain[1:]:
                context.add_extra_chain_cert(intermediate)
        except SSL.Error as error:
            problem = f"certificate refused by OpenSSL: {_openssl_reason(error)}"
            raise TLSConfigError(self.cert_path, problem) from None
        try:
            context.use_privatekey(self.key)
            context.check_privatekey()
        except SSL.Error as error:
            problem = f"private key refused by OpenSSL: {_openssl_reason(error)}"
            raise TLSConfigError(self.key_path, problem) from None
        return context


def _min_version_constant(min_version: str) -> int:
    try:
        return MIN_VERSIONS[min_version]
    except KeyError:
        allowed = ", ".join(sorted(MIN_VERSIONS))
        raise ValueError(f"min_version must be one of {allowed}, not {min_version!r}") from None


def _openssl_reason(error: SSL.Error) -> str:
    """OpenSSL's reason strings ("ee key too small"); they describe, never contain, key material."""
    entries = error.args[0] if error.args and isinstance(error.args[0], list) else []
    reasons = [entry[-1] for entry in entries if isinstance(entry, tuple) and entry and entry[-1]]
    return ", ".join(reasons) or "unknown error"


def restrict_groups(context: SSL.Context) -> bool:
    """Limit key exchange groups to the module's list; False if this pyOpenSSL cannot do it.

    pyOpenSSL has no public call for ``SSL_CTX_set1_groups_list`` (``set_tmp_ecdh`` takes one
    curve and cannot name X25519), so this uses the binding pyOpenSSL itself calls through. If a
    future binding drops the function, OpenSSL's default groups apply; they are all secure, just
    wider (X448, P-521, FFDHE), and the caller reports it.
    """
    set_groups = getattr(_openssl_lib, "SSL_CTX_set1_curves_list", None)
    if set_groups is None:
        return False
    for groups in _GROUP_LISTS:
        if set_groups(context._context, groups) == 1:
            return True
        # A refused list leaves an entry in OpenSSL's per-thread error queue; pyOpenSSL would
        # report it later as the cause of an unrelated failure.
        _openssl_lib.ERR_clear_error()
    return False


def load_certificate_pair(
    cert_path: str, key_path: str, now: datetime.datetime | None = None
) -> LoadedCertificate:
    """Read and check a PEM chain (leaf first) and its RSA/EC private key.

    Raises TLSConfigError for anything that would make the listener unusable; returns warnings
    (expired, not yet valid, no DNS names, chain out of order, world-readable key) for things an
    operator must fix but that should not take mail down. ``now`` is for tests and the clock.
    """
    chain = _load_chain(cert_path)
    key = _load_key(key_path)
    if _spki(chain[0].public_key()) != _spki(key.public_key()):
        if any(_spki(other.public_key()) == _spki(key.public_key()) for other in chain[1:]):
            problem = f"certificate file must start with the certificate of private key {key_path}"
        else:
            problem = f"certificate does not match private key {key_path}"
        raise TLSConfigError(cert_path, problem)
    when = now or datetime.datetime.now(datetime.timezone.utc)
    return LoadedCertificate(
        cert_path=cert_path,
        key_path=key_path,
        chain=chain,
        key=key,
        hostnames=_dns_names(chain[0]),
        not_after=chain[0].not_valid_after_utc,
        warnings=tuple(_certificate_warnings(cert_path, key_path, chain, when)),
    )


@dataclass(frozen=True)
class _ContextSet:
    """One consistent generation of contexts; ServerTLS swaps whole generations on reload."""

    default: LoadedCertificate
    default_context: SSL.Context
    by_name: Mapping[str, tuple[LoadedCertificate, SSL.Context]]
    warnings: tuple[str, ...]

    def on_server_name(self, connection: SSL.Connection) -> None:
        """SNI callback (RFC 6066 §3): switch to the name's certificate, else keep the default.

        It runs inside OpenSSL's ClientHello processing; it must not raise (pyOpenSSL would print
        the exception and abort the handshake), and every lookup here is a dictionary get.
        """
        entry = sni.select(sni.normalise_server_name(connection.get_servername()), self.by_name)
        if entry is not None:
            connection.set_context(entry[1])


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLContextFactory)
class ServerTLS:
    """The TLS configuration a service holds: default certificate, SNI certificates, reload.

    Pass it where Twisted wants a server context factory: ``SSL4ServerEndpoint(reactor, port,
    server_tls)`` for implicit TLS, or as ``contextFactory`` to ``ESMTP``/``IMAP4Server`` for
    STARTTLS. Each new connection takes the contexts current at that moment; ``reload()``
    replaces them for later connections only.
    """

    def __init__(
        self,
        cert_path: str,
        key_path: str,
        extra: Mapping[str, tuple[str, str]] | None = None,
        min_version: str = "1.2",
        clock: Clock | None = None,
        sni_pairs: Sequence[tuple[str, str]] = (),
    ) -> None:
        _min_version_constant(min_version)
        self._default_pair = (cert_path, key_path)
        # Served for the names their certificates cover (read again at each reload, so a
        # renewed certificate with more names serves them at once).
        self._sni_pairs = tuple(pair for pair in sni_pairs if pair != self._default_pair)
        self._extra: dict[str, tuple[str, str]] = {}
        for pattern, pair in (extra or {}).items():
            try:
                self._extra[sni.validate_pattern(pattern)] = pair
            except ValueError as error:
                raise TLSConfigError(pair[0], f"mapped to an invalid SNI name: {error}") from None
        self._min_version = min_version
        self._clock = clock
        self._active = self._build()

    def _now(self) -> datetime.datetime:
        if self._clock is None:
            return datetime.datetime.now(datetime.timezone.utc)
        return datetime.datetime.fromtimestamp(self._clock.seconds(), datetime.timezone.utc)

    def _build(self) -> _ContextSet:
        """Load every pair and make every context; raises before anything is swapped in."""
        now = self._now()
        made: dict[tuple[str, str], tuple[LoadedCertificate, SSL.Context]] = {}

        def get(pair: tuple[str, str]) -> tuple[LoadedCertificate, SSL.Context]:
            if pair not in made:
                loaded = load_certificate_pair(pair[0], pair[1], now)
                made[pair] = (loaded, loaded.make_context(self._min_version))
            return made[pair]

        default, default_context = get(self._default_pair)
        by_name = {pattern: get(pair) for pattern, pair in self._extra.items()}
        if self._sni_pairs:
            # Explicit mappings win; then the default certificate keeps the names it covers
            # (listed too, so that a wildcard of another certificate cannot take them).
            pairs = (self._default_pair, *self._sni_pairs)
            covered = sni.table_from_names((get(pair)[0].hostnames, get(pair)) for pair in pairs)
            for pattern, entry in covered.items():
                by_name.setdefault(pattern, entry)
        warnings: list[str] = []
        for loaded, _ in made.values():
            warnings.extend(loaded.warnings)
        for pattern, (loaded, _) in by_name.items():
            if not sni.covers(loaded.hostnames, pattern):
                warnings.append(
                    f"{loaded.cert_path}: certificate is served for {pattern}"
                    " but does not cover that name"
                )
        if not restrict_groups(SSL.Context(SSL.TLS_SERVER_METHOD)):
            warnings.append("pyOpenSSL cannot limit key exchange groups; OpenSSL's defaults apply")
        generation = _ContextSet(
            default, default_context, MappingProxyType(by_name), tuple(warnings)
        )
        # The callback belongs to the context a connection starts on; the other contexts only lend
        # their certificate and key after set_context().
        default_context.set_tlsext_servername_callback(generation.on_server_name)
        return generation

    def reload(self) -> list[str]:
        """Re-read every certificate and key; swap them in for new connections if all load.

        Returns the warnings of the new generation (for the caller to log). On any error raises
        TLSConfigError and keeps serving the previous certificates, so a half-written renewal or a
        typo never takes TLS down. Connections already open keep the context they started with.
        The swap is one attribute assignment, so this may run in a thread (``deferToThread``) to
        keep file reads and RSA key checks off the reactor.
        """
        generation = self._build()
        self._active = generation
        return list(generation.warnings)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Warnings of the generation in use, to log once at start-up."""
        return self._active.warnings

    @property
    def default_certificate(self) -> LoadedCertificate:
        """The certificate served without SNI or for unknown names, e.g. for expiry checks."""
        return self._active.default

    def certificates(self) -> list[tuple[str, LoadedCertificate]]:
        """What this context serves: ``("", default)`` then each SNI pattern's certificate
        (the admin panel's TLS page, /metrics' expiry gauges)."""
        generation = self._active
        return [("", generation.default)] + [
            (pattern, entry[0]) for pattern, entry in sorted(generation.by_name.items())]

    def certificate_for(self, server_name: str | None) -> LoadedCertificate:
        """The certificate a client sending this SNI name gets (for ``doctor`` and the admin UI)."""
        generation = self._active
        entry = sni.select(sni.normalise_server_name(server_name), generation.by_name)
        return entry[0] if entry is not None else generation.default

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        """IOpenSSLServerConnectionCreator: a connection on the current default context.

        Twisted calls ``set_accept_state`` and ``set_app_data`` on it afterwards.
        """
        return SSL.Connection(self._active.default_context, None)

    def getContext(self) -> SSL.Context:
        """IOpenSSLContextFactory, for consumers of the older interface; SNI works there too."""
        return self._active.default_context


def build_server_tls(
    cert_path: str,
    key_path: str,
    extra: Mapping[str, tuple[str, str]] | None = None,
    min_version: str = "1.2",
    clock: Clock | None = None,
    sni_pairs: Sequence[tuple[str, str]] = (),
) -> ServerTLS:
    """Make the ServerTLS for a listener; ``extra`` maps SNI names (``mx.example.org``,
    ``*.example.net``) to ``(cert_path, key_path)`` pairs; anything else gets the default pair.

    ``sni_pairs`` are more ``(cert_path, key_path)`` pairs, each served for the names its
    certificate covers (other domains' certificates, the other services' certificates).

    Raises TLSConfigError if any file is unusable, ValueError for a bad ``min_version``.
    """
    return ServerTLS(cert_path, key_path, extra, min_version, clock, sni_pairs)


def tls_summary(transport: object) -> str:
    """Protocol and cipher of a TLS transport: ``"TLSv1.3 TLS_AES_256_GCM_SHA384"``, or "".

    For ``Received:`` headers (RFC 8314 §4.3) and logs. Works for both kinds of Twisted TLS
    transport: the ``TLSMemoryBIOProtocol`` an implicit-TLS protocol sees, and a TCP transport
    after ``startTLS`` (which rebinds ``getHandle`` to the TLS layer). Both return the pyOpenSSL
    Connection from ``getHandle()``; a plain TCP transport returns its socket, and a TLS transport
    whose handshake has not finished has no cipher yet, so both give "".
    """
    get_handle = getattr(transport, "getHandle", None)
    connection = get_handle() if callable(get_handle) else None
    if not isinstance(connection, SSL.Connection):
        return ""
    cipher = connection.get_cipher_name()
    if cipher is None:
        return ""
    return f"{connection.get_protocol_version_name()} {cipher}"
