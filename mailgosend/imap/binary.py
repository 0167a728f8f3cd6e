# -*- test-case-name: tests.test_imap_binary -*-
"""BINARY (RFC 3516): parts decoded by the server, and literal8.

FETCH ``BINARY[part]<partial>``, ``BINARY.PEEK[...]`` and ``BINARY.SIZE[part]`` (§4.2): the
part's content with its Content-Transfer-Encoding undone (base64, quoted-printable; 7bit,
8bit and binary as they are); ``BINARY[]`` is the whole message, untouched.  A part in an
encoding the server does not know gets ``NO [UNKNOWN-CTE]`` (§4.3).  Decoded content that
contains a NUL octet goes out as a literal8 ``~{n}`` (§4.4), anything else as an ordinary
literal, which every client reads.  APPEND takes a literal8 (§4.4, cmd_mailbox.py): the
message is stored byte for byte, NULs included.

The thread-side loading is in fetch.py; this module is the pure part: item syntax, decoding,
the literal.
"""

from __future__ import annotations

import binascii
import re
from typing import Optional

from mailgosend.imap.errors import bad, no

__all__ = ["BinarySpec", "binary_literal", "decode_content", "parse_binary"]

_BINARY_ATT = re.compile(
    r"(?P<name>BINARY\.PEEK|BINARY\.SIZE|BINARY)\[(?P<part>[1-9]\d{0,8}(?:\.[1-9]\d{0,8})*)?\]"
    r"(?:<(?P<start>\d{1,10})\.(?P<length>\d{1,10})>)?\Z", re.IGNORECASE)
_IDENTITY = frozenset({"7bit", "8bit", "binary"})


class BinarySpec:
    """A parsed BINARY attribute: which part, peek or not, size only, the partial range."""

    __slots__ = ("section", "peek", "size_only", "partial")

    def __init__(self, section: str, peek: bool, size_only: bool,
                 partial: Optional[tuple[int, int]]) -> None:
        self.section, self.peek, self.size_only, self.partial = (section, peek, size_only,
                                                                 partial)

    @property
    def label(self) -> bytes:
        """The attribute's name in the response (RFC 3516 §4.3; a partial shows its origin)."""
        name = "BINARY.SIZE" if self.size_only else "BINARY"
        origin = f"<{self.partial[0]}>" if self.partial else ""
        return f"{name}[{self.section}]{origin}".encode("ascii")


def parse_binary(text: str) -> Optional[BinarySpec]:
    """``BINARY[...]``, ``BINARY.PEEK[...]`` or ``BINARY.SIZE[...]``; None for anything not
    starting with BINARY; BAD for a BINARY attribute with a bad section (only part numbers
    are allowed: no HEADER, TEXT or MIME) or a partial on BINARY.SIZE."""
    if not text.upper().startswith("BINARY"):
        return None
    match = _BINARY_ATT.match(text)
    if match is None:
        raise bad("BINARY sections are part numbers only, e.g. BINARY[1.2]<0.100>")
    size_only = match.group("name").upper() == "BINARY.SIZE"
    partial = None
    if match.group("start") is not None:
        if size_only:
            raise bad("BINARY.SIZE takes no partial range")
        partial = (int(match.group("start")), int(match.group("length")))
        if partial[1] == 0:
            raise bad("Partial length must be positive")
    return BinarySpec(match.group("part") or "", match.group("name").upper() != "BINARY",
                      size_only, partial)


def decode_content(data: bytes, encoding: str) -> bytes:
    """A part's content with its Content-Transfer-Encoding (RFC 2045 §6) undone; the
    ImapError ``NO [UNKNOWN-CTE]`` for an encoding the server cannot decode."""
    name = (encoding or "7bit").strip().lower()
    if name in _IDENTITY:
        return data
    if name == "base64":
        # RFC 2045 §6.8: characters outside the alphabet (line breaks) are ignored.
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            # A truncated final group: decode what is whole, as mail readers do.
            cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
            return binascii.a2b_base64(cleaned[:len(cleaned) // 4 * 4])
    if name == "quoted-printable":
        return binascii.a2b_qp(data)
    raise no(f"Cannot decode the content transfer encoding {name[:40]}", "UNKNOWN-CTE")


def binary_literal(data: bytes) -> bytes:
    """literal8 (``~{n}``) when ``data`` holds a NUL, else an ordinary literal."""
    marker = b"~{%d}\r\n" if b"\x00" in data else b"{%d}\r\n"
    return marker % len(data) + data
