# -*- test-case-name: tests.test_admin_doctor -*-
"""The live DNS and network check: ``mailgosend doctor [DOMAIN]`` and the admin panel's
"Check DNS" page run this one module.

For each mail domain it looks up, through the configured resolver (DNS_PRIMARY /
DNS_SECONDARY, mailauth/resolver.py), the records the server needs others to see (MX, SPF,
each DKIM key, DMARC) and says for each, in plain language, what is wrong and what to
publish instead; for the server it checks the reverse DNS of its address (forward-confirmed,
as receivers do), whether outbound port 25 can be reached at all (many providers block it)
and whether the address is on the configured DNS blocklists.

Everything here blocks (dnspython, a TCP connect): the CLI calls it directly, the server in
its thread pool (``deferToThreadPool``), never on the reactor thread.  Nothing here writes.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import dns.exception
import dns.name
import dns.resolver
import dns.reversename

from mailgosend.dnsrecords import DnsRecord, domain_records
from mailgosend.mailauth.dnsbl import query_dnsbls
from mailgosend.store import accounts, dkimkeys
from mailgosend.mailauth.resolver import ABSENT, TEMPORARY_ERRORS, txt_records

__all__ = ["DoctorSettings", "DomainInputs", "ExpectedKey", "Finding", "Report",
           "all_domain_inputs", "check_domain", "check_server", "domain_inputs", "run_checks"]

OK, WARN, FAIL, SKIPPED = "ok", "warn", "fail", "skipped"


@dataclass(frozen=True)
class Finding:
    """One check's result: ``status`` is ok, warn, fail or skipped; ``found`` what DNS (or
    the network) says; ``explanation`` why it matters, in words; ``fix`` what to do;
    ``record`` the zone-file line to publish, when one fixes it."""

    check: str
    status: str
    found: str
    explanation: str
    fix: str = ""
    record: str = ""


@dataclass(frozen=True)
class ExpectedKey:
    """A DKIM key the server signs with (or will): its record name and TXT value."""

    selector: str
    name: str          # selector._domainkey.domain
    txt: str           # v=DKIM1; k=...; p=...
    state: str = "active"


@dataclass(frozen=True)
class DoctorSettings:
    """What the checks take from the configuration."""

    hostname: str                                   # HOSTNAME
    server_ip: str = ""                             # PUBLIC_IP ("" = HOSTNAME's A record)
    dnsbl_zones: tuple[str, ...] = ()               # DNSBL_ZONES
    port25_probe: Optional[tuple[str, int]] = None  # DOCTOR_PORT25_PROBE (None: skip)
    timeout: float = 5.0

    @classmethod
    def from_config(cls, config: Any) -> DoctorSettings:
        return cls(hostname=config["HOSTNAME"], server_ip=config["PUBLIC_IP"],
                   dnsbl_zones=tuple(config["DNSBL_ZONES"]),
                   port25_probe=config["DOCTOR_PORT25_PROBE"])


# --- lookups ---------------------------------------------------------------------------------

class _Lookups:
    """dnspython through one resolver, with absent answers as [] and temporary failures
    as a text kept for the finding."""

    def __init__(self, resolver: dns.resolver.Resolver, timeout: float) -> None:
        self.resolver = resolver
        self.timeout = timeout

    def query(self, name: str, rtype: str) -> list[Any]:
        try:
            answer = self.resolver.resolve(dns.name.from_text(name), rtype,
                                           lifetime=self.timeout, search=False)
        except ABSENT:
            return []
        return list(answer)

    def txt(self, name: str) -> list[str]:
        return [t.decode("utf-8", "replace")
                for t in txt_records(self.resolver, name, self.timeout)]


def _failed_lookup(check: str, name: str, error: BaseException) -> Finding:
    return Finding(check, WARN, f"no answer for {name} ({type(error).__name__})",
                   "The DNS server did not answer, so this could not be checked; other "
                   "servers may be unable to look it up either.",
                   "Check that the domain's name servers answer (and DNS_PRIMARY if set), "
                   "then check again.")


def _guarded(check: str, name: str, run: Callable[[], list[Finding]]) -> list[Finding]:
    try:
        return run()
    except TEMPORARY_ERRORS as exc:
        return [_failed_lookup(check, name, exc)]
    except dns.exception.DNSException as exc:
        return [_failed_lookup(check, name, exc)]


def _host(name: Any) -> str:
    return str(name.to_text(omit_final_dot=True)).lower()


# --- one domain ------------------------------------------------------------------------------

@dataclass(frozen=True)
class DomainInputs:
    """What the checks of one domain compare DNS with, read from the database in one job:
    the record list (dnsrecords.py, the one generator) and the domain's DKIM keys."""

    domain: str
    records: tuple[DnsRecord, ...]
    keys: tuple[ExpectedKey, ...]


