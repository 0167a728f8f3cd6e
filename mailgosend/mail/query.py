# -*- test-case-name: tests.test_jmap_query -*-
"""Email queries served from an index (JMAP Email/query, queryChanges, SearchSnippet/get).

Nothing is decrypted or sorted per request once a user's index is warm:

- ``UserIndex``: one user's live messages in memory, made of the plain columns (Email and
  Thread ids, mailbox, flags, INTERNALDATE, size, blob) read once, and kept exact by a check
  at the start of every query job: the user's change counter (store/mailstate.py, one
  primary-key read).  When it moved, the rows changed since (the ``(user_id, modseq)`` index;
  expunged rows keep their MODSEQ) and the tombstones of rows removed with a mailbox bring
  the index up to date; below the pruning floor it is read anew.  Every change, whichever
  node made it, advances the counter: on PostgreSQL each node's index validates itself and no
  lost feed message can leave it stale.
- Sort keys that need the encrypted structure (sentAt, from, to, subject, hasAttachment) are
  decrypted once per message, when a query first needs them, a chunk per statement; after
  that only new messages are read.
- Text conditions go to the search index (keyed hash tokens, store/search.py) for candidates,
  and every candidate is confirmed on the decrypted text (searchtext.Document.matches), so a
  hash collision or a prefix shared by longer words never yields a wrong result.  Messages
  stored before the index are candidates of every text search until the backfill (run in the
  background once a user's index is loaded) has indexed them.
- A query's sorted result is kept until the index changes; windows (position, anchor) are
  slices of it.
- ``QueryIndexes`` bounds memory: at most ``limit`` messages over all users' indexes, the
  least recently used user's index dropped first.

Query states are the account's state, the change counter (the same string as the Email
state): the changes since one are the Emails whose rows or tombstones carry a later value,
exact back to the pruning floor (``cannotCalculateChanges`` below it).
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional, Sequence, cast

from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from mailgosend.mail import searchtext, substring
from mailgosend.mail.addresses import parse_address_list
from mailgosend.mail.headers import parse_header_block
from mailgosend.mail.searchtext import Document, Term
from mailgosend.mail.sortkeys import base_subject, decode_words, sent_time, unicode_casemap
from mailgosend.mail.source import MessageSource
from mailgosend.store import search as search_store
from mailgosend.store.blobs import BlobNotFound
from mailgosend.store.emailindex import index_rows
from mailgosend.store.emails import EmailRow, MailboxTally
from mailgosend.store.mailstate import read_state
from mailgosend.store.messages import MessageRow

__all__ = ["Node", "QueryIndexes", "QueryResult", "QueryChanges", "Snippet", "UserIndex",
           "Sort", "keywords_of", "run_query", "run_query_changes", "run_snippets",
           "CannotCalculateChanges", "UnknownState"]

log = Logger()

# Where system flags and JMAP keywords meet (RFC 8621 §4.1.1): JMAP keywords are lower case.
SYSTEM_KEYWORDS = {"\\seen": "$seen", "\\flagged": "$flagged", "\\answered": "$answered",
                   "\\draft": "$draft"}
PREFETCH_CHUNK = 500
MAX_DELTAS = 64  # versions whose changes are kept for updating cached results
MAX_UPDATE = 2000  # changed Emails above which a cached result is recomputed instead
BACKFILL_CHUNK = 100
DOCUMENT_CACHE = 256

# A filter tree (built by jmap/email_query.py from FilterOperator/FilterCondition):
# ("and", [nodes]) ("or", [nodes]) ("not", [nodes]): none of them,
# ("mailbox", id) ("mailbox_other", frozenset(ids)) ("before", ts) ("after", ts)
# ("min_size", n) ("max_size", n) ("keyword", kw) ("no_keyword", kw)
# ("thread_all", kw) ("thread_some", kw) ("thread_none", kw) ("attachment", bool)
# ("text", fields tuple, [Term]) ("header", name lower-case, value casefolded or None)
# ("none",): matches nothing (e.g. inMailbox of an unknown mailbox).
Node = tuple[Any, ...]
# A sort: (property, ascending, collation, keyword or None).
Sort = tuple[str, bool, str, Optional[str]]

_EPOCH = datetime.fromtimestamp(0, timezone.utc)
_COST = {"text": 3, "header": 4, "attachment": 2}


def _conn(source: MessageSource) -> Connection:
    """The job's connection (``UserMail.read_messages`` binds the source to it)."""
    assert isinstance(source.storage, Connection)
    return source.storage


class UnknownState(Exception):
    """A query state this server never issued (or cannot read)."""


class CannotCalculateChanges(Exception):
    """History needed for the changes is gone (a deleted mailbox, a purge)."""


_KEYWORDS: dict[tuple[str, ...], frozenset[str]] = {}


