"""The IMAP listener: the command table, the protocol class and ``build_imap_factory``.

Wiring (service.py)::

    factory = build_imap_factory(mail=mail_service, portal=portal, bans=bans, events=events,
                                 tls=tls, hostname=config["HOSTNAME"],
                                 max_message_size=config["MAX_MESSAGE_SIZE"], clock=reactor,
                                 implicit_tls=False, max_connections=config["MAX_CONNECTIONS"],
                                 max_connections_per_ip=config["MAX_CONNECTIONS_PER_IP"])
    portal.realm_registry.register(IIMAPAccount, imap_avatars(factory.access))  # once
    ListenerService("imap", "IMAP_PORT", "IMAP_BIND", bind, port, factory, reactor)
    # IMAPS: a second factory with implicit_tls=True, and ListenerService(..., tls=tls)
"""

from __future__ import annotations

import tempfile
from typing import Any, Callable, Collection, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Factory
from zope.interface import implementer

from mailgosend.connlimit import ConnectionLimiter
from mailgosend.imap.access import StoreAccess
from mailgosend.imap.account import IMAPAccount
from mailgosend.imap.cmd_auth import AuthCommands
from mailgosend.imap.cmd_fetch import FetchCommand
from mailgosend.imap.cmd_idle import IdleCommand
from mailgosend.imap.cmd_mailbox import MailboxCommands
from mailgosend.imap.cmd_selected import SelectedCommands
from mailgosend.imap.compress import CompressCommand
from mailgosend.imap.cmd_sort import SortCommands
from mailgosend.imap.hub import MailboxHub
from mailgosend.imap.server import Command, SessionCore
from mailgosend.listeners import IDrainable
from mailgosend.events import Events
from mailgosend.mail.service import MailService

__all__ = ["IMAPServerFactory", "IMAPServerProtocol", "build_imap_factory", "imap_avatars"]

_ANY = ("unauth", "auth", "select")
_AUTHED = ("auth", "select")
_SELECTED = ("select",)


class IMAPServerProtocol(AuthCommands, IdleCommand, FetchCommand, SortCommands,
                         SelectedCommands, MailboxCommands, CompressCommand, SessionCore):
    """One IMAP session (server.py and the cmd_*.py mixins)."""


def _table() -> dict[str, Command]:
    P = IMAPServerProtocol
    return {
        "CAPABILITY": Command(P.cmd_CAPABILITY, _ANY), "NOOP": Command(P.cmd_NOOP, _ANY, "full"),
        "LOGOUT": Command(P.cmd_LOGOUT, _ANY, None), "ID": Command(P.cmd_ID, _ANY),
        "STARTTLS": Command(P.cmd_STARTTLS, ("unauth",), None),
        "LOGIN": Command(P.cmd_LOGIN, ("unauth",), None),
        "AUTHENTICATE": Command(P.cmd_AUTHENTICATE, ("unauth",), None),
        "SELECT": Command(P.cmd_SELECT, _AUTHED, None),
        "EXAMINE": Command(P.cmd_EXAMINE, _AUTHED, None),
        "CREATE": Command(P.cmd_CREATE, _AUTHED), "DELETE": Command(P.cmd_DELETE, _AUTHED),
        "RENAME": Command(P.cmd_RENAME, _AUTHED),
        "SUBSCRIBE": Command(P.cmd_SUBSCRIBE, _AUTHED),
        "UNSUBSCRIBE": Command(P.cmd_UNSUBSCRIBE, _AUTHED),
        "LIST": Command(P.cmd_LIST, _AUTHED), "LSUB": Command(P.cmd_LSUB, _AUTHED),
        "STATUS": Command(P.cmd_STATUS, _AUTHED), "APPEND": Command(P.cmd_APPEND, _AUTHED),
        "NAMESPACE": Command(P.cmd_NAMESPACE, _AUTHED),
        "GETQUOTA": Command(P.cmd_GETQUOTA, _AUTHED),
        "GETQUOTAROOT": Command(P.cmd_GETQUOTAROOT, _AUTHED),
        "SETQUOTA": Command(P.cmd_SETQUOTA, _AUTHED),
        "ENABLE": Command(P.cmd_ENABLE, ("auth",)),
        "COMPRESS": Command(P.cmd_COMPRESS, _AUTHED, None),
        "IDLE": Command(P.cmd_IDLE, _AUTHED, "full"),
        "CHECK": Command(P.cmd_CHECK, _SELECTED, "full"),
        "CLOSE": Command(P.cmd_CLOSE, _SELECTED, None),
        "UNSELECT": Command(P.cmd_UNSELECT, _SELECTED, None),
        "EXPUNGE": Command(P.cmd_EXPUNGE, _SELECTED),
        "SEARCH": Command(P.cmd_SEARCH, _SELECTED, "noexpunge"),
        "FETCH": Command(P.cmd_FETCH, _SELECTED, "noexpunge"),
        "STORE": Command(P.cmd_STORE, _SELECTED, "noexpunge"),
        "COPY": Command(P.cmd_COPY, _SELECTED), "MOVE": Command(P.cmd_MOVE, _SELECTED),
        "UID": Command(P.cmd_UID, _SELECTED),
        "SORT": Command(P.cmd_SORT, _SELECTED, "noexpunge"),
        "THREAD": Command(P.cmd_THREAD, _SELECTED, "noexpunge"),
    }


