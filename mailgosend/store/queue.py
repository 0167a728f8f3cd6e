"""The outbound queue in the database: claims, outcomes, and what the CLI shows (DESIGN.md §3, §9).

A recipient row moves ``queued`` → ``delivering`` (claimed by one node) → ``delivered``,
``failed`` or ``expired``, or back to ``queued`` with a later ``next_attempt_at``.  An
administrator may put ``queued`` rows on ``held``: no claim takes them (``claim_due`` looks at
``queued`` only) until they are released, due at once.  A claim is
taken in one write transaction: on PostgreSQL with ``FOR UPDATE SKIP LOCKED`` so several nodes
never claim one row twice; on SQLite the single writer (``BEGIN IMMEDIATE``) gives the same.
A claim survives a crash: the node that held it takes its own rows back when it starts again,
and other nodes take rows whose claim is older than the lease.

When no recipient of a message is left to deliver, the queue row and its recipient rows are
deleted in the same transaction; the message blob is then unreferenced and the maintenance
purge removes it.  ``delivery_log`` keeps the history of every attempt.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping, Optional, Sequence

from sqlalchemy import (and_, bindparam, delete, func, insert, or_, select, true, tuple_,
                        update)
from sqlalchemy.engine import Connection

from mailgosend.db.schema import delivery_log, queue, queue_recipients
from mailgosend.store.like import ESCAPE, escape_like

QUEUE_OWNER = "queue"   # the crypto owner of queue blobs (sealed under no user's key)
HELD = "held"
PENDING = ("queued", "delivering", HELD)   # not final: the message stays in the queue
FINAL = ("delivered", "failed", "expired")


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    sender: str              # '' is the null reverse-path
    user_id: Optional[int]
    blob_id: str
    size: int
    envid: Optional[str]
    ret: Optional[str]
    smtputf8: bool
    body_8bit: bool
    created_at: datetime
    delay_warned: bool
    release_at: Optional[datetime] = None  # send later (RFC 4865): held until then

    @property
    def started_at(self) -> datetime:
        """When the message's time in the queue starts counting (expiry, delay warnings):
        its release for a message held for later, else its arrival."""
        return self.release_at or self.created_at


@dataclass(frozen=True)
class QueuedRecipient:
    id: int
    queue_id: int
    recipient: str
    domain: str
    status: str
    attempts: int
    next_attempt_at: datetime
    notify: Optional[str]
    orcpt: Optional[str]
    last_mx: Optional[str]
    last_code: Optional[int] = None
    last_text: Optional[str] = None


@dataclass(frozen=True)
class Claim:
    """One message and those of its recipients this node now holds (or, as ``QueueEntry``,
    all of its recipients, for the CLI)."""

    message: QueuedMessage
    recipients: tuple[QueuedRecipient, ...]


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed recipient in one attempt.

    ``status`` is ``delivered``, ``failed``, ``expired`` or ``deferred`` (back to
    ``queued`` at ``next_attempt_at``).  ``code``/``text`` are the reply that decided it
    (the remote server's, or ours for DNS and connection failures).
    """

    recipient_id: int
    queue_id: int
    recipient: str
    status: str
    code: Optional[int]
    text: str
    mx_host: Optional[str] = None
    tls_version: Optional[str] = None
    next_attempt_at: Optional[datetime] = None

    def __post_init__(self) -> None:
        if self.status not in ("delivered", "failed", "expired", "deferred"):
            raise ValueError(f"unknown outcome {self.status!r}")
        if (self.status == "deferred") != (self.next_attempt_at is not None):
            raise ValueError("a deferred outcome needs next_attempt_at, and only it")


def _message(row: Any) -> QueuedMessage:
    return QueuedMessage(int(row.id), row.sender, row.user_id, row.blob_id, int(row.size),
                         row.envid, row.ret, bool(row.smtputf8), bool(row.body_8bit),
                         row.created_at, bool(row.delay_warned), row.release_at)


def _recipient(row: Any) -> QueuedRecipient:
    return QueuedRecipient(int(row.id), int(row.queue_id), row.recipient, row.domain,
                           row.status, int(row.attempts), row.next_attempt_at, row.notify,
                           row.orcpt, row.last_mx, row.last_code, row.last_text)


