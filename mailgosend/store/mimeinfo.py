"""Message structure, computed once at delivery so IMAP never parses a stored message again.

``analyse(raw)`` reads the raw RFC 5322 bytes exactly as received and records, for every MIME
part, the fields of an IMAP BODYSTRUCTURE (RFC 3501 §7.4.2) and the byte offsets of its header
block and body.  With those offsets BODY[1.2], BODY[1.2.MIME], BODY[HEADER], BODY[TEXT] and
partial fetches (§6.4.5) are byte ranges of the stored blob (see ``MessageInfo.section_range``).

Followed: RFC 5322 §2.2 (header fields, unfolding), RFC 2045 §5 (Content-Type defaults),
RFC 2046 §5.1.1 (delimiters; the line break before a delimiter belongs to it), RFC 2231
(parameter continuations), RFC 2047 (encoded words, decoded for display only), RFC 3501 §6.4.5
(part numbering).  The stdlib ``email`` package is used only for display decoding: its parser
does not keep byte offsets.  Real-world breakage is tolerated the way Dovecot and the stdlib do:
bare LF, a missing final delimiter (the last part runs to the end of its parent), a multipart
without boundary or delimiters (read as text/plain), a first line that is not a header field
(no header block at all).  The scan is iterative and nesting is capped at ``MAX_DEPTH`` levels
and ``MAX_PARTS`` parts; beyond that a part is an opaque application/octet-stream leaf.

Header values are kept raw (unfolded, undecoded) as ``str`` decoded with UTF-8
``surrogateescape``: ``value.encode("utf-8", "surrogateescape")`` gives the original bytes.
"""

from __future__ import annotations

import binascii
import codecs
import email.header
import email.utils
import html
import json
import mmap
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Union

__all__ = ["HEADER_KEEP_LIMIT", "MAX_DEPTH", "MAX_PARTS", "Attachment", "Envelope",
           "MessageInfo", "NoSuchSection", "Part", "analyse"]

MAX_DEPTH = 100
MAX_PARTS = 5000
HEADER_KEEP_LIMIT = 64 * 1024  # top-level header blocks up to this size are kept in the structure
SNIPPET_LENGTH = 200
_SNIPPET_SCAN = 32 * 1024  # encoded bytes decoded for a snippet
_FORMAT = 1

RawMessage = Union[bytes, mmap.mmap]  # mmap: a spooled 50 MB message is analysed without a copy

_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:")  # RFC 5322 ftext, tolerating WSP before the colon
_ENVELOPE_FIELDS = ("date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc",
                    "in-reply-to", "message-id")
_WANTED = frozenset(_ENVELOPE_FIELDS + (
    "content-type", "content-transfer-encoding", "content-id", "content-description",
    "content-disposition", "content-language", "content-location", "content-md5"))
_WHITESPACE = re.compile(r"\s+")
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')
_QUOTED_PAIR = re.compile(r"\\(.)")
_SECTION = re.compile(r"([^*]+)\*(?:(\d+)(\*)?)?")  # RFC 2231 name*, name*0, name*1*
_MAIN_VALUE = re.compile(r"[\s(]")
_HTML_DROP = re.compile(r"(?is)<(script|style|head)\b.*?</\1\s*>|<!--.*?-->")
_HTML_TAG = re.compile(r"(?s)<[^>]*>")
_MESSAGE_SUBTYPES = ("rfc822", "global")  # RFC 6532 §3.5: message/global encapsulates too


class NoSuchSection(LookupError):
    """An IMAP section names a part the message does not have (RFC 3501 §6.4.5)."""


@dataclass
class Envelope:
    """The ten fields of an IMAP ENVELOPE (RFC 3501 §7.4.2), raw and unfolded; None if absent.

    The IMAP layer parses the address fields and applies the "sender and reply-to default to
    from" rule; storing them raw keeps ENVELOPE byte-faithful to what the sender wrote.
    """

    date: str | None = None
    subject: str | None = None
    from_: str | None = None
    sender: str | None = None
    reply_to: str | None = None
    to: str | None = None
    cc: str | None = None
    bcc: str | None = None
    in_reply_to: str | None = None
    message_id: str | None = None


