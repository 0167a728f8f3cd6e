"""The POP3 server protocol: session life, input framing, command dispatch, TLS and timeouts.

Commands run one at a time in arrival order (RFC 2449 §6.6 PIPELINING): while a command waits
for the database (a login, RETR, QUIT), later lines stay buffered and are executed after its
reply, so replies are never reordered.  twisted.mail.pop3 executes pipelined commands while a
login is still in flight ("-ERR not authenticated yet" for a correct USER/PASS/STAT burst).

States (RFC 1939 §3): AUTHORIZATION until a login succeeds, then TRANSACTION; QUIT in
TRANSACTION is the UPDATE state.  The handlers live in :mod:`mailgosend.pop3.authorization`
and :mod:`mailgosend.pop3.transaction`; errors become replies in :meth:`POP3Server._failed`
only.
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import TYPE_CHECKING, Any, Callable, Optional

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener, ITLSTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from mailgosend.netopts import no_delay
from mailgosend.pop3.authorization import AuthorizationCommands
from mailgosend.pop3.framing import TOO_LONG, Item, LineReader
from mailgosend.pop3.maildrop import Maildrop
from mailgosend.pop3.replies import SYS_TEMP, POP3Refusal, Reply, err, ok
from mailgosend.pop3.streaming import MessageSender
from mailgosend.pop3.transaction import TransactionCommands
from mailgosend.tls.context import tls_summary

if TYPE_CHECKING:
    from mailgosend.pop3.factory import POP3Factory

log = Logger()

AUTHORIZATION = "AUTHORIZATION"
TRANSACTION = "TRANSACTION"

# keyword -> states it is valid in.  APOP (no cleartext passwords are stored), LAST and RPOP
# (removed in RFC 1939) are not commands here.
_COMMANDS: dict[str, tuple[str, ...]] = {
    "CAPA": (AUTHORIZATION, TRANSACTION), "QUIT": (AUTHORIZATION, TRANSACTION),
    "STLS": (AUTHORIZATION,), "USER": (AUTHORIZATION,), "PASS": (AUTHORIZATION,),
    "AUTH": (AUTHORIZATION,),
    **{name: (TRANSACTION,) for name in
       ("STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP")},
}
_TRANSACTION_HANDLERS = {"QUIT", "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP"}
_WRONG_STATE = {AUTHORIZATION: "Log in first", TRANSACTION: "Already logged in"}
_INPUT_HIGH_WATER = 64 * 1024  # buffered input that pauses reading until commands catch up


def is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


@implementer(IHandshakeListener)
class POP3Server(Protocol, TimeoutMixin):
    """One POP3 connection, on a plain (STLS) or implicit-TLS listener."""

    # A TCP or TLS transport: ITransport plus ITLSTransport/IProducer/abortConnection.
    transport: Any

    def __init__(self, factory: POP3Factory) -> None:
        self.factory = factory
        self.limits = factory.limits
        self.session_id = secrets.token_hex(4)  # correlates the log lines of one session
        self.peer_ip = ""
        self.state = AUTHORIZATION
        self.tls_active = factory.implicit_tls
        self.maildrop: Optional[Maildrop] = None
        self.sender: Optional[MessageSender] = None
        self._logout: Optional[Callable[[], None]] = None
        self._lines = LineReader(self.limits.max_line_length)
        self._busy = False
        self._processing = False
        self._input_paused = False
        self._closing = False
        self._disconnected = False
        self._shutdown_requested = False
        self._abort_call: Optional[IDelayedCall] = None
        self.authorization = AuthorizationCommands(self)
        self.transaction = TransactionCommands(self)

    # -- connection life --------------------------------------------------------------------

    def callLater(self, period: float, func: Callable[[], Any]) -> IDelayedCall:
        """TimeoutMixin hook: timeouts run on the injected clock, so tests drive them."""
        return self.factory.clock.callLater(period, func)

    def connectionMade(self) -> None:
        no_delay(self.transport)
        self.peer_ip = str(getattr(self.transport.getPeer(), "host", ""))
        refusal = self.factory.register(self)
        if refusal is None and self.factory.bans.is_banned(self.peer_ip):
            # Before any password work, as every listener does (auth/bans.py).
            refusal = err("Too many failed logins from your address; try again later",
                          SYS_TEMP)
        if refusal is not None:
            self.send(refusal)
            self._close()
            return
        log.info("pop3 {sid} connect from {ip}", sid=self.session_id, ip=self.peer_ip)
        self.setTimeout(self.limits.idle_timeout)
        # RFC 1939 §4.  No APOP timestamp: that would advertise APOP (RFC 1939 §7).
        self.send(ok(f"{self.factory.hostname} POP3 server ready"))

    def handshakeCompleted(self) -> None:
        log.info("pop3 {sid} TLS {tls}", sid=self.session_id, tls=tls_summary(self.transport))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """RFC 1939 §6: a session that ends without QUIT applies none of its DELE marks."""
        self._disconnected = True
        self.setTimeout(None)
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        if self.sender is not None:
            self.sender.stopProducing()
        self.factory.unregister(self)
        logout, self._logout = self._logout, None
        if logout is not None:
            logout()
        if self.peer_ip:
            log.info("pop3 {sid} disconnect", sid=self.session_id)

    def timeoutConnection(self) -> None:
        """RFC 1939 §3 autologout: close without entering the UPDATE state."""
        log.info("pop3 {sid} idle timeout", sid=self.session_id)
        if self.sender is not None:  # the client stopped reading a message
            self._closing = True
            self.transport.abortConnection()
            return
        self.send_and_close(err("Autologout: idle for too long"))

    def server_shutting_down(self) -> None:
        """``mailgosend.listeners`` drain hook: close now, or after the command in progress."""
        if self._busy:
            self._shutdown_requested = True
        else:
            self.send_and_close(err("Server shutting down", SYS_TEMP))

    # -- TLS and login policy ---------------------------------------------------------------

    @property
    def can_start_tls(self) -> bool:
        return (self.factory.tls is not None and not self.tls_active
                and ITLSTransport.providedBy(self.transport))

    @property
    def login_permitted(self) -> bool:
        """Passwords only under TLS (RFC 2595 §4, RFC 8314), or from loopback if allowed."""
        return self.tls_active or (self.factory.allow_plaintext_loopback
                                   and is_loopback(self.peer_ip))

    def start_tls(self) -> None:
        """RFC 2595 §4, after "+OK" went out in clear: drop what the client pipelined behind
        STLS (it must not run inside the TLS session) and everything learnt before TLS."""
        self._lines.clear()
        self.authorization.forget_user()
        self.transport.startTLS(self.factory.tls)
        self.tls_active = True

    def logged_in(self, maildrop: Maildrop, logout: Callable[[], None]) -> None:
        self.maildrop, self._logout = maildrop, logout
        self.state = TRANSACTION
        log.info("pop3 {sid} login {user}", sid=self.session_id, user=maildrop.email)

    # -- output -----------------------------------------------------------------------------

    def send(self, reply: Reply) -> None:
        if not self.ended:
            self.transport.write(reply.encode())

    def send_lines(self, reply: Reply, lines: list[str]) -> None:
        """A multi-line response (RFC 1939 §3) of lines that never start with "."."""
        if not self.ended:
            self.transport.writeSequence(
                [reply.encode(), *(f"{line}\r\n".encode("ascii") for line in lines), b".\r\n"])

    def send_raw(self, data: bytes) -> None:
        if not self.ended:
            self.transport.write(data)

    @property
    def ended(self) -> bool:
        """Closing or closed: nothing more is sent and no login may complete."""
        return self._closing or self._disconnected

    def _close(self) -> None:
        self._closing = True
        self._lines.clear()
        self.setTimeout(None)
        self.transport.loseConnection()
        # Over TLS, loseConnection waits for the client's close_notify; a client that never
        # sends it must not hold the connection open for ever.
        self._abort_call = self.factory.clock.callLater(self.limits.close_grace,
                                                        self.transport.abortConnection)

    def send_and_close(self, reply: Reply) -> None:
        if self._closing or self._disconnected:
            return
        self.send(reply)
        self._close()

    # -- input ------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing or self._disconnected:
            return
        self._lines.feed(data)
        self._process()

    def _process(self) -> None:
        """Execute buffered lines one at a time until a command is waiting for a Deferred."""
        if self._processing:
            return  # a Deferred fired synchronously inside a handler; the loop goes on
        self._processing = True
        try:
            while not (self._busy or self._closing or self._disconnected):
                item = self._lines.next_line()
                if item is None:
                    break
                self.resetTimeout()  # complete lines only: a trickle of bytes is idle
                self._execute(item)
        finally:
            self._processing = False
        self._flow_control()

    def _flow_control(self) -> None:
        if self._closing or self._disconnected:
            return
        too_much = self._lines.buffered > _INPUT_HIGH_WATER
        if too_much != self._input_paused:
            self._input_paused = too_much
            (self.transport.pauseProducing if too_much else self.transport.resumeProducing)()

    def _execute(self, item: Item) -> None:
        try:
            if item is TOO_LONG:
                self.authorization.cancel_sasl()
                raise POP3Refusal("Line too long")
            assert isinstance(item, bytes)
            result: Optional[Reply | Deferred[Optional[Reply]]]
            if self.authorization.sasl_pending:
                result = self.authorization.sasl_response(item)
            else:
                result = self._dispatch(item)
        except Exception:
            self._failed(Failure())
            return
        if isinstance(result, Deferred):
            self._busy = True
            result.addCallbacks(self._answer, self._failed).addBoth(self._idle)
        elif result is not None:
            self._answer(result)

    def _dispatch(self, line: bytes) -> Optional[Reply | Deferred[Optional[Reply]]]:
        keyword, _, arguments = line.partition(b" ")
        name = keyword.decode("ascii", "replace").upper()
        states = _COMMANDS.get(name)
        if states is None:
            raise POP3Refusal("Unknown command")  # never echo what the client sent
        if self.state not in states:
            raise POP3Refusal(_WRONG_STATE[self.state])
        owner = self.transaction if name in _TRANSACTION_HANDLERS else self.authorization
        handler: Callable[[bytes], Any] = getattr(owner, f"cmd_{name}")
        return handler(arguments)

    def _answer(self, reply: Optional[Reply]) -> None:
        if reply is not None:
            self.send(reply)

    def _failed(self, failure: Failure) -> None:
        """The one mapping from an error to what the client sees."""
        if isinstance(failure.value, POP3Refusal):
            self.send(failure.value.reply)
            if failure.value.close:
                self._close()
            return
        if failure.check(ConnectionDone) and self._disconnected:
            return
        log.failure("pop3 {sid} command failed", failure, sid=self.session_id)
        if self.sender is not None and self.sender.started:
            # Inside a multi-line response: an -ERR would read as message text.
            self._closing = True
            self.transport.abortConnection()
            return
        self.send(err("Temporary server error; try again later", SYS_TEMP))

    def _idle(self, _: object) -> None:
        self._busy = False
        self.sender = None
        if self._shutdown_requested:
            self.send_and_close(err("Server shutting down", SYS_TEMP))
        self._process()
