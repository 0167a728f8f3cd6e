"""FETCH attributes (RFC 3501 §6.4.5) and the thread-side loading of their data.

``parse_items`` turns the attribute argument into :class:`FetchItem` objects.  The server
answers FLAGS, UID, INTERNALDATE and RFC822.SIZE from its session cache, and ENVELOPE and
top-level header sections from the listener's caches of encoded answers when they hold them
(cmd_fetch.py); everything else is loaded here in a database thread, a batch of messages per
job, through the lazy
:class:`~mailgosend.imap.message.StoredMessage`: ENVELOPE and BODYSTRUCTURE decrypt only the
structure, sections decrypt only the segments of their byte range.  A section longer than
``stream_threshold`` is not loaded at all: the job returns its range and the server streams it
in chunks.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional, Union

from twisted.logger import Logger

from mailgosend.crypto import DecryptionError
from mailgosend.imap.binary import binary_literal, decode_content, parse_binary
from mailgosend.imap.errors import bad
from mailgosend.imap.message import StoredMessage
from mailgosend.imap.structure import body_structure, envelope
from mailgosend.imap.tokens import Atom, Token, as_bytes, tokenize
from mailgosend.imap.wireformat import literal
from mailgosend.mail.source import BoundedCache, MessageSource
from mailgosend.store.blobs import BlobNotFound
from mailgosend.store.messages import MessageRow
from mailgosend.store.mimeinfo import MessageInfo, NoSuchSection

__all__ = ["FetchItem", "ItemCache", "Loaded", "load_batch", "parse_items"]

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
_CONTENT_KINDS = ("envelope", "bodystructure", "body", "section", "binary", "binarysize")
_ROOT_HEADERS = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT")


@dataclass(frozen=True)
class FetchItem:
    kind: str  # uid flags internaldate size envelope bodystructure body section binary(size)
    label: bytes  # the name in the response
    section: str = ""
    fields: Optional[tuple[str, ...]] = None
    negate: bool = False
    partial: Optional[tuple[int, int]] = None
    peek: bool = True

    @property
    def needs_thread(self) -> bool:
        return self.kind in _CONTENT_KINDS

    @property
    def cacheable(self) -> bool:
        """A top-level header section: its answer is kept per message (``ItemCache``), as
        Dovecot keeps header fields in its cache file."""
        return self.kind == "section" and self.section in _ROOT_HEADERS

    @property
    def needs_info(self) -> bool:
        """Whether the item reads the structure (BODY[] and its partials do not)."""
        return self.needs_thread and not (self.kind == "section" and self.section == "")


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
    binary = parse_binary(token)  # RFC 3516
    if binary is not None:
        return FetchItem("binarysize" if binary.size_only else "binary", binary.label,
                         binary.section, partial=binary.partial, peek=binary.peek)
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


class ItemCache:
    """Encoded FETCH items by attribute label, then (mailbox id, UIDVALIDITY, UID): the
    answers to BODY.PEEK[HEADER.FIELDS (...)] a client asks of every message.  Bytes only
    (free for the garbage collector); at most ``labels`` attributes, least recently used
    dropped first, each holding at most ``limit`` messages."""

    def __init__(self, labels: int = 8, limit: int = 50_000) -> None:
        self.labels, self.limit = labels, limit
        self._caches: OrderedDict[bytes, BoundedCache[bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, label: bytes, key: tuple[int, int, int]) -> Optional[bytes]:
        cache = self._caches.get(label)
        return None if cache is None else cache.get(key)

    def put(self, label: bytes, key: tuple[int, int, int], value: bytes) -> None:
        with self._lock:
            cache = self._caches.get(label)
            if cache is None:
                cache = self._caches[label] = BoundedCache(self.limit)
                while len(self._caches) > self.labels:
                    self._caches.popitem(last=False)
            self._caches.move_to_end(label)
        cache.put(key, value)


@dataclass
class Loaded:
    """What the thread produced for one message: encoded items, ranges to stream, or gone."""

    uid: int
    items: dict[int, bytes] = field(default_factory=dict)
    streams: dict[int, tuple[int, int]] = field(default_factory=dict)
    missing: bool = False
    blob_opens: int = 0
    # Set on a batch's last entry: structures that gained their header block (see
    # message.StoredMessage.header_block), for the caller to store.
    upgraded: Optional[list[tuple[int, str, MessageInfo]]] = None


def _section(message: StoredMessage, item: FetchItem, threshold: int
             ) -> Union[bytes, tuple[int, int]]:
    if item.section == "":  # BODY[] is the whole blob: no structure needed
        start, end = 0, message.row.size
    elif item.fields is not None or item.section == "HEADER":
        # Top-level or part header fields: from the header block the structure keeps
        # (no blob read), filtered for HEADER.FIELDS (RFC 3501 §6.4.5).
        try:
            data = message.section(item.section, None if item.fields is None
                                   else list(item.fields), item.negate)
        except NoSuchSection:
            return b""
        if item.partial:
            data = data[item.partial[0]:item.partial[0] + item.partial[1]]
        return data
    else:
        try:
            start, end = message.info.section_range(item.section)
        except NoSuchSection:
            return b""
    end = min(end, message.row.size)
    if item.partial:
        start, end = min(start + item.partial[0], end), min(start + item.partial[0] + item.partial[1], end)
    if end - start > threshold:
        return (start, end)
    return message.read(start, end)


def _binary(message: StoredMessage, item: FetchItem) -> bytes:
    """RFC 3516: BINARY[] is the message as stored; BINARY[part] the part's content decoded
    (``NO [UNKNOWN-CTE]`` raised for an unknown encoding); a missing part is empty."""
    if item.section == "":
        data = message.read(0, message.row.size)
    else:
        try:
            part = message.info.find_part(item.section)
            start, end = message.info.section_range(item.section)
        except NoSuchSection:
            return b""
        data = decode_content(message.read(start, min(end, message.row.size)), part.encoding)
    if item.partial:
        data = data[item.partial[0]:item.partial[0] + item.partial[1]]
    return data


def load_batch(source: MessageSource, rows: list[MessageRow], items: list[FetchItem],
               stream_threshold: int, *, envelopes: Optional[BoundedCache[bytes]] = None,
               items_cache: Optional[ItemCache] = None) -> list[Loaded]:
    """Database thread (``UserMail.read_messages``): the thread-side items of ``items`` for
    each row.  Every such item needs the structure, so the batch's sealed structures are
    fetched up front in one query."""
    uidvalidity = source.mailbox_uidvalidity
    source.prefetch([row for row in rows if _needs_info(row, items, source, envelopes,
                                                        uidvalidity)])
    results = []
    for row in rows:
        loaded = Loaded(row.uid)
        with StoredMessage(row, source) as message:
            try:
                for index, item in enumerate(items):
                    if item.kind == "envelope":
                        loaded.items[index] = _envelope_item(message, envelopes, uidvalidity)
                    elif item.kind == "bodystructure":
                        loaded.items[index] = b"BODYSTRUCTURE " + body_structure(message.info)
                    elif item.kind == "body":
                        loaded.items[index] = b"BODY " + body_structure(message.info, False)
                    elif item.kind == "binary":
                        loaded.items[index] = item.label + b" " + binary_literal(
                            _binary(message, item))
                    elif item.kind == "binarysize":
                        loaded.items[index] = item.label + b" %d" % len(_binary(message, item))
                    elif item.kind == "section":
                        data = _section(message, item, stream_threshold)
                        if isinstance(data, tuple):
                            loaded.streams[index] = data
                        else:
                            encoded = item.label + b" " + literal(data)
                            loaded.items[index] = encoded
                            if items_cache is not None and item.cacheable \
                                    and uidvalidity is not None:
                                items_cache.put(item.label, (row.mailbox_id, uidvalidity,
                                                             row.uid), encoded)
            except (LookupError, BlobNotFound, DecryptionError) as exc:
                # Purged after expunge (LookupError/BlobNotFound), or damaged: the message is
                # skipped and the command ends NO [EXPUNGEISSUED] (RFC 5530 §3).
                if isinstance(exc, DecryptionError):
                    log.error("message uid {uid} of user {user} does not decrypt",
                              uid=row.uid, user=source.user.id)
                loaded = Loaded(row.uid, missing=True)
            loaded.blob_opens = message.blob_opens
        results.append(loaded)
    if source.upgraded:
        results[-1].upgraded = source.upgraded
    return results


def _needs_info(row: MessageRow, items: list[FetchItem], source: MessageSource,
                envelopes: Optional[BoundedCache[bytes]], uidvalidity: Optional[int]) -> bool:
    """Whether answering ``items`` for ``row`` decrypts its structure (not when every item
    is BODY[] or comes from the ENVELOPE and header caches)."""
    for item in items:
        if not item.needs_info:
            continue
        if item.kind == "envelope" and envelopes is not None and uidvalidity is not None \
                and envelopes.get((row.mailbox_id, uidvalidity, row.uid)) is not None:
            continue
        if item.kind == "section" and item.section in ("HEADER", "HEADER.FIELDS",
                                                      "HEADER.FIELDS.NOT") \
                and source.cached_header(row) is not None:
            continue
        return True
    return False


def _envelope_item(message: StoredMessage, envelopes: Optional[BoundedCache[bytes]],
                   uidvalidity: Optional[int]) -> bytes:
    """``ENVELOPE (...)``, encoded once per message and kept: the encoding (address parsing,
    quoting) cost more than decrypting the structure."""
    row = message.row
    key = (row.mailbox_id, uidvalidity or 0, row.uid)
    if envelopes is not None and uidvalidity is not None:
        cached = envelopes.get(key)
        if cached is not None:
            return cached
    encoded = b"ENVELOPE " + envelope(message.info.envelope)
    if envelopes is not None and uidvalidity is not None:
        envelopes.put(key, encoded)
    return encoded
