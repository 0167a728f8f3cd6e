"""A message's top-level header block split into fields, as IMAP (BODY[HEADER.FIELDS],
SEARCH HEADER), JMAP and search read it.  Pure: no front end, no I/O."""

from __future__ import annotations

import email.header
import io

__all__ = ["decode_field", "parse_header_block"]


def decode_field(raw: bytes) -> str:
    """A field's value unfolded, RFC 2047 words decoded, case-folded: what IMAP SEARCH
    compares with (RFC 3501 §6.4.4); broken words and unknown charsets are matched raw."""
    text = raw.replace(b"\r\n", b"").replace(b"\n", b"").decode("utf-8", "replace").strip()
    if "=?" not in text:  # no RFC 2047 encoded word: nothing to decode (most headers)
        return text.casefold()
    try:
        return str(email.header.make_header(email.header.decode_header(text))).casefold()
    except Exception:  # unknown charsets, broken words: match the raw text
        return text.casefold()


def parse_header_block(block: bytes) -> list[tuple[str, bytes]]:
    """(lower-case name, raw field lines including folds and line end) in order.

    Linear in the block's size: a field's lines are collected in a list and joined once, as a
    5 MB field folded into 100,000 lines is legal and was quadratic when concatenated."""
    fields: list[tuple[str, list[bytes]]] = []
    for line in io.BytesIO(block):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1].append(line)
            continue
        field_name, colon, _ = line.partition(b":")
        if not colon:
            continue
        fields.append((field_name.strip().decode("ascii", "replace").lower(), [line]))
    return [(name, lines[0] if len(lines) == 1 else b"".join(lines)) for name, lines in fields]
