"""Byte-exact splitting of an RFC 5322 header section.

Authentication-Results stripping must remove whole fields and leave every
other byte as received (the stored message is canonical, DESIGN §4), and the
DMARC From check must see each field once.  Both work from these spans, which
index into the raw bytes instead of re-serialising anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FOLD = re.compile(rb"\r?\n(?=[ \t])")


@dataclass(frozen=True)
class HeaderField:
    """One field: ``raw[start:end]`` is the field including folds and its line ending."""

    start: int
    end: int
    name: bytes          # as written, without trailing whitespace; b"" for a malformed line
    value: bytes         # raw bytes after the colon, folds and final line ending included

    def unfolded(self) -> bytes:
        """The value with folding removed (RFC 5322 §2.2.3) and without the line ending."""
        return _FOLD.sub(b"", self.value).rstrip(b"\r\n")


def header_fields(raw: bytes) -> list[HeaderField]:
    """Every field of the header section of ``raw``, in order.

    The section ends at the first empty line (or the end of the data).  A line
    starting with space or tab continues the previous field (RFC 5322 §2.2.3);
    a line without a colon is returned with an empty name so callers can skip
    it without losing its bytes.
    """
    fields: list[HeaderField] = []
    pos = 0
    length = len(raw)
    current: int | None = None  # start of the field being collected
    while pos < length:
        nl = raw.find(b"\n", pos)
        line_end = length if nl == -1 else nl + 1
        line = raw[pos:line_end]
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and current is not None:
            pos = line_end
            continue
        if current is not None:
            fields.append(_field(raw, current, pos))
        current = pos
        pos = line_end
    if current is not None:
        fields.append(_field(raw, current, pos))
    return fields


def _field(raw: bytes, start: int, end: int) -> HeaderField:
    text = raw[start:end]
    colon = text.find(b":")
    first_line_end = text.find(b"\n")
    if colon == -1 or (first_line_end != -1 and colon > first_line_end) \
            or text[:1] in (b" ", b"\t"):
        return HeaderField(start, end, b"", text)
    return HeaderField(start, end, text[:colon].rstrip(b" \t"), text[colon + 1:])
