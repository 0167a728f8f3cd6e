"""The rules table: named heuristics with points, pure functions over a
parsed message, tested with a table of cases.

Points follow the spirit of SpamAssassin's defaults: no single cosmetic rule
can push an authenticated, DNSBL-clean message over the default threshold of
5; a forged or blocklisted one gets there quickly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, Callable, Optional, Sequence

from mailgosend.store.mimeinfo import MessageInfo

RISKY_EXTENSIONS = (".exe", ".scr", ".pif", ".com", ".bat", ".cmd", ".vbs", ".vbe", ".js",
                    ".jse", ".wsf", ".wsh", ".msi", ".hta", ".cpl", ".jar", ".lnk", ".iso",
                    ".img", ".ps1")
_ADDRESS_IN_NAME = re.compile(r"[\w.+-]+@([\w-]+\.)+[\w-]+")


@dataclass(frozen=True)
class MessageFacts:
    """What the rules look at: the header fields and the MIME leaves' types and file names.

    Built from the header block (compat32: no decoding of the body) and the MIME structure
    the store computes anyway, so scoring never parses a whole message a second time.
    """

    headers: Message
    leaf_types: tuple[str, ...]
    filenames: tuple[str, ...]

    def get(self, name: str) -> Optional[str]:
        return self.headers.get(name)

    def get_all(self, name: str, failobj: Any = None) -> Any:
        return self.headers.get_all(name, failobj)


def facts_from(header_block: bytes, info: MessageInfo) -> MessageFacts:
    headers = BytesHeaderParser(policy=compat32).parsebytes(header_block)
    leaves: list[str] = []
    names: list[str] = []
    stack = [info.root]
    while stack:
        part = stack.pop()
        if part.filename:
            names.append(part.filename)
        if part.parts:
            stack.extend(part.parts)
        else:
            leaves.append(part.content_type)
    return MessageFacts(headers, tuple(leaves), tuple(names))


@dataclass(frozen=True)
class Rule:
    name: str
    points: float
    description: str
    matches: Callable[[MessageFacts, datetime], bool]


@dataclass(frozen=True)
class Hit:
    name: str
    points: float


def _header(msg: MessageFacts, name: str) -> str:
    """The field's value with RFC 2047 encoded words decoded; "" when absent or broken."""
    try:
        value = msg.get(name)
        if value is None:
            return ""
        return str(make_header(decode_header(str(value))))
    except Exception:  # malformed header or charset: treat as absent
        return ""


def _from_addresses(msg: MessageFacts) -> list[tuple[str, str]]:
    try:
        return [pair for pair in getaddresses(msg.get_all("From", [])) if pair[1]]
    except Exception:
        return []


def _missing_date(msg: MessageFacts, now: datetime) -> bool:
    return not _header(msg, "Date")


def _bad_date(msg: MessageFacts, now: datetime) -> bool:
    text = _header(msg, "Date")
    if not text:
        return False
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when > now + timedelta(days=2) or when < now - timedelta(days=365 * 3)


def _no_message_id(msg: MessageFacts, now: datetime) -> bool:
    return "@" not in _header(msg, "Message-ID")


def _no_from(msg: MessageFacts, now: datetime) -> bool:
    return len(_from_addresses(msg)) != 1


def _name_holds_other_address(msg: MessageFacts, now: datetime) -> bool:
    """Display name shows an address in another domain: "PayPal <x@evil>" tricks."""
    for name, address in _from_addresses(msg):
        try:
            name = str(make_header(decode_header(name)))
        except Exception:
            pass
        shown = _ADDRESS_IN_NAME.search(name)
        if shown and shown.group(0).lower().split("@")[-1] != address.lower().split("@")[-1]:
            return True
    return False


def _subject(msg: MessageFacts) -> str:
    return _header(msg, "Subject")


def _subject_shouting(msg: MessageFacts, now: datetime) -> bool:
    letters = [c for c in _subject(msg) if c.isalpha()]
    return len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.8


def _subject_exclaims(msg: MessageFacts, now: datetime) -> bool:
    return "!!!" in _subject(msg) or _subject(msg).count("$") >= 3


def _empty_subject(msg: MessageFacts, now: datetime) -> bool:
    return not _subject(msg).strip()


def _html_only(msg: MessageFacts, now: datetime) -> bool:
    return "text/html" in msg.leaf_types and "text/plain" not in msg.leaf_types


