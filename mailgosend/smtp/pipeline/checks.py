"""Mail authentication and spam scoring of one received message.

Synchronous on purpose: pyspf, dkimpy and dnspython block, so the pipeline
runs :func:`run_checks` in the worker pool (DESIGN.md §2, §6).  It never
raises for a broken message: a check that cannot run reports temperror or
permerror, and the message is still delivered (or refused only by policy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from typing import Any, Optional, Sequence

from mailgosend.mailauth.authresults import build_authentication_results, strip_forged_results
from mailgosend.mailauth.dkim import DKIMResult, verify_dkim
from mailgosend.mailauth.dmarc import DMARCResult, evaluate_dmarc, from_domain
from mailgosend.mailauth.dnsbl import DNSBLHit, query_dnsbls
from mailgosend.mailauth.resolver import dkim_dnsfunc
from mailgosend.mailauth.spf import SPFResult, check_spf
from mailgosend.spam.rules import Hit, score_auth, score_dnsbl, score_headers
from mailgosend.spam.verdict import SpamVerdict, combine

# dkimpy needs the whole message in memory; past this size DKIM is not verified
# (SpamAssassin and Rspamd skip large messages for the same reason).
FULL_CHECK_MAX_SIZE = 25 * 1024 * 1024
DNSBL_TIMEOUT = 5.0


@dataclass(frozen=True)
class CheckSettings:
    hostname: str
    check_spf: bool
    check_dkim: bool
    check_dmarc: bool
    dnsbl_zones: tuple[str, ...]
    dnsbl_private: bool
    spam_threshold: float

    @classmethod
    def from_config(cls, config: Any) -> "CheckSettings":
        return cls(config["HOSTNAME"], config["SPAM_CHECK_SPF"], config["SPAM_CHECK_DKIM"],
                   config["SPAM_CHECK_DMARC"], tuple(config["DNSBL_ZONES"]),
                   config["DNSBL_CHECK_PRIVATE"], config["SPAM_THRESHOLD"])


@dataclass(frozen=True)
class CheckInput:
    peer_ip: str
    helo: str
    mail_from: str
    header_block: bytes
    full_message: Optional[bytes]     # None when over FULL_CHECK_MAX_SIZE
    now: datetime


@dataclass(frozen=True)
class CheckOutcome:
    header_block: bytes               # forged Authentication-Results removed
    spf: Optional[SPFResult]
    dkim: tuple[DKIMResult, ...]
    dmarc: Optional[DMARCResult]
    dnsbl: tuple[DNSBLHit, ...]
    verdict: SpamVerdict
    auth_results: str                 # the header value, folded
    reject: Optional[str] = None      # DMARC p=reject and SPAM_CHECK_DMARC: refuse with this text
    notes: tuple[str, ...] = field(default=())

    def new_headers(self) -> list[str]:
        """Header lines (no CRLF) to put above the message, after the Received line."""
        lines = [f"Authentication-Results: {self.auth_results}"]
        lines += [f"{name}: {value}" for name, value in self.verdict.headers()]
        return lines


def run_checks(data: CheckInput, settings: CheckSettings, resolver: Any) -> CheckOutcome:
    header_block = strip_forged_results(data.header_block, settings.hostname)
    notes: list[str] = []
    spf = check_spf(data.peer_ip, data.mail_from, data.helo or "", resolver=resolver) \
        if settings.check_spf else None
    dkim: Sequence[DKIMResult] = ()
    if settings.check_dkim or settings.check_dmarc:
        if data.full_message is not None:
            dkim = verify_dkim(data.full_message, dkim_dnsfunc(resolver))
        else:
            notes.append("message too large to verify DKIM")
    dmarc = None
    reject = None
    forced = ""
    if settings.check_dmarc:
        author = from_domain(header_block)
        dmarc = evaluate_dmarc(author.domain if author.status == "ok" else "", spf, dkim,
                               resolver=resolver)
        if dmarc.result == "fail" and dmarc.disposition == "reject":
            reject = f"Message rejected per the DMARC policy of {dmarc.header_from}"
        elif dmarc.result == "fail" and dmarc.disposition == "quarantine":
            forced = f"DMARC quarantine policy of {dmarc.header_from}"
    dnsbl: Sequence[DNSBLHit] = ()
    if settings.dnsbl_zones:
        dnsbl = query_dnsbls(data.peer_ip, settings.dnsbl_zones, resolver=resolver,
                             timeout=DNSBL_TIMEOUT, skip_private=not settings.dnsbl_private)
    hits: list[Hit] = []
    try:
        parsed = message_from_bytes(data.full_message if data.full_message is not None
                                    else header_block, policy=policy.default)
        hits += score_headers(parsed, data.now)  # type: ignore[arg-type]
    except Exception:  # the rules are best effort; a message is never lost to them
        notes.append("message could not be parsed for spam rules")
    hits += score_auth(spf.result if spf else None, [d.result for d in dkim],
                       dmarc.result if dmarc else None)
    hits += score_dnsbl([hit.zone for hit in dnsbl if hit.listed])
    verdict = combine(hits, settings.spam_threshold, forced)
    auth_results = build_authentication_results(settings.hostname, spf, list(dkim), dmarc)
    return CheckOutcome(header_block, spf, tuple(dkim), dmarc, tuple(dnsbl), verdict,
                        auth_results, reject, tuple(notes))
