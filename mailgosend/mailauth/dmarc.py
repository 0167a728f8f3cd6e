"""DMARC evaluation (RFC 7489) on dnspython and the current Public Suffix List.

In-house rather than the ``dmarc`` package: the policy logic is small, and
owning it lets every lookup go through our resolver and the PSL bundled with
``publicsuffixlist`` (the ``dmarc`` package's PSL extra is from 2019).
Not implemented: aggregate/failure reports (rua/ruf are parsed, not sent).

Blocking (DNS): call ``evaluate_dmarc`` in the thread pool.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from email.errors import InvalidHeaderDefect
from email.headerregistry import HeaderRegistry

import dns.resolver
from publicsuffixlist import PublicSuffixList

from mailgosend.domains import DomainError, normalise_domain
from mailgosend.mailauth.dkim import DKIMResult
from mailgosend.mailauth.headers import header_fields
from mailgosend.mailauth.resolver import TEMPORARY_ERRORS, txt_records
from mailgosend.mailauth.spf import SPFResult

POLICIES = ("none", "quarantine", "reject")
# §6.6.4: when pct sampling excludes a message, apply the next policy down.
_WEAKER = {"reject": "quarantine", "quarantine": "none", "none": "none"}

_psl: PublicSuffixList | None = None
_psl_lock = threading.Lock()


def _public_suffix_list() -> PublicSuffixList:
    """The PSL, parsed once (about 10k rules); read-only afterwards, so shared freely."""
    global _psl
    if _psl is None:
        with _psl_lock:
            if _psl is None:
                _psl = PublicSuffixList()
    return _psl


def _normalise(domain: str) -> str:
    """The canonical domain (mailgosend.domains), for comparisons and DNS; a name that is
    not a valid domain is only lower-cased, and simply compares unequal."""
    try:
        return normalise_domain(domain)
    except DomainError:
        return domain.strip().rstrip(".").lower()


def organizational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the public suffix plus one label (the domain itself if it is a suffix)."""
    domain = _normalise(domain)
    return _public_suffix_list().privatesuffix(domain) or domain


def aligned(a: str, b: str, mode: str) -> bool:
    """Identifier alignment (§3.1): strict is equality, relaxed is the same org domain."""
    a, b = _normalise(a), _normalise(b)
    if not a or not b:
        return False
    if a == b:
        return True
    return mode == "r" and organizational_domain(a) == organizational_domain(b)


# --- RFC5322.From -----------------------------------------------------------

@dataclass(frozen=True)
class FromDomain:
    """The author domain DMARC evaluates, or why there is none (§6.6.1).

    status: "ok"; "none" (no From field or no address); "multiple" (several
    From fields, or addresses in different domains); "invalid" (syntax the
    parser had to guess at, which could show the reader another domain).
    """

    status: str
    domain: str = ""
    reason: str = ""


def from_domain(message_headers: bytes) -> FromDomain:
    """Find the RFC5322.From domain in a raw message or header section."""
    fields = [f for f in header_fields(message_headers) if f.name.lower() == b"from"]
    if not fields:
        return FromDomain("none", reason="no From header field")
    if len(fields) > 1:
        return FromDomain("multiple", reason="more than one From header field")
    value = fields[0].unfolded().decode("utf-8", "replace")
    try:
        parsed = HeaderRegistry()("from", value)
        addresses = list(parsed.addresses)  # type: ignore[attr-defined]
        defects = parsed.defects
    except Exception:  # noqa: BLE001 - the stdlib parser can trip on hostile input
        return FromDomain("invalid", reason="unparseable From header field")
    if any(isinstance(d, InvalidHeaderDefect) for d in defects):
        return FromDomain("invalid", reason="malformed From header field")
    domains = {_normalise(a.domain) for a in addresses}
    if not addresses:
        return FromDomain("none", reason="no address in From header field")
    if "" in domains or any(d.startswith("[") for d in domains):
        return FromDomain("invalid", reason="From address without a domain name")
    if len(domains) > 1:
        return FromDomain("multiple", reason="From addresses in different domains")
    return FromDomain("ok", domains.pop())


# --- policy record ------------------------------------------------------------

@dataclass(frozen=True)
class DMARCRecord:
    """The tags of a DMARC record that evaluation uses, defaults filled in (§6.3)."""

    p: str
    sp: str
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    rua: tuple[str, ...] = ()


_VERSION = re.compile(r"^\s*v\s*=\s*DMARC1\s*(;|$)")   # case-sensitive value (§6.4 ABNF)
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$")


def _tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), value.strip())
    return tags


