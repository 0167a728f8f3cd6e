"""Where to deliver a domain's mail: MX lookup and ordering (RFC 5321 §5.1, RFC 7505, RFC 5890).

Blocking (dnspython): the queue worker calls :func:`resolve_destinations` in
its thread pool, never in the reactor thread.  The result is plain data; the
worker walks :meth:`Destinations.attempts` in order and retries or bounces
using the reply text carried by ``temporary_error`` / ``permanent_error``.

Address order within a host: IPv6 and IPv4 interleaved, IPv6 first
(RFC 8305 §4, RFC 6724 prefers IPv6).  Interleaving rather than "all IPv6
first" means a host whose IPv6 path is broken costs one failed connection
before an IPv4 attempt, not one per AAAA record.
"""

from __future__ import annotations

import ipaddress
import random
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby, zip_longest
from typing import Any

import dns.exception
import dns.name
import dns.resolver

from mailgosend.domains import DomainError, normalise_domain

# Reply texts the worker turns into a DSN or a retry.  RFC 3463 codes:
# X.1.2 bad destination system, X.4.4 unable to route, X.4.3 directory failure.
NULL_MX_ERROR = "556 5.1.10 Recipient address has null MX"  # RFC 7505 §4.1, RFC 7504
NO_SUCH_DOMAIN = "550 5.1.2"
NO_ROUTE = "550 5.4.4"
DNS_FAILURE = "451 4.4.3"


@dataclass(frozen=True)
class Host:
    """One MX target (or the implicit MX) with the addresses to try, in order."""

    name: str                   # lower-case A-labels, no final dot
    preference: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Destinations:
    """Outcome of the lookup for one domain.

    Exactly one holds: ``hosts`` is non-empty, or ``permanent_error`` is set
    (bounce), or ``temporary_error`` is set (retry later).  ``notes`` says what
    was skipped and why, for the queue log and the DSN's human-readable part.
    """

    domain: str
    hosts: tuple[Host, ...] = ()
    permanent_error: str | None = None
    temporary_error: str | None = None
    notes: tuple[str, ...] = ()
    port: int = 25

    def attempts(self) -> Iterator[tuple[Host, str]]:
        """(host, address) pairs in the order RFC 5321 §5.1 says to try them."""
        for host in self.hosts:
            for address in host.addresses:
                yield host, address


# --- pure helpers -----------------------------------------------------------

def ascii_domain(domain: str) -> str:
    """Lower-case A-label form of ``domain`` (RFC 5890), or a normalised address literal.

    The server's one domain form (:func:`mailgosend.domains.normalise_domain`: U-labels
    converted with IDNA 2008, RFC 5891, as mail servers do for SMTPUTF8 domains, RFC 6531
    §3.2).  Raises ValueError when the text cannot be a domain.
    """
    text = domain.strip()
    if text.startswith("[") and text.endswith("]"):
        address = _literal_address(text)
        return f"[IPv6:{address}]" if ":" in address else f"[{address}]"
    try:
        return normalise_domain(text)
    except DomainError as exc:
        raise ValueError(f"invalid domain {domain!r}: {exc}") from exc


def _literal_address(literal: str) -> str:
    """The IP inside an RFC 5321 §4.1.3 address literal (``[192.0.2.1]``, ``[IPv6:…]``)."""
    inner = literal[1:-1]
    if inner[:5].lower() == "ipv6:":
        return ipaddress.IPv6Address(inner[5:]).compressed
    return str(ipaddress.IPv4Address(inner))


