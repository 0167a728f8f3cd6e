# -*- test-case-name: tests.test_domains -*-
"""Domain names in the one form the whole server stores and compares.

Every part that takes a domain (the accounts store and the CLI, configuration, SMTP paths,
outbound delivery, DKIM and DMARC) turns it into the same canonical text with
:func:`to_ascii` or :func:`normalise_domain`, so a domain added as ``straße.de`` is the domain
SMTPUTF8 mail to ``user@straße.de`` arrives for.

Implementation notes:

1. The canonical form is lower-case A-labels (RFC 5890 §2.3.2.1) without a final dot.
2. U-labels are mapped with UTS #46, non-transitional, after NFC, and converted with
   IDNA 2008 (RFC 5891 §4, as RFC 6531 §3.2 asks of SMTPUTF8 servers). Non-transitional keeps
   the deviation characters: ``straße.de`` is ``xn--strae-oqa.de``.  Python's own ``idna``
   codec implements IDNA 2003, which maps it to ``strasse.de``, a different domain: it must
   not be used for domains anywhere.
3. ASCII labels are letters, digits and hyphens (RFC 1123 §2.1, RFC 5321 §4.1.2 Domain);
   an ``xn--`` label must decode to a valid IDNA 2008 U-label.
4. Address literals (``[192.0.2.1]``) are not domains: SMTP and delivery handle them
   before calling here.
"""

from __future__ import annotations

import re
import unicodedata

import idna

__all__ = ["MAX_DOMAIN", "DomainError", "normalise_domain", "to_ascii", "to_unicode"]

# RFC 1035 §2.3.4: 255 octets on the wire, which is 253 characters of text.
MAX_DOMAIN = 253
_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class DomainError(ValueError):
    """Not a domain name; the message is a short reason (``"bad domain label"``)."""


def to_ascii(domain: str) -> str:
    """The canonical form of ``domain`` exactly as given (no spaces, no final dot allowed).

    For protocol input such as an SMTP path, where anything else is a syntax error.
    """
    if not domain:
        raise DomainError("empty domain")
    if domain.isascii():
        text = domain.lower()
    else:
        try:
            text = idna.encode(unicodedata.normalize("NFC", domain), uts46=True,
                               transitional=False).decode("ascii").lower()
        except (idna.IDNAError, UnicodeError) as exc:
            raise DomainError("bad internationalised domain") from exc
    for label in text.split("."):
        if not _LDH_LABEL.match(label):
            raise DomainError("bad domain label")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError) as exc:
                raise DomainError("bad A-label") from exc
    if len(text) > MAX_DOMAIN:
        raise DomainError("domain too long")
    return text


def normalise_domain(text: str) -> str:
    """The canonical form of a domain as people type it: surrounding spaces and one final
    dot (the root) are allowed, any case, U-labels or A-labels."""
    name = text.strip()
    return to_ascii(name[:-1] if name.endswith(".") else name)


def to_unicode(domain: str) -> str:
    """A canonical domain with its A-labels shown as U-labels, for people to read; the
    domain unchanged when it cannot be decoded."""
    try:
        return idna.decode(domain)
    except (idna.IDNAError, UnicodeError):
        return domain
