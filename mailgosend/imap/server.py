"""The IMAP4rev1 session: framing, dispatch, replies, login (RFC 3501 §6.1-6.2).

A subclass of Twisted's IMAP4Server that keeps its states ("unauth", "auth", "select"), its
timeout handling and its line writer, and replaces the input side (see framing.py for why).
Defects of the base class fixed here, each with a regression test in tests/test_imap_defects:

* STARTTLS command injection: input buffered behind STARTTLS is dropped (RFC 3501 §6.2.1);
* one command runs at a time; later commands wait in the buffer (pipelining stays correct);
* ``connectionLost`` leaves the mailbox hub and the change feed (no leaked sessions);
* IDLE ends only on "DONE" (RFC 2177);
* errors map to NO with RFC 5530 codes in one place (``_failed``), never to BAD for a
  refused operation, and never drop the connection.

Password logins (cmd_auth.py) need TLS, or ``allow_plaintext_loopback`` and a loopback peer;
otherwise LOGINDISABLED is advertised.

Logging, as Dovecot's: one line when a session starts (peer, implicit TLS or not), one when
TLS is up (protocol and cipher), one per login result (user name, method; never the
password), one when it ends (why, and who was logged in), and server errors.  All carry the
session's random id, so an operator greps one session.  Never message content or commands.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener
from twisted.logger import Logger
from twisted.mail.imap4 import IMAP4Server
from zope.interface import implementer

from mailgosend.netopts import no_delay
from mailgosend.imap.errors import ImapError, bad, no
from mailgosend.imap.framing import CommandReader, Frame, Literal
from mailgosend.imap.selected import MailboxGone
from mailgosend.imap.tokens import Args, Atom, tokenize
from mailgosend.store.accounts import AccountError
from mailgosend.store.mailboxes import MailboxError
from mailgosend.store.messages import InvalidFlag, MessageError
from mailgosend.tls.context import tls_summary

__all__ = ["Reply", "SessionCore"]

log = Logger()

UNAUTH_TIMEOUT = 60.0
AUTH_TIMEOUT = 30 * 60.0  # RFC 3501 §5.4: at least 30 minutes
PREAUTH_LITERAL_LIMIT = 8 * 1024
LITERAL_LIMIT = 64 * 1024
MAX_LITERALS = 64
INPUT_HIGH_WATER = 1 << 20
_TAG_FORBIDDEN = set(b'+(){%*"\\ ')


@dataclass(frozen=True)
class Reply:
    """A tagged OK; ``text=None`` means the handler already sent its tagged line."""

    text: Optional[str]
    code: Optional[str] = None


Handler = Callable[..., Awaitable[Reply]]


@dataclass(frozen=True)
class Command:
    handler: Handler
    states: tuple[str, ...]
    sync: Optional[str] = "expunge"  # None, "noexpunge" (§7.4.1), "expunge" or "full"


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


@implementer(IHandshakeListener)
class SessionCore(IMAP4Server):
    """Framing, dispatch and the commands valid in any state; see the module docstring."""

    COMMANDS: dict[str, Command] = {}
    transport: Any  # a TCP or TLS transport: pause/resume, producers, startTLS

    def __init__(self, factory: Any) -> None:
        IMAP4Server.__init__(self, chal={}, contextFactory=factory.tls)
        self.factory = factory
        self.access = factory.access
        self.reader = CommandReader(self, spool_dir=factory.access.spool_dir)
        self.secure = bool(factory.implicit_tls)
        self.peer_ip = "unknown"
        self.session_id = secrets.token_hex(4)  # correlates the log lines of one session
        self.end_reason = ""  # for the disconnect log line; "" = the client closed
        self.account: Any = None
        self.selected: Any = None
        self.condstore = False  # RFC 7162 §3.1: set by the first CONDSTORE enabling command
        self.utf8 = False  # RFC 6855: ENABLE UTF8=ACCEPT (UTF-8 mailbox names, UTF8 APPEND)
        self.qresync = False  # RFC 7162 §3.2: ENABLE QRESYNC; then VANISHED replaces EXPUNGE
        self.rev2 = False  # RFC 9051 Appendix A: ENABLE IMAP4rev2 (rev2.py)
        self.busy = False
        self.closing = False
        self.shutdown_pending = False
        self.lost = False
        self._auth_failures = 0
        self._unsubscribe: Optional[Callable[[], None]] = None
        self._line_waiter: Optional[Deferred[bytes]] = None
        self._input_paused = False

    # --- connection ------------------------------------------------------------------------

    def callLater(self, period: float, func: Callable[[], None]) -> Any:  # TimeoutMixin hook
        return self.factory.clock.callLater(period, func)

    def connectionMade(self) -> None:
        no_delay(self.transport)
        self.peer_ip = getattr(self.transport.getPeer(), "host", "unknown")
        if not self.factory.limiter.admit(self, self.peer_ip):
            # RFC 3501 §7.1.5: BYE as the greeting when the server will not serve the client
            log.info("imap {sid} refused connection from {ip}: too many connections",
                     sid=self.session_id, ip=self.peer_ip)
            self.end_reason = "too many connections"
            self.send_untagged(b"BYE Too many connections; try again later")
            self.close()
            return
        if self.factory.bans.is_banned(self.peer_ip):
            log.info("imap {sid} refused connection from banned {ip}", sid=self.session_id,
                     ip=self.peer_ip)
            self.end_reason = "banned address"
            self.send_untagged(b"BYE Too many failed logins from your address; try later")
            self.close()
            return
        log.info("imap {sid} connect from {ip}{tls}", sid=self.session_id, ip=self.peer_ip,
                 tls=" (implicit TLS)" if self.factory.implicit_tls else "")
        self.setTimeout(UNAUTH_TIMEOUT)
        self.send_untagged(b"OK [CAPABILITY " + self.capability_line() + b"] "
                           + self.factory.hostname.encode("ascii") + b" IMAP4rev1 ready")

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        self.resetTimeout()
        self.reader.feed(data)
        if self.reader.buffered > INPUT_HIGH_WATER and not self._input_paused:
            self._input_paused = True
            self.transport.pauseProducing()

    def handshakeCompleted(self) -> None:
        """IHandshakeListener: the TLS parameters, once per session (implicit or STARTTLS)."""
        log.info("imap {sid} TLS {tls}", sid=self.session_id, tls=tls_summary(self.transport))

    def connectionLost(self, reason: Any = None) -> None:
        if not self.lost:
            user = self.account.user.email if self.account is not None else None
            log.info("imap {sid} disconnect ({why}){user}", sid=self.session_id,
                     why=self.end_reason or "connection closed",
                     user=f" user={user}" if user else "")
        self.lost = True
        self.setTimeout(None)
        self.factory.limiter.release(self)
        self.reader.close()
        self.deselect()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._line_waiter is not None:
            waiter, self._line_waiter = self._line_waiter, None
            waiter.errback(ConnectionError("connection lost"))
        self.stop_idle_poll()
        if self._onLogout:
            self._onLogout()
            self._onLogout = None

    def timeoutConnection(self) -> None:
        self.end_reason = "autologout"
        self.send_untagged(b"BYE Autologout; idle for too long")
        self.close()

    def server_shutting_down(self) -> None:
        """listeners.IDrainable: BYE now if idle (IDLE counts), else after this command."""
        self.end_reason = "server shutting down"
        if not self.busy or self.idling:
            self.send_untagged(b"BYE Server shutting down")
            self.close()
        else:
            self.shutdown_pending = True

    def close(self) -> None:
        self.closing = True
        self.reader.pause()
        if self.transport is not None:
            self.transport.loseConnection()

    idling = False

    def stop_idle_poll(self) -> None:
        """Overridden by the IDLE command mixin."""

    def enable_condstore(self) -> None:
        """RFC 7162 §3.1: from now on every FETCH response carries MODSEQ."""
        self.condstore = True
        if self.selected is not None:
            self.selected.report_modseq = True

    def enable_qresync(self) -> None:
        """RFC 7162 §3.2.3: QRESYNC implies CONDSTORE; expunges are announced as VANISHED."""
        self.qresync = True
        self.enable_condstore()
        if self.selected is not None:
            self.selected.report_vanished = True

    @property
    def names_utf8(self) -> bool:
        """Mailbox names are UTF-8 on the wire: after ENABLE UTF8=ACCEPT (RFC 6855 §3) or
        ENABLE IMAP4rev2 (RFC 9051 §5.1, Appendix A); modified UTF-7 before."""
        return self.utf8 or self.rev2

    def deselect(self) -> None:
        if self.selected is not None:
            self.access.hub.detach(self.selected.id, self)
            self.selected.removeListener(self)
            self.selected = None
        if self.state == "select":
            self.state = "auth"

    # --- output ----------------------------------------------------------------------------

    def send_untagged(self, line: bytes) -> None:
        if not self.lost:
            self.sendLine(b"* " + line)

    def send_tagged(self, tag: bytes, status: str, text: str, code: Optional[str] = None) -> None:
        if self.lost:
            return
        coded = f"[{code}] " if code else ""
        # RFC 3501 §9 TEXT-CHAR is 7-bit; UTF-8 text only after ENABLE IMAP4rev2 (RFC 9051
        # §9 "text", Appendix E item 24) or UTF8=ACCEPT (RFC 6855 §3).
        encoding = "utf-8" if self.names_utf8 else "ascii"
        self.sendLine(tag + b" " + f"{status} {coded}{text}".encode(encoding, "replace"))

    def send_continuation(self, text: bytes = b"Ready for literal data") -> None:
        self.sendLine(b"+ " + text)

    # --- capabilities ----------------------------------------------------------------------

    def password_allowed(self) -> bool:
        return self.secure or (self.factory.allow_plaintext_loopback
                               and _is_loopback(self.peer_ip))

    def capability_names(self) -> list[str]:
        names = ["IMAP4rev1", "IMAP4rev2"]  # RFC 9051 Appendix A: both (rev2.py)
        if self.state == "unauth":
            if not self.secure and self.factory.tls is not None:
                names.append("STARTTLS")
            names += ["AUTH=PLAIN", "SASL-IR"] if self.password_allowed() else ["LOGINDISABLED"]
        names += ["LITERAL+", "ID", "ENABLE", "IDLE", "NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT",
                  "CHILDREN", "SPECIAL-USE", "CREATE-SPECIAL-USE", "QUOTA", "QUOTA=RES-STORAGE",
                  "CONDSTORE"]
        names += ["STATUS=SIZE", f"APPENDLIMIT={self.access.max_message_size}"]
        names += ["LIST-EXTENDED", "LIST-STATUS", "MULTIAPPEND", "BINARY", "UTF8=ACCEPT"]
        if self.state != "unauth":
            names.append("COMPRESS=DEFLATE")
        names += ["ESEARCH", "SEARCHRES"]  # RFC 4731, RFC 5182 (esearch.py)
        names += ["SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT",
                  "THREAD=REFERENCES"]  # RFC 5256, 5957, 5267 (cmd_sort.py)
        names.append("QRESYNC")  # RFC 7162 §3.2 (qresync.py)
        return names

    def capability_line(self) -> bytes:
        return " ".join(self.capability_names()).encode("ascii")

    def listCapabilities(self) -> list[bytes]:
        """Twisted's name for the same list, kept consistent for code that asks it."""
        return [name.encode("ascii") for name in self.capability_names()]

    # --- input: framing.FrameHandler -------------------------------------------------------

    def literal_requested(self, frame: Frame, size: int, sync: bool) -> Any:
        literals = [s for s in frame if isinstance(s, Literal)]
        if len(literals) >= MAX_LITERALS:
            return bad("Too many literals in one command")
        try:
            head = tokenize(frame)
        except ImapError:  # an open list: "APPEND box UTF8 (~{n}" (RFC 6855 §4)
            head = [Atom(w.decode("ascii", "replace"))
                    for w in frame[0].split(b" ", 3)[:3]] if isinstance(frame[0], bytes) else []
        name = head[1].upper() if len(head) > 1 and isinstance(head[1], Atom) else ""
        if name == "APPEND" and self.state in ("auth", "select") and len(head) > 2:
            return self.append_literal_check(size, sum(s.size for s in literals))
        limit = LITERAL_LIMIT if self.state != "unauth" else PREAUTH_LITERAL_LIMIT
        if size + sum(s.size for s in literals) > limit:
            return bad(f"Literal too big for this command (limit {limit} octets)")
        return None

    def append_literal_check(self, size: int, before: int = 0) -> Any:
        """Overridden by the mailbox commands (size and quota before reading, RFC 7889)."""
        return None

    def command_refused(self, frame: Frame, error: ImapError) -> None:
        first = frame[0] if frame and isinstance(frame[0], bytes) else b""
        self.send_failure(self._tag_of(first), error)

    @staticmethod
    def _tag_of(first: bytes) -> bytes:
        tag = first.split(b" ", 1)[0]
        if not tag or any(b in _TAG_FORBIDDEN or b < 0x21 or b > 0x7E for b in tag):
            return b"*"
        return tag

    def command_received(self, frame: Frame) -> None:
        self.reader.pause()
        first = frame[0] if isinstance(frame[0], bytes) else b""
        tag = self._tag_of(first)
        try:
            tokens = tokenize(frame)
            if not tokens or tag == b"*":
                raise bad("Missing or invalid tag")
            if len(tokens) < 2 or not isinstance(tokens[1], Atom):
                raise bad("Missing command")
        except ImapError as error:
            self.send_failure(tag, error)
            self._done(frame)
            return
        name = tokens[1].upper()
        command = self.COMMANDS.get(name)
        if command is None:
            self.send_failure(tag, bad(f"Unknown command {name[:20]}"))
            self._done(frame)
            return
        if self.state not in command.states:
            self.send_failure(tag, bad(self._state_error()))
            self._done(frame)
            return
        self.busy = True
        self.setTimeout(None)
        d = Deferred.fromCoroutine(self._execute(tag, command, Args(tokens[2:], self.names_utf8)))
        d.addBoth(lambda _: self._done(frame))

    def _state_error(self) -> str:
        return {"unauth": "Log in first", "auth": "No mailbox selected",
                "select": "Not allowed in this state"}.get(self.state, "Not allowed now")

    async def _execute(self, tag: bytes, command: Command, args: Args) -> None:
        try:
            reply = await command.handler(self, tag, args)
            if self.selected is not None and command.sync is not None:
                for line in await self.selected.sync(command.sync != "noexpunge",
                                                     full=command.sync == "full"):
                    self.send_untagged(line)
            if reply.text is not None:
                self.send_tagged(tag, "OK", reply.text, reply.code)
        except Exception as exc:
            self._failed(tag, exc)

    def _failed(self, tag: bytes, exc: BaseException) -> None:
        """The one place where exceptions become replies."""
        if self.lost:
            return  # nobody to answer; a half-done command needs no report
        if isinstance(exc, ImapError):
            self.send_failure(tag, exc)
        elif isinstance(exc, MailboxGone):
            self.send_untagged(b"BYE Selected mailbox was deleted, have to disconnect")
            self.close()
        elif isinstance(exc, InvalidFlag):
            self.send_failure(tag, bad(str(exc)))
        elif isinstance(exc, (MailboxError, MessageError)):
            self.send_failure(tag, no(str(exc), exc.imap_code))
        elif isinstance(exc, AccountError):
            self.send_failure(tag, no("Account unavailable", "UNAVAILABLE"))
        elif isinstance(exc, RecursionError):
            # Client input too deep for a parser the limits missed: its fault, not a server
            # bug, and a traceback of a thousand lines per command would flood the log.
            log.warn("imap {sid} command from {ip} too deeply nested", sid=self.session_id,
                     ip=self.peer_ip)
            self.send_failure(tag, bad("Command nested too deeply"))
        else:
            log.failure("imap {sid} command failed for {ip}", sid=self.session_id,
                        ip=self.peer_ip)
            self.send_failure(tag, no("Internal server error", "SERVERBUG"))

    def send_failure(self, tag: bytes, error: ImapError) -> None:
        self.send_tagged(tag, error.status, error.text, error.code)

    def _done(self, frame: Frame) -> None:
        for segment in frame:
            if isinstance(segment, Literal):
                segment.discard()
        self.busy = False
        if self.lost or self.closing:
            return
        if self.shutdown_pending:
            self.send_untagged(b"BYE Server shutting down")
            self.close()
            return
        self.setTimeout(UNAUTH_TIMEOUT if self.state == "unauth" else AUTH_TIMEOUT)
        self._resume_input()

    def _resume_input(self) -> None:
        """Run what is buffered, then read from the socket again once the buffer is low."""
        self.reader.resume()
        if self._input_paused and self.reader.buffered < INPUT_HIGH_WATER // 2 \
                and not self.lost:
            self._input_paused = False
            self.transport.resumeProducing()

    def next_line(self) -> Deferred[bytes]:
        """The next raw line (a SASL response, IDLE's DONE) while a command runs."""
        waiter: Deferred[bytes] = Deferred()
        self._line_waiter = waiter

        def got(line: bytes) -> None:
            self.reader.take_lines(None)
            self.reader.pause()
            self._line_waiter = None
            waiter.callback(line)

        self.reader.take_lines(got)
        self._resume_input()
        return waiter

    # --- any state (RFC 3501 §6.1) ---------------------------------------------------------

    async def cmd_CAPABILITY(self, tag: bytes, args: Args) -> Reply:
        args.end()
        self.send_untagged(b"CAPABILITY " + self.capability_line())
        return Reply("CAPABILITY completed")

    async def cmd_NOOP(self, tag: bytes, args: Args) -> Reply:
        args.end()
        return Reply("NOOP completed")

    async def cmd_LOGOUT(self, tag: bytes, args: Args) -> Reply:
        args.end()
        self.end_reason = "logout"
        self.send_untagged(b"BYE Logging out")
        self.send_tagged(tag, "OK", "LOGOUT completed")
        self.close()
        return Reply(None)

    async def cmd_ID(self, tag: bytes, args: Args) -> Reply:
        """RFC 2971: the client's ID is not logged (it may identify a person's device)."""
        token = args.next("ID parameters")
        if not (isinstance(token, list) and len(token) % 2 == 0 and len(token) <= 60) and not (
                isinstance(token, Atom) and token.upper() == "NIL"):
            raise bad("ID takes NIL or a list of field/value pairs")
        args.end()
        self.send_untagged(b'ID ("name" "mailgosend")')
        return Reply("ID completed")

    def new_mail(self, batch: Any) -> None:
        """events.Events subscriber: what a commit changed for this user (its own changes
        are in its view already)."""
        if batch.origin is self or self.selected is None:
            return
        changes = batch.for_mailbox(self.selected.id)
        if changes:
            self.mailbox_changed(self.selected.id, changes)

    def mailbox_changed(self, mailbox_id: int, changes: Any) -> None:
        """The selected view takes note of changes from the feed (extended for IDLE)."""
        if self.selected is not None and self.selected.id == mailbox_id:
            self.selected.note_changes(changes)