def group_by_domain(recipients: Sequence[str]) -> dict[str, list[str]]:
    """Recipients grouped by lower-case A-label domain, for one SMTP session per destination.

    Order is kept (first appearance of a domain, then recipients within it);
    an exact duplicate recipient is listed once.  A domain that is not valid
    keeps its lower-cased text as key, so :func:`resolve_destinations` reports
    it as a permanent failure for those recipients alone.
    """
    groups: dict[str, list[str]] = {}
    for recipient in recipients:
        local, at, domain = recipient.rpartition("@")
        if not at or not local:
            raise ValueError(f"recipient {recipient!r} has no domain")
        try:
            key = ascii_domain(domain)
        except ValueError:
            key = domain.strip().lower()
        members = groups.setdefault(key, [])
        if recipient not in members:
            members.append(recipient)
    return groups


def order_by_preference(records: Iterable[tuple[int, str]],
                        rand: random.Random) -> list[tuple[int, str]]:
    """MX records by ascending preference, equal preferences in random order (RFC 5321 §5.1).

    Each preference group is sorted by name before shuffling, so the result
    depends only on ``rand`` and not on the order the DNS answer came in.
    A name listed twice keeps its lowest preference.
    """
    best: dict[str, int] = {}
    for preference, name in records:
        if name not in best or preference < best[name]:
            best[name] = preference
    ordered: list[tuple[int, str]] = []
    by_pref = sorted((pref, name) for name, pref in best.items())
    for _pref, group in groupby(by_pref, key=lambda item: item[0]):
        members = list(group)
        rand.shuffle(members)
        ordered.extend(members)
    return ordered


def interleave(ipv6: Sequence[str], ipv4: Sequence[str]) -> tuple[str, ...]:
    """IPv6, IPv4, IPv6, … (RFC 8305 §4), each family in DNS order, duplicates dropped."""
    merged: list[str] = []
    for pair in zip_longest(ipv6, ipv4):
        for address in pair:
            if address is not None and address not in merged:
                merged.append(address)
    return tuple(merged)


def _ip_literal_name(name: dns.name.Name) -> bool:
    """True when an MX exchange is an address, not a host name (RFC 5321 §5.1, §2.3.5)."""
    text = b".".join(name.labels[:-1] if name.is_absolute() else name.labels)
    candidate = text.decode("ascii", "replace").strip("[]")
    if candidate[:5].lower() == "ipv6:":
        candidate = candidate[5:]
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


# --- DNS ----------------------------------------------------------------------

@dataclass(frozen=True)
class _Lookup:
    """One query's outcome; at most one of ``absent`` / ``temporary`` is set."""

    records: tuple[Any, ...] = ()
    canonical: str = ""          # owner name after following CNAMEs
    absent: str | None = None    # "nxdomain" or "nodata"
    temporary: str | None = None


