"""IDLE (RFC 2177): untagged updates pushed while the client waits, until it sends DONE.

An idling session pushes what the change feed (events.py) reports for its selected mailbox at
once, from the data the feed carries (no database read for a change made in this process; a
change from another node is read), and reads the database every ``idle_poll_seconds`` for
changes made outside the feed.  Only "DONE" ends IDLE: any other line gets an untagged BAD
and IDLE goes on (Twisted ended it on any line).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from mailgosend.imap.selected import MailboxGone
from mailgosend.imap.server import AUTH_TIMEOUT, Reply
from mailgosend.imap.tokens import Args

__all__ = ["IdleCommand"]

log = Logger()

if TYPE_CHECKING:
    from mailgosend.imap.server import SessionCore

    _Session = SessionCore
else:
    _Session = object


class IdleCommand(_Session):
    """Mixin for the session class (factory.IMAPServerProtocol)."""

    _idle_running: Optional[Deferred[Any]] = None
    _idle_again = False
    _idle_full = False
    _idle_poll: Optional[LoopingCall] = None

    async def cmd_IDLE(self, tag: bytes, args: Args) -> Reply:
        """RFC 2177: updates are pushed until the client sends DONE, and only DONE ends it."""
        args.end()
        self.send_continuation(b"idling")
        self.idling = True
        self.setTimeout(AUTH_TIMEOUT)
        try:
            self._idle_poll = LoopingCall(self.idle_refresh, True)
            self._idle_poll.clock = self.factory.clock
            self._idle_poll.start(self.factory.idle_poll_seconds, now=True)
            while True:
                line = await self.next_line()
                if line.strip().upper() == b"DONE":
                    break
                self.send_untagged(b"BAD Expected DONE to end IDLE")
        finally:
            self.idling = False
            self.stop_idle_poll()
        if self._idle_running is not None:
            await self._idle_running
        return Reply("IDLE terminated")

    def stop_idle_poll(self) -> None:
        if self._idle_poll is not None and self._idle_poll.running:
            self._idle_poll.stop()
        self._idle_poll = None

    def idle_refresh(self, full: bool = False) -> None:
        """Push what changed in the selected mailbox to an idling client; ``full``: read the
        database (the poll), else only when the feed's changes call for it."""
        if not self.idling or self.selected is None or self.lost:
            return
        if self._idle_running is not None:
            self._idle_again = True
            self._idle_full = self._idle_full or full
            return
        d = self.selected.sync(True, full, timed=False)
        d.addCallbacks(self._idle_lines, self._idle_failed)
        d.addBoth(self._idle_finished)
        if not d.called:
            self._idle_running = d

    def _idle_lines(self, lines: list[bytes]) -> None:
        for line in lines:
            self.send_untagged(line)

    def _idle_failed(self, failure: Any) -> None:
        if failure.check(MailboxGone):
            self.send_untagged(b"BYE Selected mailbox was deleted, have to disconnect")
            self.close()
        elif not self.lost:
            log.failure("IDLE update failed", failure)

    def _idle_finished(self, _: Any) -> None:
        self._idle_running = None
        if self._idle_again:
            full, self._idle_again, self._idle_full = self._idle_full, False, False
            self.idle_refresh(full)

    def mailbox_changed(self, mailbox_id: int, changes: Any) -> None:
        if self.selected is not None and self.selected.id == mailbox_id:
            self.selected.note_changes(changes)
            if self.idling:
                self.idle_refresh()