@dataclass
class Part:
    """One MIME entity: BODYSTRUCTURE fields plus where its bytes are in the raw message.

    ``number`` is the IMAP section number addressing the body ("" for a multipart top-level
    message; "1" for a single-part one; a multipart encapsulated message carries the number of
    its message/rfc822 part).  A message/rfc822 part has exactly one child, the encapsulated
    entity, and ``envelope`` set.  Header block: ``[header_start, body_start)`` including the
    blank line; body: ``[body_start, body_end)``.  ``lines`` is set for text/* and message/*.
    """

    number: str
    type: str = "text"
    subtype: str = "plain"
    params: list[tuple[str, str]] = field(default_factory=list)
    id: str | None = None
    description: str | None = None
    encoding: str = "7bit"
    disposition: str | None = None
    disposition_params: list[tuple[str, str]] = field(default_factory=list)
    language: list[str] | None = None
    location: str | None = None
    md5: str | None = None
    header_start: int = 0
    body_start: int = 0
    body_end: int = 0
    lines: int | None = None
    filename: str | None = None  # decoded (RFC 2231 / RFC 2047), for display only
    envelope: Envelope | None = None
    parts: list[Part] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Body size in octets, as transferred (BODYSTRUCTURE body-fld-octets)."""
        return self.body_end - self.body_start

    @property
    def content_type(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def is_multipart(self) -> bool:
        return self.type == "multipart"

    @property
    def is_message(self) -> bool:
        return self.type == "message" and self.subtype in _MESSAGE_SUBTYPES and bool(self.parts)

    def param(self, name: str) -> str | None:
        """The first Content-Type parameter called ``name`` (lower case)."""
        return next((value for key, value in self.params if key == name), None)


@dataclass
class Attachment:
    number: str  # the IMAP section to download
    filename: str | None
    content_type: str
    size: int  # decoded size, estimated from the encoded length for base64


@dataclass
class MessageInfo:
    """Everything IMAP and webmail need about a message without reading its body."""

    size: int
    envelope: Envelope
    root: Part
    subject: str = ""  # decoded for display
    from_name: str = ""
    from_address: str = ""
    snippet: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    # The top-level header block as received, blank line included (UTF-8 surrogateescape
    # text, as header values), so BODY[HEADER], HEADER.FIELDS and SEARCH HEADER need no blob
    # read.  None when longer than HEADER_KEEP_LIMIT, or for structures stored before it
    # existed (readers then take the bytes from the blob).
    header: str | None = None

    @property
    def has_attachments(self) -> bool:
        return bool(self.attachments)

    def find_part(self, section: str) -> Part:
        """The part a numeric section ("1", "2.1.3") names, following RFC 3501 §6.4.5."""
        try:
            numbers = [int(n) for n in section.split(".")] if section else []
        except ValueError:
            raise NoSuchSection(section) from None
        node, entered = self.root, True
        for n in numbers:
            if n < 1:
                raise NoSuchSection(section)
            if not entered and node.is_message:
                node, entered = node.parts[0], True
            if node.is_multipart:
                if n > len(node.parts):
                    raise NoSuchSection(section)
                node, entered = node.parts[n - 1], False
            elif entered and n == 1:
                entered = False  # part 1 of a single-part message is its body
            else:
                raise NoSuchSection(section)
        return node

    def section_range(self, section: str) -> tuple[int, int]:
        """Byte range ``[start, end)`` of an IMAP section in the raw message.

        ``section`` is what goes between the brackets of BODY[...], e.g. "", "HEADER", "TEXT",
        "1.2", "1.2.MIME", "3.HEADER"; HEADER.FIELDS (...) gives the header block, which the
        caller filters.  Partial fetches slice the result.
        """
        pieces = section.split(".") if section else []
        count = 0
        while count < len(pieces) and pieces[count].isdigit():
            count += 1
        numeric, rest = ".".join(pieces[:count]), ".".join(pieces[count:]).upper()
        if not numeric:
            entity = self.root
            if rest == "":
                return 0, self.size
        else:
            part = self.find_part(numeric)
            if rest == "":
                return part.body_start, part.body_end
            if rest == "MIME":
                return part.header_start, part.body_start
            if not part.is_message:
                raise NoSuchSection(section)
            entity = part.parts[0]
        if rest == "TEXT":
            return entity.body_start, entity.body_end
        if rest == "HEADER" or rest.startswith("HEADER.FIELDS"):
            return entity.header_start, entity.body_start
        raise NoSuchSection(section)

    def to_json(self) -> bytes:
        """Compact JSON (ASCII, so surrogate-escaped raw bytes survive); parts flattened."""
        flat: list[dict[str, Any]] = []
        stack = [self.root]
        while stack:  # iterative pre-order: deep trees never recurse
            part = stack.pop()
            entry = {k: v for k, v in vars(part).items() if k not in ("parts", "envelope")}
            entry["envelope"] = _envelope_dict(part.envelope) if part.envelope else None
            entry["children"] = len(part.parts)
            flat.append(entry)
            stack.extend(reversed(part.parts))
        doc = {"v": _FORMAT, "size": self.size, "envelope": _envelope_dict(self.envelope),
               "subject": self.subject, "from_name": self.from_name,
               "from_address": self.from_address, "snippet": self.snippet,
               "attachments": [vars(a) for a in self.attachments], "parts": flat}
        if self.header is not None:
            doc["header"] = self.header
        return json.dumps(doc, separators=(",", ":")).encode("ascii")

    @classmethod
    def from_json(cls, data: bytes) -> MessageInfo:
        doc = json.loads(data)
        if doc.get("v") != _FORMAT:
            raise ValueError(f"unknown MessageInfo format {doc.get('v')!r}")
        parts: list[Part] = []
        pending: list[tuple[Part, int]] = []  # (parent, children still to attach)
        for entry in doc["parts"]:
            children = entry.pop("children")
            envelope = entry.pop("envelope")
            entry["params"] = [tuple(p) for p in entry["params"]]
            entry["disposition_params"] = [tuple(p) for p in entry["disposition_params"]]
            part = Part(**entry, envelope=_envelope_from(envelope) if envelope else None)
            if pending:
                parent, remaining = pending.pop()
                parent.parts.append(part)
                if remaining > 1:
                    pending.append((parent, remaining - 1))
            parts.append(part)
            if children:
                pending.append((part, children))
        return cls(size=doc["size"], envelope=_envelope_from(doc["envelope"]), root=parts[0],
                   subject=doc["subject"], from_name=doc["from_name"],
                   from_address=doc["from_address"], snippet=doc["snippet"],
                   attachments=[Attachment(**a) for a in doc["attachments"]],
                   header=doc.get("header"))

    def header_bytes(self) -> bytes | None:
        """The stored top-level header block, or None (read it from the blob)."""
        return None if self.header is None else self.header.encode("utf-8", "surrogateescape")


def _envelope_dict(envelope: Envelope) -> dict[str, str | None]:
    return {k.rstrip("_"): v for k, v in vars(envelope).items()}


def _envelope_from(doc: dict[str, str | None]) -> Envelope:
    return Envelope(**{("from_" if k == "from" else k): v for k, v in doc.items()})


def analyse(raw: RawMessage) -> MessageInfo:
    """Structure, envelope, snippet and attachments of a raw message; pure, never raises on
    malformed input (anything unparseable degrades to text/plain or an opaque leaf)."""
    total = len(raw)
    holder: list[Part] = []
    top_envelope = Envelope()
    budget = MAX_PARTS
    # (list the part goes in, depth, start, end, number, default type, encapsulating part).
    # A task without encapsulating part and depth > 0 is a multipart child with its final number.
    tasks: list[tuple[list[Part], int, int, int, str, str, Part | None]] = [
        (holder, 0, 0, total, "", "text/plain", None)]
    while tasks:
        into, depth, start, end, number, default, owner = tasks.pop()
        part, headers = _entity(raw, start, end, default)
        into.append(part)
        ranges: list[tuple[int, int]] = []
        if part.is_multipart:
            boundary = part.param("boundary")
            if boundary:
                ranges = _split_multipart(raw, part.body_start, part.body_end,
                                          boundary.encode("utf-8", "surrogateescape"))
            if not ranges:  # RFC 2046 demands a boundary and a part; read it as text
                part.type, part.subtype, part.params = "text", "plain", []
        elif part.type == "message" and part.subtype in _MESSAGE_SUBTYPES:
            ranges = [(part.body_start, part.body_end)]
        if ranges and (depth >= MAX_DEPTH or len(ranges) > budget):
            part.type, part.subtype, part.params, ranges = "application", "octet-stream", [], []
        if owner is not None or depth == 0:  # a message: its body is part 1 unless multipart
            envelope = _envelope(headers)
            if owner is None:
                top_envelope = envelope
            else:
                owner.envelope = envelope
            part.number = number if part.is_multipart else (f"{number}.1" if number else "1")
        else:
            part.number = number
        budget -= len(ranges)
        if part.is_multipart:
            child_default = "message/rfc822" if part.subtype == "digest" else "text/plain"
            for i, (s, e) in reversed(list(enumerate(ranges, 1))):
                child_number = f"{part.number}.{i}" if part.number else str(i)
                tasks.append((part.parts, depth + 1, s, e, child_number, child_default, None))
        elif ranges:
            tasks.append((part.parts, depth + 1, ranges[0][0], ranges[0][1], part.number,
                          "text/plain", part))
        if part.type in ("text", "message"):
            part.lines = _count_lines(raw, part.body_start, part.body_end)
    info = MessageInfo(size=total, envelope=top_envelope, root=holder[0])
    root = info.root
    if root.body_start - root.header_start <= HEADER_KEEP_LIMIT:
        info.header = bytes(raw[root.header_start:root.body_start]).decode(
            "utf-8", "surrogateescape")
    _describe(info, raw)
    return info


def _entity(raw: RawMessage, start: int, end: int, default: str) -> tuple[Part, dict[str, str]]:
    """Parse the header block of the entity at [start, end) into a Part and its wanted fields."""
    headers: dict[str, str] = {}
    name: str | None = None
    value: list[bytes] = []  # only for wanted fields; a list, so long folds stay linear
    pos, body_start = start, end
    while pos < end:
        newline = raw.find(b"\n", pos, end)
        line_end = end if newline < 0 else newline + 1
        line = raw[pos:line_end].rstrip(b"\r\n")
        if not line:
            body_start = line_end
            break
        if line[:1] in (b" ", b"\t") and name is not None:
            if name in _WANTED:
                value.append(line)  # RFC 5322 §2.2.3: unfolding removes only the line break
        else:
            match = _FIELD.match(line)
            if match is None:  # not a header field: the body starts here, without separator
                body_start = pos
                break
            _keep(headers, name, value)
            name, value = match.group(1).decode("ascii").lower(), [line[match.end():]]
        pos = line_end
    _keep(headers, name, value)
    part = Part(number="", header_start=start, body_start=body_start, body_end=end)
    content_type, params = _parse_params(headers.get("content-type", ""))
    if "/" in content_type and all(content_type.split("/", 1)):
        part.type, part.subtype = content_type.split("/", 1)
        part.params = params
    else:  # RFC 2045 §5.2: absent or invalid Content-Type means the default
        part.type, part.subtype = default.split("/")
        part.params = [("charset", "us-ascii")] if default == "text/plain" else []
    part.encoding = headers.get("content-transfer-encoding", "7bit").lower() or "7bit"
    part.id = headers.get("content-id")
    part.description = headers.get("content-description")
    part.location = headers.get("content-location")
    part.md5 = headers.get("content-md5")
    if "content-language" in headers:
        part.language = [t.strip() for t in headers["content-language"].split(",") if t.strip()]
    if "content-disposition" in headers:
        disposition, part.disposition_params = _parse_params(headers["content-disposition"])
        part.disposition = disposition or None
    filename = _param_text(part.disposition_params, "filename") or _param_text(part.params, "name")
    part.filename = filename or None
    return part, headers


def _keep(headers: dict[str, str], name: str | None, value: list[bytes]) -> None:
    if name in _WANTED and name not in headers:  # the first occurrence wins
        headers[name] = b"".join(value).decode("utf-8", "surrogateescape").strip(" \t")


def _envelope(headers: dict[str, str]) -> Envelope:
    return Envelope(*(headers.get(name) for name in _ENVELOPE_FIELDS))


def _split_multipart(raw: RawMessage, start: int, end: int,
                     boundary: bytes) -> list[tuple[int, int]]:
    """Body ranges of the parts between delimiter lines (RFC 2046 §5.1.1), scanned with find()."""
    delimiter = b"--" + boundary
    ranges: list[tuple[int, int]] = []
    part_start: int | None = None
    pos = start
    while True:
        i = raw.find(delimiter, pos, end)
        if i < 0:
            break
        after = i + len(delimiter)
        if i != start and raw[i - 1] != 0x0A:  # a delimiter starts a line
            pos = after
            continue
        closing = raw[after:after + 2] == b"--"
        newline = raw.find(b"\n", after, end)
        line_end = end if newline < 0 else newline + 1
        if raw[after + 2 * closing:line_end].strip(b" \t\r\n"):
            pos = after  # "--boundaryX": a longer boundary or text, not a delimiter
            continue
        if part_start is not None:
            cut = i - 2 if i - 2 >= part_start and raw[i - 2:i] == b"\r\n" else (
                i - 1 if i - 1 >= part_start and raw[i - 1] == 0x0A else i)
            ranges.append((part_start, cut))
        if closing:
            return ranges
        part_start = pos = line_end
    if part_start is not None:  # no closing delimiter: the last part runs to the end
        ranges.append((part_start, end))
    return ranges


def _count_lines(raw: RawMessage, start: int, end: int) -> int:
    if end <= start:
        return 0
    if isinstance(raw, bytes):
        count = raw.count(b"\n", start, end)
    else:  # mmap has no count(): go through it in slices
        count = sum(raw[p:min(p + (1 << 20), end)].count(b"\n") for p in range(start, end, 1 << 20))
    return count + (raw[end - 1] != 0x0A)


def _parse_params(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Split "value; a=1; b="x;y"" into the lower-case value and merged parameters.

    RFC 2231 continuations (name*0, name*1*) are joined; an extended value keeps its ``name*``
    key and ``charset'lang'%XX`` form, which is ASCII and what BODYSTRUCTURE should send.
    """
    main, _, rest = text.partition(";")
    sections: dict[str, dict[int, tuple[bool, str]]] = {}  # insertion-ordered, first wins
    for match in _PARAM.finditer(";" + rest):
        key, value = match.group(1).lower(), match.group(2).strip()
        if value.startswith('"'):
            value = _QUOTED_PAIR.sub(r"\1", value[1:-1] if value[1:].endswith('"') else value[1:])
        split = _SECTION.fullmatch(key)
        base, index, extended = (split.group(1), int(split.group(2) or 0),
                                 split.group(2) is None or bool(split.group(3))) if split else (
                                     key, 0, False)
        sections.setdefault(base, {}).setdefault(index, (extended, value))
    params = []
    for base, by_index in sections.items():
        pieces = [by_index[i] for i in sorted(by_index)]
        if any(extended for extended, _ in pieces):
            # Plain sections inside an extended value are percent-encoded to keep one form.
            value = "".join(v if ext else urllib.parse.quote(v, safe="") for ext, v in pieces)
            params.append((base + "*", value if pieces[0][0] else "''" + value))
        else:
            params.append((base, "".join(v for _, v in pieces)))
    return _MAIN_VALUE.split(main.strip(), maxsplit=1)[0].lower(), params


