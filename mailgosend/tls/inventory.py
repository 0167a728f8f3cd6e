# -*- test-case-name: tests.test_admin_dash_tls -*-
"""Which certificates the running server serves, per service and name: the one list the
admin panel's TLS page and dashboard and /metrics' expiry gauges read (DESIGN.md §7)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from cryptography import x509
from cryptography.x509.oid import NameOID

from mailgosend.tls.context import LoadedCertificate

# service label -> the component service.py keeps its ServerTLS under
SERVICES = (("SMTP", "tls_smtp"), ("IMAP", "tls_imap"), ("POP3", "tls_pop3"),
            ("WEB", "tls_web"))


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if values:
        return str(values[0].value)
    organisation = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(organisation[0].value) if organisation else name.rfc4514_string()


@dataclass(frozen=True)
class CertificateInUse:
    service: str          # SMTP, IMAP, POP3, WEB
    name: str             # the SNI pattern, or the certificate's first name for the default
    names: tuple[str, ...]
    issuer: str
    not_after: datetime
    cert_path: str
    serial: int
    default: bool

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "name": self.name, "names": list(self.names),
                "issuer": self.issuer, "not_after": self.not_after,
                "cert_path": self.cert_path, "serial": self.serial, "default": self.default}


def describe(service: str, pattern: str, loaded: LoadedCertificate) -> CertificateInUse:
    leaf = loaded.chain[0]
    names = loaded.hostnames or (_common_name(leaf.subject),)
    return CertificateInUse(service, pattern or names[0], tuple(names),
                            _common_name(leaf.issuer), loaded.not_after, loaded.cert_path,
                            loaded.serial, not pattern)


def certificates_in_use(components: Mapping[str, Any]) -> list[CertificateInUse]:
    found = []
    for service, key in SERVICES:
        tls = components.get(key)
        if tls is None:
            continue
        found += [describe(service, pattern, loaded) for pattern, loaded in tls.certificates()]
    return found