def domain_inputs(conn: Any, domain: str, config: Any) -> DomainInputs:
    """A read job: the inputs of one local domain (``AccountError`` naming ``domain``)."""
    records = domain_records(conn, domain, config)
    name = records[0].name          # the MX record's owner: the canonical domain
    keys = dkimkeys.list_keys(conn, name)
    expected = tuple(ExpectedKey(k.selector, k.record_name, k.txt_value,
                                 dkimkeys.key_state(k, keys))
                     for k in keys if dkimkeys.key_state(k, keys) != "retired")
    return DomainInputs(name, tuple(records), expected)


def all_domain_inputs(conn: Any, config: Any) -> list[DomainInputs]:
    """A read job: the inputs of every enabled domain."""
    return [domain_inputs(conn, d.name, config) for d in accounts.list_domains(conn)
            if d.enabled]


def run_checks(resolver: dns.resolver.Resolver, settings: DoctorSettings,
               inputs: Sequence[DomainInputs], *, server: bool = True,
               connect: Callable[..., Any] = socket.create_connection) -> Report:
    """Every check (blocking: a thread, never the reactor)."""
    report = Report()
    for one in inputs:
        report.domains[one.domain] = check_domain(resolver, settings, one)
    if server:
        report.server = check_server(resolver, settings, connect)
    return report


def _suggested(records: Sequence[DnsRecord], rtype: str, name: str, prefix: str) -> str:
    for record in records:
        if record.type == rtype and record.name == name and record.value.startswith(prefix):
            return record.zone_line()
    return ""


def check_domain(resolver: dns.resolver.Resolver, settings: DoctorSettings,
                 inputs: DomainInputs) -> list[Finding]:
    """The MX, SPF, DKIM and DMARC findings of one domain, then the optional records
    (MTA-STS, TLS-RPT, client discovery) of the record list."""
    look = _Lookups(resolver, settings.timeout)
    domain, keys = inputs.domain, inputs.keys
    records = {"MX": _suggested(inputs.records, "MX", domain, ""),
               "SPF": _suggested(inputs.records, "TXT", domain, "v=spf1"),
               "DMARC": _suggested(inputs.records, "TXT", f"_dmarc.{domain}", "v=DMARC1")}
    found: list[Finding] = []
    found += _guarded("MX", domain, lambda: _check_mx(look, settings, domain, records))
    found += _guarded("SPF", domain, lambda: _check_spf(look, settings, domain, records))
    for key in keys:
        found += _guarded(f"DKIM {key.selector}", key.name,
                          lambda key=key: _check_dkim(look, key))  # type: ignore[misc]
    if not keys:
        found.append(Finding("DKIM", FAIL, "no DKIM key on this server",
                             "Without a DKIM signature, receivers cannot tell your mail from "
                             "forgeries; Gmail and others reject or junk unsigned bulk mail.",
                             f"Generate a key (Domains → {domain} → DKIM, or 'mailgosend dkim "
                             f"generate {domain}') and publish the TXT record it shows."))
    found += _guarded("DMARC", f"_dmarc.{domain}",
                      lambda: _check_dmarc(look, settings, domain, records))
    for record in inputs.records:
        if not record.required:
            found += _guarded(record.name, record.name,
                              lambda record=record: _check_optional(look, record))  # type: ignore[misc]
    return found


def _normal(rtype: str, value: str) -> str:
    text = " ".join(value.split()).lower()
    return text.rstrip(".") if rtype in ("CNAME", "SRV", "MX") else text


