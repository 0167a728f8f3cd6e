"""Encoding of server data: strings, literals, lists, dates (RFC 3501 §4, §9)."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Iterable, Optional, Union

from mailgosend.imap import mutf7

__all__ = ["flag_list", "internal_date", "literal", "mailbox", "nstring", "plist", "string"]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MAX_QUOTED = 1024


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def string(value: Union[bytes, str]) -> bytes:
    """A quoted string when the value is short printable ASCII, else a literal."""
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(data) <= _MAX_QUOTED and all(0x20 <= b <= 0x7E for b in data):
        return _quoted(data)
    return literal(data)


def _quoted(data: bytes) -> bytes:
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def nstring(value: Union[bytes, str, None]) -> bytes:
    return b"NIL" if value is None else string(value)


def mailbox(name: str, utf8: bool = False) -> bytes:
    """A mailbox name on the wire: modified UTF-7, quoted; after ENABLE UTF8=ACCEPT a UTF-8
    quoted string (RFC 6855 §3: ``quoted`` may hold UTF-8 then)."""
    if not utf8:
        return string(mutf7.encode(name))
    data = name.encode("utf-8")
    if len(data) <= _MAX_QUOTED and all(b >= 0x20 and b != 0x7F for b in data):
        return _quoted(data)
    return literal(data)


def plist(items: Iterable[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


def flag_list(flags: Iterable[str]) -> bytes:
    if isinstance(flags, tuple):
        return _flag_tuple(flags)
    return plist(flag.encode("ascii") for flag in flags)


@lru_cache(maxsize=4096)
def _flag_tuple(flags: tuple[str, ...]) -> bytes:
    """A mailbox has few distinct flag sets: a FETCH 1:* (FLAGS) encodes each once."""
    return plist(flag.encode("ascii") for flag in flags)


def internal_date(value: datetime, tz: Optional[timezone] = None) -> bytes:
    """date-time "dd-Mon-yyyy hh:mm:ss +zzzz" (RFC 3501 §9), in UTC unless told."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(tz or timezone.utc)
    offset = value.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    text = (f'"{value.day:02d}-{_MONTHS[value.month - 1]}-{value.year:04d} '
            f'{value.hour:02d}:{value.minute:02d}:{value.second:02d} '
            f'{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"')
    return text.encode("ascii")