def keywords_of(flags: tuple[str, ...]) -> frozenset[str]:
    """The JMAP keywords of a message's IMAP flags (\\Deleted and \\Recent are none)."""
    found = _KEYWORDS.get(flags)
    if found is None:
        words = set()
        for flag in flags:
            low = flag.lower()
            if low.startswith("\\"):
                if low in SYSTEM_KEYWORDS:
                    words.add(SYSTEM_KEYWORDS[low])
            else:
                words.add(low)
        found = _KEYWORDS[flags] = frozenset(words)
    return found


class Entry:
    """One live message in an index: plain columns only."""

    __slots__ = ("id", "row_id", "mailbox_id", "uid", "modseq", "flags", "received", "size",
                 "blob_id", "thread", "keywords", "internal_date")

    def __init__(self, row: EmailRow) -> None:
        self.id = row.email_id
        self.row_id = row.message_id
        self.mailbox_id = row.mailbox_id
        self.uid = row.uid
        self.modseq = row.modseq
        self.flags = row.flags
        self.keywords = keywords_of(row.flags)
        self.internal_date = row.internal_date
        self.received = row.internal_date.timestamp()
        self.size = row.size
        self.blob_id = row.blob_id
        self.thread = row.thread_id

    def row(self) -> MessageRow:
        """The message row, for reading its structure and blob (mail/source.py)."""
        return MessageRow(self.row_id, self.mailbox_id, self.uid, self.modseq, self.flags,
                          self.internal_date, self.size, self.blob_id, None)


# (sentAt or None, from display, to display, base subject, has attachment)
Keys = tuple[Optional[float], str, str, str, bool]


def _keys(info: Any) -> Keys:
    def display(raw: Optional[str]) -> str:
        # RFC 8621 §4.4.2: the name of the first address, else its email, else "".
        if not raw:
            return ""
        for name, _, mailbox, host in parse_address_list(raw):
            if host is None:
                continue
            shown = decode_words(name).strip() if name else ""
            return shown or f"{mailbox or ''}@{host}"
        return ""

    env = info.envelope
    return (sent_time(env.date), display(env.from_), display(env.to),
            base_subject(env.subject)[0], info.has_attachments)


@dataclass
class QueryResult:
    ids: list[int]
    position: int
    total: int
    state: str


@dataclass
class QueryChanges:
    old_state: str
    new_state: str
    removed: list[int]
    added: list[tuple[int, int]]
    total: int


@dataclass
class Snippet:
    email_id: int
    subject: Optional[str]
    preview: Optional[str]