def _check_optional(look: _Lookups, record: DnsRecord) -> list[Finding]:
    """A record that helps (MTA-STS, TLS-RPT, client discovery): missing is a warning."""
    check = f"{record.type} {record.name}"
    if record.type == "TXT":
        values = look.txt(record.name)
    else:
        values = [r.to_text() for r in look.query(record.name, record.type)]
    if record.type == "TXT":
        prefix = record.value.split(";")[0].split("=")[0]
        values = [v for v in values if v.split(";")[0].split("=")[0] == prefix] or values
    if not values:
        return [Finding(check, WARN, "not published", record.purpose[:1].upper()
                        + record.purpose[1:] + " (optional: mail flows without it).",
                        "Publish the record shown.", record.zone_line())]
    if _normal(record.type, record.value) not in {_normal(record.type, v) for v in values}:
        return [Finding(check, WARN, "; ".join(values)[:160],
                        "Published, but not with the value this server expects: "
                        + record.purpose + ".", "Replace it with the record shown.",
                        record.zone_line())]
    return [Finding(check, OK, "published", record.purpose[:1].upper() + record.purpose[1:]
                    + ".")]


def _check_mx(look: _Lookups, settings: DoctorSettings, domain: str,
              records: dict[str, str]) -> list[Finding]:
    record = records["MX"]
    mx = sorted(look.query(domain, "MX"), key=lambda r: r.preference)
    hosts = [_host(r.exchange) for r in mx]
    if not hosts:
        return [Finding("MX", FAIL, "no MX record",
                        f"Other servers do not know that mail for {domain} goes to "
                        f"{settings.hostname}; they try the domain's own address, usually in "
                        "vain, and mail is lost or bounced.",
                        f"Publish an MX record pointing at {settings.hostname}.", record)]
    shown = ", ".join(f"{r.preference} {_host(r.exchange)}" for r in mx)
    if settings.hostname.lower() not in hosts:
        return [Finding("MX", FAIL, shown,
                        f"The MX records send {domain}'s mail to other servers, not to this "
                        f"one ({settings.hostname}).",
                        f"Replace them with an MX record pointing at {settings.hostname} "
                        "(unless another server relays to this one on purpose).", record)]
    return [Finding("MX", OK, shown, f"Mail for {domain} is sent to {settings.hostname}.")]


def _check_spf(look: _Lookups, settings: DoctorSettings, domain: str,
               records: dict[str, str]) -> list[Finding]:
    record = records["SPF"]
    spf = [t for t in look.txt(domain) if t.lower().startswith("v=spf1")]
    if not spf:
        return [Finding("SPF", FAIL, "no SPF record",
                        "Without SPF, receivers cannot tell whether this server may send for "
                        f"{domain}; mail is more likely to be junked, and anyone can pretend "
                        "to send it.",
                        "Publish a TXT record saying this server (the domain's MX) sends its "
                        "mail.", record)]
    if len(spf) > 1:
        return [Finding("SPF", FAIL, " | ".join(spf),
                        "There is more than one SPF record; receivers treat that as an error "
                        "(RFC 7208 §4.5) and ignore them all.",
                        "Merge them into one TXT record.", record)]
    text = spf[0]
    terms = text.lower().split()[1:]
    authorises = any(t.lstrip("+") in ("mx", "a", f"a:{settings.hostname.lower()}",
                                       f"mx:{domain}") for t in terms)
    if settings.server_ip:
        authorises = authorises or any(t.lstrip("+") in (f"ip4:{settings.server_ip}",
                                                         f"ip6:{settings.server_ip}")
                                       for t in terms)
    includes = any(t.startswith(("include:", "redirect=")) for t in terms)
    if not authorises and not includes:
        return [Finding("SPF", FAIL, text,
                        "The SPF record does not list this server, so receivers see mail "
                        "sent from it as not authorised.",
                        "Add 'mx' to the record (this server is the domain's MX).", record)]
    if "+all" in terms or "all" in terms:
        return [Finding("SPF", WARN, text,
                        "The record ends in '+all': every server in the world may send as "
                        f"{domain}, which makes SPF useless.",
                        "End it with '-all' (or '~all') instead.", record)]
    return [Finding("SPF", OK, text, "This server may send mail for the domain.")]


