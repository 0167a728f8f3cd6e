"""Rows of the JMAP data types that are not messages: identities, email submissions, the
vacation response and the automatic replies sent (RFC 8621 §6-8).

The sealed columns are opaque here (mail/accountdata.py seals and opens them).  Identities
and submissions share one pattern: a per-user ``modseq`` (the highest of the user's rows,
plus one, on every change), ``created_modseq``, and tombstones (``destroyed``), so that
``changes`` can tell created, updated and destroyed ids since a state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional, Sequence

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from mailgosend.store import accounts
from mailgosend.db.schema import (delivery_log, jmap_identities, jmap_submissions, queue, queue_recipients,
                                  vacation_replies, vacation_responses)

__all__ = ["Changes", "IdentityRow", "SubmissionRow", "VacationRow", "changes",
           "destroy", "enabled_vacations", "due_submissions", "follow_account", "own_addresses", "out_of_line", "identities", "insert_identity",
           "insert_submission", "next_modseq", "put_vacation", "reply_due", "state",
           "submissions", "touch_queued_submissions", "update_sealed", "update_submission_status", "vacation",
           "vacation_state"]

IDENTITIES, SUBMISSIONS = "identities", "submissions"
_TABLES: dict[str, Table] = {IDENTITIES: jmap_identities, SUBMISSIONS: jmap_submissions}


@dataclass(frozen=True)
class IdentityRow:
    id: int
    email: str
    sealed: bytes


@dataclass(frozen=True)
class SubmissionRow:
    id: int
    identity_id: int
    email_id: int
    thread_id: int
    sealed: bytes
    send_at: datetime
    undo_status: str
    queue_id: Optional[int]
    user_id: int = 0


@dataclass(frozen=True)
class Changes:
    created: list[int]
    updated: list[int]
    destroyed: list[int]


def state(conn: Connection, kind: str, user_id: int) -> int:
    """The user's highest modseq of ``kind`` (0: nothing ever)."""
    table = _TABLES[kind]
    value = conn.execute(select(func.max(table.c.modseq)).where(
        table.c.user_id == user_id)).scalar()
    return int(value or 0)


def next_modseq(conn: Connection, kind: str, user_id: int) -> int:
    return state(conn, kind, user_id) + 1


def changes(conn: Connection, kind: str, user_id: int, since: int) -> Changes:
    """What changed after modseq ``since`` (RFC 8620 §5.2): an object created and destroyed
    since then is not mentioned at all."""
    table = _TABLES[kind]
    created, updated, destroyed = [], [], []
    for row in conn.execute(select(table.c.id, table.c.created_modseq, table.c.destroyed)
                            .where(table.c.user_id == user_id, table.c.modseq > since)
                            .order_by(table.c.modseq, table.c.id)):
        new = row.created_modseq > since
        if row.destroyed:
            if not new:
                destroyed.append(int(row.id))
        elif new:
            created.append(int(row.id))
        else:
            updated.append(int(row.id))
    return Changes(created, updated, destroyed)


def destroy(conn: Connection, kind: str, user_id: int, row_id: int) -> bool:
    """Make the row a tombstone; False when there is no such live row."""
    table = _TABLES[kind]
    modseq = next_modseq(conn, kind, user_id)
    result = conn.execute(update(table).where(
        table.c.id == row_id, table.c.user_id == user_id, table.c.destroyed.is_(False))
        .values(destroyed=True, modseq=modseq))
    return bool(result.rowcount)


def update_sealed(conn: Connection, kind: str, user_id: int, row_id: int, sealed: bytes
                  ) -> bool:
    table = _TABLES[kind]
    modseq = next_modseq(conn, kind, user_id)
    result = conn.execute(update(table).where(
        table.c.id == row_id, table.c.user_id == user_id, table.c.destroyed.is_(False))
        .values(sealed=sealed, modseq=modseq))
    return bool(result.rowcount)


