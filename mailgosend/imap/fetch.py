"""FETCH attributes (RFC 3501 §6.4.5) and the thread-side loading of their data.

``parse_items`` turns the attribute argument into :class:`FetchItem` objects.  The server
answers FLAGS, UID, INTERNALDATE and RFC822.SIZE from its session cache; everything else is
loaded here in a database thread, a batch of messages per job, through the lazy
:class:`~mailgosend.imap.message.StoredMessage`: ENVELOPE and BODYSTRUCTURE decrypt only the
structure, sections decrypt only the segments of their byte range.  A section longer than
``stream_threshold`` is not loaded at all: the job returns its range and the server streams it
in chunks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Union

from sqlalchemy.engine import Connection
from twisted.logger import Logger

from mailgosend.crypto import DecryptionError, KeyRing
from mailgosend.imap.errors import bad
from mailgosend.imap.message import InfoCache, MessageSource, StoredMessage
from mailgosend.imap.structure import body_structure, envelope
from mailgosend.imap.tokens import Atom, Token, as_bytes, tokenize
from mailgosend.imap.wireformat import literal
from mailgosend.store.accounts import User
from mailgosend.store.blobs import BlobNotFound, BlobStore
from mailgosend.store.messages import MessageRow
from mailgosend.store.mimeinfo import NoSuchSection

__all__ = ["FetchItem", "Loaded", "load_batch", "parse_items"]

log = Logger()

_SIMPLE = {"UID": "uid", "FLAGS": "flags", "INTERNALDATE": "internaldate",
           "RFC822.SIZE": "size", "ENVELOPE": "envelope", "BODYSTRUCTURE": "bodystructure",
           "BODY": "body", "MODSEQ": "modseq"}
_MACROS = {"ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
           "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
           "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]}
_SECTION_ATT = re.compile(r"(BODY|BODY\.PEEK)\[(.*)\](?:<(\d{1,10})\.(\d{1,10})>)?\Z",
                          re.IGNORECASE | re.DOTALL)
_SECTION_SPEC = re.compile(
    r"(?P<part>[1-9]\d{0,8}(?:\.[1-9]\d{0,8})*)?"
    r"(?:(?(part)\.)(?P<text>HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME))?\Z")
_CONTENT_KINDS = ("envelope", "bodystructure", "body", "section")


@dataclass(frozen=True)
class FetchItem:
    kind: str  # uid flags internaldate size envelope bodystructure body section
    label: bytes  # the name in the response
    section: str = ""
    fields: Optional[tuple[str, ...]] = None
    negate: bool = False
    partial: Optional[tuple[int, int]] = None
    peek: bool = True

    @property
    def needs_thread(self) -> bool:
        return self.kind in _CONTENT_KINDS


def parse_items(token: Token) -> list[FetchItem]:
    """A macro, one attribute, or a parenthesized list of attributes."""
    if isinstance(token, Atom) and token.upper() in _MACROS:
        return [_item(Atom(name)) for name in _MACROS[token.upper()]]
    tokens = token if isinstance(token, list) else [token]
    if not tokens:
        raise bad("Empty FETCH attribute list")
    return [_item(t) for t in tokens]


def _item(token: Token) -> FetchItem:
    if not isinstance(token, Atom):
        raise bad("Invalid FETCH attribute")
    name = token.upper()
    if name in _SIMPLE:
        return FetchItem(_SIMPLE[name], name.encode("ascii"))
    if name == "RFC822":
        return FetchItem("section", b"RFC822", "", peek=False)
    if name == "RFC822.HEADER":
        return FetchItem("section", b"RFC822.HEADER", "HEADER")
    if name == "RFC822.TEXT":
        return FetchItem("section", b"RFC822.TEXT", "TEXT", peek=False)
    match = _SECTION_ATT.match(token)
    if match is None:
        raise bad(f"Unknown FETCH attribute {name[:40]}")
    spec, _, field_text = match.group(2).partition(" ")
    spec = spec.upper()
    parsed = _SECTION_SPEC.match(spec)
    if parsed is None:
        raise bad(f"Invalid section [{spec[:40]}]")
    text = parsed.group("text") or ""
    fields: Optional[tuple[str, ...]] = None
    if text.startswith("HEADER.FIELDS"):
        fields = _field_names(field_text)
    elif field_text:
        raise bad("Unexpected text in section")
    if text == "MIME" and not parsed.group("part"):
        raise bad("MIME needs a part number")
    partial = None
    if match.group(3) is not None:
        partial = (int(match.group(3)), int(match.group(4)))
        if partial[1] == 0:
            raise bad("Partial length must be positive")
    label = f"BODY[{spec}"
    if fields is not None:
        label += " (" + " ".join(fields) + ")"
    label += "]" + (f"<{partial[0]}>" if partial else "")
    return FetchItem("section", label.encode("ascii"), spec, fields,
                     text.endswith(".NOT"), partial, peek=match.group(1).upper() != "BODY")


def _field_names(text: str) -> tuple[str, ...]:
    tokens = tokenize([text.encode("utf-8")])
    if len(tokens) != 1 or not isinstance(tokens[0], list) or not tokens[0]:
        raise bad("HEADER.FIELDS needs a parenthesized list of field names")
    names = []
    for token in tokens[0]:
        raw = as_bytes(token, "header field name")
        if not raw or any(b <= 0x20 or b >= 0x7F or b == 0x3A for b in raw):
            raise bad("Invalid header field name")
        names.append(raw.decode("ascii").upper())
    return tuple(names)


@dataclass
class Loaded:
    """What the thread produced for one message: encoded items, ranges to stream, or gone."""

    uid: int
    items: dict[int, bytes] = field(default_factory=dict)
    streams: dict[int, tuple[int, int]] = field(default_factory=dict)
    missing: bool = False
    blob_opens: int = 0


def _section(message: StoredMessage, item: FetchItem, threshold: int
             ) -> Union[bytes, tuple[int, int]]:
    try:
        start, end = message.info.section_range(item.section)
    except NoSuchSection:
        return b""
    end = min(end, message.row.size)
    if item.fields is not None:
        data = message.section(item.section, list(item.fields), item.negate)
        if item.partial:
            data = data[item.partial[0]:item.partial[0] + item.partial[1]]
        return data
    if item.partial:
        start, end = min(start + item.partial[0], end), min(start + item.partial[0] + item.partial[1], end)
    if end - start > threshold:
        return (start, end)
    return message.read(start, end)


def load_batch(conn: Connection, keyring: KeyRing, blob_store: BlobStore, user: User,
               rows: list[MessageRow], items: list[FetchItem], stream_threshold: int, *,
               cache: Optional[InfoCache] = None, uidvalidity: Optional[int] = None
               ) -> list[Loaded]:
    """Database thread: the thread-side items of ``items`` for each row.  Every such item needs
    the structure, so the batch's sealed structures are fetched up front in one query."""
    source = MessageSource(conn, keyring, blob_store, user, cache=cache, uidvalidity=uidvalidity)
    source.prefetch(rows)
    results = []
    for row in rows:
        loaded = Loaded(row.uid)
        with StoredMessage(row, source) as message:
            try:
                for index, item in enumerate(items):
                    if item.kind == "envelope":
                        loaded.items[index] = b"ENVELOPE " + envelope(message.info.envelope)
                    elif item.kind == "bodystructure":
                        loaded.items[index] = b"BODYSTRUCTURE " + body_structure(message.info)
                    elif item.kind == "body":
                        loaded.items[index] = b"BODY " + body_structure(message.info, False)
                    elif item.kind == "section":
                        data = _section(message, item, stream_threshold)
                        if isinstance(data, tuple):
                            loaded.streams[index] = data
                        else:
                            loaded.items[index] = item.label + b" " + literal(data)
            except (LookupError, BlobNotFound, DecryptionError) as exc:
                # Purged after expunge (LookupError/BlobNotFound), or damaged: the message is
                # skipped and the command ends NO [EXPUNGEISSUED] (RFC 5530 §3).
                if isinstance(exc, DecryptionError):
                    log.error("message uid {uid} of user {user} does not decrypt",
                              uid=row.uid, user=user.id)
                loaded = Loaded(row.uid, missing=True)
            loaded.blob_opens = message.blob_opens
        results.append(loaded)
    return results