@dataclass
class UserIndex:
    """One user's messages as queries see them (see the module docstring)."""

    user_id: int
    entries: dict[int, Entry] = field(default_factory=dict)  # by Email id
    modseq: Optional[int] = None  # the change counter the entries reflect; None: not loaded
    keys: dict[int, Keys] = field(default_factory=dict)
    order: Optional[list[tuple[float, int]]] = None  # see by_received
    members: dict[int, set[int]] = field(default_factory=dict)  # thread id -> Email ids
    # What each recent version changed: (version, Email ids, thread ids), for bringing a
    # cached result up to date without recomputing it (``_update``); from ``base`` on.
    deltas: list[tuple[int, frozenset[int], frozenset[int]]] = field(default_factory=list)
    base: int = 0
    unindexed: Optional[set[str]] = None  # blobs without search document; None: not known yet
    version: int = 0
    results: dict[Any, tuple[int, list[int]]] = field(default_factory=dict)
    documents: OrderedDict[str, Document] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    backfilling: bool = False
    tallies: Optional["_Tallies"] = None  # Mailbox/get's counts, once asked for

    def __len__(self) -> int:
        return len(self.entries)

    # --- keeping it exact (database thread, lock held) --------------------------------------

    def refresh(self, conn: Any) -> None:
        state = read_state(conn, self.user_id)
        if state.modseq == self.modseq:
            return
        new_blobs: set[str] = set()
        full = self.modseq is None or self.modseq < state.pruned
        if full:
            self.entries.clear()
            self.keys.clear()
            self.members.clear()
            self.order = None
            self.tallies = None
            rows, stones = index_rows(conn, self.user_id, None)
        else:
            rows, stones = index_rows(conn, self.user_id, self.modseq)
        for row, expunged in rows:
            new_blob = self._apply(row, expunged)
            if new_blob:
                new_blobs.add(new_blob)
        for email_id, _, mailbox_id in stones:
            entry = self.entries.get(email_id)
            if entry is not None and entry.mailbox_id == mailbox_id:
                self._remove(entry)
        self.modseq = max([state.modseq] + [row.modseq for row, _ in rows])
        self.version += 1
        if full:
            self.results.clear()
            self.deltas, self.base = [], self.version
        else:
            self.deltas.append((self.version,
                                frozenset([r.email_id for r, _ in rows] + [t[0] for t in stones]),
                                frozenset([r.thread_id for r, _ in rows] + [t[1] for t in stones])))
            del self.deltas[:-MAX_DELTAS]
        if self.unindexed is not None and new_blobs:
            indexed = search_store.indexed_among(conn, self.user_id, new_blobs)
            self.unindexed.update(new_blobs - indexed)

    def _apply(self, row: EmailRow, expunged: bool) -> Optional[str]:
        """One changed row; the blob of a new live message, else None.  A MOVE leaves the
        old row expunged and a new one with the same Email id, in either order here."""
        current = self.entries.get(row.email_id)
        if expunged:
            if current is not None and current.row_id == row.message_id:
                self._remove(current)
            return None
        entry = Entry(row)
        tallies = self.tallies
        if tallies is not None:
            touched = {entry.thread} if current is None else {entry.thread, current.thread}
            tallies.threads_out(self, touched)
            if current is not None:
                tallies.email(current, -1)
        self.entries[row.email_id] = entry
        if current is not None and current.thread != entry.thread:
            self._unthread(current)
        self.members.setdefault(entry.thread, set()).add(entry.id)
        if tallies is not None:
            tallies.email(entry, 1)
            tallies.threads_in(self, touched)
        if current is None or current.received != entry.received:
            if current is not None:
                self._unorder(current)
            if self.order is not None:
                bisect.insort(self.order, (entry.received, entry.id))
        if current is not None and current.blob_id == entry.blob_id:
            return None
        self.keys.pop(row.email_id, None)
        return entry.blob_id

    def _remove(self, entry: Entry) -> None:
        tallies = self.tallies
        if tallies is not None:
            tallies.threads_out(self, {entry.thread})
            tallies.email(entry, -1)
        del self.entries[entry.id]
        self.keys.pop(entry.id, None)
        self._unorder(entry)
        self._unthread(entry)
        if tallies is not None:
            tallies.threads_in(self, {entry.thread})

    def mailbox_tallies(self, trash_id: Optional[int]) -> dict[int, MailboxTally]:
        """The JMAP counts of every mailbox holding mail (lock held, after ``refresh``): the
        same as store/emails.py ``mailbox_tallies`` reads from every row, kept up to date
        with the entries, so a change costs the counts of its threads and not a scan of
        the account (230 ms per Mailbox/get on 100,000 messages)."""
        if self.tallies is None or self.tallies.trash != trash_id:
            self.tallies = _Tallies.build(self, trash_id)
        return self.tallies.result()

    def _unthread(self, entry: Entry) -> None:
        members = self.members.get(entry.thread)
        if members is not None:
            members.discard(entry.id)
            if not members:
                del self.members[entry.thread]

    def changed_since(self, version: int) -> Optional[tuple[set[int], set[int]]]:
        """The Email and thread ids changed after ``version``, or None when not known
        (a full reload since, or older than the deltas kept)."""
        if version < self.base:
            return None
        wanted = range(version + 1, self.version + 1)
        known = [d for d in self.deltas if d[0] > version]
        if len(known) != len(wanted):
            return None
        ids: set[int] = set()
        threads: set[int] = set()
        for _, changed, touched in known:
            ids |= changed
            threads |= touched
        return ids, threads

    def _unorder(self, entry: Entry) -> None:
        if self.order is not None:
            at = bisect.bisect_left(self.order, (entry.received, entry.id))
            if at < len(self.order) and self.order[at] == (entry.received, entry.id):
                del self.order[at]

    def by_received(self) -> list[tuple[float, int]]:
        """Every entry as (receivedAt, id), ascending: kept up to date by the changes, so
        the common list (newest first) needs no sort per query."""
        if self.order is None:
            self.order = sorted((e.received, e.id) for e in self.entries.values())
        return self.order

    def state(self) -> str:
        """The query state: the account's change counter (see the module docstring)."""
        return str(self.modseq or 0)

    def load_keys(self, source: MessageSource, ids: Iterable[int]) -> None:
        """Decrypt the sort keys of the ``ids`` that have none yet, a chunk per query."""
        missing = [self.entries[i] for i in ids if i not in self.keys]
        for start in range(0, len(missing), PREFETCH_CHUNK):
            chunk = missing[start:start + PREFETCH_CHUNK]
            rows = [e.row() for e in chunk]
            source.prefetch(rows)
            for entry, row in zip(chunk, rows):
                try:
                    self.keys[entry.id] = _keys(source.load_info(row))
                except LookupError:
                    self.keys[entry.id] = (None, "", "", "", False)

    def document(self, source: MessageSource, entry: Entry) -> Optional[Document]:
        """The searchable text of a message, decrypted (a few recent ones kept)."""
        doc = self.documents.get(entry.blob_id)
        if doc is not None:
            self.documents.move_to_end(entry.blob_id)
            return doc
        try:
            info = source.load_info(entry.row())
            with source.open_blob(entry.blob_id) as reader:
                doc = searchtext.extract_document(
                    info, lambda start, end: reader.read_range(start, end - start))
        except (LookupError, BlobNotFound):
            return None
        self.documents[entry.blob_id] = doc
        while len(self.documents) > DOCUMENT_CACHE:
            self.documents.popitem(last=False)
        return doc


