"""The wire half of the outbound SMTP client: lines out, replies in, timers, flow control.

:class:`SMTPClientProtocol` knows no SMTP semantics beyond three rules that
must act before any other code runs:

- replies are matched to commands in the order sent (RFC 2920 §3.1), and
  every wait has its own timeout (RFC 5321 §4.5.3.2), armed for the oldest
  command only, as a pipelining client sees the replies one after another;
- a 421 reply ends the session, whatever it answers (RFC 5321 §3.8);
- on the 220 to STARTTLS, whatever else the peer sent in the same read is
  discarded before TLS starts (RFC 3207 §4.2 and §6; CVE-2011-0411 was the
  server side of this injection).

The session logic (``client``) awaits the Deferreds it hands out; a lost
session fails every one of them with :class:`SessionLost`, which carries a
4xx :class:`Reply` saying why, fit for the delivery log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import (
    IDelayedCall,
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from mailgosend.delivery.reply import Reply, ReplyError, ReplyParser, local_reply

CONNECTION_LOST = "4.4.2"  # RFC 3463: bad connection
PROTOCOL_ERROR = "4.5.0"   # RFC 3463: other or undefined protocol status


@dataclass(frozen=True)
class Timeouts:
    """Seconds; defaults are RFC 5321 §4.5.3.2 (and Postfix's for what it leaves open)."""

    connect: float = 30.0
    greeting: float = 300.0    # §4.5.3.2.1
    helo: float = 300.0
    starttls: float = 300.0
    auth: float = 300.0
    mail: float = 300.0        # §4.5.3.2.2
    rcpt: float = 300.0        # §4.5.3.2.3
    data_init: float = 120.0   # §4.5.3.2.4
    data_block: float = 180.0  # §4.5.3.2.5
    data_done: float = 600.0   # §4.5.3.2.6
    rset: float = 20.0         # Postfix smtp_rset_timeout
    quit: float = 20.0


class SessionLost(Exception):
    """The connection is gone or unusable; ``reply`` (4xx, or the peer's 421) says why."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass
class _Waiter:
    command: str          # the verb only: AUTH lines carry credentials and are never named
    timeout: float
    deferred: defer.Deferred[Reply]
    tls: IOpenSSLClientConnectionCreator | None = None


@implementer(IPushProducer)
class _WriteGate:
    """Registered with the transport while DATA streams: it pauses us when its buffer is full."""

    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0
        self._waiting: defer.Deferred[None] | None = None

    def pauseProducing(self) -> None:
        if not self.paused:
            self.pauses += 1
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def stopProducing(self) -> None:
        self.paused = True  # the connection is going; connectionLost fails the waiter

    def wait(self) -> defer.Deferred[None]:
        if not self.paused:
            return defer.succeed(None)
        if self._waiting is None:
            self._waiting = defer.Deferred()
        return self._waiting

    def fail(self, reply: Reply) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(SessionLost(reply))


@implementer(IHandshakeListener)
class SMTPClientProtocol(LineReceiver):
    delimiter = b"\n"   # CRLF expected; a bare LF ending is tolerated and the CR stripped
    MAX_LENGTH = 4096   # RFC 5321 §4.5.3.1.5 says 512; some servers are longer, none this long

    def __init__(self, clock: IReactorTime, greeting_timeout: float) -> None:
        self._clock = clock
        self._greeting_timeout = greeting_timeout
        self._parser = ReplyParser()
        self._waiters: deque[_Waiter] = deque()
        self._timer: IDelayedCall | None = None
        self._close_timer: IDelayedCall | None = None
        self._closed: list[defer.Deferred[None]] = []
        self._gate = _WriteGate()
        self.greeting: defer.Deferred[Reply] = defer.Deferred()
        self.lost: Reply | None = None
        self.disconnected = False
        self.tls_started = False
        self.tls_done = False
        self.discarded_after_starttls = 0
        self.on_handshake: Callable[[], None] | None = None

    @property
    def _transport(self) -> Any:
        """The TCP transport (ITCPTransport, ITLSTransport, IConsumer), or a test double."""
        return self.transport

    # --- connection events ---------------------------------------------------------
    def connectionMade(self) -> None:
        waiter = _Waiter("greeting", self._greeting_timeout, self.greeting)
        self._waiters.append(waiter)
        self._arm()

    def handshakeCompleted(self) -> None:
        self.tls_done = True
        if self.on_handshake is not None:
            self.on_handshake()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.disconnected = True
        if self.lost is None:
            why = reason.getErrorMessage() or reason.type.__name__
            if self.tls_started and not self.tls_done:
                self._fail(local_reply(421, "4.7.0", f"TLS handshake failed: {why}"), abort=False)
            elif self._waiters:
                self._fail(local_reply(421, CONNECTION_LOST, "connection lost waiting for reply "
                                       f"to {self._waiters[0].command}: {why}"), abort=False)
            else:
                self._fail(local_reply(421, CONNECTION_LOST, f"connection lost: {why}"),
                           abort=False)
        self._cancel_timer()
        if self._close_timer is not None and self._close_timer.active():
            self._close_timer.cancel()
        closed, self._closed = self._closed, []
        for d in closed:
            d.callback(None)

    # --- replies ---------------------------------------------------------------------
    def lineReceived(self, line: bytes) -> None:
        if self.lost is not None:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            reply = self._parser.feed(line)
        except ReplyError as error:
            self._fail(local_reply(421, PROTOCOL_ERROR, f"protocol error: {error}"))
            return
        if reply is not None:
            self._dispatch(reply)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._fail(local_reply(421, PROTOCOL_ERROR, "protocol error: reply line too long"))

    def _dispatch(self, reply: Reply) -> None:
        if not self._waiters:
            if reply.code == 421:
                self._fail(reply)  # a server shutting down may say so unasked (RFC 5321 §3.8)
            else:
                self._fail(local_reply(421, PROTOCOL_ERROR,
                                       f"protocol error: unexpected reply {reply}"))
            return
        if reply.code == 421:
            self._fail(reply)
            return
        waiter = self._waiters.popleft()
        self._cancel_timer()
        if waiter.tls is not None and reply.code == 220:
            # RFC 3207 §4.2: nothing received before the handshake may be used after it.
            self.discarded_after_starttls = len(self.clearLineBuffer())
            self._parser.reset()
            self.tls_started = True
            self._transport.startTLS(waiter.tls)
        self._arm()
        waiter.deferred.callback(reply)

    # --- commands ----------------------------------------------------------------------
    def command(self, line: str, name: str, timeout: float,
                tls: IOpenSSLClientConnectionCreator | None = None) -> defer.Deferred[Reply]:
        """Send one command line; the Deferred fires with its reply."""
        return self.commands([(line, name, timeout)], tls)[0]

    def commands(self, items: Sequence[tuple[str, str, float]],
                 tls: IOpenSSLClientConnectionCreator | None = None
                 ) -> list[defer.Deferred[Reply]]:
        """Send ``(line, name, timeout)`` commands in one write (a pipelined group, RFC 2920)."""
        if self.lost is not None:
            return [defer.fail(SessionLost(self.lost)) for _ in items]
        deferreds = []
        for index, (_, name, timeout) in enumerate(items):
            d: defer.Deferred[Reply] = defer.Deferred()
            last = index == len(items) - 1
            self._waiters.append(_Waiter(name, timeout, d, tls if last else None))
            deferreds.append(d)
        self._transport.write(b"".join(line.encode("utf-8") + b"\r\n" for line, _, _ in items))
        self._arm()
        return deferreds

    def expect(self, name: str, timeout: float) -> defer.Deferred[Reply]:
        """Wait for a reply to something already written (the final dot)."""
        if self.lost is not None:
            return defer.fail(SessionLost(self.lost))
        d: defer.Deferred[Reply] = defer.Deferred()
        self._waiters.append(_Waiter(name, timeout, d))
        self._arm()
        return d

    # --- message data --------------------------------------------------------------------
    def start_data(self) -> None:
        self._transport.registerProducer(self._gate, True)

    def write_data(self, data: bytes) -> None:
        if self.lost is None and data:
            self._transport.write(data)

    @property
    def write_pauses(self) -> int:
        """How often the transport asked us to stop writing (flow control at work)."""
        return self._gate.pauses

    def drained(self, timeout: float) -> defer.Deferred[None]:
        """Fires when the transport wants more; RFC 5321 §4.5.3.2.5 data block timeout."""
        if self.lost is not None:
            return defer.fail(SessionLost(self.lost))
        d = self._gate.wait()
        if d.called:
            return d
        timer = self._clock.callLater(timeout, self._fail, local_reply(
            421, CONNECTION_LOST, "timeout sending message data"))

        def settled(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result
        return d.addBoth(settled)

    def end_data(self) -> None:
        if not self.disconnected:
            self._transport.unregisterProducer()

    # --- ending ----------------------------------------------------------------------------
    def fail(self, reply: Reply) -> None:
        """End the session now (a local decision: unverified certificate, unreadable message)."""
        self._fail(reply)

    def close(self, quit_timeout: float) -> defer.Deferred[None]:
        """QUIT if the session is usable, then close; fires once the connection is gone."""
        d: defer.Deferred[None] = defer.Deferred()
        if self.disconnected:
            d.callback(None)
            return d
        self._closed.append(d)
        if self._close_timer is None:
            self._close_timer = self._clock.callLater(2 * quit_timeout, self._abort)
            if self.lost is None:
                self.command("QUIT", "QUIT", quit_timeout).addBoth(self._lose)
            else:
                self._abort()
        return d

    def _lose(self, result: object) -> None:
        if not self.disconnected:
            self._transport.loseConnection()

    def _abort(self) -> None:
        if not self.disconnected:
            self._transport.abortConnection()

    def _fail(self, reply: Reply, abort: bool = True) -> None:
        if self.lost is not None:
            return
        self.lost = reply
        self._cancel_timer()
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            waiter.deferred.errback(SessionLost(reply))
        self._gate.fail(reply)
        if abort:
            self._abort()

    # --- timers ------------------------------------------------------------------------------
    def _arm(self) -> None:
        if self._timer is None and self._waiters:
            self._timer = self._clock.callLater(self._waiters[0].timeout, self._timed_out)

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _timed_out(self) -> None:
        self._timer = None
        if self._waiters:
            name = self._waiters[0].command
            self._fail(local_reply(421, CONNECTION_LOST, f"timeout waiting for reply to {name}"))
