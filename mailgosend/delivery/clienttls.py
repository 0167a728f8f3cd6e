"""TLS for the outbound SMTP client (RFC 3207 STARTTLS, RFC 7435 opportunistic security).

The handshake never fails on the certificate: the verify callback records the
first problem and lets the handshake go on.  Afterwards :meth:`TLSCheck.outcome`
says whether the chain verified against the system trust store (plus
``ca_file``) and whether it names the host; the session decides what that
means -- a note for opportunistic delivery (Postfix ``may``), the end of the
session when a name must be verified (smarthost, ``verify_hostname``).

Not implemented: DANE (RFC 7672) and MTA-STS (RFC 8461) policies, client
certificates, session resumption.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import service_identity
from OpenSSL import SSL, crypto
from service_identity.pyopenssl import verify_hostname, verify_ip_address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from zope.interface import implementer

_openssl_lib: Any
_ffi: Any
try:  # only to name verification errors; numbers are reported without it
    from OpenSSL._util import ffi as _ffi
    from OpenSSL._util import lib as _openssl_lib
except ImportError:  # pragma: no cover - depends on the installed pyOpenSSL
    _openssl_lib = _ffi = None


@dataclass(frozen=True)
class TLSOutcome:
    version: str          # "TLSv1.3"
    verified: bool        # chain trusted and the name matches
    note: str | None      # why not verified, for the delivery log


def verify_error_text(errno: int) -> str:
    """OpenSSL's text for an X509_V_ERR number ("self-signed certificate")."""
    if _openssl_lib is not None:
        try:
            return str(_ffi.string(_openssl_lib.X509_verify_cert_error_string(errno)).decode())
        except Exception:  # pragma: no cover - binding differences
            pass
    return f"X509 verify error {errno}"


def make_client_context(ca_file: str | None, strict: bool) -> SSL.Context:
    """A client context trusting the system store and ``ca_file``.

    ``strict`` (a required-TLS smarthost) asks for TLS 1.2 or later; the
    opportunistic case takes what OpenSSL's defaults allow, since the
    alternative to weak TLS there is no TLS at all (RFC 7435 §6).
    """
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_options(SSL.OP_NO_SSLv2 | SSL.OP_NO_SSLv3 | SSL.OP_NO_COMPRESSION)
    if strict:
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_default_verify_paths()
    if ca_file:
        context.load_verify_locations(ca_file)
    return context


class TLSCheck:
    """One connection's verification record; made per connection."""

    def __init__(self, context: SSL.Context, server_name: str, check_name: str) -> None:
        self._context = context
        self._server_name = server_name
        self._check_name = check_name
        self._chain_error: str | None = None
        self.connection: SSL.Connection | None = None

    def _verify(self, connection: SSL.Connection, certificate: crypto.X509, errno: int,
                depth: int, ok: int) -> bool:
        if not ok and self._chain_error is None:
            self._chain_error = verify_error_text(errno)
        return True  # never fail the handshake here; see the module docstring

    def creator(self) -> IOpenSSLClientConnectionCreator:
        return _Creator(self)

    def outcome(self) -> TLSOutcome:
        """Version and verification once the handshake is complete."""
        connection = self.connection
        if connection is None:
            return TLSOutcome("unknown", False, "no TLS connection")
        version = connection.get_protocol_version_name()
        if self._chain_error is not None:
            return TLSOutcome(version, False, f"certificate verify failed: {self._chain_error}")
        if connection.get_peer_certificate() is None:
            return TLSOutcome(version, False, "no peer certificate")
        try:
            if _is_ip(self._check_name):
                verify_ip_address(connection, self._check_name)
            else:
                verify_hostname(connection, self._check_name)
        except service_identity.VerificationError:
            return TLSOutcome(version, False,
                              f"certificate name mismatch: not valid for {self._check_name}")
        except service_identity.CertificateError as error:
            return TLSOutcome(version, False, f"certificate unusable: {error}")
        return TLSOutcome(version, True, None)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@implementer(IOpenSSLClientConnectionCreator)
class _Creator:
    def __init__(self, check: TLSCheck) -> None:
        self._check = check

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        check = self._check
        connection = SSL.Connection(check._context, None)
        connection.set_verify(SSL.VERIFY_PEER, check._verify)
        if not _is_ip(check._server_name):
            # RFC 6066 §3: SNI carries host names only, never address literals.
            connection.set_tlsext_host_name(check._server_name.encode("ascii", "replace"))
        connection.set_app_data(tlsProtocol)
        connection.set_connect_state()
        check.connection = connection
        return connection
