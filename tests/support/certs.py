"""Test PKI for every TLS test (SMTP, IMAP, POP3, web): a CA, server certificates, Python clients.

Everything is made with ``cryptography`` in a directory the test owns (``self.mktemp()``), so
nothing depends on files shipped with the repository that could expire. EC P-256 keys by default
because they are generated in microseconds; RSA 2048 for tests that need an RSA certificate.

The certificates follow what strict verifiers demand (Python 3.13 sets ``VERIFY_X509_STRICT``): the
CA has critical basicConstraints and keyUsage and a subjectKeyIdentifier, leaves carry an
authorityKeyIdentifier, serverAuth extended key usage and their names in subjectAltName only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass, field
from typing import Literal, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey]
KeyType = Literal["ec", "rsa"]

_ONE_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class CA:
    """A certificate authority: the root a test client trusts, or an intermediate below it.

    ``chain`` lists the certificates a server must send after a leaf issued by this CA: the CA
    itself when it is an intermediate and its own intermediate parents, never the root (RFC 8446
    §4.4.2 allows omitting the trust anchor, and real chains do).
    """

    cert_path: str  # PEM of this CA certificate; for a root, what clients load as trust anchor
    cert: x509.Certificate
    key: PrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()
    root_path: str = ""  # PEM of the root at the top of this CA's chain (== cert_path for a root)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key type {key_type!r}; use 'ec' or 'rsa'")


def _write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write a temporary file and rename it, as an ACME client replacing a certificate would."""
    temporary = path + ".tmp"
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def pem(*certificates: x509.Certificate) -> bytes:
    """PEM text of one or more certificates, in order."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM of a private key (what certbot and most ACME clients write)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(
    directory: str,
    name: str = "ca",
    parent: CA | None = None,
    key_type: KeyType = "ec",
) -> CA:
    """Create a root CA, or an intermediate CA signed by ``parent``, under ``directory``."""
    os.makedirs(directory, exist_ok=True)
    key = _new_key(key_type)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailgosend tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"mailgosend test {name}"),
        ]
    )
    issuer_name = parent.cert.subject if parent else subject
    signing_key = parent.key if parent else key
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _ONE_DAY)
        .not_valid_after(now + 365 * _ONE_DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if parent is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()),
            critical=False,
        )
    cert = builder.sign(signing_key, hashes.SHA256())
    cert_path = os.path.join(directory, f"{name}.crt")
    _write(cert_path, pem(cert))
    chain = (cert, *parent.chain) if parent is not None else ()
    root_path = parent.root_path if parent is not None else cert_path
    return CA(cert_path=cert_path, cert=cert, key=key, chain=chain, root_path=root_path)


def make_cert(
    directory: str,
    hostnames: list[str],
    ca: CA | None = None,
    key_type: KeyType = "ec",
    not_after: datetime.datetime | None = None,
    name: str = "server",
    not_before: datetime.datetime | None = None,
) -> tuple[str, str]:
    """Issue a server certificate; write ``<name>.crt`` (leaf + intermediates) and ``<name>.key``.

    ``hostnames`` become subjectAltName entries: DNS names as dNSName (wildcards allowed), literal
    addresses such as ``"127.0.0.1"`` as iPAddress. Without ``ca`` the certificate is self-signed.
    Writing the same ``name`` again replaces the files atomically, which is how reload tests
    simulate a renewal. Returns ``(cert_path, key_path)``.
    """
    os.makedirs(directory, exist_ok=True)
    key = _new_key(key_type)
    now = _now()
    if not_after is None:
        not_after = now + 30 * _ONE_DAY
    if not_before is None:
        not_before = min(now - _ONE_DAY, not_after - _ONE_DAY)
    alt_names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    common_name = hostnames[0] if hostnames else name
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name = ca.cert.subject if ca else subject
    signing_key = ca.key if ca else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=key_type == "rsa",
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(signing_key, hashes.SHA256())
    cert_path = os.path.join(directory, f"{name}.crt")
    key_path = os.path.join(directory, f"{name}.key")
    _write(cert_path, pem(cert, *(ca.chain if ca else ())))
    _write(key_path, key_pem(key), mode=0o600)
    return cert_path, key_path


def client_context(
    ca: CA,
    minimum: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for Python clients (smtplib, imaplib, poplib) trusting ``ca``'s root.

    Hostname checking stays on, so a test that connects with the wrong ``server_hostname`` fails the
    way a real client would. ``minimum``/``maximum`` pin the protocol range for version tests.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=ca.root_path or ca.cert_path)
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    return context


def certificate_from_der(der: bytes) -> x509.Certificate:
    """Parse what ``SSLSocket.getpeercert(binary_form=True)`` returns, to compare serials."""
    return x509.load_der_x509_certificate(der)
