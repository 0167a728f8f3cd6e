"""Mail address and domain normalisation, shared by the CLI, SMTP and the web.

Local parts are compared case-insensitively (as every real server does,
though RFC 5321 §2.4 allows otherwise); domains are stored in the form
mailgosend.domains gives them, lower-case A-labels (IDNA 2008), so
``Müller.example`` and ``xn--mller-kva.example`` are one domain.  UTF-8 local parts (RFC 6531) are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailgosend.domains import DomainError, normalise_domain


class AddressError(ValueError):
    """An address or domain that cannot be used; the message says why."""


# RFC 5322 §3.2.3 atext, plus UTF-8 (RFC 6531 §3.3) for non-ASCII characters.
_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010FFFF]+$")
SUBADDRESS_SEPARATOR = "+"


def normalize_domain(text: str) -> str:
    """The canonical domain (mailgosend.domains); AddressError when it is not a DNS name."""
    try:
        return normalise_domain(text)
    except DomainError:
        raise AddressError(f"invalid domain {text!r}: must be a DNS name such as "
                           "example.com") from None


@dataclass(frozen=True)
class Address:
    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def base_local(self) -> str:
        """The local part without a ``+tag`` sub-address (RFC 5233 style)."""
        return self.local.split(SUBADDRESS_SEPARATOR, 1)[0] or self.local


def parse_address(text: str) -> Address:
    """Parse ``local@domain`` as users type it (no display names, no quoting)."""
    text = text.strip()
    if text.count("@") != 1:
        raise AddressError(f"invalid address {text!r}: must look like name@example.com")
    local, domain_text = text.split("@")
    local = local.lower()
    if not local:
        raise AddressError(f"invalid address {text!r}: the part before @ is empty")
    if len(local.encode("utf-8")) > 64:
        raise AddressError(f"invalid address {text!r}: the part before @ is longer than "
                           "64 bytes (RFC 5321 §4.5.3.1.1)")
    if local.startswith(".") or local.endswith(".") or ".." in local or \
            not all(_ATEXT.match(atom) for atom in local.split(".")):
        raise AddressError(f"invalid address {text!r}: the part before @ may contain letters, "
                           "digits and . ! # $ % & ' * + / = ? ^ _ ` { | } ~ - (no spaces, no "
                           "leading, trailing or double dots)")
    try:
        domain = normalize_domain(domain_text)
    except AddressError:
        raise AddressError(f"invalid address {text!r}: {domain_text!r} is not a valid "
                           "domain") from None
    return Address(local, domain)


def parse_alias_source(text: str) -> tuple[str, str]:
    """An alias source: ``local@domain`` or ``@domain`` (catch-all).  Returns (source, domain)."""
    text = text.strip()
    if text.startswith("@"):
        domain = normalize_domain(text[1:])
        return "@" + domain, domain
    address = parse_address(text)
    return str(address), address.domain