def _risky_attachment(msg: MessageFacts, now: datetime) -> bool:
    return any(name.lower().rstrip(". ").endswith(RISKY_EXTENSIONS) for name in msg.filenames)


def _reply_to_elsewhere(msg: MessageFacts, now: datetime) -> bool:
    froms = _from_addresses(msg)
    try:
        replies = [a for _, a in getaddresses(msg.get_all("Reply-To", [])) if a]
    except Exception:
        return False
    if not froms or not replies:
        return False
    domain = froms[0][1].lower().rsplit("@", 1)[-1]
    return all(r.lower().rsplit("@", 1)[-1] != domain for r in replies)


def _undisclosed_crowd(msg: MessageFacts, now: datetime) -> bool:
    try:
        count = len(getaddresses(msg.get_all("To", []) + msg.get_all("Cc", [])))
    except Exception:
        return False
    return count > 50


RULES: tuple[Rule, ...] = (
    Rule("MISSING_DATE", 1.0, "no Date header (RFC 5322 §3.6 requires one)", _missing_date),
    Rule("BAD_DATE", 1.0, "Date unparsable, in the future or years old", _bad_date),
    Rule("MISSING_MID", 1.0, "no Message-ID", _no_message_id),
    Rule("FROM_NOT_ONE", 2.5, "zero or several From addresses", _no_from),
    Rule("FROM_NAME_SPOOF", 2.0, "display name shows an address of another domain",
         _name_holds_other_address),
    Rule("SUBJ_ALL_CAPS", 1.0, "subject in capitals", _subject_shouting),
    Rule("SUBJ_EXCLAIM", 1.0, "subject with !!! or $$$", _subject_exclaims),
    Rule("EMPTY_SUBJECT", 0.5, "empty subject", _empty_subject),
    Rule("HTML_ONLY", 0.5, "HTML without a plain-text part", _html_only),
    Rule("RISKY_ATTACHMENT", 5.0, "executable attachment (.exe, .js, .scr, ...)",
         _risky_attachment),
    Rule("REPLYTO_ELSEWHERE", 0.5, "Reply-To in another domain than From", _reply_to_elsewhere),
    Rule("MANY_RECIPIENTS", 1.0, "more than 50 To/Cc addresses", _undisclosed_crowd),
)

# Points for mail-authentication results (RFC 7208 / 6376 / 7489 outcomes).
AUTH_POINTS = {
    ("spf", "fail"): 3.0, ("spf", "softfail"): 1.0, ("spf", "permerror"): 0.5,
    ("dkim", "fail"): 2.0, ("dkim", "permerror"): 0.5,
    ("dmarc", "fail"): 3.0,
}
DNSBL_POINTS = 4.0
DNSBL_MAX_POINTS = 8.0


def score_headers(msg: MessageFacts, now: datetime,
                  rules: Sequence[Rule] = RULES) -> list[Hit]:
    """Header and structure heuristics; pure, no DNS."""
    hits = []
    for rule in rules:
        try:
            matched = rule.matches(msg, now)
        except Exception:  # a rule must never lose a message: broken input just doesn't match
            matched = False
        if matched:
            hits.append(Hit(rule.name, rule.points))
    return hits


def score_auth(spf: Optional[str], dkim: Sequence[str], dmarc: Optional[str]) -> list[Hit]:
    """Points for authentication failures; a DKIM failure counts only without any pass."""
    hits = []
    if spf and ("spf", spf) in AUTH_POINTS:
        hits.append(Hit(f"SPF_{spf.upper()}", AUTH_POINTS[("spf", spf)]))
    if dkim and "pass" not in dkim:
        for result in ("fail", "permerror"):
            if result in dkim:
                hits.append(Hit(f"DKIM_{result.upper()}", AUTH_POINTS[("dkim", result)]))
                break
    if dmarc and ("dmarc", dmarc) in AUTH_POINTS:
        hits.append(Hit(f"DMARC_{dmarc.upper()}", AUTH_POINTS[("dmarc", dmarc)]))
    return hits


def score_dnsbl(zones_listed: Sequence[str]) -> list[Hit]:
    hits = []
    total = 0.0
    for zone in zones_listed:
        points = min(DNSBL_POINTS, DNSBL_MAX_POINTS - total)
        if points <= 0:
            break
        hits.append(Hit(f"DNSBL({zone})", points))
        total += points
    return hits