def _unread(entry: Entry) -> bool:
    """RFC 8621 §2: unread is neither $seen nor $draft."""
    keywords = entry.keywords
    return "$seen" not in keywords and "$draft" not in keywords


class _Tallies:
    """Mailbox counts over an index's entries (see ``UserIndex.mailbox_tallies``).

    unreadThreads follows store/emails.py: the threads of a mailbox that have an unread
    Email on the same side of the trash (Emails only in the trash do not count for other
    mailboxes, Emails outside it do not count for the trash).  A change to an Email takes
    its threads' share out of the counts, changes the Email's own counts, and puts the
    threads' share back (``threads_out``/``threads_in`` around every change)."""

    __slots__ = ("trash", "total", "unread", "threads", "unread_threads", "sides")

    def __init__(self, trash: Optional[int]) -> None:
        self.trash = trash
        self.total: dict[int, int] = {}
        self.unread: dict[int, int] = {}
        self.threads: dict[int, int] = {}
        self.unread_threads: dict[int, int] = {}
        # thread id -> [unread Emails outside the trash, unread in it]; only threads with some
        self.sides: dict[int, list[int]] = {}

    @classmethod
    def build(cls, index: UserIndex, trash: Optional[int]) -> "_Tallies":
        made = cls(trash)
        for entry in index.entries.values():
            made.email(entry, 1)
        made.threads_in(index, index.members)
        return made

    def email(self, entry: Entry, sign: int) -> None:
        box = entry.mailbox_id
        self.total[box] = self.total.get(box, 0) + sign
        if _unread(entry):
            self.unread[box] = self.unread.get(box, 0) + sign
            sides = self.sides.setdefault(entry.thread, [0, 0])
            sides[box == self.trash] += sign
            if not (sides[0] or sides[1]):
                del self.sides[entry.thread]

    def _threads(self, index: UserIndex, thread_ids: Iterable[int], sign: int) -> None:
        entries, trash = index.entries, self.trash
        for thread in thread_ids:
            members = index.members.get(thread)
            if not members:
                continue
            sides = self.sides.get(thread)
            for box in {entries[i].mailbox_id for i in members}:
                self.threads[box] = self.threads.get(box, 0) + sign
                if sides is not None and sides[box == trash] > 0:
                    self.unread_threads[box] = self.unread_threads.get(box, 0) + sign

    def threads_out(self, index: UserIndex, thread_ids: Iterable[int]) -> None:
        self._threads(index, thread_ids, -1)

    def threads_in(self, index: UserIndex, thread_ids: Iterable[int]) -> None:
        self._threads(index, thread_ids, 1)

    def result(self) -> dict[int, MailboxTally]:
        return {box: MailboxTally(total, self.unread.get(box, 0), self.threads.get(box, 0),
                                  self.unread_threads.get(box, 0))
                for box, total in self.total.items() if total > 0}


def mailbox_tallies(conn: Connection, indexes: "QueryIndexes", user_id: int,
                    trash_id: Optional[int]) -> dict[int, MailboxTally]:
    """Database thread: the user's Mailbox counts from the query index, brought up to date
    on ``conn`` first (store/emails.py ``mailbox_view`` calls it after reading the state,
    so the counts are at least as new as the state it reports)."""
    index = indexes.get(user_id)
    with index.lock:
        index.refresh(conn)
        return index.mailbox_tallies(trash_id)


class QueryIndexes:
    """Every user's ``UserIndex`` in this process, at most ``limit`` messages in all."""

    def __init__(self, limit: int = 1_000_000) -> None:
        self.limit = limit
        self._indexes: OrderedDict[int, UserIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, user_id: int) -> UserIndex:
        with self._lock:
            index = self._indexes.get(user_id)
            if index is None:
                index = self._indexes[user_id] = UserIndex(user_id)
            self._indexes.move_to_end(user_id)
            total = sum(len(i) for i in self._indexes.values())
            while total > self.limit and len(self._indexes) > 1:
                _, dropped = self._indexes.popitem(last=False)
                total -= len(dropped)
            return index

    def peek(self, user_id: int) -> Optional[UserIndex]:
        """The user's index if this process has one (loaded or not), without making one."""
        with self._lock:
            return self._indexes.get(user_id)

    def drop(self, user_id: int) -> None:
        with self._lock:
            self._indexes.pop(user_id, None)


