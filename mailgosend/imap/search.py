"""SEARCH (RFC 3501 §6.4.4): the key grammar, and an evaluator that runs in a database thread.

Twisted's fallback search crashes on every header and date key under Python 3 and scans on the
reactor thread; this replaces it (the mailbox provides ISearchableMailbox).

Keys are parsed into a tree of tuples.  Evaluation is per message, cheapest first inside an
AND, so the expensive layers are reached only when the cheap keys still match:

0. flags, sizes, INTERNALDATE, UIDs, sequence numbers: the session's view, no I/O;
1. FROM/TO/CC/BCC/SUBJECT and SENT*: the decrypted structure (envelope), no blob;
2. HEADER: the message's header block (its first segment);
3. BODY/TEXT: the text parts, transfer-decoded and charset-decoded, case-insensitively.

Strings are matched as Unicode, case-insensitively; RFC 2047 words in headers are decoded
first.  CHARSET UTF-8 and US-ASCII are supported (RFC 3501 §6.4.4 requires US-ASCII; RFC 9051
requires UTF-8); others get NO [BADCHARSET].
"""

from __future__ import annotations

import binascii
import codecs
import email.header
import email.utils
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Optional

from sqlalchemy.engine import Connection

from mailgosend.crypto import KeyRing
from mailgosend.imap.errors import bad, no
from mailgosend.imap.message import InfoCache, MessageSource, StoredMessage, parse_header_block
from mailgosend.imap.seqset import SequenceSet
from mailgosend.imap.tokens import Atom, Quoted, Token, as_bytes, as_number, parse_date
from mailgosend.store.accounts import User
from mailgosend.store.blobs import BlobNotFound, BlobStore
from mailgosend.store.messages import MessageRow
from mailgosend.store.mimeinfo import Part

__all__ = ["Candidate", "parse_search", "run_search", "uses_modseq_key"]

CHARSETS = ("UTF-8", "US-ASCII")
_FLAG_KEYS = {"ANSWERED": ("\\Answered", True), "DELETED": ("\\Deleted", True),
              "DRAFT": ("\\Draft", True), "FLAGGED": ("\\Flagged", True),
              "SEEN": ("\\Seen", True), "UNANSWERED": ("\\Answered", False),
              "UNDELETED": ("\\Deleted", False), "UNDRAFT": ("\\Draft", False),
              "UNFLAGGED": ("\\Flagged", False), "UNSEEN": ("\\Seen", False)}
_ENVELOPE_KEYS = {"FROM": "from_", "TO": "to", "CC": "cc", "BCC": "bcc", "SUBJECT": "subject"}
_DATE_KEYS = {"BEFORE": ("idate", "<"), "ON": ("idate", "="), "SINCE": ("idate", ">="),
              "SENTBEFORE": ("sdate", "<"), "SENTON": ("sdate", "="),
              "SENTSINCE": ("sdate", ">=")}
PREFETCH_CHUNK = 500  # candidates whose sealed structures one query fetches
_COST = {"env": 1, "sdate": 1, "header": 2, "body": 3, "text": 3}

Node = tuple[Any, ...]


def check_charset(raw: Optional[bytes]) -> None:
    if raw is not None and raw.decode("ascii", "replace").upper() not in CHARSETS:
        raise no("Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")


def parse_search(tokens: list[Token]) -> Node:
    """The whole key list as one AND node; BAD for unknown keys or missing arguments."""
    if not tokens:
        raise bad("Missing search keys")
    stream = list(tokens)
    nodes = []
    while stream:
        nodes.append(_key(stream))
    return ("and", nodes)


def _text(stream: list[Token], key: str) -> str:
    if not stream:
        raise bad(f"Missing argument for {key}")
    raw = as_bytes(stream.pop(0), key)
    return raw.decode("utf-8", "replace").casefold()


