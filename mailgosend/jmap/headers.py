# -*- test-case-name: tests.test_jmap_email_get -*-
"""Header fields of a message or part, and the parsed forms of RFC 8621 §4.1.2.

``fields(block)`` splits a raw header block into (name, raw value) pairs, the value being
what follows the colon up to (excluding) the field's final line break, folds included:
the "Raw" form (§4.1.2.1).  ``parse(form, raw)`` gives the other forms: Text (§4.1.2.2),
Addresses and GroupedAddresses (§4.1.2.3-4), MessageIds (§4.1.2.5), Date (§4.1.2.6) and
URLs (§4.1.2.7); a value that does not parse in a form is null, as the RFC says.
``HeaderProperty.of`` reads a ``header:Name[:asForm][:all]`` property (§4.1.3).
"""

from __future__ import annotations

import email.header
import email.policy
import email.utils
import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

__all__ = ["FORMS", "HeaderProperty", "fields", "parse", "decoded_text", "parse_utc_date",
           "rfc3339", "utc_date"]

FORMS = ("Raw", "Text", "Addresses", "GroupedAddresses", "MessageIds", "Date", "URLs")

# RFC 8621 §4.1.2: the forms each well-known field may be fetched in (Raw always); any
# other field may be fetched in every form.
_ADDRESS_FIELDS = ("from", "sender", "reply-to", "to", "cc", "bcc", "resent-from",
                   "resent-sender", "resent-reply-to", "resent-to", "resent-cc", "resent-bcc")
_ALLOWED: dict[str, frozenset[str]] = {
    **{name: frozenset({"Raw", "Text"}) for name in ("subject", "comments", "keywords",
                                                     "list-id")},
    **{name: frozenset({"Raw", "Addresses", "GroupedAddresses"}) for name in _ADDRESS_FIELDS},
    **{name: frozenset({"Raw", "MessageIds"}) for name in ("message-id", "in-reply-to",
                                                           "references",
                                                           "resent-message-id")},
    **{name: frozenset({"Raw", "Date"}) for name in ("date", "resent-date")},
    **{name: frozenset({"Raw", "URLs"}) for name in ("list-help", "list-unsubscribe",
                                                     "list-subscribe", "list-post",
                                                     "list-owner", "list-archive")},
}
_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_MSG_ID = re.compile(r"<\s*([^<>\s]+?)\s*>")
_URL = re.compile(r"<\s*([^<>]*?)\s*>")
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")


def fields(block: bytes) -> list[tuple[str, str]]:
    """(name, raw value) of every field of a header block, in order.  Octets that are not
    UTF-8 become U+FFFD (§4.1.2.1 says a server SHOULD do so)."""
    result: list[tuple[str, bytearray]] = []
    for line in block.splitlines(keepends=True):
        bare = line.rstrip(b"\r\n")
        if not bare:
            break
        if bare[:1] in (b" ", b"\t"):
            if result:
                result[-1][1].extend(line)
            continue
        match = _FIELD.match(bare)
        if match is None:
            break
        result.append((match.group(1).decode("ascii"), bytearray(line[match.end():])))
    return [(name, _strip_final_break(bytes(value)).decode("utf-8", "replace"))
            for name, value in result]


def _strip_final_break(value: bytes) -> bytes:
    if value.endswith(b"\r\n"):
        return value[:-2]
    return value[:-1] if value.endswith(b"\n") else value


def allowed(name: str, form: str) -> bool:
    """Whether header field ``name`` may be fetched in ``form`` (RFC 8621 §4.1.2)."""
    forms = _ALLOWED.get(name.lower())
    return forms is None or form in forms


def unfold(raw: str) -> str:
    return _FOLD.sub("", raw)


def decoded_text(raw: str) -> str:
    """The Text form (§4.1.2.2): unfolded, RFC 2047 words decoded, trimmed, NFC."""
    text = unfold(raw).strip()
    if "=?" in text:
        try:
            text = str(email.header.make_header(email.header.decode_header(text)))
        except (LookupError, ValueError, UnicodeError):  # unknown charset, broken word
            pass
    return unicodedata.normalize("NFC", text)


Groups = list[tuple[Optional[str], list[dict[str, Any]]]]


def _addresses(raw: str) -> Optional[Groups]:
    """The Addresses/GroupedAddresses parse (§4.1.2.3-4): the common shapes (``a@b``,
    ``Name <a@b>``, ``"Quoted, Name" <a@b>``, lists of them) by a quick scan, anything
    else (groups, comments, quoted pairs, broken input) by the stdlib's RFC 5322 parser.
    Fresh lists each call: the cached parse is immutable."""
    parsed = _parsed_addresses(unfold(raw).strip())
    if parsed is None:
        return None
    return [(name, [{"name": n, "email": e} for n, e in members]) for name, members in parsed]


_Parsed = tuple[tuple[Optional[str], tuple[tuple[Optional[str], str], ...]], ...]
_QUICK_ITEM = re.compile(r'\s*(?:(?P<name>"(?:[^"\\]|\\.)*"|[^"<>,;:@()\\]*?)\s*'
                         r'<(?P<angle>[^<>\s"()@,;:\\]+@[^<>\s"(),;:\\]+)>'
                         r'|(?P<bare>[^\s<>"(),;:\\@]+@[^\s<>"(),;:\\]+))\s*\Z')