# --- evaluating a filter (database thread, index lock held) -----------------------------------


def _cost(node: Node) -> int:
    if node[0] in ("and", "or", "not"):
        return max((_cost(n) for n in node[1]), default=0)
    return _COST.get(node[0], 0)


def _uses_threads(node: Optional[Node]) -> bool:
    if node is None:
        return False
    if node[0] in ("and", "or", "not"):
        return any(_uses_threads(n) for n in node[1])
    return node[0].startswith("thread_")


def _uses_keys(node: Optional[Node]) -> bool:
    if node is None:
        return False
    if node[0] in ("and", "or", "not"):
        return any(_uses_keys(n) for n in node[1])
    return node[0] == "attachment"


class _Evaluator:
    def __init__(self, index: UserIndex, source: MessageSource, key: bytes) -> None:
        self.user_id = index.user_id
        self.index, self.source, self.key = index, source, key
        self.entries = index.entries
        self.tokens_cache: dict[bytes, set[str]] = {}

    def thread_of(self, entry: Entry) -> list[Entry]:
        """The live Emails of an Email's thread."""
        entries = self.entries
        return [entries[i] for i in self.index.members.get(entry.thread, ())]

    def run(self, node: Node, cands: list[int]) -> list[int]:
        kind = node[0]
        if kind == "and":
            for child in sorted(node[1], key=_cost):
                if not cands:
                    break
                cands = self.run(child, cands)
            return cands
        if kind == "or":
            taken: set[int] = set()
            rest = cands
            for child in sorted(node[1], key=_cost):
                if not rest:
                    break
                hits = self.run(child, rest)
                taken.update(hits)
                rest = [i for i in rest if i not in taken]
            return [i for i in cands if i in taken]
        if kind == "not":
            matched = set(self.run(("or", node[1]), cands))
            return [i for i in cands if i not in matched]
        return self.leaf(node, cands)

    def leaf(self, node: Node, cands: list[int]) -> list[int]:
        kind, entries = node[0], self.entries
        if kind == "none":
            return []
        if kind == "mailbox":
            box = node[1]
            return [i for i in cands if entries[i].mailbox_id == box]
        if kind == "mailbox_other":
            boxes = node[1]
            return [i for i in cands if entries[i].mailbox_id not in boxes]
        if kind == "before":
            return [i for i in cands if entries[i].received < node[1]]
        if kind == "after":
            return [i for i in cands if entries[i].received >= node[1]]
        if kind == "min_size":
            return [i for i in cands if entries[i].size >= node[1]]
        if kind == "max_size":
            return [i for i in cands if entries[i].size < node[1]]
        if kind == "keyword":
            return [i for i in cands if node[1] in entries[i].keywords]
        if kind == "no_keyword":
            return [i for i in cands if node[1] not in entries[i].keywords]
        if kind in ("thread_all", "thread_some", "thread_none"):
            thread_of, word = self.thread_of, node[1]
            test = {"thread_all": all, "thread_some": any}.get(kind)

            def holds(entry: Entry) -> bool:
                has = (word in e.keywords for e in thread_of(entry))
                return test(has) if test is not None else not any(has)

            return [i for i in cands if holds(entries[i])]
        if kind == "attachment":
            self.index.load_keys(self.source, cands)
            keys = self.index.keys
            return [i for i in cands if keys[i][4] == node[1]]
        if kind == "text":
            return self.text(node[1], node[2], cands)
        if kind == "header":
            return self.header(node[1], node[2], cands)
        raise AssertionError(kind)

    def _documents_with(self, tokens: list[bytes]) -> set[str]:
        missing = [t for t in tokens if t not in self.tokens_cache]
        if missing:
            found = search_store.find_documents(_conn(self.source), self.index.user_id,
                                                missing)
            for token in missing:
                self.tokens_cache[token] = found.get(token, set())
        blobs: set[str] = set()
        for token in tokens:
            blobs |= self.tokens_cache[token]
        return blobs

    def text(self, fields: Sequence[str], terms: list[Term], cands: list[int]) -> list[int]:
        """Candidates from the index, each confirmed on its decrypted text."""
        if not terms:
            return cands
        entries = self.entries
        allowed: Optional[set[str]] = None
        for term in terms:
            for alternatives in searchtext.lookup_tokens(self.key, fields, term):
                blobs = self._documents_with(alternatives)
                allowed = blobs if allowed is None else allowed & blobs
        if allowed is not None:
            unindexed = self.index.unindexed or set()
            cands = [i for i in cands if entries[i].blob_id in allowed
                     or entries[i].blob_id in unindexed]
        return self.confirm(cands, lambda doc: doc.matches(fields, terms))

    def confirm(self, cands: list[int], test: Callable[[Document], bool]) -> list[int]:
        """The candidates whose decrypted text passes ``test``; the structures and small
        blobs of those not decrypted yet are fetched a chunk per statement."""
        entries, documents, found = self.entries, self.index.documents, []
        for start in range(0, len(cands), PREFETCH_CHUNK):
            chunk = cands[start:start + PREFETCH_CHUNK]
            rows = [entries[i].row() for i in chunk if entries[i].blob_id not in documents]
            if rows:
                self.source.prefetch(rows)
                self.source.prefetch_blobs(rows)
            for i in chunk:
                doc = self.index.document(self.source, entries[i])
                if doc is not None and test(doc):
                    found.append(i)
        return found

    def header(self, name: str, value: Optional[str], cands: list[int]) -> list[int]:
        """RFC 8621 §4.4.1 ``header``: a field of that name (containing ``value``, decoded,
        case-insensitively), read from the structure's header block (no index)."""
        found = []
        for start in range(0, len(cands), PREFETCH_CHUNK):
            chunk = cands[start:start + PREFETCH_CHUNK]
            rows = [self.entries[i].row() for i in chunk]
            self.source.prefetch(rows)
            for i, row in zip(chunk, rows):
                try:
                    info = self.source.load_info(row)
                    block = info.header_bytes()
                    if block is None:
                        start_, end_ = info.section_range("HEADER")
                        with self.source.open_blob(row.blob_id) as reader:
                            block = reader.read_range(start_, end_ - start_)
                except (LookupError, BlobNotFound):
                    continue
                for field_name, raw in parse_header_block(block):
                    if field_name != name:
                        continue
                    if value is None or value in decode_words(
                            raw.partition(b":")[2].decode("utf-8", "replace")).casefold():
                        found.append(i)
                        break
        return found


