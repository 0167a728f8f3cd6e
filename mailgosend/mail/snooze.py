# -*- test-case-name: tests.test_snooze -*-
"""Snooze: a message leaves its mailbox and comes back at a chosen time (issue 13 item 7).

What every front end sees is plain IMAP: the message is MOVEd into the user's \\Snoozed
mailbox (created on demand, "Snoozed"; the attribute is in the IANA IMAP Mailbox Name
Attributes registry, JMAP role "snoozed"), and at its time MOVEd back to the mailbox it came
from (INBOX when that one is gone) with \\Seen removed, so it shows as new mail again.  No
keyword is added: the unread mark and the move are what IMAP clients see anyway.  The
wake-up time is a row of ``snoozes`` (store/snoozes.py) keyed by the Email id, which MOVE
keeps.

The worker: ``Snoozer.wake_due`` moves every due message; ``SnoozeWaker`` calls it every
``interval`` seconds on the service's clock, and a snooze made in this process also sets a
timer for its own time, so it wakes on the second.  Several nodes run it at once safely:
the transaction that deletes due rows (``store.snoozes.claim_due``) is the one that moves
their messages, so a second node finds nothing to do.  One transaction per user and batch
of up to 500 (one MOVE per mailbox they return to).  A message moved out of Snoozed by the user
(IMAP MOVE, any front end: mail/moves.py cancels its row) or deleted stays where it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Optional, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection
from twisted.application.service import Service as TwistedService
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from mailgosend.db.schema import users as users_table
from mailgosend.events import Change, ChangeBatch, Expunged, MailboxCreated, NewMessage
from mailgosend.mail.moves import CopyResult, copy_messages
from mailgosend.store import emails as store_emails
from mailgosend.store import snoozes as store_snoozes
from mailgosend.store.mailboxes import (Mailbox, ensure_role_mailbox, get_by_role,
                                        get_mailbox_by_id)
from mailgosend.store.messages import SEEN, set_flags

if TYPE_CHECKING:
    from mailgosend.mail.service import MailService, UserMail

__all__ = ["SNOOZED_NAME", "SnoozeError", "SnoozeResult", "Snoozer", "SnoozeWaker", "Woken"]

log = Logger()

SNOOZED_NAME = "Snoozed"   # the name the \Snoozed mailbox gets when the first snooze makes it
MAX_AHEAD = timedelta(days=5 * 366)
MAX_EMAILS = 1000          # per call, like a JMAP maxObjectsInSet


class SnoozeError(ValueError):
    """A snooze request that cannot be carried out; the message names the field."""


@dataclass(frozen=True)
class _Move:
    source: Mailbox
    target: Mailbox
    result: CopyResult


@dataclass
class SnoozeResult:
    """What snooze/unsnooze did: the Emails moved (or re-timed), those not found."""

    mailbox: Optional[Mailbox]       # the \Snoozed mailbox
    done: list[int] = field(default_factory=list)
    not_found: list[int] = field(default_factory=list)
    created: bool = False            # the \Snoozed mailbox was made by this call
    moves: list[_Move] = field(default_factory=list)


@dataclass(frozen=True)
class Woken:
    """One due snooze handled by this process: moved back (``moved``), or only dropped
    (the user moved or deleted the message meanwhile)."""

    user_id: int
    email_id: int
    moved: bool


@dataclass(frozen=True)
class _Wake:
    """What one wake-up transaction did for one user."""

    woken: list[Woken]
    moves: list[_Move]


def _lock_user(conn: Connection, user_id: int) -> None:
    """Lock order (store/mailboxes.py): the users row first, as copy_messages does."""
    conn.execute(select(users_table.c.id).where(users_table.c.id == user_id)
                 .with_for_update(key_share=True)).first()


def _inbox_or(conn: Connection, user_id: int, mailbox_id: Optional[int]) -> Optional[Mailbox]:
    box = get_mailbox_by_id(conn, user_id, mailbox_id) if mailbox_id is not None else None
    return box if box is not None else get_by_role(conn, user_id, "inbox")


def snooze_job(conn: Connection, user_id: int, email_ids: Sequence[int], until: datetime,
               now: datetime) -> SnoozeResult:
    """Move the Emails into \\Snoozed (made if missing) and note when each wakes; an Email
    already snoozed only gets the new time (and keeps where it returns to)."""
    _lock_user(conn, user_id)
    box, created = ensure_role_mailbox(conn, user_id, "snoozed", SNOOZED_NAME, now)
    rows = store_emails.emails_by_id(conn, user_id, list(email_ids))
    found = {row.email_id: row for row in rows}
    result = SnoozeResult(box, created=created,
                          not_found=[e for e in dict.fromkeys(email_ids) if e not in found])
    earlier = {s.email_id: s.return_mailbox_id
               for s in store_snoozes.for_user(conn, user_id, list(found))}
    returns: dict[int, Optional[int]] = {}
    by_source: dict[int, list[int]] = {}
    for row in found.values():
        if row.mailbox_id == box.id:
            returns[row.email_id] = earlier.get(row.email_id)
        else:
            returns[row.email_id] = row.mailbox_id
            by_source.setdefault(row.mailbox_id, []).append(row.uid)
    for source_id, uids in sorted(by_source.items()):
        source = get_mailbox_by_id(conn, user_id, source_id)
        assert source is not None
        moved = copy_messages(conn, user_id, source_id, uids, box.id, now, move=True)
        result.moves.append(_Move(source, box, moved))
    for email_id, return_id in returns.items():
        store_snoozes.put(conn, user_id, email_id, until, return_id, now)
        result.done.append(email_id)
    return result


def unsnooze_job(conn: Connection, user_id: int, email_ids: Sequence[int], now: datetime
                 ) -> SnoozeResult:
    """Wake the Emails now: back where they came from, flags unchanged."""
    _lock_user(conn, user_id)
    box = get_by_role(conn, user_id, "snoozed")
    removed = {s.email_id: s for s in store_snoozes.cancel(conn, user_id, list(email_ids))}
    rows = {row.email_id: row for row in store_emails.emails_by_id(conn, user_id,
                                                                   list(email_ids))}
    result = SnoozeResult(box, not_found=[e for e in dict.fromkeys(email_ids)
                                          if e not in rows or e not in removed])
    for email_id, snooze in removed.items():
        row = rows.get(email_id)
        if row is None or box is None or row.mailbox_id != box.id:
            continue
        target = _inbox_or(conn, user_id, snooze.return_mailbox_id)
        if target is None:
            continue
        moved = copy_messages(conn, user_id, box.id, [row.uid], target.id, now, move=True)
        result.moves.append(_Move(box, target, moved))
        result.done.append(email_id)
    return result


def wake_job(conn: Connection, user_id: int, now: datetime, limit: int) -> _Wake:
    """Claim up to ``limit`` due snoozes of one user and move their messages back, unread,
    in one transaction (one move per mailbox they return to); rows another node claimed
    first are not among them."""
    _lock_user(conn, user_id)
    claimed = store_snoozes.claim_due(conn, user_id, now, limit)
    box = get_by_role(conn, user_id, "snoozed")
    rows = store_emails.emails_by_id(conn, user_id, [c.email_id for c in claimed])
    waiting = {r.email_id: r for r in rows if box is not None and r.mailbox_id == box.id}
    woken: list[Woken] = []
    targets: dict[Optional[int], Optional[Mailbox]] = {}
    groups: dict[int, list[int]] = {}
    for item in claimed:
        row = waiting.get(item.email_id)
        if item.return_mailbox_id not in targets:
            targets[item.return_mailbox_id] = _inbox_or(conn, user_id, item.return_mailbox_id)
        target = targets[item.return_mailbox_id]
        if row is None or target is None:   # moved out or deleted by the user meanwhile
            woken.append(Woken(user_id, item.email_id, False))
            continue
        groups.setdefault(target.id, []).append(row.uid)
        woken.append(Woken(user_id, item.email_id, True))
    moves: list[_Move] = []
    boxes = {b.id: b for b in targets.values() if b is not None}
    for target_id, uids in sorted(groups.items()):
        assert box is not None
        set_flags(conn, box.id, uids, [SEEN], "remove")  # back as new mail
        moved = copy_messages(conn, user_id, box.id, uids, target_id, now, move=True)
        moves.append(_Move(box, boxes[target_id], moved))
    return _Wake(woken, moves)


def _changes(moves: Sequence[_Move]) -> list[Change]:
    """The change feed's view of some moves (as UserMail.copy publishes them; no spam
    training: snoozing is not filing)."""
    changes: list[Change] = []
    for move in moves:
        changes.extend(NewMessage.of(item) for item in move.result.delivered)
        if move.result.expunged:
            changes.append(Expunged(move.source.id, tuple(move.result.expunged)))
    return changes


class Snoozer:
    """The snooze operations of one MailService (``service.snoozer``), and its timers."""

    def __init__(self, service: MailService) -> None:
        self.service = service
        self.timers: set[IDelayedCall] = set()
        self.use_timers = False   # set by SnoozeWaker while it runs (no timers left behind)
        self.pending: set[Deferred[Any]] = set()   # wake-ups under way

    def _publish(self, user_id: int, changes: list[Change]) -> None:
        events = self.service.events
        if events is not None and changes:
            events.publish(ChangeBatch(user_id, tuple(changes), None))

    def _check_until(self, until: datetime) -> datetime:
        if not isinstance(until, datetime) or until.tzinfo is None:
            raise SnoozeError("until: a date-time with a time zone is needed")
        now = self.service.now()
        if until <= now:
            raise SnoozeError("until: the time must be in the future")
        if until - now > MAX_AHEAD:
            raise SnoozeError("until: at most five years ahead")
        return until

    @staticmethod
    def _check_ids(email_ids: Sequence[int]) -> list[int]:
        ids = list(email_ids)
        if not ids:
            raise SnoozeError("emailIds: at least one message is needed")
        if len(ids) > MAX_EMAILS:
            raise SnoozeError(f"emailIds: at most {MAX_EMAILS} messages at once")
        return ids

    async def snooze(self, mail: UserMail, email_ids: Sequence[int], until: datetime
                     ) -> SnoozeResult:
        until = self._check_until(until)
        ids = self._check_ids(email_ids)
        result: SnoozeResult = await self.service.runner.write(
            snooze_job, mail.user.id, ids, until, self.service.now())
        changes: list[Change] = []
        if result.created and result.mailbox is not None:
            changes.append(MailboxCreated(result.mailbox.id, result.mailbox.name))
        changes.extend(_changes(result.moves))
        self._publish(mail.user.id, changes)
        if result.done:
            self._wake_at(until)
        return result

    async def unsnooze(self, mail: UserMail, email_ids: Sequence[int]) -> SnoozeResult:
        ids = self._check_ids(email_ids)
        result: SnoozeResult = await self.service.runner.write(
            unsnooze_job, mail.user.id, ids, self.service.now())
        self._publish(mail.user.id, _changes(result.moves))
        return result

    def snoozed(self, mail: UserMail) -> Deferred[list[store_snoozes.Snooze]]:
        """The user's snoozes, soonest first."""
        return self.service.runner.read(store_snoozes.for_user, mail.user.id)

    async def wake_due(self, limit: int = 500) -> list[Woken]:
        """Move back every message whose time has come (this node's share: each row goes
        to the first transaction that claims it), one transaction per user and batch."""
        woken: list[Woken] = []
        failed: set[int] = set()
        while True:
            now = self.service.now()
            users = [u for u in await self.service.runner.read(store_snoozes.due_users, now,
                                                               100) if u not in failed]
            if not users:
                return woken
            for user_id in users:
                try:
                    done: _Wake = await self.service.runner.write(wake_job, user_id, now,
                                                                  limit)
                except Exception:  # one user's trouble never holds up the others
                    log.failure("waking snoozed messages of user {user} failed",
                                user=user_id)
                    failed.add(user_id)
                    continue
                woken.extend(done.woken)
                self._publish(user_id, _changes(done.moves))

    def _wake_at(self, until: datetime) -> None:
        """A timer for this snooze's own time (the loop catches the rest)."""
        if not self.use_timers:
            return
        delay = max(0.0, (until - self.service.now()).total_seconds())
        if delay > 7 * 86400:   # far off: the loop will get there
            return
        clock: Any = self.service.clock
        timer = clock.callLater(delay + 0.05, self._fire)
        self.timers = {t for t in self.timers if t.active()}
        self.timers.add(timer)

    def _fire(self) -> Deferred[Any]:
        """Run wake_due, kept in ``pending`` until it is done (a stop waits for it)."""
        d: Deferred[Any] = Deferred.fromCoroutine(self.wake_due())
        d.addErrback(lambda f: log.failure("waking snoozed messages failed", f))
        self.pending.add(d)
        def settled(result: Any) -> Any:
            self.pending.discard(d)
            return result

        d.addBoth(settled)
        return d

    def cancel_timers(self) -> None:
        for timer in self.timers:
            if timer.active():
                timer.cancel()
        self.timers.clear()


class SnoozeWaker(TwistedService):
    """Wakes due snoozed messages every ``interval`` seconds on the mail service's clock
    (every node runs one; claims keep them from doing a message twice)."""

    def __init__(self, snoozer: Snoozer, interval: float = 30.0) -> None:
        self.snoozer = snoozer
        self.interval = interval
        self.loop = LoopingCall(self._tick)
        self.loop.clock = snoozer.service.clock
        self.running_tick: Optional[Deferred[Any]] = None

    def startService(self) -> None:
        super().startService()
        self.snoozer.use_timers = True
        self.loop.start(self.interval, now=True).addErrback(
            lambda f: log.failure("snooze waker stopped", f))

    def stopService(self) -> Any:
        """Stop the loop and timers, and wait for the wake-ups under way (they need the
        database, which stops after this service)."""
        self.snoozer.use_timers = False
        self.snoozer.cancel_timers()
        if self.loop.running:
            self.loop.stop()
        super().stopService()
        return DeferredList(list(self.snoozer.pending))

    def _tick(self) -> Any:
        return self.snoozer._fire()
