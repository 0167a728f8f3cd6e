"""SEARCH (RFC 3501 §6.4.4): the key grammar, and an evaluator that runs in a database thread.

Twisted's fallback search crashes on every header and date key under Python 3 and scans on the
reactor thread; this replaces it (the mailbox provides ISearchableMailbox).

Keys are parsed into a tree of tuples.  Evaluation is set-wise over the candidates (each key
one comprehension), cheapest first inside an AND, so the expensive layers are reached only by
the messages the cheap keys still let through:

0. flags, sizes, INTERNALDATE, UIDs, sequence numbers: the session's view, no I/O;
1. FROM/TO/CC/BCC/SUBJECT and SENT*: decoded fields cached per message (``FieldCache``),
   else the decrypted structure (envelope), no blob;
2. HEADER: the header block the structure keeps (the blob for messages stored before);
3. BODY/TEXT: the text parts, transfer-decoded and charset-decoded, case-insensitively; the
   small blobs of a chunk come in one query.  Exact substring semantics (§6.4.4): the blind
   index of trigrams (mail/substring.py) first drops the messages that cannot contain the
   string, then every candidate left is decrypted and matched.

A search that reaches layer 1 or beyond runs as one database job per ``SEARCH_JOB_SIZE``
messages (account.py), so other sessions' jobs are served in between.

Strings are matched as Unicode, case-insensitively; RFC 2047 words in headers are decoded
first.  CHARSET UTF-8 and US-ASCII are supported (RFC 3501 §6.4.4 requires US-ASCII; RFC 9051
requires UTF-8); others get NO [BADCHARSET].
"""

from __future__ import annotations

import threading
from collections import OrderedDict
import email.utils
from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, Optional, TypeVar

from mailgosend.imap.errors import bad, no
from mailgosend.imap.message import StoredMessage
from mailgosend.mail import substring
from mailgosend.mail.headers import decode_field
from mailgosend.imap.seqset import SequenceSet
from mailgosend.mail.addresses import parse_address_list
from mailgosend.imap.tokens import Atom, Quoted, Token, as_bytes, as_number, parse_date
from mailgosend.mail.source import BoundedCache, MessageSource
from mailgosend.mail.text import TextParts, text_parts
from mailgosend.store.blobs import BlobNotFound
from mailgosend.store.messages import MessageRow
from mailgosend.store.mimeinfo import MessageInfo

__all__ = ["FieldCache", "Lookups", "SearchScope", "TextParts", "parse_search", "run_search",
           "search_cost", "search_fields", "text_parts", "uses_modseq_key"]

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
# OR, NOT and parentheses nest at most this deep: the parser and the evaluator recurse once
# per level, and a client's 500 nested ORs must get a BAD, not a RecursionError.
MAX_SEARCH_DEPTH = 64
PREFETCH_CHUNK = 500  # candidates whose sealed structures one query fetches
# Off: BODY/TEXT read every candidate, as before the index (tests compare both paths).
USE_INDEX = True
_COST = {"env": 1, "sdate": 1, "header": 2, "body": 3, "text": 3}

Node = tuple[Any, ...]
# (kind, needle) -> the substring index's answer, for the jobs of one SEARCH command.
Lookups = dict[tuple[str, str], Optional[substring.Lookup]]


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
        nodes.append(_key(stream, 0))
    return ("and", nodes)


def _text(stream: list[Token], key: str) -> str:
    if not stream:
        raise bad(f"Missing argument for {key}")
    raw = as_bytes(stream.pop(0), key)
    return raw.decode("utf-8", "replace").casefold()


def _key(stream: list[Token], depth: int) -> Node:
    if depth > MAX_SEARCH_DEPTH:
        raise bad("Search keys nested too deeply")
    token = stream.pop(0)
    if isinstance(token, list):
        if not token:
            raise bad("Empty parenthesized search key")
        inner, nodes = list(token), []
        while inner:
            nodes.append(_key(inner, depth + 1))
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
        return ("not", _key(stream, depth + 1))
    if key == "OR":
        if not stream:
            raise bad("OR needs two search keys")
        first = _key(stream, depth + 1)
        if not stream:
            raise bad("OR needs two search keys")
        return ("or", first, _key(stream, depth + 1))
    if key == "MODSEQ":  # RFC 7162 §3.1.5; the per-flag entry form is accepted and ignored
        if stream and isinstance(stream[0], Quoted):
            stream.pop(0)
            if not stream or not isinstance(stream[0], Atom) or \
                    stream.pop(0).upper() not in ("PRIV", "SHARED", "ALL"):
                raise bad("MODSEQ entry type must be priv, shared or all")
        if not stream:
            raise bad("MODSEQ needs a mod-sequence value")
        return ("modseq", as_number(stream.pop(0), key))
    if key[:1].isdigit() or key[:1] in ("*", "$"):  # "$": RFC 5182 (esearch.bind_saved)
        return ("seq", SequenceSet.parse(key))
    raise bad(f"Unknown search key {key[:40]}")


