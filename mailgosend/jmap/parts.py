# -*- test-case-name: tests.test_jmap_email_get -*-
"""The parts of a message as JMAP sees them (RFC 8621 §4.1.4), and one part decoded.

The stored structure (store/mimeinfo.py, computed at delivery) gives every MIME part with
its byte offsets; this module turns it into EmailBodyPart objects over the message's raw
bytes.  A part's ``partId`` is its IMAP section number ("1", "2.1"), so a part's blob
``G<email>.<partId>`` (ids.py) is found again with ``find`` and decoded with ``decode``,
for Email/get and for the blob download alike.  A message/rfc822 part is a leaf (its blob
is the encapsulated message); multiparts have no partId and no blob.

``classify`` is the RFC's parseStructure algorithm (§4.1.4), followed step by step.
"""

from __future__ import annotations

import binascii
import codecs
import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from mailgosend.jmap.headers import HeaderProperty, fields
from mailgosend.jmap.ids import part_blob_id
from mailgosend.store.mimeinfo import MessageInfo, NoSuchSection, Part

__all__ = ["BODY_PROPERTIES", "DEFAULT_BODY_PROPERTIES", "BodyValue", "PartBlob", "body_part",
           "body_value", "classify", "decode", "find", "leaves", "part_blob", "text_of"]

DEFAULT_BODY_PROPERTIES = ("partId", "blobId", "size", "name", "type", "charset",
                           "disposition", "cid", "language", "location")
BODY_PROPERTIES = frozenset(DEFAULT_BODY_PROPERTIES + ("headers", "subParts"))
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def _is_message(part: Part) -> bool:
    return part.type == "message" and part.subtype in ("rfc822", "global")


def children(part: Part) -> list[Part]:
    """A multipart's sub-parts; message/rfc822 is a leaf here (§4.1.4 subParts)."""
    return part.parts if part.is_multipart else []


def leaves(root: Part) -> list[Part]:
    """Every leaf part (message/rfc822 included), in order."""
    out: list[Part] = []
    stack = [root]
    while stack:
        part = stack.pop()
        if part.is_multipart:
            stack.extend(reversed(part.parts))
        else:
            out.append(part)
    return out


def find(info: MessageInfo, part_id: str) -> Optional[Part]:
    """The leaf part named ``part_id``, or None (multiparts and parts inside an attached
    message have no blob of their own)."""
    try:
        part = info.find_part(part_id)
    except NoSuchSection:
        return None
    if part.is_multipart or part.number != part_id:
        return None
    pieces = part_id.split(".")
    for end in range(1, len(pieces)):  # Email/get never names a part of an attached message
        if info.find_part(".".join(pieces[:end])).is_message:
            return None
    return part


def decode(part: Part, raw: bytes) -> tuple[bytes, bool]:
    """The part's body with its Content-Transfer-Encoding undone, and whether that went
    wrong (an unknown encoding, broken base64: the encoded bytes are given then)."""
    body = raw[part.body_start:part.body_end]
    encoding = part.encoding.lower()
    if encoding == "base64":
        compact = _NOT_BASE64.sub(b"", body)  # line breaks, stray characters, padding
        broken = len(compact) % 4 == 1  # a lone sextet cannot be a byte
        if broken:
            compact = compact[:-1]
        try:
            return binascii.a2b_base64(compact + b"=" * (-len(compact) % 4)), broken
        except binascii.Error:
            return body, True
    if encoding == "quoted-printable":
        return binascii.a2b_qp(body), False
    if encoding in ("7bit", "8bit", "binary", ""):
        return body, False
    return body, True


def charset_of(part: Part) -> Optional[str]:
    """The charset: the parameter, else "us-ascii" for text/* (RFC 2045 §5.2), else null."""
    charset = part.param("charset")
    if charset:
        return charset
    return "us-ascii" if part.type == "text" else None


def text_of(part: Part, data: bytes) -> tuple[str, bool]:
    """Decoded bytes as text in the part's charset; True when something could not be
    decoded (unknown charset, invalid octets: replaced by U+FFFD)."""
    charset = (charset_of(part) or "utf-8").strip().lower()
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        return data.decode("utf-8", "replace"), True
    if codec == "ascii":  # "us-ascii" text is often UTF-8 in practice; ASCII is a subset
        codec = "utf-8"
    try:
        return data.decode(codec), False
    except UnicodeDecodeError:
        return data.decode(codec, "replace"), True


@dataclass(frozen=True)
class BodyValue:
    value: str
    is_encoding_problem: bool
    is_truncated: bool

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "isEncodingProblem": self.is_encoding_problem,
                "isTruncated": self.is_truncated}


def body_value(part: Part, raw: bytes, max_bytes: int = 0) -> BodyValue:
    """An EmailBodyValue (§4.1.4): the text, cut to ``max_bytes`` UTF-8 octets (0: all)
    without splitting a character."""
    data, broken = decode(part, raw)
    text, problem = text_of(part, data)
    truncated = False
    if max_bytes > 0:
        encoded = text.encode("utf-8")
        if len(encoded) > max_bytes:
            text = encoded[:max_bytes].decode("utf-8", "ignore")
            truncated = True
    return BodyValue(text, broken or problem, truncated)