@functools.lru_cache(maxsize=4096)
def _parsed_addresses(text: str) -> Optional[_Parsed]:
    if not text:
        return ()
    quick = _quick_addresses(text)
    if quick is not None:
        return ((None, quick),)
    try:
        header = email.policy.default.header_factory("to", text)
        groups = header.groups  # type: ignore[attr-defined]
    except Exception:  # the stdlib parser raises on some broken input
        return None
    result: list[tuple[Optional[str], list[tuple[Optional[str], str]]]] = []
    for group in groups:
        members = [(unicodedata.normalize("NFC", a.display_name) or None, a.addr_spec)
                   for a in group.addresses if a.addr_spec != "<>"]
        if group.display_name is None and result and result[-1][0] is None:
            result[-1][1].extend(members)  # §4.1.2.4: one null-named group per run
        else:
            result.append((group.display_name, members))
    return tuple((name, tuple(members)) for name, members in result)


def _split_commas(text: str) -> Optional[list[str]]:
    """Items of a comma-separated list, commas inside quotes or angle brackets kept."""
    items, start, quoted, angle, i = [], 0, False, False, 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            items.append(text[start:i])
            start = i + 1
        i += 1
    if quoted or angle:
        return None
    items.append(text[start:])
    return items


def _quick_addresses(text: str) -> Optional[tuple[tuple[Optional[str], str], ...]]:
    """The common shapes only; None sends the text to the full parser."""
    items = _split_commas(text)
    if items is None:
        return None
    found: list[tuple[Optional[str], str]] = []
    for item in items:
        if not item.strip():
            continue
        match = _QUICK_ITEM.match(item)
        if match is None:
            return None
        if match.group("bare"):
            found.append((None, match.group("bare")))
            continue
        name = match.group("name").strip()
        if name.startswith('"'):
            if "\\" in name:
                return None
            name = name[1:-1]
        if "=?" in name:
            name = decoded_text(name)
        name = unicodedata.normalize("NFC", " ".join(name.split()))
        found.append((name or None, match.group("angle")))
    return tuple(found)


def rfc3339(moment: datetime) -> str:
    """A Date (RFC 3339 with the original offset, no fractions)."""
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_utc_date(value: object) -> datetime:
    """A UTCDate (RFC 8620 §1.4, "2026-07-01T00:00:00Z") as an aware datetime; ValueError
    for anything else."""
    if not isinstance(value, str) or not value.endswith("Z"):
        raise ValueError("not a UTCDate")
    return datetime.fromisoformat(value[:-1]).replace(tzinfo=timezone.utc)


def utc_date(moment: datetime) -> str:
    """A UTCDate (RFC 8620 §1.4): "2014-10-30T06:12:00Z"."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(form: str, raw: str) -> Any:
    """The value of one field in ``form``; None when it does not parse in that form."""
    if form == "Raw":
        return raw
    if form == "Text":
        return decoded_text(raw)
    if form in ("Addresses", "GroupedAddresses"):
        groups = _addresses(raw)
        if groups is None:
            return None
        if form == "Addresses":
            return [address for _, addresses in groups for address in addresses]
        return [{"name": name, "addresses": addresses} for name, addresses in groups]
    if form == "MessageIds":
        ids = _MSG_ID.findall(_COMMENT.sub(" ", unfold(raw)))
        return ids or None
    if form == "Date":
        try:
            moment = email.utils.parsedate_to_datetime(unfold(raw).strip())
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None:
            return None
        if moment.tzinfo is None:  # "-0000": the offset is unknown; UTC it is
            moment = moment.replace(tzinfo=timezone.utc)
        return rfc3339(moment)
    if form == "URLs":
        urls = _URL.findall(_COMMENT.sub(" ", unfold(raw)))
        return urls or None
    raise ValueError(form)


@dataclass(frozen=True)
class HeaderProperty:
    """A ``header:{name}[:as{form}][:all]`` property (RFC 8621 §4.1.3)."""

    key: str  # the property as the client wrote it: the response uses it
    name: str
    form: str
    all: bool

    @classmethod
    def of(cls, prop: str) -> Optional[HeaderProperty]:
        """The property, or None when ``prop`` is not a valid header property (unknown
        form, a form the field may not have, an empty or invalid name)."""
        pieces = prop.split(":")
        if len(pieces) < 2 or pieces[0] != "header" or not pieces[1] or len(pieces) > 4:
            return None
        name, rest = pieces[1], pieces[2:]
        if not re.fullmatch(r"[!-9;-~]+", name):
            return None
        every = bool(rest) and rest[-1] == "all"
        if every:
            rest = rest[:-1]
        form = "Raw"
        if rest:
            if not rest[0].startswith("as") or rest[0][2:] not in FORMS or len(rest) > 1:
                return None
            form = rest[0][2:]
        if not allowed(name, form):
            return None
        return cls(prop, name, form, every)

    def value(self, header_fields: list[tuple[str, str]]) -> Any:
        """Its value over a part's fields: the last instance (or null), or every one."""
        lower = self.name.lower()
        values = [parse(self.form, raw) for name, raw in header_fields if name.lower() == lower]
        if self.all:
            return values
        return values[-1] if values else None