def _new_id(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


# --- identities ---------------------------------------------------------------------------

def identities(conn: Connection, user_id: int) -> list[IdentityRow]:
    t = jmap_identities.c
    return [IdentityRow(int(r.id), r.email, r.sealed) for r in conn.execute(
        select(t.id, t.email, t.sealed).where(t.user_id == user_id, t.destroyed.is_(False))
        .order_by(t.id))]


def insert_identity(conn: Connection, user_id: int, email: str, sealed: bytes,
                    now: datetime) -> int:
    modseq = next_modseq(conn, IDENTITIES, user_id)
    result = conn.execute(insert(jmap_identities).values(
        user_id=user_id, email=email, sealed=sealed, created_modseq=modseq, modseq=modseq,
        destroyed=False, created_at=now))
    return _new_id(result)


# Sealed settings of an identity nobody has edited yet: nothing to seal (mail/accountdata.py
# opens it as {}), so a change of account made without the user's key can create one.
UNSET = b""


def own_addresses(conn: Connection, user_email: str) -> list[str]:
    """The addresses that have an identity of their own: the user's and its aliases (not
    catch-alls)."""
    return [user_email] + [a for a in accounts.aliases_to(conn, user_email)
                           if not a.startswith("@")]


def _unbacked(conn: Connection, user_email: str, rows: Sequence[IdentityRow]) -> list[str]:
    have = {row.email for row in rows}
    return [address for address in own_addresses(conn, user_email) if address not in have]


def out_of_line(conn: Connection, user_email: str, rows: Sequence[IdentityRow]) -> bool:
    """Whether ``follow_account`` (with a time) would change the user's identities."""
    return bool(_unbacked(conn, user_email, rows)) or any(
        not accounts.may_send_as(conn, user_email, row.email) for row in rows)


def follow_account(conn: Connection, user_id: int, user_email: str,
                   now: Optional[datetime], *, renamed: bool = False) -> bool:
    """Bring the user's identities in line with their account and say whether the identity
    state moved (RFC 8621 §6: Identity/changes).

    An identity whose address the user may no longer send as (its alias removed) becomes a
    tombstone (destroyed); the user's own address and each alias delivering to them gets an
    identity when it has none (created; only with ``now``); ``renamed`` (the display name,
    every unnamed identity's name, changed) marks the live ones updated.  The one place for
    these rules: admin.py calls it on every display-name or alias change, and
    mail/accountdata.py on listing.
    """
    rows = identities(conn, user_id)
    moved = False
    for row in rows:
        if not accounts.may_send_as(conn, user_email, row.email):
            moved = destroy(conn, IDENTITIES, user_id, row.id) or moved
    if now is not None:
        for address in _unbacked(conn, user_email, rows):
            insert_identity(conn, user_id, address, UNSET, now)
            moved = True
    if renamed:
        t = jmap_identities.c
        modseq = next_modseq(conn, IDENTITIES, user_id)
        moved = bool(conn.execute(update(jmap_identities).where(
            t.user_id == user_id, t.destroyed.is_(False)).values(modseq=modseq)
        ).rowcount) or moved
    return moved


# --- submissions --------------------------------------------------------------------------

def _submission(r: Any) -> SubmissionRow:
    return SubmissionRow(int(r.id), int(r.identity_id), int(r.email_id), int(r.thread_id),
                         r.sealed, r.send_at, r.undo_status,
                         None if r.queue_id is None else int(r.queue_id), int(r.user_id))


def submissions(conn: Connection, user_id: int, ids: Optional[Sequence[int]] = None
                ) -> list[SubmissionRow]:
    t = jmap_submissions.c
    query = select(jmap_submissions).where(t.user_id == user_id, t.destroyed.is_(False))
    if ids is not None:
        query = query.where(t.id.in_(list(ids)[:1000]))
    return [_submission(r) for r in conn.execute(query.order_by(t.id))]


def insert_submission(conn: Connection, user_id: int, *, identity_id: int, email_id: int,
                      thread_id: int, sealed: bytes, send_at: datetime, undo_status: str,
                      queue_id: Optional[int], now: datetime) -> int:
    modseq = next_modseq(conn, SUBMISSIONS, user_id)
    result = conn.execute(insert(jmap_submissions).values(
        user_id=user_id, identity_id=identity_id, email_id=email_id, thread_id=thread_id,
        sealed=sealed, send_at=send_at, undo_status=undo_status, queue_id=queue_id,
        created_modseq=modseq, modseq=modseq, destroyed=False, created_at=now))
    return _new_id(result)


def update_submission_status(conn: Connection, user_id: int, row_id: int, *, old: str,
                             new: str, queue_id: Optional[int] = None) -> bool:
    """pending -> final (sent) or pending -> canceled, only from ``old``: whoever changes
    it first wins, so a submission is never both sent and canceled."""
    t = jmap_submissions.c
    values: dict[str, Any] = {"undo_status": new,
                              "modseq": next_modseq(conn, SUBMISSIONS, user_id)}
    if queue_id is not None:
        values["queue_id"] = queue_id
    result = conn.execute(update(jmap_submissions).where(
        t.id == row_id, t.user_id == user_id, t.undo_status == old).values(**values))
    return bool(result.rowcount)


def touch_queued_submissions(conn: Connection, queue_ids: Sequence[int]
                             ) -> list[tuple[int, int]]:
    """The submissions sent as the queue messages ``queue_ids`` get a new modseq: their
    ``deliveryStatus`` (read from the queue) is about to change in this transaction (RFC
    8620 §5.1: a new state whenever a property changes).  Returns (user id, submission id).
    Call it before the outcomes are stored (a finished message's queue rows are deleted);
    it finds the users through the queue rows, so it stays on the (user_id, modseq) index."""
    if not queue_ids:
        return []
    owners = {int(r.user_id) for r in conn.execute(
        select(queue.c.user_id).where(queue.c.id.in_(list(queue_ids)),
                                      queue.c.user_id.is_not(None)))}
    t = jmap_submissions.c
    touched: list[tuple[int, int]] = []
    for user_id in sorted(owners):
        found: list[Any] = list(conn.execute(select(t.id).where(
            t.user_id == user_id, t.queue_id.in_(list(queue_ids)),
            t.destroyed.is_(False))).scalars())
        ids = [int(i) for i in found]
        if ids:
            conn.execute(update(jmap_submissions).where(t.id.in_(ids)).values(
                modseq=next_modseq(conn, SUBMISSIONS, user_id)))
            touched.extend((user_id, i) for i in ids)
    return touched


def due_submissions(conn: Connection, now: datetime, limit: int = 100) -> list[SubmissionRow]:
    """Held submissions whose undo window is over, every user's, oldest first."""
    t = jmap_submissions.c
    return [_submission(r) for r in conn.execute(
        select(jmap_submissions).where(t.undo_status == "pending", t.send_at <= now,
                                       t.destroyed.is_(False))
        .order_by(t.send_at, t.id).limit(limit))]


# --- vacation -----------------------------------------------------------------------------

@dataclass(frozen=True)
class VacationRow:
    is_enabled: bool
    from_date: Optional[datetime]
    to_date: Optional[datetime]
    sealed: bytes
    modseq: int


def vacation(conn: Connection, user_id: int) -> Optional[VacationRow]:
    t = vacation_responses.c
    r = conn.execute(select(vacation_responses).where(t.user_id == user_id)).first()
    if r is None:
        return None
    return VacationRow(bool(r.is_enabled), r.from_date, r.to_date, r.sealed, int(r.modseq))


def vacation_state(conn: Connection, user_id: int) -> int:
    """The singleton's modseq alone (0: never set): the VacationResponse state."""
    t = vacation_responses.c
    return int(conn.execute(select(t.modseq).where(t.user_id == user_id)).scalar() or 0)


def enabled_vacations(conn: Connection, user_ids: Sequence[int]) -> set[int]:
    """Which of ``user_ids`` have their vacation response on (one query, nothing sealed)."""
    t = vacation_responses.c
    return {int(r.user_id) for r in conn.execute(select(t.user_id).where(
        t.user_id.in_(list(user_ids)), t.is_enabled.is_(True)))}


def put_vacation(conn: Connection, user_id: int, *, is_enabled: bool,
                 from_date: Optional[datetime], to_date: Optional[datetime],
                 sealed: bytes) -> int:
    """Store the singleton; returns its new modseq (the VacationResponse state)."""
    current = vacation(conn, user_id)
    values = dict(is_enabled=is_enabled, from_date=from_date, to_date=to_date, sealed=sealed)
    if current is None:
        conn.execute(insert(vacation_responses).values(user_id=user_id, modseq=1, **values))
        return 1
    modseq = current.modseq + 1
    conn.execute(update(vacation_responses).where(vacation_responses.c.user_id == user_id)
                 .values(modseq=modseq, **values))
    conn.execute(delete(vacation_replies).where(vacation_replies.c.user_id == user_id))
    return modseq


def reply_due(conn: Connection, user_id: int, sender_hash: str, now: datetime,
              interval: timedelta) -> bool:
    """Whether ``sender_hash`` may get an automatic reply now (none within ``interval``,
    RFC 3834 §2); if so the reply is recorded in the same transaction."""
    t = vacation_replies.c
    last = conn.execute(select(t.replied_at).where(
        t.user_id == user_id, t.sender_hash == sender_hash)).scalar()
    if last is not None and now - last < interval:
        return False
    if last is None:
        conn.execute(insert(vacation_replies).values(user_id=user_id, sender_hash=sender_hash,
                                                     replied_at=now))
    else:
        conn.execute(update(vacation_replies).where(
            t.user_id == user_id, t.sender_hash == sender_hash).values(replied_at=now))
    return True


# --- delivery status of a submission ------------------------------------------------------

@dataclass(frozen=True)
class RecipientStatus:
    recipient: str
    status: str  # queued | delivering | delivered | failed | expired | deleted
    code: Optional[int]
    text: Optional[str]


# The attempts that settle a recipient (store/queue.py FINAL, or an admin's deletion).
_SETTLED = ("delivered", "failed", "expired", "deleted")


def queue_status(conn: Connection, user_id: int, queue_id: int) -> list[RecipientStatus]:
    """Each recipient of one of the user's queued messages: its pending row while the queue
    holds one, else its last settling attempt in ``delivery_log``.

    When every recipient is final store/queue.py ``record_outcomes`` deletes the queue rows;
    the log outlives them, so a finished message still reports who got it and who did not
    (RFC 8621 §7 deliveryStatus).  Ownership is checked through the user's submission row.
    """
    r = queue_recipients.c
    pending = {row.recipient.lower(): RecipientStatus(row.recipient, row.status, row.last_code,
                                                      row.last_text)
               for row in conn.execute(
                   select(r.recipient, r.status, r.last_code, r.last_text)
                   .join(queue, queue.c.id == r.queue_id)
                   .where(r.queue_id == queue_id, queue.c.user_id == user_id)
                   .order_by(r.id))}
    s, log = jmap_submissions.c, delivery_log.c
    owned = select(s.id).where(s.user_id == user_id, s.queue_id == queue_id).exists()
    settled: dict[str, RecipientStatus] = {}
    for row in conn.execute(select(log.recipient, log.status, log.code, log.text)
                            .where(log.queue_id == queue_id, log.recipient.is_not(None),
                                   log.status.in_(_SETTLED), owned)
                            .order_by(log.id)):
        settled[row.recipient.lower()] = RecipientStatus(row.recipient, row.status, row.code,
                                                         row.text)
    return list({**settled, **pending}.values())