def _param_text(params: list[tuple[str, str]], name: str) -> str | None:
    """A parameter decoded for display: RFC 2231 extended form, else RFC 2047 words."""
    for key, value in params:
        if key == name + "*":
            pieces = value.split("'", 2)
            charset, encoded = (pieces[0], pieces[2]) if len(pieces) == 3 else ("utf-8", value)
            return urllib.parse.unquote(encoded, encoding=_codec(charset or "utf-8"),
                                        errors="replace")
        if key == name:
            return _display(value)
    return None


def _codec(charset: str) -> str:
    try:
        name = codecs.lookup(charset.strip().lower() or "utf-8").name
    except LookupError:
        return "utf-8"
    return "utf-8" if name == "ascii" else name  # "us-ascii" text is often UTF-8 in practice


def _display(raw: str) -> str:
    """A raw header value as readable text: 8-bit as UTF-8 (else cp1252), RFC 2047 decoded."""
    data = raw.encode("utf-8", "surrogateescape")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", "replace")
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except Exception:  # unknown charsets, broken words: show the text as it came
        return text


def _describe(info: MessageInfo, raw: RawMessage) -> None:
    """Fill the display fields, the snippet and the attachment list."""
    envelope = info.envelope
    info.subject = _display(envelope.subject) if envelope.subject else ""
    if envelope.from_:
        addresses = email.utils.getaddresses([envelope.from_])
        if addresses:
            name, address = addresses[0]
            info.from_name, info.from_address = _display(name), _display(address)
    text_part = html_part = None
    stack = [info.root]
    while stack:  # pre-order; forwarded messages are one attachment, not looked into
        part = stack.pop()
        if part.is_multipart:
            stack.extend(reversed(part.parts))
            continue
        forwarded = part.type == "message" and part.subtype in _MESSAGE_SUBTYPES
        if (part.disposition == "attachment" or part.filename is not None
                or forwarded and part is not info.root):
            info.attachments.append(Attachment(part.number, part.filename, part.content_type,
                                               _decoded_size(raw, part)))
        elif part.content_type == "text/plain" and text_part is None:
            text_part = part
        elif part.content_type == "text/html" and html_part is None:
            html_part = part
    chosen = text_part or html_part
    if chosen is not None:
        info.snippet = _snippet(raw, chosen)