def _key(stream: list[Token]) -> Node:
    token = stream.pop(0)
    if isinstance(token, list):
        if not token:
            raise bad("Empty parenthesized search key")
        inner, nodes = list(token), []
        while inner:
            nodes.append(_key(inner))
        return ("and", nodes)
    if not isinstance(token, Atom):
        raise bad("Invalid search key")
    key = token.upper()
    if key == "ALL":
        return ("all",)
    if key in _FLAG_KEYS:
        return ("flag",) + _FLAG_KEYS[key]
    if key in ("KEYWORD", "UNKEYWORD"):
        if not stream or not isinstance(stream[0], Atom):
            raise bad(f"{key} needs a flag keyword")
        return ("flag", str(stream.pop(0)), key == "KEYWORD")
    if key in ("NEW", "OLD", "RECENT"):
        return (key.lower(),)
    if key in ("LARGER", "SMALLER"):
        if not stream:
            raise bad(f"Missing argument for {key}")
        return ("size", ">" if key == "LARGER" else "<", as_number(stream.pop(0), key))
    if key in _DATE_KEYS:
        if not stream:
            raise bad(f"Missing argument for {key}")
        kind, op = _DATE_KEYS[key]
        return (kind, op, parse_date(as_bytes(stream.pop(0), key)).date())
    if key in _ENVELOPE_KEYS:
        return ("env", _ENVELOPE_KEYS[key], _text(stream, key))
    if key == "HEADER":
        name = _text(stream, key)
        return ("header", name.lower(), _text(stream, key))
    if key in ("BODY", "TEXT"):
        return (key.lower(), _text(stream, key))
    if key == "UID":
        if not stream or not isinstance(stream[0], Atom):
            raise bad("UID needs a sequence set")
        return ("uid", SequenceSet.parse(str(stream.pop(0))))
    if key == "NOT":
        if not stream:
            raise bad("NOT needs a search key")
        return ("not", _key(stream))
    if key == "OR":
        if not stream:
            raise bad("OR needs two search keys")
        first = _key(stream)
        if not stream:
            raise bad("OR needs two search keys")
        return ("or", first, _key(stream))
    if key == "MODSEQ":  # RFC 7162 §3.1.5; the per-flag entry form is accepted and ignored
        if stream and isinstance(stream[0], Quoted):
            stream.pop(0)
            if not stream or not isinstance(stream[0], Atom) or \
                    stream.pop(0).upper() not in ("PRIV", "SHARED", "ALL"):
                raise bad("MODSEQ entry type must be priv, shared or all")
        if not stream:
            raise bad("MODSEQ needs a mod-sequence value")
        return ("modseq", as_number(stream.pop(0), key))
    if key[:1].isdigit() or key[:1] == "*":
        return ("seq", SequenceSet.parse(key))
    raise bad(f"Unknown search key {key[:40]}")


@dataclass(frozen=True)
class Candidate:
    """A message as the session sees it: its sequence number and \\Recent are session state."""

    seq: int
    row: MessageRow
    recent: bool


class _Subject:
    """Lazy access to the layers of one candidate (see the module docstring)."""

    def __init__(self, candidate: Candidate, source: MessageSource) -> None:
        self.candidate = candidate
        self.message = StoredMessage(candidate.row, source)
        self._flags = {f.lower() for f in candidate.row.flags}
        self._headers: Optional[list[tuple[str, str]]] = None
        self._body: Optional[str] = None

    def has_flag(self, flag: str) -> bool:
        return flag.lower() in self._flags

    def headers(self) -> list[tuple[str, str]]:
        if self._headers is None:
            self._headers = [(name, _decode_header(raw.partition(b":")[2]))
                             for name, raw in parse_header_block(self.message.header_block())]
        return self._headers

    def body(self) -> str:
        if self._body is None:
            self._body = "\n".join(_part_texts(self.message, self.message.info.root))
        return self._body


def _decode_header(raw: bytes) -> str:
    text = raw.replace(b"\r\n", b"").replace(b"\n", b"").decode("utf-8", "replace").strip()
    try:
        return str(email.header.make_header(email.header.decode_header(text))).casefold()
    except Exception:  # unknown charsets, broken words: match the raw text
        return text.casefold()


def _part_texts(message: StoredMessage, root: Part) -> list[str]:
    texts, stack = [], [root]
    while stack:
        part = stack.pop()
        if part.parts:
            stack.extend(reversed(part.parts))
            continue
        if part.type != "text":
            continue
        data = message.read(part.body_start, min(part.body_end, message.row.size))
        try:
            if part.encoding == "base64":
                data = binascii.a2b_base64(data)
            elif part.encoding == "quoted-printable":
                data = binascii.a2b_qp(data)
        except (binascii.Error, ValueError):
            pass
        charset = part.param("charset") or "utf-8"
        try:
            codec = codecs.lookup(charset).name
        except LookupError:
            codec = "utf-8"
        texts.append(data.decode("utf-8" if codec == "ascii" else codec, "replace").casefold())
    return texts


