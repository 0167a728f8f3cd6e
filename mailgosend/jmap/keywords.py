# -*- test-case-name: tests.test_jmap_email_set -*-
"""IMAP flags as JMAP keywords and back (RFC 8621 §4.1.1).

The four system flags a client sets map to ``$seen``, ``$flagged``, ``$answered`` and
``$draft``; every other IMAP keyword ($Forwarded, $Junk, $NotJunk, $MDNSent, user words)
is a JMAP keyword of the same name, given in lower case (keywords are case-insensitive).
``\\Recent`` and ``\\Deleted`` are not keywords: a JMAP change keeps ``\\Deleted`` as it is.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["flags_to_keywords", "keywords_to_flags", "valid_keyword"]

_SYSTEM = {"\\seen": "$seen", "\\flagged": "$flagged", "\\answered": "$answered",
           "\\draft": "$draft"}
_TO_FLAG = {keyword: "\\" + flag[1:].capitalize() for flag, keyword in _SYSTEM.items()}
_FORBIDDEN = set('(){]%*"\\')


def flags_to_keywords(flags: Iterable[str]) -> dict[str, bool]:
    """The ``keywords`` property of a message with these IMAP flags."""
    keywords: dict[str, bool] = {}
    for flag in flags:
        lower = flag.lower()
        if lower in _SYSTEM:
            keywords[_SYSTEM[lower]] = True
        elif not flag.startswith("\\"):
            keywords[lower] = True
    return keywords


def valid_keyword(keyword: str) -> bool:
    """RFC 8621 §4.1.1: 1-255 characters %x21-%x7e except ( ) { ] % * " \\."""
    return (0 < len(keyword) <= 255
            and all(0x21 <= ord(ch) <= 0x7E and ch not in _FORBIDDEN for ch in keyword))


def keyword_to_flag(keyword: str) -> str:
    lower = keyword.lower()
    return _TO_FLAG.get(lower, lower)


def keywords_to_flags(keywords: Iterable[str]) -> list[str]:
    """IMAP flags for JMAP keywords (already validated)."""
    return [keyword_to_flag(keyword) for keyword in keywords]