# --- sorting ----------------------------------------------------------------------------------


def _collate(collation: str) -> Callable[[str], Any]:
    if collation == "i;ascii-casemap":
        return lambda s: s.translate(_ASCII_UPPER)
    if collation == "i;ascii-numeric":  # RFC 4790 §9.1: leading digits, else after all numbers
        def numeric(s: str) -> tuple[int, int]:
            digits = len(s) - len(s.lstrip("0123456789"))
            return (0, int(s[:digits])) if digits and s[:1].isascii() else (1, 0)
        return numeric
    return unicode_casemap


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
SORT_PROPERTIES = ("receivedAt", "size", "from", "to", "subject", "sentAt", "hasKeyword",
                   "allInThreadHaveKeyword", "someInThreadHaveKeyword")
_KEYED = {"from": 1, "to": 2, "subject": 3}


def _sort(ev: _Evaluator, ids: list[int], sorts: Sequence[Sort]) -> list[int]:
    """RFC 8621 §4.4.2: stable sorts, last comparator first; ties by id, in the direction of
    the first comparator.  Sorted by receivedAt alone, the index's standing order is
    filtered instead (no sort per query)."""
    entries, index = ev.entries, ev.index
    first_ascending = sorts[0][1] if sorts else True
    if len(sorts) == 1 and sorts[0][0] == "receivedAt":
        order = index.by_received()
        if len(ids) == len(entries):
            found = [i for _, i in order]
        else:
            wanted = set(ids)
            found = [i for _, i in order if i in wanted]
        return found if first_ascending else found[::-1]
    ordered = sorted(ids, reverse=not first_ascending)
    if any(prop in _KEYED or prop == "sentAt" for prop, _, _, _ in sorts):
        index.load_keys(ev.source, ordered)
    keys = index.keys
    for prop, ascending, collation, keyword in reversed(sorts):
        key: Any
        if prop == "receivedAt":
            key = lambda i: entries[i].received  # noqa: E731
        elif prop == "size":
            key = lambda i: entries[i].size  # noqa: E731
        elif prop == "sentAt":
            key = lambda i: (keys[i][0] if keys[i][0] is not None  # noqa: E731
                             else entries[i].received)
        elif prop in _KEYED:
            slot, collate = _KEYED[prop], _collate(collation)
            cache: dict[str, Any] = {}

            def key(i: int, slot: int = slot, collate: Any = collate,
                    cache: dict[str, Any] = cache) -> Any:
                text = cast(str, keys[i][slot])
                found = cache.get(text)
                if found is None:
                    found = cache[text] = collate(text)
                return found
        elif prop == "hasKeyword":
            key = lambda i: keyword in entries[i].keywords  # noqa: E731
        else:
            thread_of = ev.thread_of
            test = all if prop == "allInThreadHaveKeyword" else any
            key = lambda i: test(keyword in e.keywords  # noqa: E731
                                 for e in thread_of(entries[i]))
        ordered.sort(key=key, reverse=not ascending)
    return ordered


