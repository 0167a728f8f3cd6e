"""JMAP Emails and Threads over the message rows (RFC 8621 §3, §4): lookups by id and the
exact ``/changes`` of Email, Thread and Mailbox from the user's change counter.

An Email is the live row(s) sharing an ``email_id`` (one today: a message is in one
mailbox; a MOVE hands the id to the new row); a Thread is the live rows sharing a
``thread_id``.  Nothing here decrypts: ids, flags, sizes and dates are plain columns.

``/changes`` (RFC 8620 §5.2) from state ``s`` reads what carries a counter value above ``s``
(mailstate.py): message rows (new, flagged, moved, expunged: soft-deleted rows keep their
final value), the tombstones a mailbox deletion leaves, and mailbox rows.  Whether an object
was created, updated or destroyed since ``s`` follows from when it was created
(``created_modseq``) and whether it is live now.  Pages (``maxChanges``) end at an
intermediate state ``(m, last id)``: every object whose latest change is at or below it was
returned, with its current state, which then is its state at ``m``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Optional, Protocol, Sequence

from sqlalchemy import false, func, select, true, union_all
from sqlalchemy.engine import Connection

from mailgosend.db.schema import email_tombstones, mailbox_tombstones, mailboxes, messages
from mailgosend.store.mailboxes import Mailbox, list_mailboxes, list_subscriptions
from mailgosend.store.mailstate import MailState, raise_floor, read_state
from mailgosend.store.messages import SEEN

DRAFT = "\\Draft"

__all__ = ["EmailRow", "Changes", "MailboxTally", "MailboxView", "Position", "email_changes",
           "emails_by_id", "emails_in_threads", "mailbox_changes", "mailbox_tallies",
           "mailbox_view", "purge_tombstones", "thread_changes", "thread_ids"]

_IN_BATCH = 500


@dataclass(frozen=True)
class EmailRow:
    """One live message row of an Email: what Email/get's plain properties need."""

    email_id: int
    thread_id: int
    mailbox_id: int
    uid: int
    modseq: int
    flags: tuple[str, ...]
    internal_date: datetime
    size: int
    blob_id: str
    message_id: int  # the row's own id (messages.id), for structure/blob reads


_COLUMNS = (messages.c.email_id, messages.c.thread_id, messages.c.mailbox_id, messages.c.uid,
            messages.c.modseq, messages.c.flags, messages.c.internal_date, messages.c.size,
            messages.c.blob_id, messages.c.id)


def _email(r: Any) -> EmailRow:
    return EmailRow(int(r.email_id), int(r.thread_id), int(r.mailbox_id), int(r.uid),
                    int(r.modseq), tuple(r.flags.split()), r.internal_date, int(r.size),
                    r.blob_id, int(r.id))


def _batches(ids: Iterable[int]) -> list[list[int]]:
    unique = sorted(set(ids))
    return [unique[i:i + _IN_BATCH] for i in range(0, len(unique), _IN_BATCH)]


def _live(conn: Connection, user_id: int, column: Any, ids: Sequence[int]) -> list[EmailRow]:
    """The user's live rows whose ``column`` is one of ``ids`` (batched IN lists)."""
    found: list[EmailRow] = []
    for batch in _batches(ids):
        found += [_email(row) for row in conn.execute(
            select(*_COLUMNS).where(messages.c.user_id == user_id, column.in_(batch),
                                    messages.c.deleted_at.is_(None)))]
    return found


def emails_by_id(conn: Connection, user_id: int, email_ids: Sequence[int]) -> list[EmailRow]:
    """The live rows of the user's Emails ``email_ids`` (ids of other users or gone are
    simply absent), ordered by Email id then mailbox."""
    return sorted(_live(conn, user_id, messages.c.email_id, email_ids),
                  key=lambda e: (e.email_id, e.mailbox_id))


def emails_in_threads(conn: Connection, user_id: int, thread_ids: Sequence[int]
                      ) -> list[EmailRow]:
    """The live rows of the user's Threads ``thread_ids``, by thread, oldest received first
    (RFC 8621 §3.1: a Thread's emailIds are sorted by receivedAt), ties by Email id."""
    return sorted(_live(conn, user_id, messages.c.thread_id, thread_ids),
                  key=lambda e: (e.thread_id, e.internal_date, e.email_id))


def thread_ids(conn: Connection, user_id: int, limit: int) -> list[int]:
    """Up to ``limit`` of the user's live thread ids, ascending."""
    m = messages.c
    found: list[Any] = list(conn.execute(
        select(m.thread_id).distinct().where(m.user_id == user_id, m.deleted_at.is_(None))
        .order_by(m.thread_id).limit(limit)).scalars())
    return [int(t) for t in found]


