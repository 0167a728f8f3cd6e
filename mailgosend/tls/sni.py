"""Server-name matching for SNI certificate selection (RFC 6066 §3) and certificate coverage.

Pure functions over strings, no OpenSSL: ``context.py`` uses them to pick the certificate for the
name a client sent, and to warn when a certificate is mapped to a name it does not cover.

Wildcards follow RFC 6125 §6.4.3 as browsers and mail clients apply it: ``*`` is allowed only as the
whole left-most label, and matches exactly one label (``*.example.com`` matches ``mx.example.com``
but neither ``example.com`` nor ``a.b.example.com``). Partial-label wildcards (``mx*.example.com``)
are not supported, as in every current TLS client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")

# LDH labels (RFC 1123 §2.1) plus "_", which some operators use in service names; IDNs arrive as
# A-labels ("xn--…"), because SNI carries the ASCII form (RFC 6066 §3).
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def normalise_server_name(raw: bytes | str | None) -> str | None:
    """The SNI host name in canonical form (lower case, no trailing dot), or None if unusable.

    None for an absent name, a name that is not ASCII, an IP literal (RFC 6066 §3 forbids them in
    SNI, but some clients send them) or anything that is not a syntactically valid host name; the
    caller then serves the default certificate.
    """
    if raw is None:
        return None
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
    name = raw.strip().lower().rstrip(".")
    if not name or len(name) > 253:
        return None
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        return None
    if all(label.isdigit() for label in labels):
        return None
    return name


def validate_pattern(pattern: str) -> str:
    """Canonical form of an SNI mapping key: a host name or ``*.<host name>``.

    Raises ValueError naming the problem, for configuration errors to report.
    """
    candidate = pattern.strip().lower().rstrip(".")
    if candidate.startswith("*."):
        base = normalise_server_name(candidate[2:])
        if base is None or "." not in base:
            raise ValueError(
                f"wildcard {pattern!r} must be '*.' followed by a domain with at least two labels"
            )
        return "*." + base
    if "*" in candidate:
        raise ValueError(f"{pattern!r}: '*' is allowed only as the whole left-most label")
    name = normalise_server_name(candidate)
    if name is None:
        raise ValueError(f"{pattern!r} is not a valid host name")
    return name


def _wildcard_for(name: str) -> str | None:
    """The single-label wildcard covering ``name``: ``mx.example.com`` → ``*.example.com``."""
    _, dot, parent = name.partition(".")
    if not dot or "." not in parent:
        # "*.com" style patterns are refused by validate_pattern, so never look them up.
        return None
    return "*." + parent


def select(server_name: str | None, table: Mapping[str, T]) -> T | None:
    """The entry of ``table`` (keys from ``validate_pattern``) for ``server_name``.

    An exact key wins over the wildcard one level up.

    ``server_name`` must already be normalised; None (no or unusable SNI) selects nothing.
    """
    if server_name is None:
        return None
    exact = table.get(server_name)
    if exact is not None:
        return exact
    wildcard = _wildcard_for(server_name)
    return table.get(wildcard) if wildcard is not None else None


def covers(certificate_names: Iterable[str], name: str) -> bool:
    """Whether a certificate with these SAN DNS names is valid for ``name`` (a host or a wildcard).

    A wildcard ``name`` is covered only by the identical wildcard in the certificate: a
    certificate for ``a.example.com`` does not serve ``*.example.com``.
    """
    names = set(certificate_names)
    if name in names:
        return True
    if name.startswith("*."):
        return False
    wildcard = _wildcard_for(name)
    return wildcard is not None and wildcard in names


def table_from_names(entries: Iterable[tuple[Iterable[str], T]]) -> dict[str, T]:
    """An SNI table mapping every name a certificate covers to its entry.

    ``entries`` are (subjectAltName DNS names, value) in order of preference: when two
    certificates cover one name, the earlier one keeps it.  Names that are not valid host names
    or ``*.`` wildcards (an IP written as DNS name, a partial wildcard) are skipped: a client
    cannot ask for them through SNI.
    """
    table: dict[str, T] = {}
    for names, value in entries:
        for raw in names:
            try:
                pattern = validate_pattern(raw)
            except ValueError:
                continue
            table.setdefault(pattern, value)
    return table