@dataclass(frozen=True)
class SearchScope:
    """The messages a SEARCH runs over, as the session saw them when the command started:
    rows in sequence order (sequence number = index + 1) and the \\Recent UIDs (session
    state).  Read-only, so the chunks of one search share it across database jobs."""

    rows: list[MessageRow]
    recent: frozenset[int]
    uidvalidity: int

    @property
    def largest_uid(self) -> int:
        return self.rows[-1].uid if self.rows else 0


# What SEARCH FROM/TO/CC/BCC/SUBJECT and SENT* compare with: the envelope fields decoded
# (RFC 2047) and case-folded, and the sent date.  Computing them costs an RFC 2047 decode per
# field, more than the match, so they are cached per message like the structures.
Fields = tuple[Optional[str], Optional[str], Optional[str], Optional[str], Optional[str],
               Optional[date]]
_V = TypeVar("_V")
_FIELD_INDEX = {"from_": 0, "to": 1, "cc": 2, "bcc": 3, "subject": 4}


class FieldCache(Generic[_V]):
    """Search fields per mailbox: (mailbox id, UIDVALIDITY) -> {UID: Fields}, never stale
    (as InfoCache), at most ``limit`` messages, whole mailboxes evicted least recently used
    first.  A plain dict per mailbox, so a SEARCH SUBJECT over 10,000 cached messages is one
    comprehension of dict lookups; database threads read it without the lock."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._boxes: OrderedDict[tuple[int, int], dict[int, _V]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._size

    def mailbox(self, mailbox_id: int, uidvalidity: int) -> dict[int, _V]:
        """The mailbox's dict, to read; add to it with ``put``."""
        key = (mailbox_id, uidvalidity)
        with self._lock:
            found = self._boxes.get(key)
            if found is None:
                found = self._boxes[key] = {}
            self._boxes.move_to_end(key)
            return found

    def put(self, mailbox_id: int, uidvalidity: int, values: dict[int, _V]) -> None:
        key = (mailbox_id, uidvalidity)
        with self._lock:
            box = self._boxes.get(key)
            if box is None:
                box = self._boxes[key] = {}
            before = len(box)
            box.update(values)
            self._size += len(box) - before
            while self._size > self.limit and len(self._boxes) > 1:
                oldest = next(iter(self._boxes))
                if oldest == key:
                    self._boxes.move_to_end(key)
                    oldest = next(iter(self._boxes))
                self._size -= len(self._boxes.pop(oldest))


def search_fields(info: MessageInfo) -> Fields:
    """What SEARCH FROM/TO/CC/BCC/SUBJECT/SENT* compare with, for one structure."""
    env = info.envelope

    def decoded(raw: Optional[str]) -> Optional[str]:
        return None if raw is None else decode_field(raw.encode("utf-8", "surrogateescape"))

    def addresses(raw: Optional[str]) -> Optional[str]:
        # The header as written, then each address without its comments and folding
        # (RFC 5322 §3.2.2 CFWS), so FROM user@host finds "<user (c)@ (c) host>" too.
        if raw is None:
            return None
        text = decode_field(raw.encode("utf-8", "surrogateescape"))
        specs = [f"{mailbox}@{host}" for _, _, mailbox, host in parse_address_list(raw)
                 if mailbox is not None and host is not None]
        return "\n".join([text] + specs).casefold()

    return (addresses(env.from_), addresses(env.to), addresses(env.cc), addresses(env.bcc),
            decoded(env.subject), _sent_date(env.date))


def _sent_date(raw: Optional[str]) -> Optional[date]:
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


