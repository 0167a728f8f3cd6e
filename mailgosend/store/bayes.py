"""Per-user token statistics of the Bayesian classifier (DESIGN §6).

Three tables (db/schema.py): ``bayes_tokens`` counts, per user and hashed token, the ham and
spam messages that contained it; ``bayes_totals`` counts the messages learned; ``bayes_seen``
remembers which message (by keyed digest) was learned as what.  Tokens are the 8-byte keyed
hashes spam/bayes.py makes: this module refuses anything else, so a plain word can never be
stored by mistake.

Plain functions over a Connection, run by ``DatabaseRunner`` inside its transaction.

Concurrency.  Counts change only by ``INSERT ... ON CONFLICT DO UPDATE SET n = n + delta``
(both back ends), which is atomic per row, so concurrent trainings never lose an update.  Every
training transaction changes the user's ``bayes_totals`` row before any token: on PostgreSQL
that row lock serialises one user's trainings for the rest of their transaction, so two of them
can never hold token locks the other waits for (no deadlock), and totals always match tokens.
``train_message`` takes its ``bayes_seen`` row first (lock order: seen, totals, tokens).
SQLite has a single writer anyway.

Counts never go below zero: unlearning what was never learned (or learned under another
tokenizer version) clamps at 0, and rows whose counts are both 0 are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Iterable, Optional, Sequence

from sqlalchemy import ColumnElement, and_, case, delete, select, update

from mailgosend.db.upsert import upsert_into
from sqlalchemy.engine import Connection

from mailgosend.db.schema import bayes_seen, bayes_tokens, bayes_totals

__all__ = ["DIGEST_SIZE", "TOKEN_SIZE", "BayesTotals", "TrainOutcome", "forget_message",
           "learn", "token_counts", "totals", "train_message", "trained_users", "unlearn"]

TOKEN_SIZE = 8
DIGEST_SIZE = 16
_BATCH = 500  # tokens per statement: far under SQLite's and PostgreSQL's parameter limits
_CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class BayesTotals:
    """How many messages a user has trained; the classifier stays silent below a minimum."""

    ham_messages: int
    spam_messages: int
    updated_at: Optional[datetime]  # None: never trained


class TrainOutcome(Enum):
    """What ``train_message`` did, for the log and the tests."""

    LEARNED = "learned"      # first time this message was learned
    RELEARNED = "relearned"  # learned before as the other class: moved from one to the other
    UNCHANGED = "unchanged"  # learned before as the same class: nothing counted twice


def _checked(tokens: Iterable[bytes]) -> list[bytes]:
    """Distinct tokens in a fixed order (sorted), each exactly TOKEN_SIZE bytes.

    Distinct: a message counts once per token, and PostgreSQL refuses an upsert that touches
    one row twice.  Sorted: deterministic statements.
    """
    unique = set()
    for token in tokens:
        if not isinstance(token, (bytes, bytearray)) or len(token) != TOKEN_SIZE:
            raise ValueError(f"Bayes tokens must be {TOKEN_SIZE}-byte keyed hashes, not words")
        unique.add(bytes(token))
    return sorted(unique)


def _shifted(column: Any, delta: int) -> ColumnElement[Any]:
    """``column + delta``, clamped at zero when the delta is negative."""
    if delta >= 0:
        return column + delta  # type: ignore[no-any-return]
    return case((column + delta < 0, 0), else_=column + delta)


def _adjust_totals(conn: Connection, user_id: int, ham: int, spam: int, now: datetime) -> None:
    """Add to the user's message totals; this statement is the per-user training lock."""
    stmt = upsert_into(conn, bayes_totals).values(
        user_id=user_id, ham_messages=max(ham, 0), spam_messages=max(spam, 0), updated_at=now)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[bayes_totals.c.user_id],
        set_={"ham_messages": _shifted(bayes_totals.c.ham_messages, ham),
              "spam_messages": _shifted(bayes_totals.c.spam_messages, spam),
              "updated_at": now}))


