"""IMAP's own state shared by a listener's sessions: who selected what, \\Recent, snapshots.

One hub per factory (no module state).  Changes do not travel through here: every writer
publishes on the change feed (events.py) after its commit, each session subscribes for its
user and applies what concerns its selected mailbox (selected.py; an idling session pushes
EXISTS/EXPUNGE/FETCH at once, RFC 2177).  The hub follows the feed only to forget the
snapshot (snapshot.py) of a mailbox that was deleted or emptied by RENAME INBOX.

\\Recent (RFC 3501 §2.3.2) is "first session to see the message".  The hub keeps, per
mailbox, the highest UID some session has claimed; a read-write SELECT (and each new message
it later sees) claims the UIDs above it.  The floor starts from the mailbox's stored
``recent_floor`` and each raise is written back (selected.py), so messages that arrived before
the first SELECT, or while the server was down, are \\Recent to the next session.  Sessions
on other nodes do not share claims (each node claims from the stored floor it read first);
clients treat \\Recent as a hint (IMAP4rev2 dropped it), so this is the documented
simplification.
"""

from __future__ import annotations

import bisect
from typing import Any, Callable, Optional, Sequence

from mailgosend.events import ChangeBatch, Events, MailboxDeleted, MailboxRenamed
from mailgosend.imap.snapshot import SnapshotCache

__all__ = ["MailboxHub"]


class MailboxHub:
    def __init__(self) -> None:
        self._selected: dict[int, set[Any]] = {}
        self._recent_floor: dict[int, int] = {}
        self.snapshots = SnapshotCache()  # what SELECT copies (snapshot.py)
        self._followed: Optional[Events] = None
        self._unfollow: Optional[Callable[[], None]] = None

    def follow(self, events: Events) -> None:
        """Watch the feed for mailboxes whose snapshot must go (once per feed: the IMAP and
        IMAPS factories share a hub)."""
        if self._followed is events:
            return
        if self._unfollow is not None:
            self._unfollow()
        self._followed, self._unfollow = events, events.follow(self._changed)

    def _changed(self, batch: ChangeBatch) -> None:
        for change in batch.changes:
            if isinstance(change, MailboxDeleted):
                self.snapshots.drop(change.mailbox_id)
            elif isinstance(change, MailboxRenamed) and change.emptied_id is not None:
                self.snapshots.drop(change.emptied_id)

    def attach(self, mailbox_id: int, session: Any) -> None:
        self._selected.setdefault(mailbox_id, set()).add(session)

    def detach(self, mailbox_id: int, session: Any) -> None:
        sessions = self._selected.get(mailbox_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._selected[mailbox_id]

    def watchers(self, mailbox_id: int) -> int:
        return len(self._selected.get(mailbox_id, ()))

    def recent_floor(self, mailbox_id: int, stored: int) -> int:
        """The highest claimed UID, starting at the stored floor for a mailbox not seen yet."""
        return self._recent_floor.setdefault(mailbox_id, stored)

    def known_floor(self, mailbox_id: int, stored: int) -> int:
        """The floor without claiming: EXAMINE and STATUS."""
        return self._recent_floor.get(mailbox_id, stored)

    def in_use(self, mailbox_id: int) -> bool:
        return mailbox_id in self._selected

    def claim(self, mailbox_id: int, uids: Sequence[int], stored: int) -> set[int]:
        """Claim the UIDs above the floor for one session; they are \\Recent only there.
        ``uids`` is ascending (a bisection, not a scan of a large mailbox); ``stored`` is the
        mailbox's ``recent_floor`` column, used when this process has no floor yet."""
        floor = self.recent_floor(mailbox_id, stored)
        claimed = set(uids[bisect.bisect_right(uids, floor):])
        if claimed:
            self._recent_floor[mailbox_id] = max(claimed)
        return claimed