def _check_dkim(look: _Lookups, key: ExpectedKey) -> list[Finding]:
    check = f"DKIM {key.selector}"
    zone_line = dkimkeys.zone_file_record(key.name, key.txt)
    published = look.txt(key.name)
    wanted = _tag(key.txt, "p")
    if not published:
        why = ("Mail is signed with this key, but receivers cannot find it, so every "
               "signature fails." if key.state == "active" else
               "This key is waiting to replace the current one; publish it before activating.")
        return [Finding(check, FAIL if key.state == "active" else WARN,
                        f"no TXT record at {key.name}", why,
                        "Publish the DKIM TXT record exactly as shown.", zone_line)]
    values = [_tag(t, "p") for t in published]
    if wanted not in values:
        return [Finding(check, FAIL, published[0][:120] + ("…" if len(published[0]) > 120 else ""),
                        "The published key is not the key this server signs with (an old "
                        "key, or the record was cut or mistyped), so signatures fail.",
                        "Replace the TXT record with the one shown.", zone_line)]
    return [Finding(check, OK, f"{key.name} matches", "Receivers can verify the signatures.")]


def _tag(record: str, name: str) -> str:
    for part in record.split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name:
            return "".join(value.split())
    return ""


def _check_dmarc(look: _Lookups, settings: DoctorSettings, domain: str,
                 records: dict[str, str]) -> list[Finding]:
    name = f"_dmarc.{domain}"
    record = records["DMARC"]
    found = [t for t in look.txt(name) if t.lower().replace(" ", "").startswith("v=dmarc1")]
    if not found:
        return [Finding("DMARC", FAIL, "no DMARC record",
                        "Without DMARC, receivers do not know what to do with mail that fails "
                        "SPF and DKIM, and large providers now require a DMARC record from "
                        "bulk senders.",
                        "Publish a DMARC record (start with p=none or p=quarantine).", record)]
    policy = _tag(found[0], "p").lower()
    if policy == "none":
        return [Finding("DMARC", WARN, found[0],
                        "p=none only monitors: forged mail in your name is still delivered.",
                        "Once SPF and DKIM pass, change it to p=quarantine or p=reject.",
                        record)]
    return [Finding("DMARC", OK, found[0], f"Receivers apply the policy p={policy}.")]


# --- the server ------------------------------------------------------------------------------

def server_address(resolver: dns.resolver.Resolver, settings: DoctorSettings) -> str:
    """PUBLIC_IP, else the first A record of HOSTNAME; "" when neither is known."""
    if settings.server_ip:
        return settings.server_ip
    try:
        answers = _Lookups(resolver, settings.timeout).query(settings.hostname, "A")
    except dns.exception.DNSException:
        return ""
    return str(answers[0].address) if answers else ""


def check_server(resolver: dns.resolver.Resolver, settings: DoctorSettings,
                 connect: Callable[..., Any] = socket.create_connection) -> list[Finding]:
    """rDNS, outbound port 25 and DNSBL findings for the server's address."""
    look = _Lookups(resolver, settings.timeout)
    ip = server_address(resolver, settings)
    found: list[Finding] = []
    if not ip:
        found.append(Finding("Server address", FAIL, f"{settings.hostname} has no A record",
                             "Other servers cannot connect to this one by name, and the "
                             "reverse DNS and blocklists cannot be checked.",
                             f"Publish an A record for {settings.hostname}, or set PUBLIC_IP.",
                             f"{settings.hostname}. A <this server's IPv4 address>"))
    else:
        found += _guarded("Reverse DNS", ip, lambda: _check_rdns(look, settings, ip))
        found += _check_dnsbl(resolver, settings, ip)
    found.append(_check_port25(settings, connect))
    return found


