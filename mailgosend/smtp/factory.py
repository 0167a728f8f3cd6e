"""The listener side: limits, connection accounting and the protocol factory.

One :class:`SMTPServerFactory` per listener (inbound on 25, submission on 587, smtps on 465).
It is a ``twisted.mail.smtp.SMTPFactory`` so it plugs into the usual endpoints; the smtps
listener must be served over TLS, e.g. ``SSL4ServerEndpoint(reactor, 465, tls)`` or
:meth:`SMTPServerFactory.smtps_factory`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Collection

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.mail import smtp as twisted_smtp
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from mailgosend.counters import NULL as NULL_COUNTERS
from mailgosend.connlimit import ConnectionLimiter
from mailgosend.listeners import IDrainable
from mailgosend.smtp.interfaces import ISMTPBackend
from mailgosend.smtp.replies import SMTPReply
from mailgosend.smtp.session import LISTENER_KINDS, ListenerKind

if TYPE_CHECKING:
    from mailgosend.smtp.protocol import SMTPServerProtocol


@dataclass(frozen=True)
class SMTPLimits:
    """Resource limits of one listener. Defaults follow RFC 5321 §4.5.3 and Postfix."""

    max_message_size: int = 25 * 1024 * 1024
    max_header_size: int = 100 * 1024  # Postfix's header_size_limit
    max_recipients: int = 100  # RFC 5321 §4.5.3.1.8: at least 100 must be accepted
    command_timeout: float = 300.0  # RFC 5321 §4.5.3.2.7: server waits 5 min for a command
    data_timeout: float = 600.0  # between DATA chunks; RFC 5321 §4.5.3.2.5-6 client side
    # Junk commands (NOOP, RSET, VRFY, HELP and every command that failed) allowed between
    # two accepted messages, as Postfix's smtpd_junk_command_limit; real transactions are
    # never counted, so one session may carry any number of messages.
    max_junk_commands: int = 100
    max_connections: int = 1000
    max_connections_per_ip: int = 20
    max_auth_failures: int = 3

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"SMTP limit {name} must be positive, not {value!r}")


@implementer(IDrainable)
class SMTPServerFactory(twisted_smtp.SMTPFactory):
    """Builds :class:`SMTPServerProtocol` instances and tracks the open connections.

    Provides ``mailgosend.listeners.IDrainable``: at shutdown the listener calls each
    protocol's ``server_shutting_down()`` and waits for :meth:`open_connections` to empty.

    :param backend: the :class:`ISMTPBackend` for this listener.
    :param hostname: our name in the greeting, EHLO and 421 replies (ASCII/A-label).
    :param listener: ``"inbound"`` (25: no AUTH), ``"submission"`` (587: STARTTLS then AUTH
        required) or ``"smtps"`` (465: implicit TLS, AUTH required).
    :param tls: a server TLS object for ``transport.startTLS`` (``mailgosend.tls.context``);
        required for submission and smtps, optional for inbound.
    :param clock: the reactor's time, for timeouts (tests pass a ``Clock``).
    :param future_release_seconds: how far ahead MAIL FROM may hold a message (RFC 4865
        FUTURERELEASE, submission and smtps only; FUTURE_RELEASE_MAX_DAYS); 0: not offered.
    """

    noisy = False

    def __init__(
        self,
        backend: ISMTPBackend,
        hostname: str,
        listener: ListenerKind,
        tls: Any | None,
        clock: IReactorTime,
        limits: SMTPLimits | None = None,
        future_release_seconds: int = 0,
    ) -> None:
        super().__init__()
        if listener not in LISTENER_KINDS:
            raise ValueError(f"unknown SMTP listener kind {listener!r}")
        if listener != "inbound" and tls is None:
            raise ValueError(f"the {listener} listener needs TLS: AUTH is only offered under TLS")
        if not ISMTPBackend.providedBy(backend):
            raise TypeError("backend must provide ISMTPBackend")
        if not hostname.isascii():
            raise ValueError("hostname must be ASCII (use the A-label form)")
        self.backend = backend
        self.hostname = hostname
        self.domain = hostname.encode("ascii")
        self.listener: ListenerKind = listener
        self.tls = tls
        self.clock = clock
        self.limits = limits if limits is not None else SMTPLimits()
        self.counters: Any = NULL_COUNTERS   # counters.py, set by the service
        # RFC 4865 is a submission extension: never on port 25
        self.future_release_seconds = (max(0, future_release_seconds)
                                       if listener != "inbound" else 0)
        self.limiter: ConnectionLimiter[SMTPServerProtocol] = ConnectionLimiter(
            self.limits.max_connections, self.limits.max_connections_per_ip)

    def buildProtocol(self, addr: IAddress | None) -> SMTPServerProtocol:  # type: ignore[override]
        # The override narrows the base class's protocol type; the protocol takes its
        # configuration from this factory instead of attribute injection.
        from mailgosend.smtp.protocol import SMTPServerProtocol

        return SMTPServerProtocol(self)

    def smtps_factory(self) -> TLSMemoryBIOFactory:
        """This factory wrapped in implicit TLS, for a plain TCP endpoint on port 465."""
        if self.tls is None:
            raise ValueError("no TLS configured for this listener")
        return TLSMemoryBIOFactory(self.tls, False, self)

    @property
    def connections(self) -> set[SMTPServerProtocol]:
        """The sessions open on this listener."""
        return self.limiter.open()

    def register(self, proto: SMTPServerProtocol) -> SMTPReply | None:
        """Account for a new connection; a refusal reply if a connection limit is reached."""
        assert proto.session is not None
        if not self.limiter.admit(proto, proto.session.peer_ip):
            return SMTPReply(421, "4.7.0", f"{self.hostname} Error: too many connections")
        return None

    def unregister(self, proto: SMTPServerProtocol) -> None:
        self.limiter.release(proto)

    def open_connections(self) -> Collection[SMTPServerProtocol]:
        """IDrainable: the sessions still open."""
        return self.limiter.open()

    def close_all(self) -> Deferred[Any]:
        """Drain at shutdown: every connection gets ``421 4.3.2``; fires when all are gone."""
        return DeferredList([proto.shutdown() for proto in self.limiter.open()])