def _query(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> _Lookup:
    qname = dns.name.from_text(name + ".")
    try:
        answer = resolver.resolve(qname, rdtype, search=False)
    except dns.resolver.NXDOMAIN:
        return _Lookup(absent="nxdomain")
    except dns.resolver.NoAnswer:
        return _Lookup(absent="nodata")
    except dns.exception.Timeout:
        return _Lookup(temporary=f"{rdtype} lookup of {name} timed out")
    except dns.resolver.NoNameservers:
        return _Lookup(temporary=f"{rdtype} lookup of {name} failed (SERVFAIL or REFUSED)")
    except dns.exception.DNSException as exc:
        # Anything unexpected is retried: a wrong bounce is worse than a delay.
        return _Lookup(temporary=f"{rdtype} lookup of {name} failed ({type(exc).__name__})")
    canonical = answer.canonical_name.to_text(omit_final_dot=True).lower()
    return _Lookup(records=tuple(answer), canonical=canonical)


@dataclass(frozen=True)
class _HostLookup:
    addresses: tuple[str, ...]
    temporary: str | None
    problem: str | None          # why the host cannot be used, when permanent
    notes: tuple[str, ...]


def _host_addresses(resolver: dns.resolver.Resolver, name: str,
                    allow_alias: bool) -> _HostLookup:
    """AAAA and A records of ``name``; an MX target must not be an alias (RFC 2181 §10.3)."""
    lookups = {rdtype: _query(resolver, name, rdtype) for rdtype in ("AAAA", "A")}
    if not allow_alias:
        for lookup in lookups.values():
            if lookup.records and lookup.canonical != name:
                return _HostLookup((), None, f"MX host {name} is an alias (CNAME) for "
                                   f"{lookup.canonical}, skipped (RFC 2181 §10.3)", ())
    notes: list[str] = []
    families: dict[str, list[str]] = {}
    for rdtype, lookup in lookups.items():
        found = []
        for rdata in lookup.records:
            if ipaddress.ip_address(rdata.address).is_unspecified:
                notes.append(f"{name} has unusable address {rdata.address}, skipped")
            else:
                found.append(str(rdata.address))
        families[rdtype] = found
    addresses = interleave(families["AAAA"], families["A"])
    temporary = [lk.temporary for lk in lookups.values() if lk.temporary]
    if addresses:
        notes.extend(temporary)  # the other family failed: use what we have
        return _HostLookup(addresses, None, None, tuple(notes))
    if temporary:
        return _HostLookup((), "; ".join(temporary), None, tuple(notes))
    if all(lk.absent == "nxdomain" for lk in lookups.values()):
        problem = f"host {name} does not exist"
    else:
        problem = f"host {name} has no address records"
    return _HostLookup((), None, problem, tuple(notes))


def resolve_destinations(domain: str, *, resolver: dns.resolver.Resolver,
                         rand: random.Random | None = None, port: int = 25) -> Destinations:
    """Hosts to try for mail to ``domain``, in order, or why there are none (RFC 5321 §5.1).

    Blocking.  ``rand`` breaks ties between equal MX preferences (injected so
    tests are deterministic; by default from ``secrets``).  Address literals
    (``[192.0.2.1]``) need no DNS: RFC 5321 §5.1 delivers to them directly.
    """
    rng = rand if rand is not None else secrets.SystemRandom()
    try:
        name = ascii_domain(domain)
    except ValueError as exc:
        return Destinations(domain.strip().lower(), port=port,
                            permanent_error=f"{NO_SUCH_DOMAIN} Invalid domain: {exc}")
    if name.startswith("["):
        return Destinations(name, (Host(name, 0, (_literal_address(name),)),), port=port)

    mx = _query(resolver, name, "MX")
    if mx.temporary:
        return Destinations(name, port=port,
                            temporary_error=f"{DNS_FAILURE} DNS failure: {mx.temporary}")
    if mx.absent == "nxdomain":
        return Destinations(name, port=port, permanent_error=(
            f"{NO_SUCH_DOMAIN} Domain {name} does not exist (DNS NXDOMAIN)"))
    notes: list[str] = []
    if mx.canonical and mx.canonical != name:
        notes.append(f"{name} is an alias for {mx.canonical}")  # allowed, RFC 5321 §5.1

    if not mx.records:
        # No MX at all: the domain itself is the implicit MX, preference 0 (RFC 5321 §5.1).
        notes.append(f"{name} has no MX records, using its address records (implicit MX)")
        return _from_hosts(name, [(0, name)], resolver, notes, port, implicit=True)

    if len(mx.records) == 1 and mx.records[0].exchange == dns.name.root:
        # RFC 7505 §3: a lone MX to "." says the domain accepts no mail.
        if mx.records[0].preference != 0:
            notes.append("null MX with non-zero preference (RFC 7505 §3 says 0)")
        return Destinations(name, port=port, notes=tuple(notes),
                            permanent_error=f"{NULL_MX_ERROR}: {name} does not accept mail")

    candidates: list[tuple[int, str]] = []
    for rdata in mx.records:
        if rdata.exchange == dns.name.root:
            notes.append("null MX mixed with other MX records ignored (RFC 7505 §3)")
        elif _ip_literal_name(rdata.exchange):
            notes.append(f"MX {rdata.exchange.to_text(omit_final_dot=True)} is an IP address, "
                         "not a host name, refused (RFC 5321 §5.1)")
        else:
            candidates.append((int(rdata.preference),
                               rdata.exchange.to_text(omit_final_dot=True).lower()))
    return _from_hosts(name, order_by_preference(candidates, rng), resolver, notes, port,
                       implicit=False)


def _from_hosts(domain: str, ordered: list[tuple[int, str]], resolver: dns.resolver.Resolver,
                notes: list[str], port: int, implicit: bool) -> Destinations:
    """Resolve each candidate's addresses; no usable host is an error (RFC 5321 §5.1)."""
    hosts: list[Host] = []
    temporary: list[str] = []
    problems: list[str] = []
    for preference, host_name in ordered:
        found = _host_addresses(resolver, host_name, allow_alias=implicit)
        notes.extend(found.notes)
        if found.addresses:
            hosts.append(Host(host_name, preference, found.addresses))
        elif found.temporary:
            temporary.append(found.temporary)
            notes.append(f"{host_name} skipped for now: {found.temporary}")
        elif found.problem:
            problems.append(f"{domain} has no MX and no address records" if implicit
                            else found.problem)
    notes.extend(problems)
    if hosts:
        return Destinations(domain, tuple(hosts), notes=tuple(notes), port=port)
    if temporary:
        return Destinations(domain, notes=tuple(notes), port=port, temporary_error=(
            f"{DNS_FAILURE} DNS failure resolving mail hosts of {domain}: "
            + "; ".join(temporary)))
    reason = "; ".join(problems) or "every MX record was refused"
    return Destinations(domain, notes=tuple(notes), port=port, permanent_error=(
        f"{NO_ROUTE} No usable mail host for {domain}: {reason}"))


def txt_records(name: str, *, resolver: dns.resolver.Resolver) -> list[str] | None:
    """The TXT records at ``name``, each one's character-strings joined (RFC 7208 §3.3
    style, as RFC 8461 §3.1 and RFC 8460 §3 read them); [] when there are none, None when
    the lookup failed for now.  Blocking."""
    lookup = _query(resolver, name, "TXT")
    if lookup.temporary:
        return None
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in lookup.records]


