# -*- test-case-name: tests.test_mtasts -*-
"""MTA-STS policies (RFC 8461) and TLS-RPT records (RFC 8460): the text formats, in one place.

Our own policy (served by web/mtasts.py, announced by dnsrecords.py) is built from the
configuration; recipients' policies (fetched by delivery/mtasts.py) are parsed here.  The
policy id is derived from the policy text, so it changes exactly when the policy does.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

__all__ = ["MODES", "Policy", "PolicyError", "mx_matches", "own_policy", "parse_policy",
           "parse_sts_record", "parse_tlsrpt_record", "tlsrpt_rua"]

MODES = ("enforce", "testing", "none")
MAX_MAX_AGE = 31557600          # RFC 8461 §3.2
MAX_POLICY_BYTES = 64 * 1024    # RFC 8461 §3.3: senders may limit; 64 KiB is generous
_ID = re.compile(r"[A-Za-z0-9]{1,32}\Z")   # RFC 8461 §3.1 sts-id


class PolicyError(ValueError):
    """A policy or record that does not follow the RFC; the message says what is wrong."""


@dataclass(frozen=True)
class Policy:
    mode: str                   # enforce | testing | none
    max_age: int                # seconds
    mx: tuple[str, ...]         # host names or "*.example.com" patterns, lower case

    def text(self) -> str:
        """The policy file (RFC 8461 §3.2), CRLF line endings."""
        lines = ["version: STSv1", f"mode: {self.mode}"]
        lines += [f"mx: {pattern}" for pattern in self.mx]
        lines.append(f"max_age: {self.max_age}")
        return "\r\n".join(lines) + "\r\n"

    @property
    def id(self) -> str:
        """An sts-id (1-32 alphanumerics) that changes whenever the policy text does."""
        return hashlib.sha256(self.text().encode()).hexdigest()[:20]

    def allows(self, mx_host: str) -> bool:
        """Whether an MX host name matches one of the policy's mx patterns (RFC 8461 §4.1)."""
        return any(mx_matches(pattern, mx_host) for pattern in self.mx)


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 §4.1: a literal name, or ``*.`` matching exactly one leftmost label."""
    name = host.lower().rstrip(".")
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        head, dot, rest = name.partition(".")
        return bool(head) and bool(dot) and rest == pattern[2:]
    return name == pattern


def own_policy(config: Any) -> Policy:
    """The policy served for every local domain: MTA_STS_MODE, MTA_STS_MAX_AGE and the MX
    names (MTA_STS_MX, or HOSTNAME, which the published MX records name)."""
    names = [n.strip().lower().rstrip(".") for n in config["MTA_STS_MX"] if n.strip()]
    return Policy(config["MTA_STS_MODE"], config["MTA_STS_MAX_AGE"],
                  tuple(names or [config["HOSTNAME"].lower()]))


def parse_policy(text: str) -> Policy:
    """A fetched policy (RFC 8461 §3.2); ``PolicyError`` when it is not a valid one."""
    fields: dict[str, list[str]] = {}
    for raw in re.split(r"\r?\n", text):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PolicyError(f"line without a colon: {line[:60]!r}")
        fields.setdefault(key.strip().lower(), []).append(value.strip())
    if fields.get("version") != ["STSv1"]:
        raise PolicyError("version is not STSv1")
    mode = (fields.get("mode") or [""])[0].lower()
    if mode not in MODES:
        raise PolicyError(f"unknown mode {mode!r}")
    try:
        max_age = int((fields.get("max_age") or [""])[0])
    except ValueError:
        raise PolicyError("max_age is not a number") from None
    if not 0 <= max_age <= MAX_MAX_AGE:
        raise PolicyError("max_age out of range")
    mx = tuple(m.lower().rstrip(".") for m in fields.get("mx", []))
    if mode != "none" and not mx:
        raise PolicyError("no mx lines")
    return Policy(mode, max_age, mx)


def _tags(record: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            tags.setdefault(key.strip(), value.strip())
    return tags


def parse_sts_record(records: Sequence[str]) -> Optional[str]:
    """The id of the one ``v=STSv1`` TXT record at ``_mta-sts.<domain>`` (RFC 8461 §3.1), or
    None when there is none, several, or the id is malformed (the domain has no policy)."""
    found = [r for r in records if r.startswith("v=STSv1")]
    if len(found) != 1:
        return None
    sts_id = _tags(found[0]).get("id", "")
    return sts_id if _ID.match(sts_id) else None


def parse_tlsrpt_record(records: Sequence[str]) -> tuple[str, ...]:
    """The rua URIs of the ``v=TLSRPTv1`` record at ``_smtp._tls.<domain>`` (RFC 8460 §3),
    mailto: and https: only; empty when there is none or more than one."""
    found = [r for r in records if r.startswith("v=TLSRPTv1")]
    if len(found) != 1:
        return ()
    rua = _tags(found[0]).get("rua", "")
    return tuple(uri.strip() for uri in rua.split(",")
                 if uri.strip().lower().startswith(("mailto:", "https:")))


def tlsrpt_rua(config: Any, domain: str) -> Optional[str]:
    """The rua we suggest publishing for a local domain (TLSRPT_RUA), None for ``off``."""
    rua = config["TLSRPT_RUA"].strip()
    if rua.lower() == "off":
        return None
    return rua or f"mailto:postmaster@{domain}"
