"""TLS_MODE = selfsigned: a certificate made on first start, for trying the
server and for private setups whose clients pin or accept it (as mox's
localserve does).  Public MX and submission need a CA-issued certificate
(TLS_MODE = file); mail servers that verify certificates will not trust this one.
"""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_DAYS = 825
RENEW_BEFORE = datetime.timedelta(days=30)


def _usable(cert_path: str, hostname: str, now: datetime.datetime) -> bool:
    try:
        with open(cert_path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        names = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return hostname in names and cert.not_valid_after_utc - RENEW_BEFORE > now


def ensure_self_signed(directory: str, hostname: str) -> tuple[str, str]:
    """The (cert, key) paths, creating or renewing them when needed."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cert_path = os.path.join(directory, "selfsigned.crt")
    key_path = os.path.join(directory, "selfsigned.key")
    now = datetime.datetime.now(datetime.timezone.utc)
    if os.path.exists(key_path) and _usable(cert_path, hostname, now):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    if hostname != "localhost":
        names.append(x509.DNSName("localhost"))
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
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
    for path, data, mode in ((key_path, key_pem, 0o600),
                             (cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)):
        temp = path + ".tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    return cert_path, key_path