def _collapse(entries: dict[int, Entry], ids: list[int]) -> list[int]:
    seen: set[int] = set()
    out = []
    for i in ids:
        thread = entries[i].thread
        if thread not in seen:
            seen.add(thread)
            out.append(i)
    return out


def _update(index: UserIndex, ev: _Evaluator, tree: Optional[Node], sorts: Sequence[Sort],
            collapse: bool, cached: tuple[int, list[int]]) -> Optional[list[int]]:
    """A cached newest-first (or oldest-first) result brought up to date from what changed
    since it was made: the changed Emails (with their whole threads when threads matter)
    taken out, and those of them that match put back at their place.  None: recompute."""
    if len(sorts) != 1 or sorts[0][0] != "receivedAt":
        return None
    delta = index.changed_since(cached[0])
    if delta is None:
        return None
    changed, threads = delta
    if collapse or _uses_threads(tree):
        for thread in threads:
            changed |= index.members.get(thread, set())
    if len(changed) > MAX_UPDATE:
        return None
    entries = index.entries
    kept = [i for i in cached[1] if i not in changed]
    candidates = sorted(i for i in changed if i in entries)
    matches = ev.run(tree, candidates) if tree is not None and candidates else candidates
    ascending = sorts[0][1]
    key: Callable[[int], tuple[float, int]] = (
        (lambda i: (entries[i].received, i)) if ascending
        else (lambda i: (-entries[i].received, -i)))
    matches.sort(key=key)
    if collapse:
        seen: set[int] = set()
        chosen = []
        for i in matches:
            if entries[i].thread not in seen:
                seen.add(entries[i].thread)
                chosen.append(i)
        matches = chosen
    for i in matches:
        bisect.insort(kept, i, key=key)
    return kept


def _results(index: UserIndex, ev: _Evaluator, tree: Optional[Node], sorts: Sequence[Sort],
             collapse: bool, cache_key: Any) -> list[int]:
    cached = index.results.get(cache_key)
    if cached is not None and cached[0] == index.version:
        return cached[1]
    if cached is not None:
        updated = _update(index, ev, tree, sorts, collapse, cached)
        if updated is not None:
            index.results[cache_key] = (index.version, updated)
            return updated
    ids = list(index.entries)
    if tree is not None:
        ids = ev.run(tree, ids)
    ids = _sort(ev, ids, sorts)
    if collapse:
        ids = _collapse(index.entries, ids)
    index.results[cache_key] = (index.version, ids)
    return ids


# --- the jobs (UserMail.read_messages) --------------------------------------------------------


@dataclass
class _Prepared:
    index: UserIndex
    evaluator: _Evaluator


def _prepare(source: MessageSource, indexes: QueryIndexes, key: bytes) -> _Prepared:
    index = indexes.get(source.user.id)
    conn = _conn(source)
    index.refresh(conn)
    if index.unindexed is None:
        index.unindexed = {blob for _, blob in search_store.unindexed_blobs(
            conn, index.user_id, 10**9)}
    return _Prepared(index, _Evaluator(index, source, key))


def run_query(source: MessageSource, indexes: QueryIndexes, key: bytes,
              tree: Optional[Node], sorts: Sequence[Sort], collapse: bool, position: int,
              anchor: Optional[int], anchor_offset: int, limit: Optional[int],
              cache_key: Any) -> QueryResult:
    """Database thread: one window of a query's results (RFC 8620 §5.5).  ``anchor`` not in
    the results raises KeyError."""
    index = indexes.get(source.user.id)
    with index.lock:
        prepared = _prepare(source, indexes, key)
        ids = _results(index, prepared.evaluator, tree, sorts, collapse, cache_key)
        total = len(ids)
        if anchor is not None:
            try:
                start = ids.index(anchor) + anchor_offset
            except ValueError:
                raise KeyError(anchor) from None
            start = max(0, start)
        else:
            start = position if position >= 0 else max(0, total + position)
        end = total if limit is None else start + limit
        return QueryResult(ids[start:end], min(start, total) if total else 0, total,
                           index.state())


