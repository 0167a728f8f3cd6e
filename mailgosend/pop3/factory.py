"""The listener side: limits, connection accounting and :func:`build_pop3_factory`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Optional

from twisted.cred.portal import Portal
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import ServerFactory
from zope.interface import implementer

from mailgosend.auth.bans import BanCheck
from mailgosend.connlimit import ConnectionLimiter
from mailgosend.listeners import IDrainable
from mailgosend.pop3.protocol import POP3Server
from mailgosend.pop3.replies import SYS_TEMP, Reply, err

__all__ = ["POP3Factory", "POP3Limits", "build_pop3_factory"]


@dataclass(frozen=True)
class POP3Limits:
    """Resource limits of one listener."""

    idle_timeout: float = 600.0  # RFC 1939 §3: the autologout timer is at least 10 minutes
    close_grace: float = 30.0  # after our last reply, how long a TLS close may take
    # RFC 2449 §4 allows commands of 255 octets; SASL responses (RFC 5034 §4) may be longer: a
    # PLAIN response of three 255-octet fields is 1024 octets of base64.
    max_line_length: int = 2048
    max_auth_failures: int = 3  # then the connection closes; the Portal bans the IP later
    chunk_size: int = 1024 * 1024  # plaintext octets per read job in RETR/TOP (16 segments)
    max_connections: int = 1000
    max_connections_per_ip: int = 20

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"POP3 limit {name} must be positive, not {value!r}")


@implementer(IDrainable)
class POP3Factory(ServerFactory):
    """Builds :class:`POP3Server` sessions and tracks the open ones (``IDrainable``)."""

    noisy = False  # the protocol logs what matters, without addresses twice

    def __init__(self, *, portal: Portal, bans: BanCheck, tls: Optional[Any], hostname: str,
                 clock: IReactorTime, implicit_tls: bool, allow_plaintext_loopback: bool,
                 limits: POP3Limits) -> None:
        self.portal = portal
        self.bans = bans
        self.tls = tls
        self.hostname = hostname
        self.clock = clock
        self.implicit_tls = implicit_tls
        self.allow_plaintext_loopback = allow_plaintext_loopback
        self.limits = limits
        self.limiter: ConnectionLimiter[POP3Server] = ConnectionLimiter(
            limits.max_connections, limits.max_connections_per_ip)

    def buildProtocol(self, addr: Optional[IAddress]) -> POP3Server:
        return POP3Server(self)

    @property
    def connections(self) -> set[POP3Server]:
        """The sessions open on this listener."""
        return self.limiter.open()

    def register(self, session: POP3Server) -> Optional[Reply]:
        """Account for a new connection; the refusal to send if a limit is reached."""
        if not self.limiter.admit(session, session.peer_ip):
            return err("Too many connections; try again later", SYS_TEMP)
        return None

    def unregister(self, session: POP3Server) -> None:
        self.limiter.release(session)

    def open_connections(self) -> Collection[POP3Server]:
        """IDrainable: the sessions still open."""
        return self.limiter.open()


def build_pop3_factory(*, portal: Portal, bans: BanCheck, tls: Optional[Any],
                       hostname: str, clock: IReactorTime, implicit_tls: bool,
                       allow_plaintext_loopback: bool = False,
                       limits: Optional[POP3Limits] = None) -> POP3Factory:
    """The factory for one POP3 listener: ``implicit_tls=False`` for port 110 (STLS),
    ``True`` for 995, whose listener must wrap it in TLS (``ListenerService(..., tls=tls)``).

    Logins need the POP3 avatar on the portal's realm: ``IPOP3Maildrop`` ->
    ``maildrop.maildrop_factory(mail)`` (service.py registers it).  ``tls`` None (TLS_MODE = off) leaves logins
    refused except from loopback with ``allow_plaintext_loopback``.
    """
    if implicit_tls and tls is None:
        raise ValueError("the implicit-TLS POP3 listener needs a TLS context")
    if not hostname.isascii():
        raise ValueError("hostname must be ASCII (use the A-label form)")
    return POP3Factory(portal=portal, bans=bans, tls=tls, hostname=hostname, clock=clock,
                       implicit_tls=implicit_tls,
                       allow_plaintext_loopback=allow_plaintext_loopback,
                       limits=limits if limits is not None else POP3Limits())