def host_addresses(name: str, *, resolver: dns.resolver.Resolver) -> tuple[str, ...]:
    """The addresses of a host name (aliases followed), IPv6 and IPv4 interleaved; empty
    when it has none or the lookup failed.  Blocking."""
    return _host_addresses(resolver, name, allow_alias=True).addresses


def resolve_relay(host: str, *, resolver: dns.resolver.Resolver, port: int) -> Destinations:
    """The smarthost as the only destination (RELAY_HOST): its own addresses, no MX lookup
    (RFC 5321 §5.1 applies to the recipient's domain, not to a configured relay).  Blocking."""
    try:
        name = ascii_domain(host)
    except ValueError as exc:
        return Destinations(host, port=port, permanent_error=f"{NO_ROUTE} RELAY_HOST: {exc}")
    if name.startswith("["):
        return Destinations(name, (Host(name, 0, (_literal_address(name),)),), port=port)
    try:
        return Destinations(name, (Host(name, 0, (str(ipaddress.ip_address(name)),)),),
                            port=port)
    except ValueError:
        pass
    lookup = _host_addresses(resolver, name, allow_alias=True)
    if lookup.addresses:
        return Destinations(name, (Host(name, 0, lookup.addresses),), port=port,
                            notes=lookup.notes)
    if lookup.temporary:
        return Destinations(name, port=port,
                            temporary_error=f"{DNS_FAILURE} RELAY_HOST {name}: {lookup.temporary}")
    # A relay host that does not resolve is the operator's mistake, and may be mended:
    # defer rather than bounce everybody's mail.
    return Destinations(name, port=port, temporary_error=f"{DNS_FAILURE} RELAY_HOST {name}: "
                        f"{lookup.problem}")