def _adjust_tokens(conn: Connection, user_id: int, tokens: Sequence[bytes], ham: int,
                   spam: int) -> None:
    """Add ``ham``/``spam`` (each -1, 0 or +1) to every token's counts.

    With a positive delta a token may be new, so it is an upsert (a new row starts at the
    positive deltas: a count can only fall to 0).  Without one, only existing rows change.
    """
    t = bayes_tokens.c
    for start in range(0, len(tokens), _BATCH):
        batch = tokens[start:start + _BATCH]
        if ham > 0 or spam > 0:
            stmt = upsert_into(conn, bayes_tokens).on_conflict_do_update(
                index_elements=[t.user_id, t.token],
                set_={"ham_count": _shifted(t.ham_count, ham),
                      "spam_count": _shifted(t.spam_count, spam)})
            conn.execute(stmt, [{"user_id": user_id, "token": token, "ham_count": max(ham, 0),
                                 "spam_count": max(spam, 0)} for token in batch])
        else:
            conn.execute(update(bayes_tokens)
                         .where(t.user_id == user_id, t.token.in_(batch))
                         .values(ham_count=_shifted(t.ham_count, ham),
                                 spam_count=_shifted(t.spam_count, spam)))
        if ham < 0 or spam < 0:
            conn.execute(delete(bayes_tokens).where(
                t.user_id == user_id, t.token.in_(batch), t.ham_count == 0, t.spam_count == 0))


def _deltas(is_spam: bool, sign: int) -> tuple[int, int]:
    return (0, sign) if is_spam else (sign, 0)


def learn(conn: Connection, user_id: int, tokens: Iterable[bytes], is_spam: bool,
          now: datetime, *, previous: Optional[bool] = None) -> None:
    """Count one message's tokens as spam or ham.

    ``previous`` is what the same message was learned as before (None: never): a message moved
    from ham to spam is taken out of the ham counts as it goes into the spam counts, in one
    statement per batch.  ``previous == is_spam`` changes nothing.  Callers that cannot know
    ``previous`` use ``train_message``, which looks it up.
    """
    checked = _checked(tokens)
    is_spam = bool(is_spam)
    if previous is not None and bool(previous) == is_spam:
        return
    ham, spam = _deltas(is_spam, +1)
    if previous is not None:
        undo_ham, undo_spam = _deltas(bool(previous), -1)
        ham, spam = ham + undo_ham, spam + undo_spam
    _adjust_totals(conn, user_id, ham, spam, now)
    _adjust_tokens(conn, user_id, checked, ham, spam)


def unlearn(conn: Connection, user_id: int, tokens: Iterable[bytes], was_spam: bool,
            now: datetime) -> None:
    """Take back one message learned as ``was_spam`` (the inverse of ``learn``)."""
    checked = _checked(tokens)
    ham, spam = _deltas(was_spam, -1)
    _adjust_totals(conn, user_id, ham, spam, now)
    _adjust_tokens(conn, user_id, checked, ham, spam)


def token_counts(conn: Connection, user_id: int, tokens: Iterable[bytes]
                 ) -> dict[bytes, tuple[int, int]]:
    """``{token: (ham_count, spam_count)}`` for the tokens this user has seen; unknown
    tokens are absent (the classifier treats them as neutral)."""
    checked = _checked(tokens)
    t = bayes_tokens.c
    found: dict[bytes, tuple[int, int]] = {}
    for start in range(0, len(checked), _BATCH):
        rows = conn.execute(select(t.token, t.ham_count, t.spam_count).where(
            t.user_id == user_id, t.token.in_(checked[start:start + _BATCH])))
        found.update((bytes(row.token), (row.ham_count, row.spam_count)) for row in rows)
    return found


