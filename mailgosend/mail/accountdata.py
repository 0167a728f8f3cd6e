# -*- test-case-name: tests.test_jmap_identity -*-
"""A user's JMAP account data besides messages: identities, email submissions and the
vacation response (RFC 8621 §6-8), sealed with the user's key (the keyring stays here).

``AccountData`` is reached as ``UserMail.account_data``; each method is one database job.
Identities for the user's own address and the aliases that deliver to them exist by
themselves (created on first listing, ``mayDelete`` false); others the user adds for
addresses they may send as (sub-addresses).  An identity whose address the user may no
longer send as (an alias removed) is not listed.

Every write that moves a type's state publishes, after its commit, the typed change on the
change feed (events.py ``IdentityChanged``, ``SubmissionChanged``, ``VacationChanged``),
so JMAP push (jmap/push.py) tells the user's other clients (RFC 8620 §7.1).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Optional, Sequence

from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from mailgosend.events import (AccountDataChange, ChangeBatch, IdentityChanged,
                               SubmissionChanged, VacationChanged)
from mailgosend.store import accounts
from mailgosend.store import jmapdata
from mailgosend.store.accounts import User
from mailgosend.store.jmapdata import Changes, SubmissionRow

__all__ = ["AccountData", "Identity", "Submission", "Vacation", "IDENTITIES", "SUBMISSIONS"]

IDENTITIES, SUBMISSIONS = jmapdata.IDENTITIES, jmapdata.SUBMISSIONS
_PURPOSE = {IDENTITIES: "jmap-identity", SUBMISSIONS: "jmap-submission",
            "vacation": "jmap-vacation"}


@dataclass
class Identity:
    id: int
    email: str
    name: str
    may_delete: bool
    settings: dict[str, Any] = field(default_factory=dict)  # replyTo, bcc, signatures


@dataclass
class Submission:
    row: SubmissionRow
    envelope: dict[str, Any]  # {"mailFrom": {...}, "rcptTo": [...]} as JMAP has it


@dataclass
class Vacation:
    is_enabled: bool = False
    from_date: Optional[datetime] = None
    to_date: Optional[datetime] = None
    subject: Optional[str] = None
    text_body: Optional[str] = None
    html_body: Optional[str] = None
    state: int = 0


class AccountData:
    def __init__(self, service: Any, user: User) -> None:
        self.service = service
        self.user = user

    # --- the change feed -------------------------------------------------------------------

    def _published(self, d: Deferred[Any], change: Callable[[Any], Optional[AccountDataChange]]
                   ) -> Deferred[Any]:
        """``d`` (a write job) with ``change(result)`` published once it committed (None:
        nothing changed)."""
        def publish(result: Any) -> Any:
            found = change(result)
            events = getattr(self.service, "events", None)
            if found is not None and events is not None:
                events.publish(ChangeBatch(self.user.id, (found,)))
            return result
        return d.addCallback(publish)

    def _changed(self, kind: str, row_id: int) -> AccountDataChange:
        return IdentityChanged(row_id) if kind == IDENTITIES else SubmissionChanged(row_id)

    # --- sealing ----------------------------------------------------------------------------

    def _seal(self, kind: str, value: dict[str, Any]) -> bytes:
        return bytes(self.service.keyring.seal(json.dumps(value).encode(), purpose=_PURPOSE[kind],
                                               owner=self.user.uuid, context=kind.encode()))

    def _open(self, kind: str, sealed: bytes) -> dict[str, Any]:
        data = self.service.keyring.open(sealed, purpose=_PURPOSE[kind], owner=self.user.uuid,
                                         context=kind.encode())
        value = json.loads(data)
        assert isinstance(value, dict)
        return value

    # --- identities -------------------------------------------------------------------------

    def _identity_settings(self, sealed: bytes) -> dict[str, Any]:
        """An identity's settings; one created by an account change (admin.py, without the
        user's key) has none yet (store/jmapdata.py ``UNSET``)."""
        return {} if sealed == jmapdata.UNSET else self._open(IDENTITIES, sealed)

    def _identities_job(self, conn: Connection, now: Optional[datetime]
                        ) -> Optional[list[Identity]]:
        """The identities; None from a read job (``now`` None) when they are out of line
        with the account (an address of the user without one, or one the user may no
        longer send as): a write job (with ``now``) then mends them (store/jmapdata.py
        ``follow_account``, which account changes in admin.py also call)."""
        rows = jmapdata.identities(conn, self.user.id)
        if jmapdata.out_of_line(conn, self.user.email, rows):
            if now is None:
                return None
            jmapdata.follow_account(conn, self.user.id, self.user.email, now)
            rows = jmapdata.identities(conn, self.user.id)
        own = jmapdata.own_addresses(conn, self.user.email)
        display = accounts.get_display_name(conn, self.user.id)
        found = []
        for row in rows:
            settings = self._identity_settings(row.sealed)
            name = settings.pop("name", None)
            found.append(Identity(row.id, row.email, display if name is None else name,
                                  row.email not in own, settings))
        return found

    async def _identities(self) -> list[Identity]:
        runner = self.service.runner
        found = await runner.read(self._identities_job, None)
        if found is None:  # first listing, or a new alias: one write creates them
            found = await self._published(runner.write(self._identities_job,
                                                       self.service.now()),
                                          lambda _: IdentityChanged())
        assert found is not None
        return found

    def identities(self) -> Any:
        """Deferred: the identities, the derived ones created when missing (a read job
        as a rule; a write only when an address of the user has no identity yet)."""
        return Deferred.fromCoroutine(self._identities())

    def identity_state(self) -> Any:
        return self.service.runner.read(jmapdata.state, IDENTITIES, self.user.id)

    def changes(self, kind: str, since: int) -> Any:
        """Deferred (Changes, current state)."""
        def job(conn: Connection) -> tuple[Changes, int]:
            return (jmapdata.changes(conn, kind, self.user.id, since),
                    jmapdata.state(conn, kind, self.user.id))
        return self.service.runner.read(job)

    def add_identity(self, email: str, settings: dict[str, Any]) -> Any:
        """Deferred id of a new identity; None when the user may not send as ``email``."""
        def job(conn: Connection) -> Optional[int]:
            if not accounts.may_send_as(conn, self.user.email, email):
                return None
            return jmapdata.insert_identity(conn, self.user.id, email,
                                            self._seal(IDENTITIES, settings),
                                            self.service.now())
        return self._published(self.service.runner.write(job),
                               lambda new_id: None if new_id is None else IdentityChanged(new_id))

    def update_identity(self, identity_id: int, settings: dict[str, Any]) -> Any:
        """Deferred bool: replace the identity's settings (name included)."""
        return self._published(
            self.service.runner.write(jmapdata.update_sealed, IDENTITIES, self.user.id,
                                      identity_id, self._seal(IDENTITIES, settings)),
            lambda done: IdentityChanged(identity_id) if done else None)

    def identity_settings(self, identity_id: int) -> Any:
        """Deferred settings dict of a live identity (name only when set), or None."""
        def job(conn: Connection) -> Optional[dict[str, Any]]:
            for row in jmapdata.identities(conn, self.user.id):
                if row.id == identity_id:
                    return self._identity_settings(row.sealed)
            return None
        return self.service.runner.read(job)

    def destroy(self, kind: str, row_id: int) -> Any:
        """Deferred bool: the row made a tombstone (False: no such live row)."""
        return self._published(
            self.service.runner.write(jmapdata.destroy, kind, self.user.id, row_id),
            lambda done: self._changed(kind, row_id) if done else None)

    # --- submissions ------------------------------------------------------------------------

    def submissions(self, ids: Optional[Sequence[int]] = None) -> Any:
        """Deferred list of Submission (all live ones, or those of ``ids``)."""
        def job(conn: Connection) -> list[Submission]:
            return [Submission(row, self._open(SUBMISSIONS, row.sealed))
                    for row in jmapdata.submissions(conn, self.user.id, ids)]
        return self.service.runner.read(job)

    def submission_state(self) -> Any:
        return self.service.runner.read(jmapdata.state, SUBMISSIONS, self.user.id)

    def add_submission(self, *, identity_id: int, email_id: int, thread_id: int,
                       envelope: dict[str, Any], send_at: datetime, undo_status: str,
                       queue_id: Optional[int]) -> Any:
        return self._published(self.service.runner.write(
            jmapdata.insert_submission, self.user.id, identity_id=identity_id,
            email_id=email_id, thread_id=thread_id, sealed=self._seal(SUBMISSIONS, envelope),
            send_at=send_at, undo_status=undo_status, queue_id=queue_id,
            now=self.service.now()), SubmissionChanged)

    def set_submission_status(self, row_id: int, old: str, new: str,
                              queue_id: Optional[int] = None) -> Any:
        """Deferred bool: ``old`` -> ``new`` done (False: the status was not ``old``)."""
        return self._published(
            self.service.runner.write(jmapdata.update_submission_status, self.user.id,
                                      row_id, old=old, new=new, queue_id=queue_id),
            lambda done: SubmissionChanged(row_id) if done else None)

    def delivery_status(self, queue_id: int) -> Any:
        """Deferred list of store.jmapdata.RecipientStatus of a queued submission (pending
        rows, or the delivery log once the queue has finished with it)."""
        return self.service.runner.read(jmapdata.queue_status, self.user.id, queue_id)

    # --- vacation ---------------------------------------------------------------------------

    def vacation(self) -> Any:
        """Deferred Vacation (the disabled default when never set)."""
        def job(conn: Connection) -> Vacation:
            row = jmapdata.vacation(conn, self.user.id)
            if row is None:
                return Vacation()
            texts = self._open("vacation", row.sealed)
            return Vacation(row.is_enabled, row.from_date, row.to_date, texts.get("subject"),
                            texts.get("textBody"), texts.get("htmlBody"), row.modseq)
        return self.service.runner.read(job)

    def put_vacation(self, vacation: Vacation) -> Any:
        """Deferred new state; the replies already sent are forgotten (a new absence)."""
        sealed = self._seal("vacation", {"subject": vacation.subject,
                                         "textBody": vacation.text_body,
                                         "htmlBody": vacation.html_body})
        return self._published(self.service.runner.write(
            jmapdata.put_vacation, self.user.id, is_enabled=vacation.is_enabled,
            from_date=vacation.from_date, to_date=vacation.to_date, sealed=sealed),
            lambda _: VacationChanged())

    def vacation_state(self) -> Any:
        """Deferred int: the VacationResponse's counter (0: never set), nothing opened."""
        return self.service.runner.read(jmapdata.vacation_state, self.user.id)

    def sender_hash(self, address: str) -> str:
        """A keyed hash of a correspondent's address (no plaintext stored, DESIGN §4)."""
        key = self.service.keyring.derive("vacation-sender", self.user.uuid)
        return hmac.new(key, address.lower().encode(), hashlib.sha256).hexdigest()

    def reply_due(self, address: str, interval: timedelta) -> Any:
        """Deferred bool: no automatic reply went to ``address`` within ``interval``
        (and one is recorded now if so)."""
        return self.service.runner.write(jmapdata.reply_due, self.user.id,
                                         self.sender_hash(address), self.service.now(),
                                         interval)
