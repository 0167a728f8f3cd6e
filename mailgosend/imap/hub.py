"""Sessions of one listener that share mailboxes: change notification and \\Recent.

One hub per factory (no module state).  A session that changes a mailbox tells the hub, which
pokes every other session with that mailbox selected; an idling session then synchronises at
once and pushes EXISTS/EXPUNGE/FETCH (RFC 2177), the others do so at their next command.

\\Recent (RFC 3501 §2.3.2) is "first session to see the message".  The hub keeps, per
mailbox, the highest UID some session has claimed; a read-write SELECT (and each new message
it later sees) claims the UIDs above it.  The claim lives in memory, per process: after a
restart the first SELECT of a mailbox starts from its current UIDNEXT, so messages that
arrived while the server was down are not \\Recent, and sessions on other nodes do not
share claims.  Clients treat \\Recent as a hint (IMAP4rev2 dropped it), so this is the
documented simplification.
"""

from __future__ import annotations

from typing import Iterable, Optional, Protocol

__all__ = ["MailboxHub"]


class Listener(Protocol):
    def mailbox_changed(self, mailbox_id: int) -> None: ...


class MailboxHub:
    def __init__(self) -> None:
        self._selected: dict[int, set[Listener]] = {}
        self._recent_floor: dict[int, int] = {}

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

    def changed(self, mailbox_id: int, origin: Optional[Listener] = None) -> None:
        for session in list(self._selected.get(mailbox_id, ())):
            if session is not origin:
                session.mailbox_changed(mailbox_id)

    def recent_floor(self, mailbox_id: int, uidnext: int) -> int:
        """The highest claimed UID, starting at UIDNEXT - 1 for a mailbox not seen yet."""
        return self._recent_floor.setdefault(mailbox_id, uidnext - 1)

    def known_floor(self, mailbox_id: int) -> Optional[int]:
        return self._recent_floor.get(mailbox_id)

    def claim(self, mailbox_id: int, uids: Iterable[int], uidnext: int) -> set[int]:
        """Claim the UIDs above the floor for one session; they are \\Recent only there."""
        floor = self.recent_floor(mailbox_id, uidnext)
        claimed = {uid for uid in uids if uid > floor}
        if claimed:
            self._recent_floor[mailbox_id] = max(claimed)
        return claimed