# --- /changes (RFC 8620 §5.2) ---------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Position:
    """A JMAP state as a point in the user's change order: the counter value ``modseq``,
    and for an intermediate state of a paged /changes the last id returned at that value
    (None: everything at ``modseq`` is included)."""

    modseq: int
    last_id: Optional[int] = None

    def covers(self, modseq: int, object_id: int) -> bool:
        """Whether the change (modseq, object id) is at or before this state."""
        if modseq != self.modseq:
            return modseq < self.modseq
        return self.last_id is None or object_id <= self.last_id


@dataclass(frozen=True)
class Changes:
    """One /changes answer: ids (numbers, without the JMAP prefix), the state it brings the
    client to, and for Mailbox whether only the counts of the updated ones changed."""

    created: list[int]
    updated: list[int]
    destroyed: list[int]
    new_state: Position
    has_more: bool
    counts_only: bool = False


_CREATED, _UPDATED, _DESTROYED = "created", "updated", "destroyed"


def _page(items: dict[int, tuple[int, Optional[str]]], current: int,
          max_changes: Optional[int]) -> tuple[list[tuple[int, str]], Position, bool]:
    """Order the changed objects (id -> (latest change, kind or None when nothing is to be
    said)) by (latest change, id) and cut at ``max_changes`` reported ones: the last one
    returned is the intermediate state; everything up to ``current`` otherwise."""
    ordered = sorted(items.items(), key=lambda item: (item[1][0], item[0]))
    reported = [(object_id, modseq, kind) for object_id, (modseq, kind) in ordered
                if kind is not None]
    if max_changes is None or len(reported) <= max_changes:
        return [(i, k) for i, _, k in reported], Position(current), False
    taken = reported[:max_changes]
    last_id, last_modseq, _ = taken[-1]
    return [(i, k) for i, _, k in taken], Position(last_modseq, last_id), True


def _split(kinds: list[tuple[int, str]], new_state: Position, has_more: bool,
           counts_only: bool = False) -> Changes:
    return Changes([i for i, k in kinds if k == _CREATED], [i for i, k in kinds if k == _UPDATED],
                   [i for i, k in kinds if k == _DESTROYED], new_state, has_more, counts_only)


@dataclass
class _Record:
    """An Email's changes since the state: its latest change, when it was created, its
    Thread, and whether it is live now."""

    latest: int
    created: int
    thread_id: int
    live: bool


def _email_records(conn: Connection, user_id: int, since: Position) -> dict[int, _Record]:
    """Every Email with a change after ``since``: message rows (live or expunged) and
    tombstones carrying a counter value above it."""
    m, t = messages.c, email_tombstones.c
    rows = conn.execute(union_all(
        select(m.email_id, m.modseq, m.created_modseq, m.thread_id,
               m.deleted_at.is_(None).label("live"))
        .where(m.user_id == user_id, m.modseq >= since.modseq, m.email_id.is_not(None)),
        select(t.email_id, t.modseq, t.created_modseq, t.thread_id, false().label("live"))
        .where(t.user_id == user_id, t.modseq >= since.modseq)))
    records: dict[int, _Record] = {}
    for row in rows:
        email_id, modseq = int(row.email_id), int(row.modseq)
        if since.covers(modseq, email_id):
            continue
        record = records.get(email_id)
        if record is None:
            records[email_id] = _Record(modseq, int(row.created_modseq), int(row.thread_id),
                                        bool(row.live))
        else:
            record.latest = max(record.latest, modseq)
            record.created = min(record.created, int(row.created_modseq))
            record.live = record.live or bool(row.live)
    # An Email in several rows: one row going is not the Email going (an older live row
    # elsewhere keeps it).
    gone = [email_id for email_id, record in records.items() if not record.live]
    for email in emails_by_id(conn, user_id, gone):
        records[email.email_id].live = True
    return records


def _email_kind(email_id: int, record: _Record, since: Position) -> Optional[str]:
    existed = since.covers(record.created, email_id)
    if record.live:
        return _UPDATED if existed else _CREATED
    return _DESTROYED if existed else None  # created and destroyed since: not mentioned


def email_changes(conn: Connection, user_id: int, since: Position, current: int,
                  max_changes: Optional[int]) -> Changes:
    """Email/changes (RFC 8621 §4.3): Emails created, updated (keywords, mailboxes) or
    destroyed after ``since``; ``current`` is the counter read before this query."""
    records = _email_records(conn, user_id, since)
    items = {email_id: (record.latest, _email_kind(email_id, record, since))
             for email_id, record in records.items()}
    return _split(*_page(items, current, max_changes))


