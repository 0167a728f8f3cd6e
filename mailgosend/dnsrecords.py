# -*- test-case-name: tests.test_dnsrecords -*-
"""The DNS records a local domain should publish: the one list the CLI (``mailgosend dns
records``), the admin panel's domain page and ``mailgosend doctor`` all show and check.

``records_for(domain, config, dkim_keys)`` is pure: it reads the configuration and the
domain's DKIM keys (store/dkimkeys.list_keys) and returns ``DnsRecord`` values; nothing here
touches the network or the database.  Each record carries a short plain-language purpose
and whether mail works without it (``required``).

Names are absolute, without the final dot; ``zone_line()`` gives the BIND form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from mailgosend.clientports import client_ports
from mailgosend.mtasts import own_policy, tlsrpt_rua
from mailgosend.store.dkimkeys import DKIMKey, zone_file_record

__all__ = ["DnsRecord", "SRV_SERVICES", "domain_records", "records_for", "zone_file"]

MX_PREFERENCE = 10

# RFC 6186 §3 (and RFC 8314 §5.1 for _submissions): SRV owner -> (listener, priority).
# Implicit TLS first (lower priority), IMAP before POP3 (RFC 6186 §3.4 lets one client pick
# across _imap/_imaps/_pop3/_pop3s by priority).
SRV_SERVICES: tuple[tuple[str, str, int], ...] = (
    ("_submissions", "smtps", 0),
    ("_submission", "submit", 10),
    ("_imaps", "imaps", 0),
    ("_imap", "imap", 10),
    ("_pop3s", "pop3s", 20),
    ("_pop3", "pop3", 30),
)
_SRV_PURPOSE = {
    "smtps": "mail clients find where to send mail (implicit TLS, RFC 8314)",
    "submit": "mail clients find where to send mail (STARTTLS)",
    "imaps": "mail clients find the IMAP server (implicit TLS)",
    "imap": "mail clients find the IMAP server (STARTTLS)",
    "pop3s": "mail clients find the POP3 server (implicit TLS)",
    "pop3": "mail clients find the POP3 server (STLS)",
}


@dataclass(frozen=True)
class DnsRecord:
    """One record to publish.  ``value`` is the RDATA as a zone file writes it, without
    quotes for TXT (``zone_line`` adds them): ``10 mail.example.com.`` for MX,
    ``0 1 993 mail.example.com.`` for SRV, the CNAME target with its final dot."""

    name: str          # owner name, absolute, no final dot
    type: str          # MX, TXT, CNAME, SRV
    value: str
    purpose: str       # what it is for, in plain words
    required: bool     # False: mail flows without it (it helps clients or other servers)

    def zone_line(self) -> str:
        """The record as one BIND zone-file entry (TXT values split into 255-byte strings)."""
        if self.type == "TXT":
            return zone_file_record(self.name, self.value)
        return f"{self.name}. IN {self.type} {self.value}"


def _srv(name: str, domain: str, port: int, host: str, priority: int, active: bool,
         purpose: str) -> DnsRecord:
    # RFC 6186 §4 / RFC 2782: target "." says the service is not offered at this domain.
    value = f"{priority} 1 {port} {host}." if active else "0 0 0 ."
    if not active:
        purpose += "; not offered here, and the record says so"
    return DnsRecord(f"{name}._tcp.{domain}", "SRV", value, purpose, False)


def records_for(domain: str, config: Any, dkim_keys: Sequence[DKIMKey]) -> list[DnsRecord]:
    """Every record ``domain`` (a local domain, canonical form) should publish, given the
    configuration and the domain's DKIM keys (active, pending and retired: see
    store/dkimkeys.dns_records).  Order: mail routing and authentication first, then
    MTA-STS/TLS-RPT, then client discovery."""
    host = config["HOSTNAME"].lower().rstrip(".")
    records = [
        DnsRecord(domain, "MX", f"{MX_PREFERENCE} {host}.",
                  f"other mail servers deliver mail for {domain} to {host}", True),
        # RFC 7208: "mx" authorises the host the MX names, which is where we send from.
        DnsRecord(domain, "TXT", "v=spf1 mx -all",
                  "SPF: receivers accept mail from your MX host as sent by this domain "
                  "(add your smarthost if RELAY_HOST is set)", True),
    ]
    for key in dkim_keys:
        state = "signs outgoing mail" if key.active else "published for rotation"
        records.append(DnsRecord(key.record_name, "TXT", key.txt_value,
                                 f"DKIM {key.algorithm} public key ({state}): receivers "
                                 "verify the signatures on your mail", key.active))
    records.append(DnsRecord(
        f"_dmarc.{domain}", "TXT", f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}",
        "DMARC: receivers treat mail that fails SPF and DKIM for this domain as spam", True))
    policy = own_policy(config)
    records.append(DnsRecord(f"mta-sts.{domain}", "CNAME", f"{host}.",
                             "MTA-STS: senders fetch the policy from "
                             f"https://mta-sts.{domain}/.well-known/mta-sts.txt (served on "
                             "the web port; it must be reachable on 443)", False))
    records.append(DnsRecord(f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={policy.id}",
                             f"MTA-STS: announces the policy (mode {policy.mode}); the id "
                             "changes whenever the policy does", False))
    rua = tlsrpt_rua(config, domain)
    if rua is not None:
        records.append(DnsRecord(f"_smtp._tls.{domain}", "TXT", f"v=TLSRPTv1; rua={rua}",
                                 "TLS-RPT: other servers send daily reports of TLS "
                                 "problems delivering to you", False))
    for label, what in (("autoconfig", "Thunderbird and other clients"),
                        ("autodiscover", "Outlook")):
        records.append(DnsRecord(f"{label}.{domain}", "CNAME", f"{host}.",
                                 f"{what} fetch their settings from here", False))
    ports = {p.listener: p for p in client_ports(config)}
    for name, listener, priority in SRV_SERVICES:
        port = ports[listener]
        records.append(_srv(name, domain, port.port, host, priority, port.active,
                            _SRV_PURPOSE[listener]))
    # RFC 6764 §3 / §4: calendars and contacts on the web port, with their context path.
    web = config.listener("web")
    secure = "s" if config["WEB_TLS"] else ""
    for kind, path, what in (("caldav", "/caldav/", "calendar"),
                             ("carddav", "/carddav/", "contacts")):
        owner = f"_{kind}{secure}._tcp.{domain}"
        records.append(_srv(f"_{kind}{secure}", domain, web.port, host, 0, web.active,
                            f"{what} apps find the {kind.upper()} server (RFC 6764)"))
        if web.active:
            records.append(DnsRecord(owner, "TXT", f"path={path}",
                                     f"{what} apps find the {kind.upper()} path", False))
    return records


def domain_records(conn: Any, domain: str, config: Any) -> list[DnsRecord]:
    """The records of a local domain, read in one job (``AccountError`` naming ``domain``
    if it is not one): ``mailgosend dns records``, the admin panel and ``doctor``."""
    from mailgosend.store import dkimkeys
    from mailgosend.store.accounts import get_domain

    name = get_domain(conn, domain).name
    return records_for(name, config, dkimkeys.list_keys(conn, name))


def zone_file(records: Sequence[DnsRecord]) -> str:
    """The records as a zone-file fragment, each preceded by a comment with its purpose."""
    out = []
    for record in records:
        optional = "" if record.required else " (optional)"
        out.append(f"; {record.purpose}{optional}")
        out.append(record.zone_line())
    return "\n".join(out) + "\n"
