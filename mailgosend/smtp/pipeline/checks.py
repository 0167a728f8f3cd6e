"""Mail authentication and spam scoring of one received message.

Synchronous on purpose: pyspf, dkimpy and dnspython block, so the pipeline
runs :func:`run_checks` in the worker pool (DESIGN.md §2, §6).  It never
raises for a broken message: a check that cannot run reports temperror or
permerror, and the message is still delivered (or refused only by policy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Optional, Sequence

from mailgosend.mailauth.authresults import build_authentication_results, strip_forged_results
from mailgosend.mailauth.dkim import DKIMResult, verify_dkim
from mailgosend.mailauth.dmarc import DMARCResult, evaluate_dmarc, from_domain
from mailgosend.mailauth.dnsbl import DNSBLHit, query_dnsbls
from mailgosend.mailauth.resolver import dkim_dnsfunc
from mailgosend.mailauth.spf import SPFResult, check_spf
from mailgosend.spam.rules import Hit, facts_from, score_auth, score_dnsbl, score_headers
from mailgosend.spam.verdict import SpamVerdict, combine
from mailgosend.store.mimeinfo import MessageInfo

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
    # The per-user Bayesian classifier (spam/bayes.py): silent until the user trained this
    # many ham and spam messages; its points are within [-max/2, +max], 0 turns it off.
    bayes_min_trained: int = 20
    bayes_max_points: float = 3.0

    @classmethod
    def from_config(cls, config: Any) -> "CheckSettings":
        return cls(config["HOSTNAME"], config["SPAM_CHECK_SPF"], config["SPAM_CHECK_DKIM"],
                   config["SPAM_CHECK_DMARC"], tuple(config["DNSBL_ZONES"]),
                   config["DNSBL_CHECK_PRIVATE"], config["SPAM_THRESHOLD"],
                   config["BAYES_MIN_TRAINED"], config["BAYES_MAX_POINTS"])


@dataclass(frozen=True)
class CheckInput:
    peer_ip: str
    helo: str
    mail_from: str
    header_block: bytes
    structure: MessageInfo            # MIME structure of the received message (for the rules)
    now: datetime
    # The whole message, read only when a DKIM signature needs it; None past
    # FULL_CHECK_MAX_SIZE (dkimpy needs it all in memory).
    read_full: Callable[[], Optional[bytes]] = lambda: None


def is_signed(header_block: bytes) -> bool:
    """Unsigned mail (most of it) skips dkimpy's whole-message parse (RFC 6376 §3.5)."""
    return b"dkim-signature:" in header_block.lower()


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

    def new_headers(self, verdict: Optional[SpamVerdict] = None) -> list[str]:
        """Header lines (no CRLF) to put above the message, after the Received line;
        ``verdict`` replaces the shared one in a recipient's own copy."""
        lines = [f"Authentication-Results: {self.auth_results}"]
        lines += [f"{name}: {value}" for name, value in (verdict or self.verdict).headers()]
        return lines


def run_checks(data: CheckInput, settings: CheckSettings, resolver: Any) -> CheckOutcome:
    header_block = strip_forged_results(data.header_block, settings.hostname)
    notes: list[str] = []
    spf = check_spf(data.peer_ip, data.mail_from, data.helo or "", resolver=resolver) \
        if settings.check_spf else None
    dkim: Sequence[DKIMResult] = ()
    if (settings.check_dkim or settings.check_dmarc) and is_signed(header_block):
        full = data.read_full()
        if full is not None:
            dkim = verify_dkim(full, dkim_dnsfunc(resolver))
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
        hits += score_headers(facts_from(header_block, data.structure), data.now)
    except Exception:  # the rules are best effort; a message is never lost to them
        notes.append("message could not be parsed for spam rules")
    hits += score_auth(spf.result if spf else None, [d.result for d in dkim],
                       dmarc.result if dmarc else None)
    hits += score_dnsbl([hit.zone for hit in dnsbl if hit.listed])
    verdict = combine(hits, settings.spam_threshold, forced)
    auth_results = build_authentication_results(settings.hostname, spf, list(dkim), dmarc)
    return CheckOutcome(header_block, spf, tuple(dkim), dmarc, tuple(dnsbl), verdict,
                        auth_results, reject, tuple(notes))
