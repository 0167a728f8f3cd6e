# -*- test-case-name: tests.test_imap_sortkeys -*-
"""What SORT (RFC 5256, RFC 5957) and THREAD compare, computed once per message.

* ``unicode_casemap``: the i;unicode-casemap collation (RFC 5051): each character mapped to
  its (simple) titlecase, then fully canonically decomposed; keys compare by code point, which
  is the UTF-8 octet order RFC 5051 §2 asks for.  On ASCII it is i;ascii-casemap, the
  collation RFC 5256 §3 names as the baseline, so both orders agree wherever that one is
  defined;
* ``base_subject``: RFC 5256 §2.1 base subject extraction, and whether the subject marked a
  reply or forward (used by THREAD=REFERENCES §3 step 5);
* ``sent_time``: RFC 5256 §2.2 sent date in UTC (None when missing or unparseable: the caller
  uses INTERNALDATE then);
* ``order_fields``: the tuple a mailbox's order cache holds per message (plain strings and
  numbers, which the garbage collector does not track).

Pure functions, tested with tables in tests.test_imap_sortkeys.
"""

from __future__ import annotations

import email.header
import email.utils
import re
import unicodedata
from sys import intern
from datetime import timezone
from typing import Optional

from mailgosend.mail.addresses import MISSING_HOST, parse_address_list
from mailgosend.store.mimeinfo import MessageInfo

__all__ = ["OrderFields", "base_subject", "decode_words", "order_fields", "message_ids",
           "sent_time", "unicode_casemap"]

# (sent time or None, SUBJECT key, reply/forward, FROM, TO, CC, DISPLAYFROM, DISPLAYTO,
#  Message-ID or None, references, INTERNALDATE in whole seconds, RFC822.SIZE): the keys
# already in collation form.
OrderFields = tuple[Optional[float], str, bool, str, str, str, str, str, Optional[str],
                    tuple[str, ...], float, int]

_WSP = re.compile(r"[ \t\r\n]+")
# RFC 5256 §5: subj-leader = (*subj-blob subj-refwd) / WSP;
# subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"; subj-blob = "[" *BLOBCHAR "]" *WSP
_LEADER = re.compile(r"(?:\[[^\[\]]*\] *)*(?:re|fwd?) *(?:\[[^\[\]]*\] *)?:|( )", re.IGNORECASE)
_BLOB = re.compile(r"\[[^\[\]]*\] *")
_MSGID = re.compile(r"<([^<>\s]+)>")
# The References field and its folded lines, without splitting the whole header block.
_REFERENCES = re.compile(rb"^references:([^\n]*(?:\n[ \t][^\n]*)*)", re.IGNORECASE | re.MULTILINE)


def unicode_casemap(text: str) -> str:
    """The RFC 5051 sort key of ``text``."""
    if text.isascii():
        return text.upper()  # titlecase of ASCII is uppercase; nothing to decompose
    mapped = []
    for ch in text:
        title = ch.title()
        mapped.append(title if len(title) == 1 else ch.upper() if len(ch.upper()) == 1 else ch)
    return unicodedata.normalize("NFD", "".join(mapped))


def decode_words(raw: str) -> str:
    """RFC 2047 encoded words decoded (RFC 5256 §2.1 step 1); broken words kept as sent."""
    text = _WSP.sub(" ", raw)
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except Exception:  # unknown charsets, malformed words: compare the raw text
        return text


def base_subject(raw: Optional[str]) -> tuple[str, bool]:
    """(base subject, whether a reply/forward marker was removed), RFC 5256 §2.1."""
    text = _WSP.sub(" ", decode_words(raw or "")) if raw else ""  # step 1
    reply = False
    while True:
        while True:  # step 2: subj-trailer = "(fwd)" / WSP
            if text.endswith(" "):
                text = text[:-1]
            elif text[-5:].lower() == "(fwd)":
                text, reply = text[:-5], True
            else:
                break
        changed = True
        while changed:  # steps 3-5
            changed = False
            match = _LEADER.match(text)
            while match and match.end():
                reply = reply or match.group(1) is None
                text, changed = text[match.end():], True
                match = _LEADER.match(text)
            blob = _BLOB.match(text)
            if blob and text[blob.end():].strip():  # step 4: keep a subject that is all blob
                text, changed = text[blob.end():], True
        if text[:5].lower() == "[fwd:" and text.endswith("]"):  # step 6
            text, reply = text[5:-1], True
            continue
        return text, reply


def sent_time(raw: Optional[str]) -> Optional[float]:
    """The Date header as a UTC timestamp (RFC 5256 §2.2), None if it cannot be read."""
    if not raw:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # "-0000" or no zone: taken as UTC
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError):
        return None


def _first_address(raw: Optional[str]) -> tuple[str, str]:
    """(addr-mailbox, display) of the first address: the display is the decoded display
    name, or the addr-spec when there is none (RFC 5957 §3.1); group markers are skipped."""
    if not raw:
        return "", ""
    for name, _, mailbox, host in parse_address_list(raw):
        if host is None:
            continue  # a group marker (structure.Address)
        mailbox = mailbox or ""
        display = decode_words(name).strip() if name else ""
        spec = mailbox if host == MISSING_HOST else f"{mailbox}@{host}"
        return mailbox, display or spec
    return "", ""


def message_ids(raw: Optional[str]) -> list[str]:
    """The msg-ids of a Message-ID, References or In-Reply-To value, in order."""
    return _MSGID.findall(raw) if raw else []


def order_fields(info: MessageInfo, header_block: Optional[bytes], arrival: float,
                 size: int) -> OrderFields:
    """Everything SORT and THREAD need of one message, from its structure (and the header
    block, for References, which ENVELOPE does not carry) and its row: INTERNALDATE as
    clients see it, in whole seconds (RFC 3501 date-time; messages of one second tie, and
    ties go by sequence number, RFC 5256 §3), and the size."""
    env = info.envelope
    subject, reply = base_subject(env.subject)
    from_mailbox, from_display = _first_address(env.from_)
    to_mailbox, to_display = _first_address(env.to)
    cc_mailbox, _ = _first_address(env.cc)
    ids = message_ids(env.message_id)
    references: list[str] = []
    if header_block:
        for match in _REFERENCES.finditer(header_block):
            references += message_ids(match.group(1).decode("utf-8", "replace"))
    if not references:  # RFC 5256 §3: the first In-Reply-To msg-id stands in
        references = message_ids(env.in_reply_to)[:1]
    # Address keys repeat across a mailbox (the same correspondents): one string each.
    return (sent_time(env.date), unicode_casemap(subject), reply,
            intern(unicode_casemap(from_mailbox)), intern(unicode_casemap(to_mailbox)),
            intern(unicode_casemap(cc_mailbox)), intern(unicode_casemap(from_display)),
            intern(unicode_casemap(to_display)), ids[0] if ids else None, tuple(references),
            float(int(arrival)), size)
