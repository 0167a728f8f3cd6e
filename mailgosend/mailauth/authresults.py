"""The Authentication-Results header field (RFC 8601): writing ours, removing forgeries.

Pure functions over result objects and bytes; no DNS, safe on any thread.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mailgosend.mailauth.dkim import DKIMResult
from mailgosend.mailauth.dmarc import DMARCResult
from mailgosend.mailauth.headers import header_fields
from mailgosend.mailauth.spf import SPFResult

FIELD_NAME = "Authentication-Results"
MAX_LINE = 78                                  # RFC 5322 §2.1.1 SHOULD
_TSPECIALS = set('()<>@,;:\\"/[]?=')            # RFC 2045 §5.1, used by RFC 8601 §2.2


@dataclass(frozen=True)
class IprevResult:
    """Reverse-DNS check of the client (RFC 8601 §3): pass, fail, temperror or permerror."""

    result: str
    ip: str
    hostname: str = ""


def _is_token(text: str) -> bool:
    return bool(text) and all(33 <= ord(c) < 127 and c not in _TSPECIALS for c in text)


def _pvalue(text: str) -> str:
    """A property value: a token when it can be, else a quoted-string (RFC 8601 §2.2)."""
    if _is_token(text):
        return text
    cleaned = "".join(c for c in text if c in "\t" or ord(c) >= 32)
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    cleaned = "".join(c for c in text if ord(c) >= 32)
    return "(" + re.sub(r"([()\\])", r"\\\1", cleaned) + ")"


def _spf_resinfo(spf: SPFResult | None) -> list[str]:
    if spf is None:
        return ["spf=none"]
    words = [f"spf={spf.result}"]
    if spf.domain:
        # RFC 8601 §2.7.2: smtp.mailfrom, or smtp.helo for a null reverse-path (RFC 7208 §2.4).
        prop = "smtp.helo" if spf.identity == "helo" else "smtp.mailfrom"
        words.append(f"{prop}={_pvalue(spf.domain)}")
    return words


def _dkim_resinfo(result: DKIMResult) -> list[str]:
    words = [f"dkim={result.result}"]
    if result.reason and result.result != "pass":
        words.append(f"reason={_pvalue(result.reason)}")
    for prop, value in (("header.d", result.domain), ("header.s", result.selector),
                        ("header.a", result.algorithm), ("header.b", result.header_b)):
        if value:
            words.append(f"{prop}={_pvalue(value)}")  # RFC 8601 §2.7.1, RFC 6008
    return words


def _dmarc_resinfo(dmarc: DMARCResult | None) -> list[str]:
    if dmarc is None:
        return ["dmarc=none"]
    words = [f"dmarc={dmarc.result}"]
    if dmarc.record_domain:
        words.append(_comment(f"p={dmarc.published_policy} dis={dmarc.disposition}"))
    if dmarc.header_from:
        words.append(f"header.from={_pvalue(dmarc.header_from)}")   # RFC 7489 §11.2
    if dmarc.policy_dmarc:
        words.append(f"policy.dmarc={dmarc.policy_dmarc}")
    return words


def _iprev_resinfo(iprev: IprevResult) -> list[str]:
    words = [f"iprev={iprev.result}", f"policy.iprev={_pvalue(iprev.ip)}"]
    if iprev.hostname:
        words.append(_comment(iprev.hostname))
    return words


def _fold(units: list[list[str]], first_line_used: int, linesep: str) -> str:
    """Join resinfo units, folding before a unit (or a word) that would pass MAX_LINE."""
    lines: list[str] = []
    current = ""
    used = first_line_used
    for unit in units:
        text = " ".join(unit)
        if not current or used + len(current) + 1 + len(text) <= MAX_LINE:
            current = f"{current} {text}" if current else text
            continue
        lines.append(current)
        used = 1  # the folding tab
        current = ""
        for word in unit:
            if current and used + len(current) + 1 + len(word) > MAX_LINE:
                lines.append(current)
                current = ""
            current = f"{current} {word}" if current else word
    lines.append(current)
    return (linesep + "\t").join(lines)


def build_authentication_results(authserv_id: str, spf: SPFResult | None,
                                 dkim_results: Sequence[DKIMResult],
                                 dmarc: DMARCResult | None, *,
                                 iprev: IprevResult | None = None,
                                 linesep: str = "\r\n") -> str:
    """The value of our Authentication-Results field (without the field name).

    One field for all methods (RFC 8601 §2.2); methods that produced nothing
    say "none" so readers see they were checked.  Folded with ``linesep``
    + tab so the field line, "Authentication-Results: " included, stays
    within 78 characters where the values allow it.
    """
    units: list[list[str]] = []
    if iprev is not None:
        units.append(_iprev_resinfo(iprev))
    units.append(_spf_resinfo(spf))
    if dkim_results:
        units.extend(_dkim_resinfo(r) for r in dkim_results)
    else:
        units.append(["dkim=none"])
    units.append(_dmarc_resinfo(dmarc))
    # Every unit but the last ends with the resinfo separator.
    units = [u[:-1] + [u[-1] + ";"] for u in units[:-1]] + units[-1:]
    head = [[_pvalue(authserv_id) + ";"]]
    return _fold(head + units, len(FIELD_NAME) + 2, linesep)


# --- stripping forged results (RFC 8601 §5) ------------------------------------------

def _skip_cfws(value: bytes, pos: int) -> int:
    """Skip whitespace and (nested) comments, honouring quoted-pairs."""
    depth = 0
    while pos < len(value):
        c = value[pos:pos + 1]
        if depth:
            if c == b"\\":
                pos += 1
            elif c == b"(":
                depth += 1
            elif c == b")":
                depth -= 1
        elif c == b"(":
            depth = 1
        elif c not in (b" ", b"\t", b"\r", b"\n"):
            return pos
        pos += 1
    return pos


def authserv_id_of(value: bytes) -> bytes:
    """The authserv-id of a raw Authentication-Results value (a token or quoted-string)."""
    pos = _skip_cfws(value, 0)
    if value[pos:pos + 1] == b'"':
        out = bytearray()
        pos += 1
        while pos < len(value) and value[pos:pos + 1] != b'"':
            if value[pos:pos + 1] == b"\\":
                pos += 1
            out += value[pos:pos + 1]
            pos += 1
        return bytes(out)
    end = pos
    while end < len(value) and value[end:end + 1] not in (b";", b"(", b" ", b"\t", b"\r", b"\n"):
        end += 1
    return value[pos:end]


def strip_forged_results(raw_message: bytes, authserv_id: str) -> bytes:
    """Remove every Authentication-Results field that claims to be ours (RFC 8601 §5).

    The match on authserv-id is case-insensitive.  Whole fields go, folded
    continuation lines included; every other byte stays exactly as received,
    because the stored message is canonical.
    """
    ours = authserv_id.strip().lower().encode("utf-8")
    kept: list[bytes] = []
    pos = 0
    for field in header_fields(raw_message):
        if field.name.lower() == b"authentication-results" and \
                authserv_id_of(field.value).lower() == ours:
            kept.append(raw_message[pos:field.start])
            pos = field.end
    if not kept:
        return raw_message
    kept.append(raw_message[pos:])
    return b"".join(kept)
