"""Tokens of a framed command and typed readers for command arguments (RFC 3501 §9).

The tokenizer turns a frame (framing.py) into atoms, quoted strings, literals and nested
lists.  It is deliberately a little more liberal than the grammar where real clients are
(several spaces, "]" in LIST patterns) and strict where ambiguity would hurt: quoted strings
take only the two escapes ``\\\\`` and ``\\"`` (Twisted's ``arg_astring`` splits on the first
quote, so a password containing ``"`` fails), parentheses must balance, and nesting is capped.

``[`` is an ordinary atom character and ``]`` is accepted too (RFC 3501 §9: ATOM-CHAR excludes only
the resp-special ``]``, which ASTRING-CHAR and list-char allow), so ``foo[bar`` and the RFC 6154
``[Gmail]/Sent`` style names are plain atoms.  Only after a FETCH section prefix (``BODY[``,
``BODY.PEEK[``, ``BINARY[``...) does a bracketed part keep its spaces and quotes, as
``BODY[HEADER.FIELDS (A B)]`` needs; fetch.py parses the section itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Optional, Union

from mailgosend.imap import mutf7
from mailgosend.imap.errors import ImapError, bad
from mailgosend.imap.framing import Frame, Literal

__all__ = ["Args", "Atom", "Quoted", "Token", "decode_name", "parse_datetime", "parse_date",
           "tokenize"]

MAX_DEPTH = 32
# fetch-att names followed by a section (RFC 3501 §9 "section", RFC 3516 "section-binary")
_SECTION_PREFIXES = (b"BODY", b"BODY.PEEK", b"BINARY", b"BINARY.PEEK", b"BINARY.SIZE")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


class Atom(str):
    """An atom as sent (RFC 3501 §4.1); compare case-insensitively with ``.upper()``."""


class Quoted(bytes):
    """A quoted string with its escapes resolved (RFC 3501 §4.3)."""


Token = Union[Atom, Quoted, Literal, list]


def tokenize(frame: Frame) -> list[Token]:
    """All tokens of a command (tag and name included); ImapError BAD on bad syntax."""
    root: list[Any] = []
    stack = [root]
    for segment in frame:
        if isinstance(segment, Literal):
            stack[-1].append(segment)
            continue
        text, i = segment, 0
        while i < len(text):
            ch = text[i:i + 1]
            if ch == b" ":
                i += 1
            elif ch == b"(":
                if len(stack) > MAX_DEPTH:
                    raise bad("Parentheses nested too deeply")
                stack[-1].append([])
                stack.append(stack[-1][-1])
                i += 1
            elif ch == b")":
                if len(stack) == 1:
                    raise bad("Unbalanced parentheses")
                stack.pop()
                i += 1
            elif ch == b'"':
                quoted, i = _quoted(text, i + 1)
                stack[-1].append(Quoted(quoted))
            elif ch[0] < 0x20 or ch[0] == 0x7F:
                raise bad("Control character in command")
            else:
                value, i = _atom(text, i)
                stack[-1].append(Atom(value))
    if len(stack) != 1:
        raise bad("Unbalanced parentheses")
    return root


def _quoted(text: bytes, i: int) -> tuple[bytes, int]:
    out = bytearray()
    while i < len(text):
        byte = text[i]
        if byte == 0x22:
            return bytes(out), i + 1
        if byte == 0x5C:
            if i + 1 >= len(text) or text[i + 1] not in (0x22, 0x5C):
                raise bad("Invalid escape in quoted string")
            out.append(text[i + 1])
            i += 2
            continue
        out.append(byte)
        i += 1
    raise bad("Unterminated quoted string")


def _atom(text: bytes, i: int) -> tuple[str, int]:
    start = i
    while i < len(text) and text[i:i + 1] not in (b" ", b"(", b")", b'"'):
        if text[i] == 0x5B and text[start:i].upper() in _SECTION_PREFIXES:
            close = _bracket_end(text, i + 1)  # a section: up to its "]", spaces and quotes included
            if close >= 0:
                i = close + 1
                continue
        if text[i] < 0x20 or text[i] == 0x7F:
            raise bad("Control character in command")
        i += 1
    try:
        return text[start:i].decode("utf-8"), i
    except UnicodeDecodeError:
        raise bad("Invalid 8-bit data in an atom") from None


def _bracket_end(text: bytes, i: int) -> int:
    while i < len(text):
        if text[i] == 0x5D:
            return i
        if text[i] == 0x22:
            _, i = _quoted(text, i + 1)
            continue
        i += 1
    return -1


class Args:
    """A cursor over a command's argument tokens with typed readers."""

    def __init__(self, tokens: list[Token], utf8: bool = False) -> None:
        self._tokens = tokens
        self._pos = 0
        self.utf8 = utf8  # RFC 6855: mailbox names are UTF-8 after ENABLE UTF8=ACCEPT

    def at_end(self) -> bool:
        return self._pos >= len(self._tokens)

    def end(self) -> None:
        if not self.at_end():
            raise bad("Too many arguments")

    def peek(self) -> Optional[Token]:
        return None if self.at_end() else self._tokens[self._pos]

    def next(self, what: str = "argument") -> Token:
        if self.at_end():
            raise bad(f"Missing {what}")
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def rest(self) -> list[Token]:
        tokens, self._pos = self._tokens[self._pos:], len(self._tokens)
        return tokens

    def atom(self, what: str = "argument") -> Atom:
        token = self.next(what)
        if not isinstance(token, Atom):
            raise bad(f"Expected an atom for {what}")
        return token

    def astring(self, what: str = "argument") -> bytes:
        return as_bytes(self.next(what), what)

    def mailbox(self) -> str:
        return mailbox_name(self.astring("mailbox name"), self.utf8)

    def parenthesized(self, what: str = "list") -> list[Token]:
        token = self.next(what)
        if not isinstance(token, list):
            raise bad(f"Expected a parenthesized {what}")
        return token

    def number(self, what: str = "number") -> int:
        return as_number(self.next(what), what)

    def modifier(self, name: str) -> Optional[int]:
        """An optional "(NAME n)" list: RFC 7162 CHANGEDSINCE and UNCHANGEDSINCE."""
        if not isinstance(self.peek(), list):
            return None
        tokens = self.parenthesized("modifiers")
        if len(tokens) != 2 or not isinstance(tokens[0], Atom) or tokens[0].upper() != name:
            raise bad(f"Expected ({name} mod-sequence)")
        return as_number(tokens[1], name)