def body_part(email_number: int, part: Part, raw: bytes, properties: Iterable[str],
              headers: Iterable[HeaderProperty] = ()) -> dict[str, Any]:
    """An EmailBodyPart (§4.1.4) with the asked ``properties`` (subParts recursively)."""
    props = list(properties)
    wanted_headers = list(headers)
    out: dict[str, Any] = {}
    block_fields: Optional[list[tuple[str, str]]] = None

    def block() -> list[tuple[str, str]]:
        nonlocal block_fields
        if block_fields is None:
            block_fields = fields(raw[part.header_start:part.body_start])
        return block_fields

    leaf = not part.is_multipart
    for prop in props:
        if prop == "partId":
            out[prop] = part.number if leaf else None
        elif prop == "blobId":
            out[prop] = part_blob_id(email_number, part.number) if leaf else None
        elif prop == "size":
            out[prop] = len(decode(part, raw)[0]) if leaf else 0
        elif prop == "headers":
            out[prop] = [{"name": n, "value": v} for n, v in block()]
        elif prop == "name":
            out[prop] = part.filename
        elif prop == "type":
            out[prop] = part.content_type.lower()
        elif prop == "charset":
            out[prop] = charset_of(part)
        elif prop == "disposition":
            out[prop] = part.disposition.lower() if part.disposition else None
        elif prop == "cid":
            out[prop] = part.id.strip().strip("<>").strip() if part.id else None
        elif prop == "language":
            out[prop] = part.language or None
        elif prop == "location":
            out[prop] = part.location
        elif prop == "subParts":
            out[prop] = ([body_part(email_number, sub, raw, props, wanted_headers)
                          for sub in part.parts] if part.is_multipart else None)
    for header in wanted_headers:
        out[header.key] = header.value(block())
    return out


def _inline_media(kind: str) -> bool:
    return kind.startswith(("image/", "audio/", "video/"))


def classify(root: Part) -> tuple[list[Part], list[Part], list[Part]]:
    """(textBody, htmlBody, attachments): RFC 8621 §4.1.4's parseStructure, called as the
    RFC does with ``[bodyStructure], "mixed", false``."""
    text: list[Part] = []
    html: list[Part] = []
    attachments: list[Part] = []
    _parse_structure([root], "mixed", False, html, text, attachments)
    return text, html, attachments


def _parse_structure(parts: list[Part], multipart_type: str, in_alternative: bool,
                     html_body: Optional[list[Part]], text_body: Optional[list[Part]],
                     attachments: list[Part]) -> None:
    # The RFC's variable names and order, so the two can be read side by side.
    text_length = len(text_body) if text_body is not None else -1
    html_length = len(html_body) if html_body is not None else -1
    for i, part in enumerate(parts):
        kind = part.content_type.lower()
        is_multipart = part.is_multipart
        is_inline = ((part.disposition or "").lower() != "attachment"
                     and (kind in ("text/plain", "text/html") or _inline_media(kind))
                     and (i == 0 or (multipart_type != "related"
                                     and (_inline_media(kind) or not part.filename))))
        if is_multipart:
            sub_type = part.subtype.lower()
            _parse_structure(part.parts, sub_type,
                             in_alternative or sub_type == "alternative",
                             html_body, text_body, attachments)
        elif is_inline:
            if multipart_type == "alternative":
                # (the RFC's code would fail on a list nulled by an enclosing part)
                if kind == "text/plain":
                    if text_body is not None:
                        text_body.append(part)
                elif kind == "text/html":
                    if html_body is not None:
                        html_body.append(part)
                else:
                    attachments.append(part)
                continue
            elif in_alternative:
                if kind == "text/plain":
                    html_body = None
                if kind == "text/html":
                    text_body = None
            if text_body is not None:
                text_body.append(part)
            if html_body is not None:
                html_body.append(part)
            if (text_body is None or html_body is None) and _inline_media(kind):
                attachments.append(part)
        else:
            attachments.append(part)
    if multipart_type == "alternative" and text_body is not None and html_body is not None:
        if text_length == len(text_body) and html_length != len(html_body):
            text_body.extend(html_body[html_length:])  # found an HTML part only
        if html_length == len(html_body) and text_length != len(text_body):
            html_body.extend(text_body[text_length:])  # found a plain text part only


@dataclass(frozen=True)
class PartBlob:
    """One part as a downloadable blob: decoded bytes, its type and file name."""

    data: bytes
    type: str
    name: Optional[str]


def part_blob(info: MessageInfo, raw: bytes, part_id: str) -> Optional[PartBlob]:
    """The blob ``G<email>.<part_id>`` (ids.py): the part's decoded body, or None when the
    message has no such part.  An attached message is given as it is (message/rfc822)."""
    part = find(info, part_id)
    if part is None:
        return None
    data, _ = decode(part, raw)
    return PartBlob(data, part.content_type.lower(), part.filename)