def run_query_changes(source: MessageSource, indexes: QueryIndexes, key: bytes,
                      since: str, tree: Optional[Node], sorts: Sequence[Sort], collapse: bool,
                      up_to: Optional[int], immutable: bool, cache_key: Any) -> QueryChanges:
    """Database thread: Email/queryChanges (RFC 8620 §5.6).  ``removed`` holds every Email
    changed since the state (the RFC allows ids that were not in the old results), and
    ``added`` those of them in the new results, with their index, so a client applying
    both to its old list gets the new one.  Filters and sorts that look at a thread make
    every Email of a changed thread count as changed."""
    if not since.isdigit() or len(since) > 18:
        raise UnknownState(since)
    old = int(since)
    index = indexes.get(source.user.id)
    with index.lock:
        prepared = _prepare(source, indexes, key)
        conn = _conn(source)
        state = read_state(conn, index.user_id)
        if old > (index.modseq or 0):
            raise UnknownState(since)
        if old < state.pruned:
            raise CannotCalculateChanges("history before that state was purged")
        rows, stones = index_rows(conn, index.user_id, old)
        changed = {row.email_id for row, _ in rows} | {stone[0] for stone in stones}
        if collapse or _uses_threads(tree) or any(s[0].endswith("InThreadHaveKeyword")
                                                   for s in sorts):
            threads = {row.thread_id for row, _ in rows} | {stone[1] for stone in stones}
            for thread in threads:
                changed.update(index.members.get(thread, ()))
        ids = _results(index, prepared.evaluator, tree, sorts, collapse, cache_key)
        stop = len(ids)
        if immutable and up_to is not None and up_to in index.entries:
            try:
                stop = ids.index(up_to) + 1
            except ValueError:
                pass
        added = [(i, n) for n, i in enumerate(ids[:stop]) if i in changed]
        return QueryChanges(since, index.state(), sorted(changed), added, len(ids))


def run_snippets(source: MessageSource, indexes: QueryIndexes, ids: Sequence[int],
                 subject_terms: list[Term], body_terms: list[Term]
                 ) -> tuple[list[Snippet], list[int]]:
    """Database thread: SearchSnippet/get (RFC 8621 §5) for ``ids``; (snippets, not found)."""
    index = indexes.get(source.user.id)
    with index.lock:
        index.refresh(_conn(source))
        found, missing = [], []
        for email_id in ids:
            entry = index.entries.get(email_id)
            doc = index.document(source, entry) if entry is not None else None
            if doc is None:
                missing.append(email_id)
                continue
            found.append(Snippet(email_id,
                                 searchtext.highlight(doc.texts["subject"], subject_terms),
                                 searchtext.highlight(doc.texts["body"], body_terms,
                                                      preview=True)))
        return found, missing


def index_rows_of(source: MessageSource, indexes: QueryIndexes, numbers: Sequence[int]
                  ) -> Optional[dict[int, tuple[MessageRow, int]]]:
    """Database thread: (row, thread id) of the user's live Emails among ``numbers`` from
    the query index brought up to date (one primary-key read when nothing changed), or None
    when the user has no loaded index (the caller reads the rows from the table)."""
    index = indexes.peek(source.user.id)
    if index is None:
        return None
    with index.lock:
        if index.modseq is None:
            return None
        index.refresh(_conn(source))
        entries = index.entries
        return {n: (entry.row(), entry.thread) for n in numbers
                if (entry := entries.get(n)) is not None}


# --- the backfill -----------------------------------------------------------------------------


def backfill_chunk(source: MessageSource, indexes: QueryIndexes, key: bytes
                   ) -> list[tuple[str, set[bytes]]]:
    """Database thread (read): the tokens of up to BACKFILL_CHUNK unindexed blobs."""
    out: list[tuple[str, set[bytes]]] = []
    for message_id, blob_id in search_store.unindexed_blobs(_conn(source), source.user.id,
                                                              BACKFILL_CHUNK):
        row = MessageRow(message_id, 0, 0, 0, (), _EPOCH, 0, blob_id, None)
        try:
            info = source.load_info(row)
            with source.open_blob(blob_id) as reader:
                def read(start: int, end: int) -> bytes:
                    return reader.read_range(start, max(0, end - start))
                doc = searchtext.extract_document(info, read)
                grams = substring.imap_grams(info, read, reader.size)
        except (LookupError, BlobNotFound):
            out.append((blob_id, set()))  # nothing readable: indexed as empty
            continue
        out.append((blob_id, searchtext.document_tokens(key, doc)
                    | substring.imap_tokens(key, grams)))
    return out


def store_backfill(conn: Any, user_id: int, documents: list[tuple[str, set[bytes]]]) -> int:
    """Database thread (write): file the documents ``backfill_chunk`` made."""
    return sum(search_store.add_document(conn, user_id, blob, tokens)
               for blob, tokens in documents)


async def backfill(read: Callable[..., Deferred[Any]], write: Callable[..., Deferred[Any]],
                   indexes: QueryIndexes, user_id: int, key: bytes) -> int:
    """Index the messages stored before the search index existed, a chunk per job pair, so
    other jobs run in between.  Returns how many documents were added."""
    index = indexes.get(user_id)
    if index.backfilling:
        return 0
    index.backfilling = True
    added = 0
    try:
        while True:
            documents = await read(backfill_chunk, indexes, key)
            if not documents:
                return added
            added += await write(store_backfill, user_id, documents)
            with index.lock:
                if index.unindexed is not None:
                    index.unindexed.difference_update(blob for blob, _ in documents)
    finally:
        index.backfilling = False
