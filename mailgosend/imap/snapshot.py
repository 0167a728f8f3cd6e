# -*- test-case-name: tests.test_imap_snapshot -*-
"""Per-mailbox snapshots shared by a listener's sessions, so SELECT does not reload every row.

A snapshot is what a SELECT needs of a mailbox (RFC 3501 §6.3.1): the live messages' rows
(UID, flags, MODSEQ, size, INTERNALDATE; nothing decrypted) in UID order, the keywords in use,
and the HIGHESTMODSEQ (RFC 7162) they are current to.  Sessions copy it into their own view
(selected.py), which then changes only when the session announces changes to its client.

Keeping it current.  Every SELECT/EXAMINE runs one database job (``UserMail.refresh``, in
mail/sync.py) that reads the mailbox row and compares its HIGHESTMODSEQ with the snapshot's.  Every change to a
mailbox's messages (delivery, APPEND, COPY, STORE, EXPUNGE, from this node, another node or
webmail) allocates a new MODSEQ, so equal values mean nothing changed and the snapshot is used
as is (one indexed query).  Otherwise the job reads only the rows whose MODSEQ is above the
snapshot's, expunged ones included, and counts the live rows: the count reveals what MODSEQ
cannot show (rows RENAME INBOX moved away, rows purged after an expunge the snapshot never saw),
and a mismatch reloads the UID list.  A purge only removes rows expunged more than
``maintenance.EXPUNGE_RETENTION`` ago, so a snapshot not counted for ``VERIFY_SECONDS`` (well
under that) is counted again even when HIGHESTMODSEQ did not move.

Refreshes of one user's mailboxes run one at a time (``SnapshotCache.lock``): a result is
applied to the snapshot it was computed against, never over a newer one.  Everything here is
touched in the reactor thread only; the database jobs get and return plain values.
"""

from __future__ import annotations

import bisect
from typing import Any, Iterable, Optional

from twisted.internet.defer import DeferredLock

from mailgosend.mail.sync import SnapshotDelta
from mailgosend.store.mailboxes import Mailbox
from mailgosend.store.messages import MessageRow

__all__ = ["MailboxSnapshot", "SnapshotCache", "VERIFY_SECONDS"]

VERIFY_SECONDS = 3600.0  # far below EXPUNGE_RETENTION (one day)
MAX_ROWS = 500_000  # rows kept over all snapshots; unselected mailboxes are dropped first


def _keywords(rows: Iterable[MessageRow]) -> set[str]:
    return {flag for row in rows for flag in row.flags if not flag.startswith("\\")}


class MailboxSnapshot:
    """One mailbox's live rows, shared read-only by the views made from it."""

    def __init__(self, box: Mailbox, rows: list[MessageRow], verified_at: float) -> None:
        self.box = box
        self.rows: dict[int, MessageRow] = {row.uid: row for row in rows}
        self.uids = sorted(self.rows)
        self.modseq = max([box.highestmodseq] + [row.modseq for row in rows])
        self.keywords = _keywords(rows)
        self.verified_at = verified_at
        self._first_unseen: Optional[int] = -1  # -1: not computed since the last change
        self._counted: Optional[int] = None  # the live count the last refresh read

    @property
    def user_id(self) -> int:
        return self.box.user_id

    def first_unseen(self) -> Optional[int]:
        """The UID of the first message without \\Seen (SELECT's UNSEEN), cached."""
        if self._first_unseen == -1:
            rows = self.rows
            self._first_unseen = next((uid for uid in self.uids
                                       if "\\Seen" not in rows[uid].flags), None)
        return self._first_unseen

    @property
    def count_mismatch(self) -> bool:
        """The last count disagreed with the rows: ``reconcile`` with the live UIDs."""
        return self._counted is not None and self._counted != len(self.uids)

    def reconcile(self, live_uids: list[int]) -> None:
        """Drop the rows that left without a MODSEQ (RENAME INBOX moved them, or a purge)."""
        present = set(live_uids)
        for uid in [uid for uid in self.uids if uid not in present]:
            del self.rows[uid]
        self.uids = [uid for uid in self.uids if uid in present]
        self._counted = None
        self._first_unseen = -1

    def apply(self, delta: SnapshotDelta, now: float) -> None:
        """Bring the snapshot to the state ``delta`` read (it was computed against it)."""
        assert delta.mailbox is not None and delta.since == self.modseq
        self.box = delta.mailbox
        rows, added = self.rows, []
        for row in delta.rows:
            self.modseq = max(self.modseq, row.modseq)
            if row.deleted_at is not None:
                if rows.pop(row.uid, None) is not None:
                    index = bisect.bisect_left(self.uids, row.uid)
                    del self.uids[index]
                continue
            if row.uid not in rows:
                added.append(row.uid)
            rows[row.uid] = row
        for uid in sorted(added):
            bisect.insort(self.uids, uid)
        self.modseq = max(self.modseq, delta.mailbox.highestmodseq)
        self.keywords |= _keywords(row for row in delta.rows if row.deleted_at is None)
        self._counted = delta.live_count
        if delta.live_count is not None:
            self.verified_at = now
        if delta.rows:
            self._first_unseen = -1


class SnapshotCache:
    """Snapshots by mailbox id, bounded by ``max_rows`` over all of them."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self.max_rows = max_rows
        self._snapshots: dict[int, MailboxSnapshot] = {}
        self._locks: dict[int, DeferredLock] = {}

    def __len__(self) -> int:
        return len(self._snapshots)

    def get(self, mailbox_id: int) -> Optional[MailboxSnapshot]:
        return self._snapshots.get(mailbox_id)

    def lock(self, user_id: int) -> DeferredLock:
        """Serialises one user's refreshes (see the module docstring)."""
        lock = self._locks.get(user_id)
        if lock is None:
            lock = self._locks[user_id] = DeferredLock()
        return lock

    def release(self, user_id: int, lock: DeferredLock) -> None:
        lock.release()
        if not lock.locked and not lock.waiting:
            self._locks.pop(user_id, None)

    def known(self, user_id: int, now: float) -> dict[int, tuple[int, int, bool]]:
        """What ``mail.sync.refresh`` compares against, for one user's snapshots."""
        return {box_id: (snap.box.uidvalidity, snap.modseq, now - snap.verified_at > VERIFY_SECONDS)
                for box_id, snap in self._snapshots.items() if snap.user_id == user_id}

    def update(self, delta: SnapshotDelta, now: float, in_use: Any = None) -> MailboxSnapshot:
        """Apply a refresh result and return the current snapshot of its mailbox.

        ``in_use(mailbox_id) -> bool`` says which snapshots sessions have selected: those are
        kept when the cache is over its bound."""
        box = delta.mailbox
        assert box is not None
        snap = self._snapshots.get(box.id)
        if delta.full or snap is None:
            snap = MailboxSnapshot(box, delta.rows, now)
            self._snapshots.pop(box.id, None)
            self._snapshots[box.id] = snap
            self._trim(box.id, in_use)
        else:
            snap.apply(delta, now)
        return snap

    def drop(self, mailbox_id: int) -> None:
        self._snapshots.pop(mailbox_id, None)

    def _trim(self, keep: int, in_use: Any) -> None:
        total = sum(len(s.uids) for s in self._snapshots.values())
        for box_id in list(self._snapshots):  # oldest first (insertion order)
            if total <= self.max_rows:
                return
            if box_id == keep or (in_use is not None and in_use(box_id)):
                continue
            total -= len(self._snapshots.pop(box_id).uids)
