"""SPF verification of the SMTP client (RFC 7208) on top of pyspf.

Blocking (DNS): the receive pipeline calls ``check_spf`` in its thread pool.
pyspf reaches DNS through the process-wide hook installed by
``resolver.install_spf_resolver``; a ``resolver`` argument overrides it for
one call on the calling thread only.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.resolver
import spf as pyspf  # type: ignore[import-untyped]

from mailgosend.mailauth.resolver import spf_resolver_for_call

RESULTS = ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")

# RFC 7208 §4.6.4 asks for at least 20 seconds before giving up on a check.
DEFAULT_QUERY_TIME = 20.0


@dataclass(frozen=True)
class SPFResult:
    """Outcome of check_host() for the identity DMARC and Authentication-Results use.

    ``identity`` is "mailfrom", or "helo" when MAIL FROM was null and
    postmaster@<HELO> was checked instead (RFC 7208 §2.4).  ``helo_result`` is
    the separate HELO check of §2.3 (None when HELO is not a domain name).
    ``explanation`` can come from the sender's exp= record: show it to the
    client in an SMTP reply if at all, never trust it.
    """

    result: str
    domain: str
    identity: str
    explanation: str = ""
    helo_result: str | None = None
    helo_domain: str = ""

    @property
    def mail_from_passed(self) -> bool:
        """SPF authenticated the (effective) MAIL FROM domain: what DMARC may align on."""
        return self.result == "pass"


def _is_null_path(mail_from: str) -> bool:
    return mail_from.strip() in ("", "<>")


def _domain_of(mail_from: str) -> str:
    address = mail_from.strip().strip("<>")
    return address.rpartition("@")[2].rstrip(".").lower()


def _is_checkable_domain(domain: str) -> bool:
    """RFC 7208 §4.3: malformed or single-label domains give "none" without DNS."""
    labels = domain.split(".")
    return len(labels) > 1 and all(0 < len(label) < 64 for label in labels) \
        and len(domain) <= 253


def _check_host(ip: str, sender: str, helo: str, domain: str,
                querytime: float) -> tuple[str, str]:
    """Run pyspf's check_host() and normalise the result to the RFC 7208 §2.6 names."""
    if not _is_checkable_domain(domain):
        return "none", f"{domain or 'empty domain'} is not a valid domain name"
    try:
        query = pyspf.query(i=ip, s=sender, h=helo, timeout=querytime, querytime=querytime)
    except pyspf.PermError as e:  # unparseable client address
        return "permerror", str(e)
    result, _code, explanation = query.check()
    if result not in RESULTS:
        # pyspf's legacy names; check() on RFC 7208 mode should not produce them.
        result = {"error": "temperror", "unknown": "permerror"}.get(result, "permerror")
    return result, explanation


def check_spf(ip: str, mail_from: str, helo: str, *,
              resolver: dns.resolver.Resolver | None = None,
              check_helo: bool = True,
              querytime: float = DEFAULT_QUERY_TIME) -> SPFResult:
    """Evaluate SPF for a client ``ip`` sending ``MAIL FROM:<mail_from>`` after ``HELO helo``.

    With a null reverse-path the checked identity is postmaster@helo (§2.4).
    Otherwise MAIL FROM is checked, and HELO is checked too (§2.3) when it is
    a domain name (not an address literal), because a HELO pass or fail is
    useful for scoring even when MAIL FROM gives none.
    Thread-safe: pyspf keeps its state in the per-call query object.
    """
    helo = helo.strip().rstrip(".").lower()
    helo_is_domain = bool(helo) and not helo.startswith("[") and _is_checkable_domain(helo)
    with spf_resolver_for_call(resolver):
        if _is_null_path(mail_from):
            if not helo_is_domain:
                return SPFResult("none", helo, "helo", "HELO is not a domain name")
            result, explanation = _check_host(ip, "", helo, helo, querytime)
            return SPFResult(result, helo, "helo", explanation, result, helo)
        address = mail_from.strip().strip("<>")
        domain = _domain_of(address)
        result, explanation = _check_host(ip, address, helo, domain, querytime)
        helo_result: str | None = None
        if check_helo and helo_is_domain:
            helo_result, _ = _check_host(ip, "postmaster@" + helo, helo, helo, querytime)
    return SPFResult(result, domain, "mailfrom", explanation, helo_result,
                     helo if helo_is_domain else "")
