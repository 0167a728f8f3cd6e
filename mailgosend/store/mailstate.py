"""The per-user change counter: one number that every mail change of a user advances.

JMAP (RFC 8620 §5.2) wants one state string per data type from which ``/changes`` is exact,
across restarts and across nodes.  Every change takes the next value of the user's counter
(``mail_state.modseq``) in the transaction that makes it:

- a message stored, flagged or expunged: the message's MODSEQ, and its mailbox's
  HIGHESTMODSEQ (RFC 7162 allows the gaps other mailboxes' changes leave);
- a mailbox created, renamed, deleted, (un)subscribed: ``mailboxes.changed_modseq``, or a
  tombstone's ``modseq``.

So "what changed since state s" is "rows with a value above s" (jmap/state.py and the
queries in store/emails.py), with no history kept in memory.  The counter row is locked by
the UPDATE that hands out a value until the transaction ends, so a user's changes commit in
the order of their values: a reader that sees value n has seen everything below it.

Lock order (shared with mailboxes.py and messages.py): users row, the meta counter, this
row, mailbox rows, message rows.  ``lock`` takes this row's lock early for operations that
lock a mailbox before they know whether they will change anything (STORE, EXPUNGE).

``pruned_modseq`` is the floor below which history was purged (maintenance.py): a state
below it is answered ``cannotCalculateChanges``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from mailgosend.db.upsert import upsert_into
from sqlalchemy.engine import Connection

from mailgosend.db.schema import mail_state

__all__ = ["MailState", "allocate", "lock", "read_state", "raise_floor"]


@dataclass(frozen=True)
class MailState:
    """The counter's value (the account's state now) and the pruning floor."""

    modseq: int
    pruned: int


def _ensure(conn: Connection, user_id: int) -> None:
    """Create the user's counter row if missing (accounts created before migration 0010
    have one from its backfill; new ones get it at their first change)."""
    conn.execute(upsert_into(conn, mail_state).values(user_id=user_id, modseq=0, pruned_modseq=0)
                 .on_conflict_do_nothing(index_elements=["user_id"]))


def allocate(conn: Connection, user_id: int) -> int:
    """The next value of the user's counter, locked until the transaction ends."""
    stmt = (update(mail_state).where(mail_state.c.user_id == user_id)
            .values(modseq=mail_state.c.modseq + 1).returning(mail_state.c.modseq))
    value = conn.execute(stmt).scalar()
    if value is None:
        _ensure(conn, user_id)
        value = conn.execute(stmt).scalar_one()
    return int(value)


def lock(conn: Connection, user_id: int) -> None:
    """Take the counter row's lock now (see the lock order) without advancing it."""
    row = conn.execute(select(mail_state.c.modseq).where(mail_state.c.user_id == user_id)
                       .with_for_update(key_share=True)).first()
    if row is None:
        _ensure(conn, user_id)
        conn.execute(select(mail_state.c.modseq).where(mail_state.c.user_id == user_id)
                     .with_for_update(key_share=True)).first()


def read_state(conn: Connection, user_id: int) -> MailState:
    """The user's counter and floor as of now (0, 0 for a user who never had mail)."""
    row = conn.execute(select(mail_state.c.modseq, mail_state.c.pruned_modseq)
                       .where(mail_state.c.user_id == user_id)).first()
    return MailState(0, 0) if row is None else MailState(int(row.modseq), int(row.pruned_modseq))


def raise_floor(conn: Connection, user_id: int, modseq: int) -> None:
    """History up to ``modseq`` was purged: states below it can no longer be answered."""
    floor = func.max if conn.dialect.name == "sqlite" else func.greatest
    conn.execute(update(mail_state).where(mail_state.c.user_id == user_id)
                 .values(pruned_modseq=floor(mail_state.c.pruned_modseq, modseq)))