def parse_record(text: str) -> DMARCRecord | None:
    """Parse one record; None when it is not usable and DMARC does not apply (§6.6.3)."""
    if not _VERSION.match(text):
        return None
    tags = _tags(text)
    rua = tuple(u.strip() for u in tags.get("rua", "").split(",") if u.strip())
    p = tags.get("p", "").lower()
    sp = tags.get("sp", p).lower()
    if p not in POLICIES or sp not in POLICIES:
        # §6.6.3: a bad p/sp with a valid rua means "act as p=none", else no DMARC.
        if not any(_URI.match(u.split("!")[0]) for u in rua):
            return None
        p = sp = "none"
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    pct_text = tags.get("pct", "100")
    pct = int(pct_text) if pct_text.isdigit() and int(pct_text) <= 100 else 100
    return DMARCRecord(p=p, sp=sp, adkim=adkim if adkim in ("r", "s") else "r",
                       aspf=aspf if aspf in ("r", "s") else "r", pct=pct, rua=rua)


class _Temporary(Exception):
    pass


def _lookup(name: str, resolver: dns.resolver.Resolver) -> tuple[int, str | None]:
    """(number of DMARC records, the record if exactly one) at ``_dmarc.<name>``."""
    try:
        records = txt_records(resolver, "_dmarc." + name)
    except TEMPORARY_ERRORS as e:
        raise _Temporary(type(e).__name__) from None
    texts = [r.decode("utf-8", "replace") for r in records]
    dmarc = [t for t in texts if _VERSION.match(t)]  # others are discarded (§6.6.3)
    return len(dmarc), (dmarc[0] if len(dmarc) == 1 else None)


# --- evaluation -----------------------------------------------------------------

@dataclass(frozen=True)
class DMARCResult:
    """Outcome of DMARC for one message.

    ``published_policy`` is p (or sp for a subdomain whose record came from its
    organizational domain); ``policy`` is what applies after pct sampling and is
    reported as policy.dmarc; ``disposition`` is what the receiver should do:
    "none" unless the result is fail.
    """

    result: str
    header_from: str
    policy: str = "none"
    published_policy: str = "none"
    disposition: str = "none"
    spf_aligned: bool = False
    dkim_aligned: bool = False
    record_domain: str = ""
    reason: str = ""

    @property
    def policy_dmarc(self) -> str | None:
        """The policy.dmarc property for Authentication-Results, when a record was used."""
        return self.policy if self.record_domain else None


def evaluate_dmarc(from_domain: str, spf: SPFResult | None, dkim: Sequence[DKIMResult], *,
                   resolver: dns.resolver.Resolver | None = None,
                   rand: Callable[[], float] = random.random) -> DMARCResult:
    """Apply the From domain's DMARC policy to the SPF and DKIM results (§6.6).

    ``from_domain`` is ``from_domain(raw).domain``; pass "" when that status
    is not "ok" and the result is permerror, which the pipeline may reject.
    ``rand`` gives a float in [0, 1) for pct sampling (§6.6.4); it is only
    called when a failing message's policy has pct below 100.
    """
    header_from = _normalise(from_domain) if from_domain else ""
    if not header_from or "." not in header_from:
        return DMARCResult("permerror", header_from, reason="no usable RFC5322.From domain")
    resolver = resolver or dns.resolver.get_default_resolver()
    org = organizational_domain(header_from)
    try:
        count, text = _lookup(header_from, resolver)
        record_domain = header_from
        if count == 0 and org != header_from:
            count, text = _lookup(org, resolver)              # §6.6.3 step 3
            record_domain = org
    except _Temporary as e:
        return DMARCResult("temperror", header_from, reason=f"DNS error: {e}")
    if count != 1 or text is None:
        why = "no DMARC record" if count == 0 else "multiple DMARC records"
        return DMARCResult("none", header_from, reason=why)
    record = parse_record(text)
    if record is None:
        return DMARCResult("none", header_from, reason="DMARC record without a valid policy")

    # sp applies to subdomains of the domain whose record was found (§6.3).
    published = record.sp if record_domain != header_from else record.p
    # SPF's domain is MAIL FROM's, or HELO's for a null path (RFC 7208 §2.4); helo_result
    # for a non-null path is not an identity DMARC aligns on (§3.1.2).
    spf_ok = spf is not None and spf.result == "pass" and \
        aligned(spf.domain, header_from, record.aspf)
    dkim_ok = any(r.passed and aligned(r.domain, header_from, record.adkim) for r in dkim)
    result = DMARCResult("pass", header_from, policy=published, published_policy=published,
                         disposition="none", spf_aligned=spf_ok, dkim_aligned=dkim_ok,
                         record_domain=record_domain)
    if spf_ok or dkim_ok:
        return result
    policy = published
    if record.pct < 100 and rand() * 100 >= record.pct:
        policy = _WEAKER[published]                           # §6.6.4
    return replace(result, result="fail", policy=policy, disposition=policy,
                   reason="no aligned SPF or DKIM pass")
