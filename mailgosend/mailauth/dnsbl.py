"""DNS blocklist lookups of the SMTP client address (RFC 5782).

Blocking (DNS): call ``query_dnsbls`` in the thread pool.  The zones of one
call are queried in parallel on a few short-lived threads, so a slow list
costs one timeout, not one per list.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.resolver

from mailgosend.mailauth.resolver import ABSENT, TEMPORARY_ERRORS, txt_records

_LISTED = ipaddress.IPv4Network("127.0.0.0/8")           # RFC 5782 §2.1
_OPERATOR_ERRORS = ipaddress.IPv4Network("127.255.255.0/24")
# Return codes list operators use to say "your query was not answered" (Spamhaus).
_ERROR_MEANINGS = {
    "127.255.255.252": "typo in the DNSBL name",
    "127.255.255.254": "query refused (public or unregistered resolver)",
    "127.255.255.255": "query refused (excessive number of queries)",
}
MAX_PARALLEL = 8


@dataclass(frozen=True)
class DNSBLHit:
    """A zone that listed the address, or that could not give an answer.

    Only ``listed`` entries count for scoring; the others (``error`` set) are
    reported so an operator can see a dead or refusing list.
    """

    zone: str
    listed: bool
    codes: tuple[str, ...] = ()
    reason: str = ""
    error: str = ""


def reverse_name(ip: str) -> str:
    """The query label part for ``ip`` (§2.1 IPv4 reversed octets, §2.4 IPv6 reversed nibbles)."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    suffix = ".in-addr.arpa" if address.version == 4 else ".ip6.arpa"
    return address.reverse_pointer.removesuffix(suffix)


def _printable(text: str, limit: int = 300) -> str:
    return "".join(c for c in text if 32 <= ord(c) < 127)[:limit]


def _query_zone(label: str, zone: str, resolver: dns.resolver.Resolver,
                timeout: float) -> DNSBLHit | None:
    name = f"{label}.{zone}"
    try:
        answer = resolver.resolve(dns.name.from_text(name), "A", lifetime=timeout,
                                  search=False)
    except ABSENT:
        return None                                  # NXDOMAIN: not listed
    except dns.exception.Timeout:
        return DNSBLHit(zone, False, error="timeout")
    except TEMPORARY_ERRORS as e:
        return DNSBLHit(zone, False, error=f"DNS error ({type(e).__name__})")
    addresses = sorted({rdata.address for rdata in answer})
    listed, operator, unexpected = [], [], []
    for text in addresses:
        address = ipaddress.ip_address(text)
        if address in _OPERATOR_ERRORS:
            operator.append(text)
        elif address in _LISTED:
            listed.append(text)
        else:
            unexpected.append(text)   # e.g. a lapsed list's wildcard: never a listing
    if not listed:
        if operator:
            meaning = "; ".join(_ERROR_MEANINGS.get(a, "operator error code") for a in operator)
            return DNSBLHit(zone, False, tuple(operator),
                            error=f"list returned {', '.join(operator)}: {meaning}")
        return DNSBLHit(zone, False, tuple(unexpected),
                        error="answer outside 127.0.0.0/8 ignored")
    try:
        reason = "; ".join(r.decode("utf-8", "replace")
                           for r in txt_records(resolver, name, lifetime=timeout))
    except TEMPORARY_ERRORS:
        reason = ""                                  # the A record alone is the listing
    return DNSBLHit(zone, True, tuple(listed), reason=_printable(reason))


def query_dnsbls(ip: str, zones: Sequence[str], *, resolver: dns.resolver.Resolver,
                 timeout: float, skip_private: bool = True) -> list[DNSBLHit]:
    """Ask each DNSBL ``zone`` about ``ip``; return listings and errors in zone order.

    Zones that answer NXDOMAIN (not listed) are left out.  With
    ``skip_private`` (the default) addresses that are not globally routable
    are never sent to a list: public lists cannot know them and the query
    would leak internal addressing.
    """
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if skip_private and not address.is_global:
        return []
    label = reverse_name(str(address))
    wanted = list(dict.fromkeys(z.strip().strip(".").lower() for z in zones if z.strip(" .")))
    if not wanted:
        return []
    if len(wanted) == 1:
        outcomes = [_query_zone(label, wanted[0], resolver, timeout)]
    else:
        with ThreadPoolExecutor(max_workers=min(len(wanted), MAX_PARALLEL),
                                thread_name_prefix="dnsbl") as pool:
            outcomes = list(pool.map(lambda z: _query_zone(label, z, resolver, timeout),
                                     wanted))
    return [hit for hit in outcomes if hit is not None]