def as_bytes(token: Token, what: str = "string") -> bytes:
    if isinstance(token, Atom):
        return token.encode("utf-8")
    if isinstance(token, Quoted):
        return bytes(token)
    if isinstance(token, Literal):
        return token.read_bytes()
    raise bad(f"Expected a string for {what}")


def as_number(token: Token, what: str = "number") -> int:
    if not isinstance(token, Atom) or not token.isdigit() or not token.isascii() or len(token) > 20:
        raise bad(f"Expected a number for {what}")
    return int(token)


def mailbox_name(raw: bytes, utf8: bool = False) -> str:
    """Decode a mailbox argument; "INBOX" in any case names the inbox (RFC 3501 §5.1).
    ``utf8``: the session enabled UTF8=ACCEPT, names are UTF-8, not modified UTF-7 (RFC 6855
    §3)."""
    try:
        name = decode_name(raw, utf8)
    except mutf7.InvalidModifiedUTF7 as exc:
        raise ImapError("NO", str(exc), "CANNOT") from None
    if name.upper() == "INBOX" or name[:6].upper() == "INBOX/":
        name = "INBOX" + name[5:]
    return name


def decode_name(raw: bytes, utf8: bool) -> str:
    """A mailbox name or LIST pattern as sent: modified UTF-7, or UTF-8 after ENABLE
    UTF8=ACCEPT (RFC 6855 §3); InvalidModifiedUTF7 when it does not decode."""
    if not utf8:
        return mutf7.decode(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise mutf7.InvalidModifiedUTF7("mailbox name is not valid UTF-8") from None


def parse_date(raw: bytes) -> datetime:
    """date = "d-Mon-yyyy" or "dd-Mon-yyyy" (RFC 3501 §9, SEARCH)."""
    try:
        day, month, year = raw.decode("ascii").split("-")
        return datetime(int(year), _MONTHS.index(month.lower()) + 1, int(day))
    except (ValueError, UnicodeDecodeError):
        raise bad("Invalid date, expected dd-Mon-yyyy") from None


def parse_datetime(raw: bytes) -> datetime:
    """date-time = "dd-Mon-yyyy hh:mm:ss +zzzz", day possibly space-padded (APPEND)."""
    try:
        date_part, time_part, zone = raw.decode("ascii").strip().split(" ")
        date = parse_date(date_part.encode("ascii"))
        hours, minutes, seconds = (int(x) for x in time_part.split(":"))
        if len(zone) != 5 or zone[0] not in "+-" or not zone[1:].isdigit():
            raise ValueError(zone)
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
        tz = timezone(offset if zone[0] == "+" else -offset)
        return date.replace(hour=hours, minute=minutes, second=seconds, tzinfo=tz)
    except (ValueError, UnicodeDecodeError, ImapError):
        raise bad("Invalid date-time, expected \"dd-Mon-yyyy hh:mm:ss +zzzz\"") from None
