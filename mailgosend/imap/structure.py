"""ENVELOPE and BODY/BODYSTRUCTURE from the stored MessageInfo (RFC 3501 §7.4.2).

Everything here works on the decrypted structure only; no message body is read.  Header values
are sent raw, as the sender wrote them (RFC 2047 encoded words included; clients decode them),
so 8-bit values go out as literals.

Address lists are parsed by mail/addresses.py (shared with JMAP and search); groups come out
as the start marker (NIL NIL "name" NIL) and end marker (NIL NIL NIL NIL) ENVELOPE uses.
"""

from __future__ import annotations

import re
from typing import Optional

from mailgosend.imap.wireformat import nstring, plist, string
from mailgosend.mail.addresses import parse_address_list
from mailgosend.store.mimeinfo import Envelope, MessageInfo, Part

__all__ = ["body_structure", "envelope"]

def _addresses(value: Optional[str]) -> bytes:
    found = parse_address_list(value) if value else []
    if not found:
        return b"NIL"
    return b"(" + b"".join(plist(nstring(field) for field in address)
                           for address in found) + b")"


def envelope(env: Envelope) -> bytes:
    """The ENVELOPE structure; Sender and Reply-To default to From when absent or empty."""
    from_ = _addresses(env.from_)
    sender = _addresses(env.sender)
    reply_to = _addresses(env.reply_to)
    fields = [nstring(env.date), nstring(env.subject), from_,
              from_ if sender == b"NIL" else sender,
              from_ if reply_to == b"NIL" else reply_to,
              _addresses(env.to), _addresses(env.cc), _addresses(env.bcc),
              nstring(env.in_reply_to), nstring(env.message_id)]
    return plist(fields)


def _params(params: list[tuple[str, str]]) -> bytes:
    if not params:
        return b"NIL"
    return plist(b"%s %s" % (string(k), string(v)) for k, v in params)


def _disposition(part: Part) -> bytes:
    if part.disposition is None:
        return b"NIL"
    return plist([string(part.disposition), _params(part.disposition_params)])


def _language(part: Part) -> bytes:
    if not part.language:
        return b"NIL"
    if len(part.language) == 1:
        return string(part.language[0])
    return plist(string(tag) for tag in part.language)


def _part(part: Part, extended: bool) -> bytes:
    """One body (RFC 3501 §9 body); iterative over deep trees would not help the wire format,
    and mimeinfo caps nesting at MAX_DEPTH, so recursion depth is bounded."""
    if part.is_multipart and part.parts:
        fields = [b"".join(_part(child, extended) for child in part.parts), string(part.subtype)]
        if extended:
            fields += [_params(part.params), _disposition(part), _language(part),
                       nstring(part.location)]
        return plist(fields)
    fields = [string(part.type), string(part.subtype), _params(part.params), nstring(part.id),
              nstring(part.description), string(part.encoding.upper()), b"%d" % part.size]
    if part.is_message:
        inner = part.parts[0]
        fields += [envelope(part.envelope or Envelope()), _part(inner, extended),
                   b"%d" % (part.lines or 0)]
    elif part.type == "text":
        fields.append(b"%d" % (part.lines or 0))
    if extended:
        fields += [nstring(part.md5), _disposition(part), _language(part), nstring(part.location)]
    return plist(fields)


def body_structure(info: MessageInfo, extended: bool = True) -> bytes:
    """BODYSTRUCTURE (extended) or BODY (not extended) of the whole message."""
    return _part(info.root, extended)