def _check_rdns(look: _Lookups, settings: DoctorSettings, ip: str) -> list[Finding]:
    ptr_name = dns.reversename.from_address(ip).to_text(omit_final_dot=True)
    names = [_host(r.target) for r in look.query(ptr_name, "PTR")]
    hostname = settings.hostname.lower()
    fix = (f"Ask the provider of {ip} (the hosting company, not your DNS host) to set its "
           f"reverse DNS (PTR) to {settings.hostname}.")
    if not names:
        return [Finding("Reverse DNS", FAIL, f"{ip} has no PTR record",
                        "Many receivers refuse or junk mail from an address without reverse "
                        "DNS.", fix)]
    if hostname not in names:
        return [Finding("Reverse DNS", WARN, f"{ip} → {', '.join(names)}",
                        f"The reverse DNS does not name {settings.hostname}; receivers that "
                        "compare it with the SMTP greeting score the mail as suspicious.", fix)]
    family = "AAAA" if ipaddress.ip_address(ip).version == 6 else "A"
    forward = [str(r.address) for r in look.query(settings.hostname, family)]
    if ip not in forward:
        return [Finding("Reverse DNS", WARN, f"{ip} → {hostname}, but {hostname} → "
                        f"{', '.join(forward) or 'nothing'}",
                        "Receivers confirm reverse DNS forwards; this does not match.",
                        f"Point the {family} record of {settings.hostname} at {ip}.")]
    return [Finding("Reverse DNS", OK, f"{ip} ⇄ {hostname}",
                    "The address and the name point at each other.")]


def _check_dnsbl(resolver: dns.resolver.Resolver, settings: DoctorSettings,
                 ip: str) -> list[Finding]:
    if not settings.dnsbl_zones:
        return [Finding("Blocklists", SKIPPED, "no DNSBL_ZONES configured",
                        "No blocklist to ask.")]
    hits = query_dnsbls(ip, settings.dnsbl_zones, resolver=resolver,
                        timeout=settings.timeout, skip_private=False)
    found: list[Finding] = []
    for hit in hits:
        if hit.listed:
            found.append(Finding(f"Blocklist {hit.zone}", FAIL,
                                 f"{ip} is listed ({', '.join(hit.codes)}) {hit.reason}".strip(),
                                 "Receivers that use this list refuse mail from this server.",
                                 f"Find out why on the list's web site and ask for removal "
                                 f"(look up {ip} there); fix the cause first (an open relay, a "
                                 "compromised account)."))
        else:
            found.append(Finding(f"Blocklist {hit.zone}", WARN, hit.error,
                                 "The list did not answer clearly, so this is unknown.",
                                 "Public lists refuse queries from public resolvers: set "
                                 "DNS_PRIMARY to a resolver of your own."))
    listed_zones = {h.zone for h in hits}
    for zone in settings.dnsbl_zones:
        if zone.strip(". ").lower() not in listed_zones:
            found.append(Finding(f"Blocklist {zone}", OK, f"{ip} is not listed",
                                 "Not on this list."))
    return found


def _check_port25(settings: DoctorSettings,
                  connect: Callable[..., Any]) -> Finding:
    if settings.port25_probe is None:
        return Finding("Outbound port 25", SKIPPED, "DOCTOR_PORT25_PROBE is empty",
                       "Not checked.")
    host, port = settings.port25_probe
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return Finding("Outbound port 25", SKIPPED, f"{host} could not be resolved",
                       "This machine seems to be offline (or has no DNS), so outbound "
                       "delivery could not be tested.")
    try:
        conn = connect((host, port), timeout=settings.timeout)
    except OSError as exc:
        return Finding("Outbound port 25", FAIL,
                       f"could not connect to {host}:{port} ({exc.__class__.__name__})",
                       "This server cannot reach other mail servers on port 25, so outbound "
                       "mail stays in the queue. Many home and cloud providers block it.",
                       "Ask the provider to open outbound port 25, or relay outbound mail "
                       "through a smarthost.")
    conn.close()
    return Finding("Outbound port 25", OK, f"connected to {host}:{port}",
                   "Outbound mail can reach other servers.")


@dataclass
class Report:
    """All findings of one run, per domain and for the server."""

    domains: dict[str, list[Finding]] = field(default_factory=dict)
    server: list[Finding] = field(default_factory=list)

    def count(self, status: str) -> int:
        every = [f for fs in self.domains.values() for f in fs] + self.server
        return sum(1 for f in every if f.status == status)