def _decoded_size(raw: RawMessage, part: Part) -> int:
    if part.encoding != "base64":
        return part.size
    breaks = sum(chunk.count(b"\n") + chunk.count(b"\r")
                 for chunk in (raw[p:min(p + (1 << 20), part.body_end)]
                               for p in range(part.body_start, part.body_end, 1 << 20)))
    return max(part.size - breaks, 0) * 3 // 4


def _snippet(raw: RawMessage, part: Part) -> str:
    # HTML needs room for markup before the text starts; plain text does not.
    scan = _SNIPPET_SCAN if part.subtype == "html" else SNIPPET_LENGTH * 16
    encoded = raw[part.body_start:min(part.body_end, part.body_start + scan)]
    try:
        if part.encoding == "base64":
            compact = re.sub(rb"[^A-Za-z0-9+/]", b"", encoded)
            data = binascii.a2b_base64(compact[:len(compact) // 4 * 4])
        elif part.encoding == "quoted-printable":
            data = binascii.a2b_qp(encoded)
        else:
            data = bytes(encoded)
    except (binascii.Error, ValueError):
        data = bytes(encoded)
    text = data.decode(_codec(part.param("charset") or "utf-8"), "replace")
    if part.subtype == "html":
        text = html.unescape(_HTML_TAG.sub(" ", _HTML_DROP.sub(" ", text)))
    # Collapse only what can reach the snippet: a regex over 32 KB per message is measurable.
    return _WHITESPACE.sub(" ", text[:SNIPPET_LENGTH * 8]).strip()[:SNIPPET_LENGTH]