def claim_due(conn: Connection, node: str, now: datetime, *, limit: int,
              stale_before: datetime) -> list[Claim]:
    """Claim up to ``limit`` recipient rows that are due, oldest first.

    Due: ``queued`` with ``next_attempt_at <= now``, or ``delivering`` under a claim taken
    before ``stale_before`` (its node died and another takes over after the lease).  Two
    statements for a usual batch: an UPDATE ... RETURNING over a sub-select (with SKIP
    LOCKED on PostgreSQL; SQLite ≥ 3.35 has RETURNING too), then the messages' rows.
    """
    due = or_(and_(queue_recipients.c.status == "queued",
                   queue_recipients.c.next_attempt_at <= now),
              and_(queue_recipients.c.status == "delivering",
                   queue_recipients.c.claimed_at < stale_before))
    chosen = (select(queue_recipients.c.id).where(due)
              .order_by(queue_recipients.c.next_attempt_at, queue_recipients.c.id).limit(limit))
    if conn.dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    claimed = conn.execute(update(queue_recipients)
                           .where(queue_recipients.c.id.in_(chosen.scalar_subquery()))
                           .values(status="delivering", claimed_by=node, claimed_at=now,
                                   updated_at=now)
                           .returning(*queue_recipients.c)).all()
    if not claimed:
        return []
    by_message: dict[int, list[QueuedRecipient]] = defaultdict(list)
    for row in sorted(claimed, key=lambda r: int(r.id)):
        by_message[int(row.queue_id)].append(_recipient(row))
    ids = sorted(by_message)
    messages: dict[int, QueuedMessage] = {}
    for start in range(0, len(ids), 500):
        messages.update((int(r.id), _message(r)) for r in conn.execute(
            select(queue).where(queue.c.id.in_(ids[start:start + 500]))))
    return [Claim(messages[qid], tuple(by_message[qid])) for qid in ids if qid in messages]


def release_node_claims(conn: Connection, node: str, now: datetime) -> int:
    """At start-up: rows this node held when it stopped or crashed are due again now.

    A message whose final dot was sent but whose reply never reached us may be delivered
    twice this way; RFC 5321 §6.1 accepts that over losing it, and so does every MTA.
    """
    result = conn.execute(update(queue_recipients)
                          .where(queue_recipients.c.status == "delivering",
                                 queue_recipients.c.claimed_by == node)
                          .values(status="queued", claimed_by=None, claimed_at=None,
                                  next_attempt_at=now, updated_at=now))
    return int(result.rowcount)


def unclaim(conn: Connection, recipient_ids: Sequence[int], now: datetime) -> None:
    """Give claimed rows back untouched (shutdown before they were attempted)."""
    for start in range(0, len(recipient_ids), 500):
        conn.execute(update(queue_recipients)
                     .where(queue_recipients.c.id.in_(recipient_ids[start:start + 500]),
                            queue_recipients.c.status == "delivering")
                     .values(status="queued", claimed_by=None, claimed_at=None,
                             updated_at=now))


def record_outcomes(conn: Connection, outcomes: Iterable[Outcome], now: datetime) -> list[int]:
    """Store each recipient's outcome and log the attempt; returns the queue ids that were
    finished (every recipient final) and therefore deleted.

    The common case, a message whose last pending recipients all reached a final state, costs
    one SELECT, the log INSERT and two DELETEs: rows about to be deleted are not updated
    first.  Other rows are updated with one statement per kind (executemany).
    """
    outcomes = list(outcomes)
    if not outcomes:
        return []
    conn.execute(insert(delivery_log), [
        dict(queue_id=o.queue_id, recipient=o.recipient, attempted_at=now, status=o.status,
             code=o.code, text=o.text[:2000], mx_host=o.mx_host, tls_version=o.tls_version)
        for o in outcomes])
    touched = sorted({o.queue_id for o in outcomes})
    settled = {o.recipient_id for o in outcomes if o.status != "deferred"}
    pending_ids: list[Any] = list(conn.execute(
        select(queue_recipients.c.queue_id).where(
            queue_recipients.c.queue_id.in_(touched),
            queue_recipients.c.status.in_(PENDING),
            queue_recipients.c.id.not_in(settled) if settled else true())
        .distinct()).scalars())
    still_pending = {int(q) for q in pending_ids}
    finished = [q for q in touched if q not in still_pending]
    done = set(finished)
    keep = [o for o in outcomes if o.queue_id not in done]
    rid: Any = bindparam("rid")
    final = [dict(rid=o.recipient_id, st=o.status, code=o.code, txt=o.text[:2000])
             for o in keep if o.status != "deferred"]
    if final:
        conn.execute(update(queue_recipients).where(queue_recipients.c.id == rid).values(
            status=bindparam("st"), last_code=bindparam("code"),
            last_text=bindparam("txt"), attempts=queue_recipients.c.attempts + 1,
            updated_at=now, claimed_by=None, claimed_at=None), final)
    deferred = [dict(rid=o.recipient_id, code=o.code, txt=o.text[:2000],
                     next_at=o.next_attempt_at, mx=o.mx_host)
                for o in keep if o.status == "deferred"]
    if deferred:
        conn.execute(update(queue_recipients).where(queue_recipients.c.id == rid).values(
            status="queued", last_code=bindparam("code"), last_text=bindparam("txt"),
            next_attempt_at=bindparam("next_at"), last_mx=bindparam("mx"),
            attempts=queue_recipients.c.attempts + 1, updated_at=now, claimed_by=None,
            claimed_at=None), deferred)
    if finished:
        conn.execute(delete(queue_recipients).where(queue_recipients.c.queue_id.in_(finished)))
        conn.execute(delete(queue).where(queue.c.id.in_(finished)))
    return finished


