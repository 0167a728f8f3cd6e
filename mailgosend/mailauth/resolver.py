"""One DNS configuration for every mail-authentication lookup (DESIGN §6).

DNS_PRIMARY / DNS_SECONDARY name the recursive resolvers (``host`` or
``host:port``, so tests point at a local server); when both are empty the
system resolver (/etc/resolv.conf) is used.  SPF (pyspf), DKIM (dkimpy), DMARC
and DNSBL lookups all go through the one dnspython ``Resolver`` built here.

Everything in this module blocks: callers run it in a thread pool, never in the
reactor thread.  A dnspython ``Resolver`` may be shared between threads once it
is configured; its ``LRUCache`` takes a lock around every access.
"""

from __future__ import annotations

import contextvars
import ipaddress
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dkim  # type: ignore[import-untyped]
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import spf  # type: ignore[import-untyped]

DEFAULT_PORT = 53
CACHE_SIZE = 10000


def parse_nameserver(text: str) -> tuple[str, int]:
    """Parse ``host``, ``host:port``, ``v6`` or ``[v6]:port`` into (address, port).

    The host must be an IP address: a resolver named by a hostname would need
    a resolver to find it.  Raises ValueError naming the problem, so config
    validation can report it against DNS_PRIMARY / DNS_SECONDARY.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty nameserver")
    port_text: str | None = None
    if value.startswith("["):
        close = value.find("]")
        if close == -1:
            raise ValueError(f"missing ']' in nameserver {value!r}")
        host, rest = value[1:close], value[close + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"unexpected {rest!r} after ']' in nameserver {value!r}")
            port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    elif value.count(":") > 1:
        host = value  # bare IPv6 literal, no port possible without brackets
    elif ":" in value:
        host, port_text = value.split(":", 1)
    else:
        host = value
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(
            f"nameserver {host!r} is not an IP address (use host or host:port "
            "with an IPv4 address, or [IPv6]:port)") from None
    port = DEFAULT_PORT
    if port_text is not None:
        if not port_text.isdigit():
            raise ValueError(f"port {port_text!r} of nameserver {value!r} is not a number")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} of nameserver {value!r} is out of range 1-65535")
    return address, port


def make_resolver(primary: str | None, secondary: str | None,
                  timeout: float = 5.0) -> dns.resolver.Resolver:
    """Build the process's resolver from DNS_PRIMARY / DNS_SECONDARY.

    Both empty means the system configuration.  ``timeout`` bounds one whole
    lookup (dnspython's lifetime); each server gets a share of it, so a dead
    primary still leaves time for the secondary.  The cache is an LRUCache,
    which is safe to share between the pool's threads.
    """
    servers = [parse_nameserver(s) for s in (primary, secondary) if s and s.strip()]
    if servers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)
                                for host, port in servers]
    else:
        resolver = dns.resolver.Resolver(configure=True)
        # Names we query are absolute; search lists would only add bogus lookups.
        resolver.search = []
        resolver.use_search_by_default = False
    resolver.lifetime = timeout
    resolver.timeout = max(timeout / max(len(resolver.nameservers), 1), 0.05)
    resolver.cache = dns.resolver.LRUCache(CACHE_SIZE)
    return resolver


# Temporary DNS failures: the answer may exist, we could not get it.
TEMPORARY_ERRORS: tuple[type[BaseException], ...] = (
    dns.exception.Timeout,
    dns.resolver.NoNameservers,        # every server gave SERVFAIL/REFUSED
    dns.resolver.NoResolverConfiguration,
)

# The name is absent or has no data of this type.
ABSENT: tuple[type[BaseException], ...] = (
    dns.resolver.NXDOMAIN,
    dns.resolver.NoAnswer,
    dns.resolver.YXDOMAIN,
    dns.name.NameTooLong,
    dns.name.LabelTooLong,
    dns.name.EmptyLabel,
)


def txt_records(resolver: dns.resolver.Resolver, name: str,
                lifetime: float | None = None) -> list[bytes]:
    """TXT records of ``name``, each one's character-strings concatenated.

    Absent names give []; temporary failures raise one of TEMPORARY_ERRORS.
    """
    try:
        answer = resolver.resolve(dns.name.from_text(name), "TXT", lifetime=lifetime,
                                  search=False)
    except ABSENT:
        return []
    # A TXT record's character-strings form one string (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
    return [b"".join(rdata.strings) for rdata in answer]


# --- dkimpy ---------------------------------------------------------------

def dkim_dnsfunc(resolver: dns.resolver.Resolver) -> Callable[..., bytes | None]:
    """A ``dnsfunc`` for dkimpy that looks up key records through ``resolver``.

    dkimpy calls ``dnsfunc(name, timeout=...)`` with a bytes name and expects
    the first TXT record's text, or None when there is none.  Temporary
    failures raise ``dkim.DnsTimeoutError`` so they become temperror
    (RFC 6376 §6.1.2) instead of the "no key" permerror that dkimpy's own
    lookup gives for SERVFAIL.
    """
    def dnsfunc(name: bytes, timeout: float = 5.0) -> bytes | None:
        try:
            text = name.decode("ascii")
        except UnicodeDecodeError:
            return None
        try:
            records = txt_records(resolver, text, min(timeout, resolver.lifetime))
        except TEMPORARY_ERRORS as e:
            raise dkim.DnsTimeoutError(f"DNS lookup of {text} failed: {type(e).__name__}")
        # Several key records are undefined (RFC 6376 §3.6.2.2); take the first.
        return records[0] if records else None
    return dnsfunc


# --- pyspf ----------------------------------------------------------------
#
# pyspf has no resolver parameter: every lookup goes through the module
# attribute ``spf.DNSLookup``.  We replace it once with a hook over our
# resolver.  That is process-wide, which is acceptable because one server
# process has exactly one DNS setting (DNS_PRIMARY/SECONDARY).  Tests that
# need another resolver for one call use ``spf_resolver_for_call`` which
# sets a context variable; context variables are per thread, so concurrent
# checks in the pool never see each other's resolver.

_call_resolver: contextvars.ContextVar[dns.resolver.Resolver | None] = \
    contextvars.ContextVar("mailgosend_spf_resolver", default=None)
_hook_lock = threading.Lock()


class _SPFLookup:
    """Replacement for ``spf.DNSLookup(name, qtype, strict, timeout)``.

    Returns pyspf's shape: ``[((name, qtype), value), ...]`` with TXT values as
    tuples of bytes.  Uses ``Resolver.resolve`` rather than pyspf's path through
    the deprecated ``dns.resolver.query``.
    """

    def __init__(self, resolver: dns.resolver.Resolver | None) -> None:
        self.resolver = resolver

    def __call__(self, name: str, qtype: str, strict: Any = True,
                 timeout: float = 20.0) -> list[tuple[tuple[str, str], Any]]:
        resolver = _call_resolver.get() or self.resolver or dns.resolver.get_default_resolver()
        try:
            answer = resolver.resolve(dns.name.from_text(name), qtype,
                                      lifetime=min(timeout, resolver.lifetime), search=False)
        except ABSENT:
            return []
        except TEMPORARY_ERRORS as e:
            raise spf.TempError(f"DNS {type(e).__name__} for {name} {qtype}")
        records: list[tuple[tuple[str, str], Any]] = []
        for rdata in answer:
            if qtype in ("A", "AAAA"):
                value: Any = rdata.address
            elif qtype == "MX":
                value = (rdata.preference, rdata.exchange.to_text(omit_final_dot=True))
            elif qtype == "PTR":
                value = rdata.target.to_text(omit_final_dot=True)
            elif qtype in ("TXT", "SPF"):
                value = tuple(rdata.strings)
            else:
                continue
            records.append(((name, qtype), value))
        return records


def install_spf_resolver(resolver: dns.resolver.Resolver | None) -> None:
    """Point pyspf at ``resolver`` for the whole process (call once at start-up).

    Process-wide by necessity (pyspf offers no other hook); one server process
    has one DNS setting, so nothing else is lost.  ``None`` keeps our hook but
    uses dnspython's default resolver.
    """
    with _hook_lock:
        spf.DNSLookup = _SPFLookup(resolver)


def ensure_spf_hook() -> None:
    """Install our pyspf hook (on dnspython's default resolver) unless one is in place."""
    with _hook_lock:
        if not isinstance(spf.DNSLookup, _SPFLookup):
            spf.DNSLookup = _SPFLookup(None)


@contextmanager
def spf_resolver_for_call(resolver: dns.resolver.Resolver | None) -> Iterator[None]:
    """Use ``resolver`` for pyspf lookups made by this thread inside the block."""
    ensure_spf_hook()
    if resolver is None:
        yield
        return
    token = _call_resolver.set(resolver)
    try:
        yield
    finally:
        _call_resolver.reset(token)
