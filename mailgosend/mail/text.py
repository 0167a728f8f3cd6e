# -*- test-case-name: tests.test_imap_search -*-
"""Where a message's text is and how it reads: the one place IMAP SEARCH BODY/TEXT and the
JMAP search index (searchtext.py) find and decode the text/* parts of a stored message.

Pure functions over the stored structure (store/mimeinfo.py) and the part's bytes.
"""

from __future__ import annotations

import binascii
import codecs

from mailgosend.store.mimeinfo import Part

__all__ = ["TextParts", "decode_part", "part_codec", "text_leaves", "text_parts"]

# Where the text of a message is: (start, end, transfer encoding, Python codec) per text/*
# leaf.  Tuples of numbers and strings, which the garbage collector does not track, so a
# whole mailbox of them can stay cached (SEARCH BODY then needs no structure at all).
TextParts = tuple[tuple[int, int, str, str], ...]


def text_leaves(root: Part) -> list[Part]:
    """The text/* leaves of a structure, in order (attachments with a text type included,
    as IMAP SEARCH BODY reads them)."""
    found, stack = [], [root]
    while stack:
        part = stack.pop()
        if part.parts:
            stack.extend(reversed(part.parts))
            continue
        if part.type == "text":
            found.append(part)
    return found


def part_codec(part: Part) -> str:
    """The Python codec of a text part's charset (UTF-8 when unknown or ASCII)."""
    charset = part.param("charset") or "utf-8"
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        codec = "utf-8"
    return "utf-8" if codec == "ascii" else codec


def text_parts(root: Part) -> TextParts:
    return tuple((part.body_start, part.body_end, part.encoding, part_codec(part))
                 for part in text_leaves(root))


def decode_part(data: bytes, encoding: str, codec: str) -> str:
    """A part's body as text: transfer-decoded (RFC 2045 §6), then charset-decoded; broken
    encodings are read as they are, undecodable octets replaced."""
    try:
        if encoding == "base64":
            data = binascii.a2b_base64(data)
        elif encoding == "quoted-printable":
            data = binascii.a2b_qp(data)
    except (binascii.Error, ValueError):
        pass
    return data.decode(codec, "replace")