def purge_delivery_log(conn: Connection, before: datetime) -> int:
    """Forget attempts older than ``before`` (DELIVERY_LOG_RETENTION in maintenance.py)."""
    return int(conn.execute(delete(delivery_log).where(delivery_log.c.attempted_at < before))
               .rowcount)


def mark_delay_warned(conn: Connection, queue_id: int) -> None:
    conn.execute(update(queue).where(queue.c.id == queue_id).values(delay_warned=True))


def next_due(conn: Connection) -> Optional[datetime]:
    """When the earliest queued recipient falls due (None: nothing waits)."""
    value = conn.execute(select(func.min(queue_recipients.c.next_attempt_at))
                         .where(queue_recipients.c.status == "queued")).scalar()
    return value  # type: ignore[no-any-return]


def enqueue(conn: Connection, *, sender: str, user_id: Optional[int], blob_id: str, size: int,
            recipients: Sequence[str], now: datetime, smtputf8: bool = False,
            body_8bit: bool = False, envid: Optional[str] = None,
            ret: Optional[str] = None,
            notify: Optional[Mapping[str, tuple[Optional[str], Optional[str]]]] = None,
            release_at: Optional[datetime] = None) -> int:
    """One queue row and its recipients (the caller has recorded the blob).  ``notify`` maps a
    recipient to its RFC 3461 (NOTIFY, ORCPT) when the client gave any.  ``release_at``:
    held until then (send later, RFC 4865): the recipients first fall due at that time, so
    ``claim_due`` leaves them alone and ``next_due`` wakes the worker for it."""
    notify = notify or {}
    if release_at is not None and release_at <= now:
        release_at = None
    first = release_at or now
    result = conn.execute(insert(queue).values(
        sender=sender, user_id=user_id, blob_id=blob_id, size=size, smtputf8=smtputf8,
        body_8bit=body_8bit, envid=envid, ret=ret, created_at=now, release_at=release_at))
    queue_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    conn.execute(insert(queue_recipients), [
        dict(queue_id=queue_id, recipient=rcpt, domain=rcpt.rsplit("@", 1)[-1].lower(),
             status="queued", attempts=0, next_attempt_at=first, updated_at=now, created_at=now,
             notify=notify.get(rcpt, (None, None))[0], orcpt=notify.get(rcpt, (None, None))[1])
        for rcpt in recipients])
    return queue_id


# --- what `mailgosend queue` shows and changes ----------------------------------------------

# What the CLI lists is the same pair as a claim: a message and its recipients.
QueueEntry = Claim


@dataclass(frozen=True)
class LogEntry:
    """One delivery attempt (delivery_log): a queue entry's history, a delivery-log row."""
    id: int
    queue_id: Optional[int]
    attempted_at: datetime
    recipient: Optional[str]
    status: Optional[str]
    code: Optional[int]
    text: Optional[str]
    mx_host: Optional[str]
    tls_version: Optional[str]


class NoSuchEntry(LookupError):
    """The queue id does not exist (delivered, bounced or deleted meanwhile)."""