def _sent_date(subject: _Subject) -> Optional[date]:
    raw = subject.message.info.envelope.date
    if not raw:
        return None
    try:
        return email.utils.parsedate_to_datetime(raw).date()
    except (TypeError, ValueError, IndexError):
        return None


def _compare(value: Optional[date], op: str, wanted: date) -> bool:
    if value is None:
        return False
    return value < wanted if op == "<" else value == wanted if op == "=" else value >= wanted


def uses_modseq_key(node: Node) -> bool:
    if node[0] == "and":
        return any(uses_modseq_key(n) for n in node[1])
    if node[0] in ("or", "not"):
        return any(uses_modseq_key(n) for n in node[1:])
    return node[0] == "modseq"


def _cost(node: Node) -> int:
    if node[0] in ("and",):
        return max((_cost(n) for n in node[1]), default=0)
    if node[0] == "or":
        return max(_cost(node[1]), _cost(node[2]))
    if node[0] == "not":
        return _cost(node[1])
    return _COST.get(node[0], 0)


def _matches(node: Node, s: _Subject, count: int, largest_uid: int) -> bool:
    kind, c = node[0], s.candidate
    if kind == "and":
        return all(_matches(n, s, count, largest_uid) for n in sorted(node[1], key=_cost))
    if kind == "all":
        return True
    if kind == "flag":
        return s.has_flag(node[1]) == node[2]
    if kind == "recent":
        return c.recent
    if kind == "new":
        return c.recent and not s.has_flag("\\Seen")
    if kind == "old":
        return not c.recent
    if kind == "size":
        return c.row.size > node[2] if node[1] == ">" else c.row.size < node[2]
    if kind == "idate":
        return _compare(c.row.internal_date.date(), node[1], node[2])
    if kind == "uid":
        return node[1].contains(c.row.uid, largest_uid)
    if kind == "modseq":
        return c.row.modseq >= node[1]
    if kind == "seq":
        return node[1].contains(c.seq, count)
    if kind == "not":
        return not _matches(node[1], s, count, largest_uid)
    if kind == "or":
        return _matches(node[1], s, count, largest_uid) or _matches(node[2], s, count,
                                                                    largest_uid)
    if kind == "sdate":
        return _compare(_sent_date(s), node[1], node[2])
    if kind == "env":
        raw = getattr(s.message.info.envelope, node[1])
        return raw is not None and node[2] in _decode_header(
            raw.encode("utf-8", "surrogateescape"))
    if kind == "header":
        values = [value for name, value in s.headers() if name == node[1]]
        return bool(values) and any(node[2] in value for value in values)
    if kind == "body":
        return node[1] in s.body()
    if kind == "text":
        return (any(node[1] in f"{name}: {value}" for name, value in s.headers())
                or node[1] in s.body())
    raise AssertionError(kind)


def run_search(conn: Connection, keyring: KeyRing, blob_store: BlobStore, user: User,
               candidates: list[Candidate], tree: Node, *, cache: Optional[InfoCache] = None,
               uidvalidity: Optional[int] = None) -> list[Candidate]:
    """Database thread: the candidates the tree matches, in sequence order.  When some key
    needs the structure, each chunk's sealed structures come in one query (decrypted only for
    the candidates whose cheap keys still match)."""
    source = MessageSource(conn, keyring, blob_store, user, cache=cache, uidvalidity=uidvalidity)
    count = len(candidates)
    largest_uid = candidates[-1].row.uid if candidates else 0
    needs_info = _cost(tree) >= _COST["env"]
    found = []
    for index, candidate in enumerate(candidates):
        if needs_info and index % PREFETCH_CHUNK == 0:
            source.prefetch([c.row for c in candidates[index:index + PREFETCH_CHUNK]])
        subject = _Subject(candidate, source)
        try:
            if _matches(tree, subject, count, largest_uid):
                found.append(candidate)
        except (LookupError, BlobNotFound):
            continue  # purged since the session saw it: it cannot match
        finally:
            subject.message.close()
    return found
