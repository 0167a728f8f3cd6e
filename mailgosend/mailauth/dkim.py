"""DKIM signature verification (RFC 6376; ed25519-sha256 per RFC 8463) on top of dkimpy.

dkimpy's ``DKIM.verify`` answers only True/False for most failures (a missing
key, a DNS timeout and a bad signature all give False), so the key is fetched
and judged here first, and only then handed to dkimpy for the cryptography.
That is what lets us report fail / permerror / temperror / neutral as
RFC 8601 §2.7.1 defines them.

Blocking (DNS, RSA): call ``verify_dkim`` in the thread pool.  Each call builds
its own ``dkim.DKIM`` object, so concurrent calls share nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import dkim  # type: ignore[import-untyped]

RESULTS = ("pass", "fail", "neutral", "temperror", "permerror")

DNSFunc = Callable[..., bytes | None]

# dkimpy logs key and DNS problems at ERROR on its own logger; we report them
# in the result instead, so keep it quiet (nothing from the message is logged).
_quiet = logging.getLogger("mailgosend.mailauth.dkim.lib")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


@dataclass(frozen=True)
class DKIMResult:
    """One DKIM-Signature's outcome, with the properties Authentication-Results reports.

    ``header_b`` is the first 8 characters of b= (RFC 6008), which tells
    several signatures of one domain apart.  ``reason`` is our own wording,
    never text taken from the message.
    """

    result: str
    domain: str = ""
    selector: str = ""
    algorithm: str = ""
    header_b: str = ""
    identity: str = ""
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.result == "pass"


def _text(value: bytes | None) -> str:
    return (value or b"").decode("ascii", "replace")


def _signature_headers(message: bytes) -> list[bytes]:
    """Raw values of the DKIM-Signature fields, in dkimpy's order (top first)."""
    try:
        headers, _body = dkim.rfc822_parse(message)
    except dkim.DKIMException:
        return []
    return [value for name, value in headers if name.lower() == b"dkim-signature"]


def _loose_tags(value: bytes) -> dict[bytes, bytes]:
    """Best-effort tag=value split of a signature that dkimpy refused, for the report."""
    tags: dict[bytes, bytes] = {}
    for part in value.split(b";"):
        key, sep, val = part.partition(b"=")
        if sep:
            tags.setdefault(key.strip().lower(), re.sub(rb"\s+", b"", val))
    return tags


def _result(outcome: str, tags: dict[bytes, bytes], reason: str = "") -> DKIMResult:
    b_value = re.sub(rb"\s+", b"", tags.get(b"b", b""))
    return DKIMResult(
        result=outcome,
        domain=_text(tags.get(b"d")).lower(),
        selector=_text(tags.get(b"s")),
        algorithm=_text(tags.get(b"a")).lower(),
        header_b=_text(b_value[:8]),
        identity=_text(tags.get(b"i")),
        reason=reason,
    )


def _verify_one(message: bytes, idx: int, raw_value: bytes, dnsfunc: DNSFunc,
                timeout: float) -> DKIMResult:
    verifier = dkim.DKIM(message, logger=_quiet, timeout=timeout)
    try:
        prep = verifier.verify_headerprep(idx)
    except dkim.DKIMException:
        # Missing or malformed tags, unknown algorithm: RFC 8601 §2.7.1 "neutral".
        return _result("neutral", _loose_tags(raw_value), "signature syntax error")
    if not prep:
        return _result("neutral", _loose_tags(raw_value), "signature not found")
    tags, include_headers, _sigheaders = prep
    tags = {k.lower(): v for k, v in tags.items()}
    if b"from" not in include_headers:
        # RFC 6376 §6.1.1: a signature must cover From or be ignored (PERMFAIL).
        return _result("permerror", tags, "From not signed")

    name = tags[b"s"] + b"._domainkey." + tags[b"d"] + b"."
    try:
        record = dnsfunc(name, timeout=timeout)
    except dkim.DnsTimeoutError:
        return _result("temperror", tags, "key lookup failed")  # RFC 6376 §6.1.2
    if not record:
        return _result("permerror", tags, "no key")               # RFC 6376 §6.1.2
    try:
        dkim.evaluate_pk(name, record)
    except Exception:  # noqa: BLE001 - dkimpy raises several unrelated types for bad keys
        # Unparseable, revoked (empty p=) or wrong-service key: RFC 6376 §3.6.1, §6.1.2.
        return _result("permerror", tags, "bad key record")

    def fetched(_name: bytes, timeout: float = timeout) -> bytes:
        return record
    try:
        valid = verifier.verify(idx=idx, dnsfunc=fetched)
    except dkim.ValidationError as e:
        if str(e).startswith("body hash mismatch"):
            return _result("fail", tags, "body hash mismatch")     # RFC 6376 §6.1.3
        return _result("permerror", tags, "key not usable for this signature")
    except dkim.KeyFormatError:
        return _result("permerror", tags, "key too small or unusable")  # RFC 8301 §3.2
    except dkim.DKIMException:
        return _result("neutral", tags, "signature could not be processed")
    except Exception:  # noqa: BLE001 - malformed input must never break delivery
        return _result("neutral", tags, "signature could not be processed")
    if valid:
        return _result("pass", tags)
    return _result("fail", tags, "signature did not verify")


def verify_dkim(message: bytes, dnsfunc: DNSFunc, *, timeout: float = 5.0) -> list[DKIMResult]:
    """Verify every DKIM-Signature of ``message`` (raw RFC 5322 bytes), top first.

    ``dnsfunc`` is ``resolver.dkim_dnsfunc(resolver)``.  No signature gives
    an empty list (Authentication-Results then says dkim=none).  Never raises
    on malformed input: a broken signature is a result, not an error.
    """
    results = []
    for idx, raw_value in enumerate(_signature_headers(message)):
        results.append(_verify_one(message, idx, raw_value, dnsfunc, timeout))
    return results
