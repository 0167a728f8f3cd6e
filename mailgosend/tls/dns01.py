"""DNS-01 (RFC 8555 §8.4): putting ``_acme-challenge`` TXT records into the zone, and waiting
until every authoritative server of the zone serves them before the CA is asked to look.

Providers: any of dns-lexicon's (ACME_DNS_PROVIDER = cloudflare, route53...; credentials as
LEXICON_<PROVIDER>_<OPTION>), or ACME_DNS_PROVIDER = hook, a program run as
``program add|remove FQDN VALUE``.  Everything here blocks (HTTP APIs, subprocesses, DNS
queries, sleeps): tls/acme.py calls it from a thread, never from the reactor.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, Protocol

from twisted.logger import Logger

log = Logger()


class DNS01Error(Exception):
    """A TXT record could not be added, removed or seen; the message names the setting to
    check and never contains credentials."""


class DNSProvider(Protocol):
    """Adds and removes ``_acme-challenge`` TXT records; blocking, called in a thread."""

    def add(self, fqdn: str, value: str) -> None: ...

    def remove(self, fqdn: str, value: str) -> None: ...


class HookProvider:
    """ACME_DNS_PROVIDER = hook: ``program add|remove FQDN VALUE``; exit 0 means done."""

    def __init__(self, program: str, timeout: float) -> None:
        self.program = program
        self.timeout = timeout

    def _run(self, action: str, fqdn: str, value: str) -> None:
        try:
            done = subprocess.run([self.program, action, fqdn, value], capture_output=True,
                                  timeout=self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DNS01Error(f"ACME_DNS_HOOK {action} {fqdn}: no exit within "
                            f"{self.timeout:g} s (ACME_DNS_HOOK_TIMEOUT)") from None
        except OSError as exc:
            raise DNS01Error(f"ACME_DNS_HOOK {self.program}: cannot run: "
                             f"{exc.strerror}") from None
        output = _redact((done.stdout + done.stderr).decode("utf-8", "replace"), value)
        if output.strip():
            log.info("ACME_DNS_HOOK {action} {fqdn}: {output}", action=action, fqdn=fqdn,
                     output=output.strip()[:2000])
        if done.returncode != 0:
            raise DNS01Error(f"ACME_DNS_HOOK {action} {fqdn}: exit status {done.returncode}")

    def add(self, fqdn: str, value: str) -> None:
        self._run("add", fqdn, value)

    def remove(self, fqdn: str, value: str) -> None:
        self._run("remove", fqdn, value)


def _redact(text: str, *secrets: str) -> str:
    """Hook output with the challenge value and any credentials it may echo taken out."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


class LexiconProvider:
    """Any DNS provider dns-lexicon supports; credentials from LEXICON_<PROVIDER>_<OPTION>
    (configuration keys first, then environment variables, as lexicon reads them)."""

    def __init__(self, provider: str, zone_for: Callable[[str], str],
                 options: Mapping[str, str]) -> None:
        self.provider = provider
        self.zone_for = zone_for
        self.options = dict(options)

    def _client(self, zone: str) -> Any:
        from lexicon.client import Client
        from lexicon.config import ConfigResolver, DictConfigSource

        prefix = f"LEXICON_{self.provider.upper()}_"
        provider_options = {name[len(prefix):].lower(): value
                            for name, value in self.options.items() if name.startswith(prefix)}
        config = (ConfigResolver()
                  .with_dict({"provider_name": self.provider, "domain": zone, "ttl": 60,
                              self.provider: provider_options})
                  .with_env())
        client = Client(config)
        # Lexicon guesses the zone from the public suffix list, which fails for private or
        # delegated zones (example.test became "example."); we know the zone: it wins.
        client.config.add_config_source(DictConfigSource({"domain": zone}), 0)
        return client

    def _relative(self, fqdn: str, zone: str) -> str:
        name = fqdn.rstrip(".")
        return name[: -len(zone) - 1] if name.endswith("." + zone) else name

    def add(self, fqdn: str, value: str) -> None:
        zone = self.zone_for(fqdn)
        try:
            with self._client(zone) as operations:
                operations.create_record("TXT", self._relative(fqdn, zone), value)
        except Exception as exc:  # providers raise anything; never show their request bodies
            shown = _redact(str(exc), *self.options.values())[:300]
            raise DNS01Error(f"dns-lexicon {self.provider}: adding TXT {fqdn} failed: "
                             f"{type(exc).__name__}: {shown}") from None

    def remove(self, fqdn: str, value: str) -> None:
        zone = self.zone_for(fqdn)
        try:
            with self._client(zone) as operations:
                operations.delete_record(None, "TXT", self._relative(fqdn, zone), value)
        except Exception as exc:
            raise DNS01Error(f"dns-lexicon {self.provider}: removing TXT {fqdn} failed: "
                            f"{type(exc).__name__}") from None


