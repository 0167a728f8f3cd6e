"""TLS_MODE = selfsigned: a certificate made on first start, for trying the
server and for private setups whose clients pin or accept it (as mox's
localserve does).  Public MX and submission need a CA-issued certificate
(TLS_MODE = file); mail servers that verify certificates will not trust this one.

The certificate is valid for 397 days (within the 398-day maximum that browsers and Apple's
clients accept for server certificates) and names HOSTNAME, localhost, 127.0.0.1 and every specific
address a listener is bound to, so a client that checks the name of the address it connects to
accepts it.  At each start it is replaced when it expires within 30 days or no longer names what
the configuration asks for.  Time is the caller's (the reactor's clock), never the wall clock.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_DAYS = 397
RENEW_BEFORE = datetime.timedelta(days=30)
_WILDCARDS = {"0.0.0.0", "::", ""}


def subject_names(hostname: str, addresses: Iterable[str] = ()) -> list[x509.GeneralName]:
    """HOSTNAME, localhost, 127.0.0.1 and each specific bind address (wildcards name none)."""
    names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    if hostname != "localhost":
        names.append(x509.DNSName("localhost"))
    ips = [ipaddress.ip_address("127.0.0.1")]
    for address in addresses:
        if address not in _WILDCARDS:
            ip = ipaddress.ip_address(address)
            if ip not in ips:
                ips.append(ip)
    return names + [x509.IPAddress(ip) for ip in ips]


def _usable(cert_path: str, wanted: list[x509.GeneralName], now: datetime.datetime) -> bool:
    """Still valid at ``now`` for more than RENEW_BEFORE, and naming everything wanted."""
    try:
        with open(cert_path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        names = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return (set(wanted) <= names and cert.not_valid_before_utc <= now
            and cert.not_valid_after_utc - RENEW_BEFORE > now)


def ensure_self_signed(directory: str, hostname: str, addresses: Iterable[str] = (), *,
                       now: datetime.datetime) -> tuple[str, str]:
    """The (cert, key) paths, creating or renewing them when needed.

    ``now`` (timezone-aware) comes from the caller's clock, so tests and the renewal decision
    use one time source.
    """
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cert_path = os.path.join(directory, "selfsigned.crt")
    key_path = os.path.join(directory, "selfsigned.key")
    names = subject_names(hostname, addresses)
    if os.path.exists(key_path) and _usable(cert_path, names, now):
        return cert_path, key_path
    cert_pem, key_pem = self_signed_pem(hostname, names, now)
    write_pair(cert_path, cert_pem, key_path, key_pem)
    return cert_path, key_path


def self_signed_pem(hostname: str, names: list[x509.GeneralName],
                    now: datetime.datetime) -> tuple[bytes, bytes]:
    """A new P-256 key and a certificate for ``names`` signed by itself, both PEM; also the
    placeholder an ACME mode serves until its first certificate is issued (tls/acme.py)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_private(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename), created with
    ``mode`` so a key is never readable by others, not even for a moment."""
    temp = path + ".tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temp, mode)
    os.replace(temp, path)


def write_pair(cert_path: str, cert_pem: bytes, key_path: str, key_pem: bytes) -> None:
    """Key first, then certificate: a reader that sees the new certificate finds its key.
    (A reload between the two renames sees a mismatch, refuses it and keeps the old pair.)"""
    write_private(key_path, key_pem, 0o600)
    write_private(cert_path, cert_pem, 0o644)