def thread_changes(conn: Connection, user_id: int, since: Position, current: int,
                   max_changes: Optional[int]) -> Changes:
    """Thread/changes (RFC 8621 §3.2): a Thread changes when an Email joins or leaves it
    (keyword changes and moves leave its emailIds as they were); it is created when none of
    its Emails existed at ``since`` and destroyed when none is left."""
    touched: dict[int, int] = {}
    for email_id, record in _email_records(conn, user_id, since).items():
        if _email_kind(email_id, record, since) != _UPDATED:  # joined or left a thread
            touched[record.thread_id] = max(touched.get(record.thread_id, 0), record.latest)
    if not touched:
        return Changes([], [], [], Position(current), False)
    live: set[int] = set()
    existed: set[int] = set()
    m, t = messages.c, email_tombstones.c
    for batch in _batches(touched):
        rows = conn.execute(union_all(
            select(m.thread_id, m.email_id, m.created_modseq, m.modseq,
                   m.deleted_at.is_(None).label("live"))
            .where(m.user_id == user_id, m.thread_id.in_(batch)),
            select(t.thread_id, t.email_id, t.created_modseq, t.modseq, false().label("live"))
            .where(t.user_id == user_id, t.thread_id.in_(batch))))
        for row in rows:
            thread_id = int(row.thread_id)
            if row.live:
                live.add(thread_id)
            # An Email of the thread existed at ``since``: created by then and live, or
            # gone only after it.
            if since.covers(int(row.created_modseq), int(row.email_id)) and (
                    row.live or not since.covers(int(row.modseq), int(row.email_id))):
                existed.add(thread_id)
    items: dict[int, tuple[int, Optional[str]]] = {}
    for thread_id, latest in touched.items():
        if thread_id in live:
            kind: Optional[str] = _UPDATED if thread_id in existed else _CREATED
        else:
            kind = _DESTROYED if thread_id in existed else None
        items[thread_id] = (latest, kind)
    return _split(*_page(items, current, max_changes))


def mailbox_changes(conn: Connection, user_id: int, since: Position, current: int,
                    max_changes: Optional[int]) -> Changes:
    """Mailbox/changes (RFC 8621 §2.2): mailboxes created, renamed/moved/(un)subscribed,
    destroyed, or whose counts may have changed: a message of theirs changed (HIGHESTMODSEQ)
    or an Email of a Thread they hold did (unreadThreads counts the whole thread).
    ``counts_only``: every updated mailbox changed only in its counts."""
    b = mailboxes.c
    own: dict[int, tuple[int, int, int]] = {}  # id -> (created, changed, counts changed)
    for row in conn.execute(select(b.id, b.created_modseq, b.changed_modseq, b.highestmodseq)
                            .where(b.user_id == user_id)):
        own[int(row.id)] = (int(row.created_modseq), int(row.changed_modseq),
                            int(row.highestmodseq))
    threads: dict[int, int] = {}
    for record in _email_records(conn, user_id, since).values():
        threads[record.thread_id] = max(threads.get(record.thread_id, 0), record.latest)
    induced: dict[int, int] = {}
    m = messages.c
    for batch in _batches(threads):
        for held in conn.execute(select(m.mailbox_id, m.thread_id).distinct().where(
                m.user_id == user_id, m.thread_id.in_(batch), m.deleted_at.is_(None))):
            box = int(held.mailbox_id)
            induced[box] = max(induced.get(box, 0), threads[int(held.thread_id)])
    items: dict[int, tuple[int, Optional[str]]] = {}
    props_changed: set[int] = set()
    for box, (created, changed, counts) in own.items():
        counts = max(counts, induced.get(box, 0))
        latest = max(changed, counts)
        if since.covers(latest, box):
            continue
        if not since.covers(created, box):
            items[box] = (latest, _CREATED)
            continue
        items[box] = (latest, _UPDATED)
        if not since.covers(changed, box):
            props_changed.add(box)
    tb = mailbox_tombstones.c
    for gone in conn.execute(select(tb.mailbox_id, tb.created_modseq, tb.modseq).where(
            tb.user_id == user_id, tb.modseq >= since.modseq)):
        box, modseq = int(gone.mailbox_id), int(gone.modseq)
        if since.covers(modseq, box):
            continue
        items[box] = (modseq, _DESTROYED if since.covers(int(gone.created_modseq), box)
                      else None)
    kinds, new_state, has_more = _page(items, current, max_changes)
    counts_only = not any(k == _UPDATED and i in props_changed for i, k in kinds)
    return _split(kinds, new_state, has_more, counts_only)


# --- Mailbox counts (RFC 8621 §2) -------------------------------------------------------------


@dataclass(frozen=True)
class MailboxTally:
    """The four counts of a JMAP Mailbox."""

    total_emails: int = 0
    unread_emails: int = 0
    total_threads: int = 0
    unread_threads: int = 0


def _unread(table: Any) -> Any:
    """RFC 8621 §2: unread is neither $seen nor $draft (IMAP \\Seen, \\Draft)."""
    return ~table.flags.contains(SEEN, autoescape=True) & ~table.flags.contains(
        DRAFT, autoescape=True)


