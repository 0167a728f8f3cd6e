"""Envelope addresses of MAIL FROM / RCPT TO: RFC 5321 §4.1.2 paths, with RFC 6531 UTF-8.

Replaces ``twisted.mail.smtp.Address``, whose grammar is ASCII-only and configured through class
attributes (library notes §1). Pure functions over ``str``; the protocol decides reply codes.

Implemented: Path with quoted or dot-string local parts, domains (LDH labels, U-labels when
SMTPUTF8 is in force, normalised to lower-case A-labels), address literals (IPv4, IPv6, general),
the null reverse-path ``<>``, ``<postmaster>`` as a recipient (§4.5.1), source routes accepted
and dropped (§4.1.1.3, §C). Not implemented: nothing is rewritten beyond that (no %-hack, no
``!`` paths, no default domain).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

from mailgosend.domains import DomainError, to_ascii, to_unicode

# RFC 5321 §4.5.3.1: size limits on the parts of a path.
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256

# RFC 5321 §4.1.2 / RFC 5322 §3.2.3 atext; RFC 6531 §3.3 adds UTF8-non-ascii (whether it is
# allowed is checked apart). Surrogates stand for undecodable octets and are never allowed.
_ATEXT = r"\-A-Za-z0-9!#$%&'*+/=?^_`{|}~" + r"\u0080-\ud7ff\ue000-\U0010ffff"
_DOT_STRING_RE = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_GENERAL_LITERAL_RE = re.compile(r"^[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+$")


class AddressError(ValueError):
    """The path does not follow RFC 5321 §4.1.2; the message says which part (never logged raw)."""


class NonASCIIAddress(AddressError):
    """A UTF-8 address was given without the SMTPUTF8 parameter (RFC 6531 §3.4: 553 5.6.7)."""


@dataclass(frozen=True)
class Mailbox:
    """A parsed mailbox. ``domain`` is the lower-case ASCII form (A-labels, or the literal).

    ``local`` keeps its case (RFC 5321 §2.4: local parts may be case-sensitive) and is stored
    unquoted; :attr:`address` re-quotes it when needed.
    """

    local: str
    domain: str

    @property
    def address(self) -> str:
        """The canonical textual form, ``local@domain`` (or ``postmaster`` with no domain)."""
        local = self.local if _DOT_STRING_RE.fullmatch(self.local) else _quote(self.local)
        if not self.domain:
            return local
        return f"{local}@{self.domain}"

    @property
    def is_ascii(self) -> bool:
        return self.local.isascii() and self.domain.isascii()

    @property
    def unicode_domain(self) -> str:
        """The domain with A-labels turned back into U-labels, for display only."""
        if not self.domain or self.domain.startswith("["):
            return self.domain
        return to_unicode(self.domain)


def _quote(local: str) -> str:
    escaped = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def split_path(argument: str) -> tuple[str, str]:
    """Split ``<path> params`` into the path text and the parameter text.

    Leading spaces are tolerated (``MAIL FROM: <a@b>``, sent by many clients). A path without
    angle brackets is accepted up to the first space, as Postfix does by default. A '>' inside
    a quoted local part does not end the path.
    """
    text = argument.lstrip(" ")
    if not text.startswith("<"):
        path, _, rest = text.partition(" ")
        return path, rest.strip(" ")
    in_quotes = False
    index = 1
    while index < len(text):
        char = text[index]
        if char == "\\" and in_quotes:
            index += 2
            continue
        if char == '"':
            in_quotes = not in_quotes
        elif char == ">" and not in_quotes:
            rest = text[index + 1 :]
            if rest and not rest.startswith(" "):
                raise AddressError("garbage after path")
            return text[1:index], rest.strip(" ")
        index += 1
    raise AddressError("unterminated path")


def _strip_source_route(path: str, allow_utf8: bool) -> str:
    """Drop an RFC 5321 §4.1.2 A-d-l (``@a,@b:``); servers SHOULD ignore it (§C)."""
    if not path.startswith("@"):
        return path
    route, sep, rest = path.partition(":")
    if not sep:
        raise AddressError("source route without mailbox")
    for hop in route.split(","):
        if not hop.startswith("@"):
            raise AddressError("bad source route")
        normalise_domain(hop[1:], allow_utf8)
    return rest


def _is_utf8_char(char: str) -> bool:
    return ord(char) > 0x7F and not "\ud800" <= char <= "\udfff"


def _parse_local(text: str) -> tuple[str, str]:
    """Return (unquoted local part, remainder starting at '@')."""
    if text.startswith('"'):
        chars = []
        index = 1
        while index < len(text):
            char = text[index]
            if char == "\\":
                if index + 1 >= len(text):
                    raise AddressError("bad quoted-pair")
                nxt = text[index + 1]
                if not (" " <= nxt <= "~" or _is_utf8_char(nxt)):
                    raise AddressError("bad quoted-pair")  # quoted-pairSMTP = %d92 %d32-126
                chars.append(nxt)
                index += 2
                continue
            if char == '"':
                return "".join(chars), text[index + 1 :]
            if not (char in " !" or "#" <= char <= "[" or "]" <= char <= "~"):
                if not _is_utf8_char(char):
                    raise AddressError("bad character in quoted local part")  # qtextSMTP
            chars.append(char)
            index += 1
        raise AddressError("unterminated quoted local part")
    at = text.rfind("@")
    local = text if at < 0 else text[:at]
    if not _DOT_STRING_RE.fullmatch(local):
        raise AddressError("bad local part")
    return local, text[len(local) :]


def normalise_domain(domain: str, allow_utf8: bool) -> str:
    """Validate a domain or address literal and return its canonical ASCII form.

    Domains take the server's one canonical form (:func:`mailgosend.domains.to_ascii`:
    U-labels (RFC 6531 §3.3) to A-labels with IDNA 2008, RFC 5891); the same form the
    accounts store keeps, so a local domain matches however the client spelled it. Raises
    :class:`NonASCIIAddress` for U-labels when ``allow_utf8`` is false.
    """
    if not domain:
        raise AddressError("empty domain")
    if domain.startswith("["):
        return _normalise_literal(domain)
    if len(domain) > MAX_DOMAIN:
        raise AddressError("domain too long")
    if not domain.isascii() and not allow_utf8:
        raise NonASCIIAddress("UTF-8 domain without SMTPUTF8")
    try:
        return to_ascii(domain)
    except DomainError as exc:
        raise AddressError(str(exc)) from exc


def _normalise_literal(literal: str) -> str:
    """RFC 5321 §4.1.3 address literals: IPv4, ``IPv6:`` and General-address-literal."""
    if not literal.endswith("]"):
        raise AddressError("unterminated address literal")
    inner = literal[1:-1]
    if inner[:5].lower() == "ipv6:":
        try:
            return f"[IPv6:{ipaddress.IPv6Address(inner[5:]).compressed}]"
        except ValueError as exc:
            raise AddressError("bad IPv6 literal") from exc
    if ":" in inner:
        if not _GENERAL_LITERAL_RE.match(inner):
            raise AddressError("bad address literal")
        return literal
    try:
        return f"[{ipaddress.IPv4Address(inner)}]"
    except ValueError as exc:
        raise AddressError("bad IPv4 literal") from exc


def parse_mailbox(path: str, allow_utf8: bool) -> Mailbox:
    """Parse the inside of ``<...>`` (source route allowed) into a :class:`Mailbox`."""
    if len(path) > MAX_PATH:
        raise AddressError("path too long")
    path = _strip_source_route(path, allow_utf8)
    local, rest = _parse_local(path)
    if not rest.startswith("@"):
        raise AddressError("missing domain")
    if not local:
        raise AddressError("empty local part")
    if not local.isascii() and not allow_utf8:
        raise NonASCIIAddress("UTF-8 local part without SMTPUTF8")
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        raise AddressError("local part too long")
    domain = normalise_domain(rest[1:], allow_utf8)
    return Mailbox(unicodedata.normalize("NFC", local), domain)


def parse_reverse_path(path: str, allow_utf8: bool) -> Mailbox | None:
    """MAIL FROM path: ``None`` for the null reverse-path ``<>`` (§4.5.5, bounces)."""
    if path == "":
        return None
    return parse_mailbox(path, allow_utf8)


def parse_forward_path(path: str, allow_utf8: bool) -> Mailbox:
    """RCPT TO path: a mailbox, or the bare ``postmaster`` every server accepts (§4.5.1)."""
    if path.lower() == "postmaster":
        return Mailbox("postmaster", "")
    if path == "":
        raise AddressError("empty forward-path")
    return parse_mailbox(path, allow_utf8)