class _Evaluator:
    """Evaluates a key tree over a list of candidate indices at once (database thread).

    Set-wise rather than message by message: an AND narrows the candidates key by key,
    cheapest first, so an expensive key (BODY) only sees what the cheap ones let through, and
    each leaf is one tight comprehension.  Structures are fetched a chunk per query and only
    for the candidates that reach a key needing them."""

    def __init__(self, source: MessageSource, scope: SearchScope,
                 fields: Optional[FieldCache],
                 parts: Optional[BoundedCache[TextParts]] = None,
                 lookups: Optional[Lookups] = None) -> None:
        self.parts_cache = parts
        self.lookups: Lookups = {} if lookups is None else lookups
        self.source, self.scope, self.rows = source, scope, scope.rows
        self.count, self.largest_uid = len(scope.rows), scope.largest_uid
        self.field_cache = fields
        self.gone: set[int] = set()  # purged since the session saw them: they never match
        self._fields: dict[int, Fields] = (  # UID -> fields, the shared dict if cached
            fields.mailbox(self.rows[0].mailbox_id, scope.uidvalidity)
            if fields is not None and self.rows else {})
        self._headers: dict[int, list[tuple[str, str]]] = {}
        self._bodies: dict[int, str] = {}
        self._folded: dict[tuple[str, ...], frozenset[str]] = {}

    def run(self, node: Node, cands: list[int]) -> list[int]:
        kind = node[0]
        if kind == "and":
            for child in sorted(node[1], key=_cost):
                if not cands:
                    break
                cands = self.run(child, cands)
            return cands
        if kind == "or":
            first = self.run(node[1], cands)
            if len(first) == len(cands):
                return cands
            taken = set(first)
            second = self.run(node[2], [i for i in cands if i not in taken])
            return sorted(taken.union(second))
        if kind == "not":
            matched = set(self.run(node[1], cands))
            return [i for i in cands if i not in matched]
        return self._leaf(node, cands)

    def _folded_flags(self, flags: tuple[str, ...]) -> frozenset[str]:
        folded = self._folded.get(flags)
        if folded is None:
            folded = self._folded[flags] = frozenset(f.lower() for f in flags)
        return folded

    def _leaf(self, node: Node, cands: list[int]) -> list[int]:
        kind, rows = node[0], self.rows
        if kind == "all":
            return cands
        if kind == "flag":
            flag, wanted = node[1].lower(), node[2]
            folded = self._folded_flags
            return [i for i in cands if (flag in folded(rows[i].flags)) == wanted]
        if kind in ("recent", "new", "old"):
            recent = self.scope.recent
            if kind == "old":
                return [i for i in cands if rows[i].uid not in recent]
            hits = [i for i in cands if rows[i].uid in recent]
            if kind == "new":
                hits = [i for i in hits if "\\Seen" not in rows[i].flags]
            return hits
        if kind == "size":
            limit = node[2]
            if node[1] == ">":
                return [i for i in cands if rows[i].size > limit]
            return [i for i in cands if rows[i].size < limit]
        if kind == "idate":
            op, wanted = node[1], node[2]
            return [i for i in cands if _compare(rows[i].internal_date.date(), op, wanted)]
        if kind == "uid":
            seqset, largest = node[1], self.largest_uid
            return [i for i in cands if seqset.contains(rows[i].uid, largest)]
        if kind == "modseq":
            floor = node[1]
            return [i for i in cands if rows[i].modseq >= floor]
        if kind == "seq":
            seqset, count = node[1], self.count
            return [i for i in cands if seqset.contains(i + 1, count)]
        if kind in ("env", "sdate"):
            get = self._load_fields(cands).get
            if kind == "sdate":
                op, wanted = node[1], node[2]
                return [i for i in cands if (f := get(rows[i].uid)) is not None
                        and _compare(f[5], op, wanted)]
            index, needle = _FIELD_INDEX[node[1]], node[2]
            return [i for i in cands if (f := get(rows[i].uid)) is not None
                    and (v := f[index]) is not None and needle in v]  # type: ignore[operator]
        if kind in ("header", "body", "text"):
            return self._content(node, cands)
        raise AssertionError(kind)

    def _load_fields(self, cands: list[int]) -> dict[int, Fields]:
        """UID -> search fields, covering ``cands``: missing ones are decrypted a chunk of
        structures per query and added to the listener's cache."""
        known, rows = self._fields, self.rows
        missing = [i for i in cands if rows[i].uid not in known]
        for start in range(0, len(missing), PREFETCH_CHUNK):
            chunk = missing[start:start + PREFETCH_CHUNK]
            self.source.prefetch([rows[i] for i in chunk])
            found: dict[int, Fields] = {}
            for i in chunk:
                try:
                    found[rows[i].uid] = search_fields(self.source.load_info(rows[i]))
                except LookupError:
                    self.gone.add(i)
            if self.field_cache is not None and rows:
                self.field_cache.put(rows[0].mailbox_id, self.scope.uidvalidity, found)
            else:
                known.update(found)
        return known

    def _content(self, node: Node, cands: list[int]) -> list[int]:
        """HEADER, BODY and TEXT, a prefetched chunk of structures at a time."""
        kind, found = node[0], []
        if kind != "header" and USE_INDEX:
            cands = self._narrowed(kind, node[1], cands)
        for start in range(0, len(cands), PREFETCH_CHUNK):
            chunk = cands[start:start + PREFETCH_CHUNK]
            source, rows = self.source, self.rows
            if kind == "header":
                source.prefetch([rows[i] for i in chunk if i not in self._headers
                                 and source.cached_header(rows[i]) is None])
            else:
                source.prefetch([rows[i] for i in chunk if i not in self._bodies and (
                    self._parts_of(rows[i]) is None or (
                        kind == "text" and source.cached_header(rows[i]) is None))])
                self.source.prefetch_blobs([self.rows[i] for i in chunk
                                            if i not in self._bodies])
            for i in chunk:
                try:
                    if kind == "header":
                        values = [v for name, v in self._header_list(i) if name == node[1]]
                        hit = bool(values) and any(node[2] in v for v in values)
                    elif kind == "body":
                        hit = node[1] in self._body(i)
                    else:
                        hit = (any(node[1] in f"{name}: {value}"
                                   for name, value in self._header_list(i))
                               or node[1] in self._body(i))
                except (LookupError, BlobNotFound):
                    self.gone.add(i)
                    continue
                if hit:
                    found.append(i)
        return found

    def _narrowed(self, kind: str, needle: str, cands: list[int]) -> list[int]:
        """BODY/TEXT candidates the substring index leaves (mail/substring.py): those that
        may contain ``needle``; every one of them is still matched below, so the result is
        the scan's exactly.  The index is asked once per needle and SEARCH command."""
        if not cands:
            return cands
        key = (kind, needle)
        if key in self.lookups:
            lookup = self.lookups[key]
        else:
            tags = (substring.BODY,) if kind == "body" else (substring.BODY, substring.HEADER)
            lookup = self.lookups[key] = substring.candidate_blobs(self.source, tags, needle)
        if lookup is None:
            return cands
        indexed, allowed = lookup
        rows = self.rows
        return [i for i in cands
                if (blob := rows[i].blob_id) in allowed or blob not in indexed]

    def _header_list(self, i: int) -> list[tuple[str, str]]:
        headers = self._headers.get(i)
        if headers is None:
            with StoredMessage(self.rows[i], self.source) as message:
                block = message.header_block()
            headers = self._headers[i] = substring.header_lines(block)
        return headers

    def _parts_of(self, row: MessageRow) -> Optional[TextParts]:
        if self.parts_cache is None:
            return None
        return self.parts_cache.get(self.source._key(row))

    def _body(self, i: int) -> str:
        body = self._bodies.get(i)
        if body is None:
            row = self.rows[i]
            with StoredMessage(row, self.source) as message:
                parts = self._parts_of(row)
                if parts is None:
                    parts = text_parts(message.info.root)
                    if self.parts_cache is not None:
                        self.parts_cache.put(self.source._key(row), parts)
                body = substring.body_text(parts, message.read, row.size)
            self._bodies[i] = body
        return body


def run_search(source: MessageSource, scope: SearchScope, tree: Node, start: int = 0,
               end: Optional[int] = None, *, fields: Optional[FieldCache] = None,
               parts: Optional[BoundedCache[TextParts]] = None,
               lookups: Optional[Lookups] = None) -> list[int]:
    """Database thread (``UserMail.read_messages`` with ``scope.uidvalidity``): the indices in
    ``scope.rows[start:end]`` the tree matches, ascending.  A long search is run as several
    such jobs (account.py), so one SEARCH BODY over a large mailbox does not hold a reader
    thread for seconds while other sessions wait.  ``lookups``: one dict shared by those jobs,
    so the index is asked once per command (``Lookups``)."""
    evaluator = _Evaluator(source, scope, fields, parts, lookups)
    stop = len(scope.rows) if end is None else end
    found = evaluator.run(tree, list(range(start, stop)))
    return [i for i in found if i not in evaluator.gone] if evaluator.gone else found


def search_cost(tree: Node) -> int:
    """0: flags and other session data only; 1: structures; 2: header blocks; 3: bodies."""
    return _cost(tree)
