"""TRANSACTION state commands and QUIT (RFC 1939 §5, §6, §7; RFC 2449 §6.6).

Message numbers are strict decimal (no sign, no spaces inside); a malformed command gets a
syntax reply instead of the traceback twisted.mail.pop3 turns it into (its error handler
joins ``str`` arguments into ``bytes`` and raises again, dropping the connection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailgosend.pop3.maildrop import Maildrop
from mailgosend.pop3.replies import SYS_TEMP, BadArguments, Reply, err, ok
from mailgosend.pop3.streaming import MessageSender

if TYPE_CHECKING:
    from mailgosend.pop3.protocol import POP3Server

log = Logger()

_MAX_DIGITS = 10  # message numbers and TOP line counts


def parse_arguments(arguments: bytes, usage: str, required: int, optional: int = 0
                    ) -> list[int]:
    """Decimal arguments of a command (``usage`` is its syntax, for the error reply)."""
    words = arguments.split()
    if not required <= len(words) <= required + optional:
        raise BadArguments(usage)
    if not all(word.isdigit() and word.isascii() and len(word) <= _MAX_DIGITS for word in words):
        raise BadArguments(usage)
    return [int(word) for word in words]


class TransactionCommands:
    """The handlers of the TRANSACTION state for one session."""

    def __init__(self, session: POP3Server) -> None:
        self.session = session

    @property
    def maildrop(self) -> Maildrop:
        assert self.session.maildrop is not None  # dispatch only routes here after login
        return self.session.maildrop

    def cmd_STAT(self, arguments: bytes) -> Reply:
        parse_arguments(arguments, "STAT", 0)
        count, octets = self.maildrop.stat()
        return ok(f"{count} {octets}")

    def cmd_LIST(self, arguments: bytes) -> Optional[Reply]:
        numbers = parse_arguments(arguments, "LIST [msg]", 0, 1)
        if numbers:
            return ok(f"{numbers[0]} {self.maildrop.size(numbers[0])}")
        count, octets = self.maildrop.stat()
        lines = [f"{n} {entry.size}" for n, entry in self.maildrop.listing()]
        self.session.send_lines(ok(f"{count} messages ({octets} octets)"), lines)
        return None

    def cmd_UIDL(self, arguments: bytes) -> Optional[Reply]:
        numbers = parse_arguments(arguments, "UIDL [msg]", 0, 1)
        if numbers:
            return ok(f"{numbers[0]} {self.maildrop.uidl(numbers[0])}")
        lines = [f"{n} {self.maildrop.uidl(n)}" for n, _ in self.maildrop.listing()]
        self.session.send_lines(ok("Unique-ID listing follows"), lines)
        return None

    def cmd_RETR(self, arguments: bytes) -> Deferred[None]:
        (number,) = parse_arguments(arguments, "RETR msg", 1)
        size = self.maildrop.size(number)
        d = self._send_message(number, size, ok(f"{size} octets"), None)
        return d.addCallback(lambda _: self.maildrop.mark_retrieved(number))

    def cmd_TOP(self, arguments: bytes) -> Deferred[None]:
        number, lines = parse_arguments(arguments, "TOP msg n", 2)
        size = self.maildrop.size(number)
        return self._send_message(number, size, ok("Top of message follows"), lines)

    def _send_message(self, number: int, size: int, status: Reply,
                      top_lines: Optional[int]) -> Deferred[None]:
        maildrop = self.maildrop
        session = self.session
        sender = MessageSender(
            session.transport, lambda offset, length: maildrop.read(number, offset, length),
            size, chunk_size=session.limits.chunk_size, top_lines=top_lines,
            on_progress=session.resetTimeout)
        session.sender = sender
        return sender.send(status.encode())

    def cmd_DELE(self, arguments: bytes) -> Reply:
        (number,) = parse_arguments(arguments, "DELE msg", 1)
        self.maildrop.delete(number)
        return ok(f"Message {number} deleted")

    def cmd_RSET(self, arguments: bytes) -> Reply:
        parse_arguments(arguments, "RSET", 0)
        self.maildrop.reset()
        count, octets = self.maildrop.stat()
        return ok(f"Maildrop has {count} messages ({octets} octets)")

    def cmd_NOOP(self, arguments: bytes) -> Reply:
        parse_arguments(arguments, "NOOP", 0)
        return ok()

    def cmd_QUIT(self, arguments: bytes) -> Optional[Deferred[None]]:
        """RFC 1939 §6: in TRANSACTION, QUIT enters UPDATE and applies the DELE marks; the
        reply says whether that worked, and the connection closes either way."""
        session = self.session
        if session.maildrop is None:
            session.send_and_close(ok("Bye"))
            return None
        return session.maildrop.commit().addCallbacks(self._updated, self._update_failed)

    def _updated(self, expunged: list[int]) -> None:
        log.info("pop3 {sid} quit, {n} messages deleted", sid=self.session.session_id,
                 n=len(expunged))
        self.session.send_and_close(ok(f"Bye, {len(expunged)} messages deleted"))

    def _update_failed(self, failure: Failure) -> None:
        log.failure("pop3 {sid} UPDATE failed", failure, sid=self.session.session_id)
        self.session.send_and_close(
            err("Messages were not deleted; nothing was changed, try again later", SYS_TEMP))
