"""The ESMTP server protocol: input framing, reply ordering, DATA streaming, TLS, timeouts.

A subclass of ``twisted.mail.smtp.ESMTP`` that keeps its ``do_<CMD>``/``ext_<CMD>`` naming,
``extensions()``/``listExtensions()`` and ``TimeoutMixin``, and replaces its input path: the stock
``LineOnlyReceiver`` framing cannot switch to a raw DATA mode, executes pipelined lines while a
Deferred is outstanding (twisted/twisted#8126), keeps executing lines after STARTTLS
(CVE-2011-0411 class) and drops to command mode on a 16 KB body line (library notes §1).

Here every input octet goes through :meth:`dataReceived` into one buffer, and one command is
executed at a time: while the backend has not answered, the rest stays buffered and the
transport is paused, so replies always come in command order (RFC 2920 §3.1).

The command handlers live in :mod:`mailgosend.smtp.commands`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import connectionDone
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener, ITLSTransport
from twisted.logger import Logger
from twisted.mail import smtp as twisted_smtp
from twisted.python.failure import Failure
from zope.interface import implementer

from mailgosend.netopts import no_delay
from mailgosend.smtp.auth import Mechanism
from mailgosend.smtp.commands import CommandsMixin
from mailgosend.smtp.framing import LineBuffer
from mailgosend.smtp.interfaces import IMessageSink
from mailgosend.smtp.message import IncomingMessage
from mailgosend.smtp.replies import (
    LOCAL_ERROR,
    SMTPReply,
    default_status,
    format_reply,
    printable,
)
from mailgosend.smtp.session import SMTPSession
from mailgosend.tls.context import tls_summary

if TYPE_CHECKING:
    from mailgosend.smtp.factory import SMTPServerFactory

log = Logger()

CLOSE_GRACE_SECONDS = 30.0  # after our last reply, how long a TLS close may take

COMMAND = "command"
AUTH = "auth"
DATA = "data"

# Commands whose argument (an address and ESMTP parameters) is logged with a refusal; any
# other argument may hold credentials (AUTH) or garbage and is never logged.
LOGGED_ARGUMENTS = frozenset({"MAIL", "RCPT"})

# Commands that move no mail (Postfix's junk commands, plus HELP); a failed command of any
# kind counts as junk too (SMTPLimits.max_junk_commands).
JUNK_COMMANDS = frozenset({"NOOP", "RSET", "VRFY", "HELP"})


@implementer(IHandshakeListener)
class SMTPServerProtocol(CommandsMixin, twisted_smtp.ESMTP):
    """One SMTP connection on an inbound, submission or smtps listener."""

    noisy = False  # never let the base class log addresses or message details

    def __init__(self, factory: SMTPServerFactory) -> None:
        twisted_smtp.ESMTP.__init__(self, chal={}, contextFactory=factory.tls)
        self.factory = factory
        self.host = factory.hostname.encode("ascii")
        self.limits = factory.limits
        self.backend = factory.backend
        self._clock = factory.clock
        self.session: SMTPSession | None = None
        self._input = LineBuffer()
        self._state = COMMAND
        self._busy = False  # a reply is outstanding (backend Deferred)
        self._paused = False
        self._processing = False
        self._closing = False
        self._abort_call: Any = None
        self._disconnected = False
        self._refused = False  # greeting was 554: only QUIT is served (RFC 5321 §3.1)
        self._shutdown_requested = False
        self._message: IncomingMessage | None = None
        self._junk = 0  # junk commands since the last accepted message
        self._junk_command = False  # the command being answered is one of JUNK_COMMANDS
        self._command = "CONNECT"  # what the current reply answers, for the log
        self._lost_waiters: list[Deferred[None]] = []
        self.sasl: Mechanism | None = None

    # -- connection life ------------------------------------------------------------------

    def callLater(self, period: float, func: Callable[[], Any]) -> IDelayedCall:
        """TimeoutMixin hook: timeouts run on the injected clock, so tests drive them."""
        return self._clock.callLater(period, func)

    def connectionMade(self) -> None:
        no_delay(self.transport)
        peer = self.transport.getPeer()
        local = self.transport.getHost()
        listener = self.factory.listener
        self.session = SMTPSession(
            listener=listener,
            peer_ip=getattr(peer, "host", str(peer)),
            peer_port=getattr(peer, "port", 0),
            local_ip=getattr(local, "host", str(local)),
            local_port=getattr(local, "port", 0),
            tls=listener == "smtps",
        )
        self.canStartTLS = self.factory.tls is not None and ITLSTransport.providedBy(self.transport)
        refusal = self.factory.register(self)
        if refusal is not None:
            self._send(refusal)
            self._close()
            return
        log.info(
            "smtp {sid} connect from {ip} on {listener}",
            sid=self.session.session_id,
            ip=self.session.peer_ip,
            listener=listener,
        )
        self.setTimeout(self.limits.command_timeout)
        self._wait_for(self._call(self.backend.connection_made, self.session), self._greeted)

    def _greeted(self, result: object) -> SMTPReply:
        if isinstance(result, Failure):
            reply = self._failure_reply(result, "connection_made")
            if reply.code == 554:
                self._refused = True
            return reply
        # RFC 5321 §4.3.1 / RFC 2034 §3: the greeting carries no enhanced code; no version.
        return SMTPReply(220, None, f"{self.factory.hostname} ESMTP")

    def handshakeCompleted(self) -> None:
        """IHandshakeListener: record protocol and cipher for Received headers and logs."""
        if self.session is None:
            return
        self.session.tls_summary = tls_summary(self.transport)
        log.info("smtp {sid} TLS {tls}", sid=self.session.session_id, tls=self.session.tls_summary)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._disconnected = True
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self.setTimeout(None)
        self._abort_message()
        self.factory.unregister(self)
        if self.session is not None:
            log.info(
                "smtp {sid} disconnect after {n} commands",
                sid=self.session.session_id,
                n=self.session.commands,
            )
        waiters, self._lost_waiters = self._lost_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def shutdown(self) -> Deferred[None]:
        """Close for server shutdown with ``421 4.3.2``; fires once the connection is gone.

        An idle session is closed now. A session with a reply outstanding, a message in DATA
        or an AUTH exchange under way is closed right after that finishes, so a message the
        client is sending can still be stored and acknowledged (DESIGN §3) within the
        listener's grace period.
        """
        if self._disconnected:
            return succeed(None)
        if self._busy or self._state != COMMAND:
            self._shutdown_requested = True
        else:
            self._send_and_close(self._shutting_down())
        lost: Deferred[None] = Deferred()
        self._lost_waiters.append(lost)
        return lost

    def server_shutting_down(self) -> None:
        """``mailgosend.listeners`` drain hook: see :meth:`shutdown`."""
        self.shutdown()

    def _shutting_down(self) -> SMTPReply:
        return SMTPReply(421, "4.3.2", f"{self.factory.hostname} Service shutting down")

    def timeoutConnection(self) -> None:
        """RFC 5321 §4.5.3.2.7: a stalled client gets 421 and is dropped."""
        self._abort_message()
        text = f"{self.factory.hostname} Error: timeout exceeded"
        self._send_and_close(SMTPReply(421, "4.4.2", text))

    def _close(self) -> None:
        self._closing = True
        self._input.clear()
        self.setTimeout(None)
        self.transport.loseConnection()
        # Over TLS loseConnection waits for the peer's close_notify; a peer that never
        # sends it must not hold the connection (and a connection slot) forever.
        if self._abort_call is None:
            self._abort_call = self.factory.clock.callLater(CLOSE_GRACE_SECONDS,
                                                            self.transport.abortConnection)

    def _send_and_close(self, reply: SMTPReply) -> None:
        if self._closing or self._disconnected:
            return
        self._send(reply)
        self._close()

    def _abort_message(self) -> None:
        message, self._message = self._message, None
        if message is not None:
            message.abort()
        if self._state == DATA:
            self._state = COMMAND

    # -- replies ----------------------------------------------------------------------------

    def _send(self, reply: SMTPReply) -> None:
        if not self._disconnected:
            self.transport.write(format_reply(reply))

    def sendCode(self, code: int, message: bytes = b"") -> None:
        """Base-class hook, kept so any inherited path still gets an enhanced code (RFC 2034)."""
        text = message.decode("utf-8", "replace")
        first, _, rest = text.partition(" ")
        status = default_status(code)
        if first[:1] == str(code)[:1] and first.count(".") == 2:
            status, text = first, rest
        self._send(SMTPReply(code, status, text))

    def reply(self, reply: SMTPReply) -> None:
        """Answer the current command (handlers call this or raise SMTPReply).

        421 always closes (RFC 5321 §3.8). During shutdown the session ends after the first
        final (non-3xx) reply.
        """
        if reply.code >= 400:
            self._log_refusal(reply)
            self.factory.counters.refusal(self._command, reply.status or "")
        if reply.code == 421:
            self._send_and_close(reply)
            return
        if reply.code >= 400 or (self._junk_command and reply.code < 300):
            self._junk += 1
            if self._junk > self.limits.max_junk_commands:
                text = f"{self.factory.hostname} Error: too many commands"
                self._send_and_close(SMTPReply(421, "4.7.0", text))
                return
        self._send(reply)
        if self._shutdown_requested and not 300 <= reply.code < 400:
            self._send_and_close(self._shutting_down())

    def _log_refusal(self, reply: SMTPReply) -> None:
        """One line per refused command: what was refused and with which reply, as an
        operator greps for it (Postfix's "NOQUEUE: reject: RCPT from ..."); never AUTH
        data or message content."""
        session = self.session
        log.info("smtp {sid} {ip} refused {command}: {code} {status} {text}",
                 sid=session.session_id if session else "-",
                 ip=session.peer_ip if session else "-", command=self._command,
                 code=reply.code, status=reply.status or "", text=printable(reply.text))

    # -- waiting for the backend ------------------------------------------------------------

    @staticmethod
    def _call(func: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Call a backend method; exceptions and plain values become a Deferred."""
        try:
            result = func(*args)
        except Exception:
            return fail(Failure())
        if isinstance(result, Deferred):
            return result
        return succeed(result)

    def _wait_for(self, d: Deferred[Any], handle: Callable[[object], SMTPReply]) -> None:
        """Hold input until ``d`` fires; ``handle(result or Failure)`` makes the reply.

        This is the RFC 2920 ordering: nothing after this command is executed before its
        reply is written. The transport is paused only if the answer is not immediate.
        """
        self._busy = True
        d.addBoth(self._settle, handle)
        if self._busy and not self._disconnected:
            self._paused = True
            self.setTimeout(None)  # the client is waiting for us, not the other way round
            self.transport.pauseProducing()

    def _settle(self, result: object, handle: Callable[[object], SMTPReply]) -> None:
        try:
            reply = handle(result)
        except Exception:
            log.failure("smtp reply handler failed")
            reply = LOCAL_ERROR
        if self._disconnected or self._closing:
            return
        self._busy = False
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
            self.setTimeout(self._current_timeout())
        self.reply(reply)
        self._process()

    def _failure_reply(self, failure: Failure, what: str) -> SMTPReply:
        """The one mapping from a backend failure to a reply: SMTPReply as is, else 451."""
        if isinstance(failure.value, SMTPReply):
            return failure.value
        # Only the type: exception text may hold credentials or addresses.
        log.error(
            "smtp {sid} backend {what} failed: {exc}",
            sid=self.session.session_id if self.session else "-",
            what=what,
            exc=failure.type.__name__ if failure.type else "?",
        )
        return LOCAL_ERROR

    def _current_timeout(self) -> float:
        return self.limits.data_timeout if self._state == DATA else self.limits.command_timeout

    # -- input framing ----------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing or self._disconnected:
            return
        self.resetTimeout()
        if self._state == DATA and not (self._input or self._busy or self._processing):
            # The common case inside a message: scan the chunk as received, no copy.
            self._processing = True
            try:
                self._data_received(data)
            finally:
                self._processing = False
        else:
            self._input.append(data)
        self._process()

    def _process(self) -> None:
        """Execute buffered input, one command at a time, until a reply is outstanding."""
        if self._processing:
            return  # a Deferred fired synchronously inside a handler; the loop below goes on
        self._processing = True
        try:
            while self._input and not (self._busy or self._closing or self._disconnected):
                if self._state == DATA:
                    self._data_received(self._input.take_all())
                    continue
                line = self._input.next_line(in_auth=self._state == AUTH)
                if line is None:
                    break
                self._line_received(line)
        finally:
            self._processing = False

    def _line_received(self, line: bytes | SMTPReply) -> None:
        assert self.session is not None
        if self._state == COMMAND:
            self.session.commands += 1
            self._junk_command = False
        if isinstance(line, SMTPReply):
            self._command = "(malformed line)"
            self._end_auth()  # a malformed line also ends an AUTH exchange
            self.reply(line)
        elif self._state == AUTH:
            self.auth_line(line)
        else:
            self._dispatch(line)

    def _dispatch(self, content: bytes) -> None:
        text = content.decode("utf-8", "surrogateescape").strip(" \t")
        verb, _, argument = text.partition(" ")
        argument = argument.strip(" \t")
        self._junk_command = verb.upper() in JUNK_COMMANDS
        name = verb.upper() if verb.isascii() and verb.isalpha() else "?"
        self._command = (f"{name} {printable(argument)}" if name in LOGGED_ARGUMENTS
                         else name[:16])
        if self._refused and verb.upper() != "QUIT":
            self.reply(SMTPReply(503, "5.5.1", "Error: no SMTP service here; QUIT"))
            return
        method = self.lookupMethod(verb)
        try:
            method(argument)
        except SMTPReply as reply:
            self.reply(reply)
        except Exception:
            log.failure("smtp command handler failed")
            self.reply(LOCAL_ERROR)

    # -- DATA -------------------------------------------------------------------------------

    def start_data(self, sink: IMessageSink) -> None:
        """Switch to raw mode after ``354`` (called by ``do_DATA``)."""
        self._message = IncomingMessage(sink, self.limits.max_message_size,
                                        self.limits.max_header_size)
        self._state = DATA
        self.setTimeout(self.limits.data_timeout)

    def _data_received(self, data: bytes) -> None:
        assert self._message is not None
        rest = self._message.receive(data)
        if rest is not None:
            self._input.push_front(rest)  # the next pipelined command
            self._end_of_data()

    def _end_of_data(self) -> None:
        session, message = self.session, self._message
        assert session is not None and message is not None
        self._message = None
        self._state = COMMAND
        self.setTimeout(self.limits.command_timeout)
        refusal = message.verdict(session)
        if refusal is not None:
            message.abort()
            session.reset_transaction()
            self.reply(refusal)
            return
        session.body_8bit = message.eight_bit
        size = message.size
        self._wait_for(self._call(message.sink.finish), lambda result: self._stored(result, size))

    def _stored(self, result: object, size: int) -> SMTPReply:
        assert self.session is not None
        session = self.session
        if isinstance(result, Failure):
            reply = self._failure_reply(result, "finish")
        elif isinstance(result, SMTPReply):
            reply = result
            if reply.code == 250:
                self._junk = 0  # as Postfix: the junk count restarts with each delivery
            log.info(
                "smtp {sid} message {tid} from=<{sender}> size={size} rcpts={n}: {code} "
                "{text}",
                sid=session.session_id,
                tid=session.transaction_id,
                sender=printable(session.mail_from or ""),
                size=size,
                n=len(session.recipients),
                code=reply.code,
                text=printable(reply.text),
            )
        else:
            log.error("smtp message sink finish() returned {t}", t=type(result).__name__)
            reply = LOCAL_ERROR
        session.reset_transaction()  # RFC 5321 §4.1.1.4: the transaction ends with the reply
        return reply

    # -- AUTH exchange state (the exchange itself is in commands) ---------------------------

    def begin_auth(self) -> None:
        self._state = AUTH

    def end_auth(self) -> None:
        self._end_auth()

    def _end_auth(self) -> None:
        if self._state == AUTH:
            self._state = COMMAND
        self.sasl = None

    def start_tls(self) -> None:
        """RFC 3207 §4.2: start TLS and forget everything the client sent or did in plaintext.

        Input already buffered behind STARTTLS arrived in plaintext: it is thrown away, never
        executed inside TLS (CVE-2011-0411 class). The base class only cleared the framing
        buffer, not the lines it had already split (library notes §1).
        """
        assert self.session is not None
        self._input.clear()
        self.transport.startTLS(self.factory.tls)
        self.session.tls = True
        self.session.reset_after_tls()