def totals(conn: Connection, user_id: int) -> BayesTotals:
    """The user's trained message counts (zeros for a user never trained)."""
    row = conn.execute(select(bayes_totals).where(bayes_totals.c.user_id == user_id)).first()
    if row is None:
        return BayesTotals(0, 0, None)
    return BayesTotals(row.ham_messages, row.spam_messages, row.updated_at)


def trained_users(conn: Connection, user_ids: Iterable[int], min_messages: int) -> set[int]:
    """Which of these users trained at least ``min_messages`` ham and as many spam: the
    only ones whose classifier has an opinion (one query for all recipients)."""
    ids = sorted(set(user_ids))
    if not ids:
        return set()
    floor = max(min_messages, 1)
    t = bayes_totals.c
    rows = conn.execute(select(t.user_id).where(
        t.user_id.in_(ids), t.ham_messages >= floor, t.spam_messages >= floor))
    return {row.user_id for row in rows}


def _seen_key(user_id: int, digest: bytes) -> ColumnElement[bool]:
    return and_(bayes_seen.c.user_id == user_id, bayes_seen.c.digest == digest)


def _claim(conn: Connection, user_id: int, digest: bytes, is_spam: bool, now: datetime
           ) -> Optional[bool]:
    """Record the message as learned; return what it was learned as before (None: new).

    The row is inserted, or if it exists, locked (PostgreSQL ``FOR UPDATE``) so a concurrent
    training of the same message waits for this one and then sees its outcome.  If the row
    vanished between the two statements (a concurrent ``forget_message``), try again.
    """
    for _ in range(_CLAIM_ATTEMPTS):
        inserted = conn.execute(
            upsert_into(conn, bayes_seen)
            .values(user_id=user_id, digest=digest, is_spam=is_spam, learned_at=now)
            .on_conflict_do_nothing(index_elements=[bayes_seen.c.user_id, bayes_seen.c.digest])
            .returning(bayes_seen.c.user_id)).first()
        if inserted is not None:
            return None
        previous = conn.execute(select(bayes_seen.c.is_spam)
                                .where(_seen_key(user_id, digest)).with_for_update()).scalar()
        if previous is not None:
            if bool(previous) != is_spam:
                conn.execute(update(bayes_seen).where(_seen_key(user_id, digest))
                             .values(is_spam=is_spam, learned_at=now))
            return bool(previous)
    raise RuntimeError("the Bayes seen row kept vanishing; concurrent forget in a loop?")


def _checked_digest(digest: bytes) -> bytes:
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != DIGEST_SIZE:
        raise ValueError(f"message digests must be {DIGEST_SIZE} bytes")
    return bytes(digest)


def train_message(conn: Connection, user_id: int, digest: bytes, tokens: Iterable[bytes],
                  is_spam: bool, now: datetime) -> TrainOutcome:
    """Learn one message the user filed as spam or ham, at most once per class.

    ``digest`` identifies the message (spam/bayes.py ``message_digest``).  Learned before as
    the same class: nothing changes.  As the other class: retrained (``learn`` with
    ``previous``).  This is what the IMAP Junk hook and the webmail buttons call.
    """
    digest = _checked_digest(digest)
    checked = _checked(tokens)
    is_spam = bool(is_spam)
    previous = _claim(conn, user_id, digest, is_spam, now)
    if previous == is_spam:
        return TrainOutcome.UNCHANGED
    learn(conn, user_id, checked, is_spam, now, previous=previous)
    return TrainOutcome.LEARNED if previous is None else TrainOutcome.RELEARNED


def forget_message(conn: Connection, user_id: int, digest: bytes, tokens: Iterable[bytes],
                   now: datetime) -> bool:
    """Take a learned message back out of the statistics; False if it was never learned."""
    digest = _checked_digest(digest)
    checked = _checked(tokens)
    previous = conn.execute(delete(bayes_seen).where(_seen_key(user_id, digest))
                            .returning(bayes_seen.c.is_spam)).scalar()
    if previous is None:
        return False
    unlearn(conn, user_id, checked, bool(previous), now)
    return True