@dataclass(frozen=True)
class QueueFilter:
    """Which queued messages a list or a bulk action covers (the admin panel's filters):
    a recipient ``status`` (queued, delivering, held), the exact envelope ``sender``, a
    recipient ``domain``, and ``older_than`` (queued before it).  Empty fields match all."""

    status: str = ""
    sender: Optional[str] = None
    domain: str = ""
    older_than: Optional[datetime] = None

    def where(self) -> list[Any]:
        conditions: list[Any] = []
        if self.sender is not None:
            conditions.append(func.lower(queue.c.sender) == self.sender.lower())
        if self.older_than is not None:
            conditions.append(queue.c.created_at < self.older_than)
        if self.status or self.domain:
            rcpt = select(queue_recipients.c.queue_id).where(
                queue_recipients.c.queue_id == queue.c.id)
            if self.status:
                rcpt = rcpt.where(queue_recipients.c.status == self.status)
            if self.domain:
                rcpt = rcpt.where(queue_recipients.c.domain == self.domain.lower())
            conditions.append(rcpt.exists())
        return conditions


def matching_ids(conn: Connection, which: QueueFilter, limit: int = 100000) -> list[int]:
    """The queue ids a filter covers, oldest first (what a bulk action acts on)."""
    found: list[Any] = list(conn.execute(select(queue.c.id).where(*which.where())
                                         .order_by(queue.c.id).limit(limit)).scalars())
    return [int(i) for i in found]


def list_entries(conn: Connection, limit: int = 1000,
                 which: Optional[QueueFilter] = None) -> list[QueueEntry]:
    query = select(queue).order_by(queue.c.id).limit(limit)
    if which is not None:
        query = query.where(*which.where())
    messages = [_message(r) for r in conn.execute(query)]
    if not messages:
        return []
    rcpts: dict[int, list[QueuedRecipient]] = defaultdict(list)
    for row in conn.execute(select(queue_recipients)
                            .where(queue_recipients.c.queue_id.in_([m.id for m in messages]))
                            .order_by(queue_recipients.c.id)):
        rcpts[int(row.queue_id)].append(_recipient(row))
    return [QueueEntry(m, tuple(rcpts[m.id])) for m in messages]


def history(conn: Connection, queue_id: int) -> list[LogEntry]:
    """Every attempt logged for ``queue_id``; it outlives the queue row."""
    return [_log_entry(r) for r in conn.execute(
        select(delivery_log).where(delivery_log.c.queue_id == queue_id)
        .order_by(delivery_log.c.id))]


def get_entry(conn: Connection, queue_id: int) -> tuple[QueueEntry, list[LogEntry]]:
    row = conn.execute(select(queue).where(queue.c.id == queue_id)).first()
    if row is None:
        raise NoSuchEntry(queue_id)
    rcpts = tuple(_recipient(r) for r in conn.execute(
        select(queue_recipients).where(queue_recipients.c.queue_id == queue_id)
        .order_by(queue_recipients.c.id)))
    return QueueEntry(_message(row), rcpts), history(conn, queue_id)


def retry_now(conn: Connection, queue_id: Optional[int], now: datetime) -> int:
    """Make queued recipients due now (one message, or all with ``queue_id=None``)."""
    where = [queue_recipients.c.status == "queued"]
    if queue_id is not None:
        if conn.execute(select(queue.c.id).where(queue.c.id == queue_id)).first() is None:
            raise NoSuchEntry(queue_id)
        where.append(queue_recipients.c.queue_id == queue_id)
    result = conn.execute(update(queue_recipients).where(*where)
                          .values(next_attempt_at=now, updated_at=now))
    return int(result.rowcount)


def set_held(conn: Connection, queue_ids: Sequence[int], held: bool, now: datetime) -> int:
    """Hold (``queued`` → ``held``) or release (``held`` → ``queued``, due now) the
    recipients of these messages; returns how many rows changed.  A recipient being
    delivered this moment is not held: its attempt finishes first."""
    before, after = ("queued", HELD) if held else (HELD, "queued")
    changed = 0
    for start in range(0, len(queue_ids), 500):
        values: dict[str, Any] = dict(status=after, updated_at=now)
        if not held:
            values["next_attempt_at"] = now
        changed += int(conn.execute(update(queue_recipients).where(
            queue_recipients.c.queue_id.in_(queue_ids[start:start + 500]),
            queue_recipients.c.status == before).values(**values)).rowcount)
    return changed