def mailbox_tallies(conn: Connection, user_id: int, trash_id: Optional[int]
                    ) -> dict[int, MailboxTally]:
    """The counts of every mailbox of a user from plain columns (nothing decrypted), in two
    grouped queries.  unreadThreads is the RFC 8621 §2 "quality" count: threads with an
    Email in this mailbox and an unread Email anywhere, where Emails only in the trash do
    not count for other mailboxes and Emails outside it do not count for the trash."""
    m = messages.c
    found: dict[int, list[int]] = {}
    for row in conn.execute(select(m.mailbox_id, func.count(), func.count().filter(_unread(m)),
                                   func.count(func.distinct(m.thread_id)))
                            .where(m.user_id == user_id, m.deleted_at.is_(None))
                            .group_by(m.mailbox_id)):
        found[int(row[0])] = [int(row[1]), int(row[2]), int(row[3]), 0]
    # Each side of the trash: the threads with an unread Email on that side, then each
    # mailbox's threads among them (IN over the thread index: driven by the unread, which
    # are few, not by every row).
    o = messages.alias("other").c
    for trash_side in (False, True):
        if trash_side and trash_id is None:
            continue

        def on_side(column: Any, trash_side: bool = trash_side) -> Any:
            if trash_id is None:
                return true()
            return (column == trash_id) if trash_side else (column != trash_id)

        unread = select(o.thread_id).where(o.user_id == user_id, o.deleted_at.is_(None),
                                           _unread(o), on_side(o.mailbox_id))
        for row in conn.execute(select(m.mailbox_id, func.count(func.distinct(m.thread_id)))
                                .where(m.user_id == user_id, m.deleted_at.is_(None),
                                       on_side(m.mailbox_id), m.thread_id.in_(unread))
                                .group_by(m.mailbox_id)):
            found.setdefault(int(row[0]), [0, 0, 0, 0])[3] = int(row[1])
    return {box: MailboxTally(*counts) for box, counts in found.items()}


@dataclass(frozen=True)
class MailboxView:
    """Everything Mailbox/get shows, read in one transaction: the state first (so the
    rest is at least as new), the mailboxes, the subscribed names and the counts."""

    state: MailState
    mailboxes: list[Mailbox]
    subscribed: frozenset[str]
    tallies: dict[int, MailboxTally]


class TallyCache(Protocol):
    def get(self, key: tuple[int, int, int]) -> Optional[dict[int, MailboxTally]]: ...

    def put(self, key: tuple[int, int, int], value: dict[int, MailboxTally]) -> None: ...


def mailbox_view(conn: Connection, user_id: int, cache: Optional[TallyCache] = None,
                 counts: Optional[Callable[[Connection, int, Optional[int]],
                                           dict[int, MailboxTally]]] = None) -> MailboxView:
    """``cache``: counts by (user, change counter, trash id).  The counter names the
    account's data exactly (every change takes a new value), so counts computed at a value
    hold for it on every node; a repeated Mailbox/get then reads no message rows.
    ``counts(conn, user_id, trash id)``: where the counts come from instead (the in-memory
    query index, mail/query.py, kept up to date per change), read after the state."""
    state = read_state(conn, user_id)
    boxes = list_mailboxes(conn, user_id)
    trash = next((box.id for box in boxes if box.role == "trash"), None)
    if counts is not None:
        return MailboxView(state, boxes, frozenset(list_subscriptions(conn, user_id)),
                           counts(conn, user_id, trash))
    key = (user_id, state.modseq, trash or 0)
    tallies = cache.get(key) if cache is not None else None
    if tallies is None:
        tallies = mailbox_tallies(conn, user_id, trash)
        # Cached only if nothing committed meanwhile (PostgreSQL reads each statement at
        # its own snapshot): the counter unchanged after the counts means they are its.
        if cache is not None and read_state(conn, user_id).modseq == state.modseq:
            cache.put(key, tallies)
    return MailboxView(state, boxes, frozenset(list_subscriptions(conn, user_id)), tallies)


def purge_tombstones(conn: Connection, *, before: datetime) -> int:
    """Delete the tombstones of mailboxes and messages deleted before ``before`` (with the
    expunged rows, maintenance.py): the history they kept goes, so each user's pruning
    floor rises to the highest counter value purged (mailstate.py)."""
    removed = 0
    for table in (email_tombstones, mailbox_tombstones):
        old = table.c.deleted_at < before
        for row in conn.execute(select(table.c.user_id, func.max(table.c.modseq))
                                .where(old).group_by(table.c.user_id)):
            raise_floor(conn, int(row[0]), int(row[1]))
        removed += int(conn.execute(table.delete().where(old)).rowcount)
    return removed
