"""Sessions of one listener that share mailboxes: change notification and \\Recent.

One hub per factory (no module state).  A session that changes a mailbox tells the hub, which
pokes every other session with that mailbox selected; an idling session then synchronises at
once and pushes EXISTS/EXPUNGE/FETCH (RFC 2177), the others do so at their next command.  A
flag change travels with its new flags and MODSEQ, so the others need no query to report it
(selected.py).  The hub also holds the per-mailbox snapshots SELECT copies (snapshot.py).

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
from typing import Optional, Protocol, Sequence

from mailgosend.imap.snapshot import SnapshotCache
from mailgosend.store.messages import FlagChange

__all__ = ["MailboxHub"]


class Listener(Protocol):
    def mailbox_changed(self, mailbox_id: int,
                        changes: Optional[Sequence[FlagChange]] = None) -> None: ...


class MailboxHub:
    def __init__(self) -> None:
        self._selected: dict[int, set[Listener]] = {}
        self._recent_floor: dict[int, int] = {}
        self.snapshots = SnapshotCache()  # what SELECT copies (snapshot.py)

    def attach(self, mailbox_id: int, session: Listener) -> None:
        self._selected.setdefault(mailbox_id, set()).add(session)

    def detach(self, mailbox_id: int, session: Listener) -> None:
        sessions = self._selected.get(mailbox_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._selected[mailbox_id]

    def watchers(self, mailbox_id: int) -> int:
        return len(self._selected.get(mailbox_id, ()))

    def changed(self, mailbox_id: int, origin: Optional[Listener] = None,
                changes: Optional[Sequence[FlagChange]] = None) -> None:
        """Tell the other sessions; ``changes``: the change was only these flags (each
        session applies them without a query), None: anything (they read the database)."""
        for session in list(self._selected.get(mailbox_id, ())):
            if session is not origin:
                session.mailbox_changed(mailbox_id, changes)

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