def delete_entry(conn: Connection, queue_id: int, now: datetime,
                 reason: str = "deleted by the administrator (mailgosend queue delete)") -> int:
    """Remove a message from the queue without a bounce; returns how many recipients it had
    pending.  A recipient being delivered this moment may still arrive."""
    if conn.execute(select(queue.c.id).where(queue.c.id == queue_id)).first() is None:
        raise NoSuchEntry(queue_id)
    pending: Sequence[Any] = conn.execute(select(queue_recipients.c.recipient).where(
        queue_recipients.c.queue_id == queue_id,
        queue_recipients.c.status.in_(PENDING))).scalars().all()
    conn.execute(insert(delivery_log), [
        dict(queue_id=queue_id, recipient=r, attempted_at=now, status="deleted", code=None,
             text=reason, mx_host=None, tls_version=None) for r in pending] or [
        dict(queue_id=queue_id, recipient=None, attempted_at=now, status="deleted", code=None,
             text=reason, mx_host=None, tls_version=None)])
    conn.execute(delete(queue_recipients).where(queue_recipients.c.queue_id == queue_id))
    conn.execute(delete(queue).where(queue.c.id == queue_id))
    return len(pending)


@dataclass(frozen=True)
class QueueStats:
    messages: int
    by_status: dict[str, int]
    by_domain: list[tuple[str, int]]     # pending recipients per domain, most first
    oldest: Optional[datetime]
    log_by_status: dict[str, int]        # delivery_log since ``since``


def stats(conn: Connection, since: datetime) -> QueueStats:
    messages = int(conn.execute(select(func.count()).select_from(queue)).scalar() or 0)
    by_status = {row[0]: int(row[1]) for row in conn.execute(
        select(queue_recipients.c.status, func.count()).group_by(queue_recipients.c.status))}
    count = func.count().label("n")
    by_domain = [(row[0], int(row[1])) for row in conn.execute(
        select(queue_recipients.c.domain, count)
        .where(queue_recipients.c.status.in_(PENDING))
        .group_by(queue_recipients.c.domain).order_by(count.desc(), queue_recipients.c.domain)
        .limit(20))]
    oldest = conn.execute(select(func.min(queue.c.created_at))).scalar()
    log_by_status = {row[0] or "": int(row[1]) for row in conn.execute(
        select(delivery_log.c.status, func.count()).where(delivery_log.c.attempted_at >= since)
        .group_by(delivery_log.c.status))}
    return QueueStats(messages, by_status, by_domain, oldest, log_by_status)


# --- the delivery log, searched (admin panel) -----------------------------------------------

@dataclass(frozen=True)
class LogFilter:
    """Which delivery-log lines a page shows: an attempt ``status``, a recipient ``domain``,
    an ``address`` (the recipient, exactly), and ``since``/``until`` (attempt times)."""

    status: str = ""
    domain: str = ""
    address: str = ""
    since: Optional[datetime] = None
    until: Optional[datetime] = None




def search_log(conn: Connection, which: LogFilter, limit: int,
               after: Optional[tuple[datetime, int]] = None) -> list[LogEntry]:
    """Up to ``limit`` lines newest first, after the keyset cursor ``after`` (the
    (attempted_at, id) of the previous page's last line): an index range scan on
    ix_delivery_log_attempted_at_id, as fast on page 1000 as on page 1 (no OFFSET)."""
    query = select(delivery_log)
    if which.status:
        query = query.where(delivery_log.c.status == which.status)
    if which.address:
        query = query.where(delivery_log.c.recipient == which.address)
    if which.domain:
        # Recipients are stored as given; the domain part is matched case-blind.
        query = query.where(func.lower(delivery_log.c.recipient)
                            .like("%@" + escape_like(which.domain.lower()), escape=ESCAPE))
    if which.since is not None:
        query = query.where(delivery_log.c.attempted_at >= which.since)
    if which.until is not None:
        query = query.where(delivery_log.c.attempted_at < which.until)
    if after is not None:
        query = query.where(tuple_(delivery_log.c.attempted_at, delivery_log.c.id)
                            < tuple_(bindparam("a_at", after[0], type_=delivery_log.c.attempted_at.type),
                                     bindparam("a_id", after[1])))
    query = query.order_by(delivery_log.c.attempted_at.desc(), delivery_log.c.id.desc())
    return [_log_entry(r) for r in conn.execute(query.limit(limit))]


def _log_entry(r: Any) -> LogEntry:
    return LogEntry(int(r.id), r.queue_id, r.attempted_at, r.recipient, r.status, r.code,
                    r.text, r.mx_host, r.tls_version)