def _resolver(primary: str) -> Any:
    import dns.nameserver
    import dns.resolver

    from mailgosend.mailauth.resolver import parse_nameserver

    if primary:
        host, port = parse_nameserver(primary)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)]
    else:
        resolver = dns.resolver.Resolver(configure=True)
    resolver.lifetime = 10.0
    return resolver


def zone_of(fqdn: str, primary: str) -> str:
    """The zone holding ``fqdn`` (the closest enclosing SOA), found through DNS_PRIMARY."""
    import dns.exception
    import dns.resolver

    try:
        zone = dns.resolver.zone_for_name(fqdn, resolver=_resolver(primary))
    except dns.exception.DNSException as exc:
        raise DNS01Error(f"cannot find the DNS zone of {fqdn} (set ACME_DNS_ZONE): "
                        f"{type(exc).__name__}") from None
    return zone.to_text(omit_final_dot=True).lower()


def authoritative_servers(fqdn: str, primary: str) -> list[tuple[str, int]]:
    """The addresses of the zone's NS hosts; DNS_PRIMARY's port is kept (test servers listen on
    one port).  When no NS can be found (a private test zone), DNS_PRIMARY itself."""
    import dns.exception
    import dns.resolver

    from mailgosend.mailauth.resolver import parse_nameserver

    resolver = _resolver(primary)
    port = parse_nameserver(primary)[1] if primary else 53
    servers: list[tuple[str, int]] = []
    try:
        zone = dns.resolver.zone_for_name(fqdn, resolver=resolver)
        for ns in resolver.resolve(zone, "NS"):
            for kind in ("A", "AAAA"):
                try:
                    servers.extend((str(a), port) for a in resolver.resolve(ns.target, kind))
                except dns.exception.DNSException:
                    continue
    except dns.exception.DNSException:
        servers = []
    if not servers and primary:
        servers = [parse_nameserver(primary)]
    return _unique_servers(servers)


def _unique_servers(servers: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for item in servers:
        if item not in found:
            found.append(item)
    return found


def wait_for_txt(fqdn: str, value: str, servers: Sequence[tuple[str, int]], timeout: float,
                 interval: float = 2.0, stop: Optional[threading.Event] = None) -> None:
    """Block until every server answers ``value`` among the TXT records of ``fqdn`` (asked
    directly, no cache), or raise DNS01Error after ``timeout`` seconds."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rdatatype

    deadline = time.monotonic() + timeout
    waiting = list(servers)
    while waiting:
        for host, port in list(waiting):
            query = dns.message.make_query(fqdn, dns.rdatatype.TXT)
            try:
                answer = dns.query.udp(query, host, port=port, timeout=3.0)
            except (dns.exception.DNSException, OSError):
                continue
            values = {b"".join(rdata.strings).decode("ascii", "replace")
                      for rrset in answer.answer for rdata in rrset
                      if rrset.rdtype == dns.rdatatype.TXT}
            if value in values:
                waiting.remove((host, port))
        if not waiting:
            return
        if time.monotonic() > deadline:
            shown = ", ".join(f"{host}:{port}" for host, port in waiting)
            raise DNS01Error(f"TXT {fqdn} not served by {shown} after {timeout:g} s "
                            "(ACME_DNS_PROPAGATION_SECONDS)")
        if stop is not None and stop.wait(interval):
            raise DNS01Error("the server is stopping; the attempt was abandoned")
        if stop is None:
            time.sleep(interval)


def existing_names(names: Sequence[str], primary: str) -> list[str]:
    """The names that have an address (A or AAAA, through CNAMEs) in DNS, in order."""
    import dns.exception

    resolver = _resolver(primary)
    found = []
    for name in names:
        for kind in ("A", "AAAA"):
            try:
                resolver.resolve(name, kind)
            except dns.exception.DNSException:
                continue
            found.append(name)
            break
    return found