IMAPServerProtocol.COMMANDS = _table()


@implementer(IDrainable)
class IMAPServerFactory(Factory):
    """Builds sessions and knows the open ones (listeners.IDrainable)."""

    noisy = False

    def __init__(self, *, access: StoreAccess, portal: Any, bans: Any, events: Any,
                 tls: Optional[Any], hostname: str, clock: IReactorTime, implicit_tls: bool,
                 allow_plaintext_loopback: bool = False, idle_poll_seconds: float = 30.0,
                 max_connections: int = 1000, max_connections_per_ip: int = 20) -> None:
        if implicit_tls and tls is None:
            raise ValueError("implicit TLS (IMAPS) needs a TLS configuration")
        if not hostname.isascii():
            raise ValueError("hostname must be ASCII (use the A-label form)")
        self.access = access
        self.portal = portal
        self.bans = bans
        self.events = events
        self.tls = tls
        self.hostname = hostname
        self.clock = clock
        self.implicit_tls = implicit_tls
        self.allow_plaintext_loopback = allow_plaintext_loopback
        self.idle_poll_seconds = idle_poll_seconds
        self.limiter: ConnectionLimiter[IMAPServerProtocol] = ConnectionLimiter(
            max_connections, max_connections_per_ip)

    def buildProtocol(self, addr: Optional[IAddress]) -> IMAPServerProtocol:
        return IMAPServerProtocol(self)

    @property
    def connections(self) -> set[IMAPServerProtocol]:
        """The sessions open on this listener."""
        return self.limiter.open()

    def open_connections(self) -> Collection[IMAPServerProtocol]:
        return self.limiter.open()


def imap_avatars(access: StoreAccess) -> Callable[[str], Deferred[IMAPAccount]]:
    """The realm's avatar factory for IIMAPAccount (service.py registers it): a user's
    account on ``access``, rebound by each session to its own listener's (for_access)."""

    def make(email: str) -> Deferred[IMAPAccount]:
        d = access.mail.open_account(email)
        return d.addCallback(lambda mail: IMAPAccount(mail.user, access))

    return make


def build_imap_factory(*, mail: MailService, portal: Any, bans: Any, events: Events,
                       tls: Optional[Any], hostname: str, max_message_size: int,
                       clock: IReactorTime, implicit_tls: bool,
                       allow_plaintext_loopback: bool = False,
                       hub: Optional[MailboxHub] = None, spool_dir: Optional[str] = None,
                       idle_poll_seconds: float = 30.0, max_connections: int = 1000,
                       max_connections_per_ip: int = 20) -> IMAPServerFactory:
    """An IMAP (``implicit_tls=False``, STARTTLS) or IMAPS factory.  Logins need the
    IIMAPAccount avatar on the portal's realm: ``imap_avatars(factory.access)``.

    Pass the same ``hub`` to the IMAP and IMAPS factories so their sessions share \\Recent
    claims and snapshots; by default each factory has its own.  Changes reach every session
    of every listener through ``events`` (the change feed).
    ``spool_dir`` holds APPEND literals over 1 MiB (default: the system temp directory).
    ``max_connections`` and ``max_connections_per_ip`` limit this listener's sessions
    (MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP; see connlimit.py).
    """
    hub = hub or MailboxHub()
    hub.follow(events)  # changes reach every session through the feed
    access = StoreAccess(mail=mail, clock=clock, hub=hub,
                         max_message_size=max_message_size,
                         spool_dir=spool_dir or tempfile.gettempdir())
    return IMAPServerFactory(access=access, portal=portal, bans=bans, events=events, tls=tls,
                             hostname=hostname, clock=clock, implicit_tls=implicit_tls,
                             allow_plaintext_loopback=allow_plaintext_loopback,
                             idle_poll_seconds=idle_poll_seconds,
                             max_connections=max_connections,
                             max_connections_per_ip=max_connections_per_ip)
