"""Listening sockets for every protocol: bind with an error a person can act
on, log the address, and drain sessions on shutdown.

Binding happens in ``privilegedStartService`` so that ``twistd --uid/--gid``
can bind ports below 1024 before dropping root, and so a port that cannot be
bound stops start-up at once instead of after the reactor is running.
"""

from __future__ import annotations

import errno
from typing import Any, Callable, Collection, Optional

from twisted.application import service
from twisted.internet import defer, error, task
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.logger import Logger
from zope.interface import Interface

from mailgosend.errors import StartupError

log = Logger()


class IDrainable(Interface):
    """A factory that knows its open connections, so shutdown can wait for them."""

    def open_connections() -> Collection[Any]:
        """The protocols whose connections are still open."""


def bind_error_message(name: str, key: str, bind_key: str, address: str, port: int,
                       reason: BaseException, origin: str = "") -> str:
    """One line that names the setting and the fix, for a port we could not bind.

    ``origin`` says where the setting comes from (the file and its PROFILE), because a
    standard-profile file keeps port 25 even when the server is started with --profile local.
    """
    code = getattr(getattr(reason, "socketError", None), "errno", None)
    if code is None and isinstance(reason, OSError):
        code = reason.errno
    where = f"{address}:{port}" if ":" not in address else f"[{address}]:{port}"
    head = f"cannot listen for {name} on {where} ({key} = {port}): "
    tail = f" ({origin})" if origin else ""
    if code == errno.EACCES and port < 1024:
        return head + (f"ports below 1024 need privilege: give the server "
                       f"CAP_NET_BIND_SERVICE (see contrib/mailgosend.service), or start it "
                       f"as root with twistd --uid/--gid, or set {key} to a port >= 1024") + tail
    if code == errno.EADDRINUSE:
        return head + (f"the port is already in use by another program: stop it or set "
                       f"{key} to another port (0 disables this listener)") + tail
    if code == errno.EADDRNOTAVAIL:
        return head + (f"{address} is not an address of this machine: fix {bind_key} "
                       "or BIND_ADDRESS") + tail
    detail = getattr(reason, "socketError", None) or reason
    return head + f"{detail}; change {key} or {bind_key}" + tail


class ListenerService(service.Service):
    """One listening port for one protocol factory."""

    def __init__(self, name: str, port_key: str, bind_key: str, address: str, port: int,
                 factory: Any, reactor: Any, *, tls: Optional[Any] = None,
                 clock: Optional[IReactorTime] = None, grace_seconds: float = 10.0,
                 on_listening: Optional[Callable[[IListeningPort], None]] = None,
                 origin: str = "") -> None:
        self.setName(name)
        self.origin = origin
        self.port_key = port_key
        self.bind_key = bind_key
        self.address = address
        self.port_number = port
        self.factory = factory
        self.tls = tls
        self.grace_seconds = grace_seconds
        self._reactor = reactor
        self._clock = clock or reactor
        self._on_listening = on_listening
        self.listening: Optional[IListeningPort] = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        try:
            if self.tls is not None:
                self.listening = self._reactor.listenSSL(
                    self.port_number, self.factory, self.tls, interface=self.address)
            else:
                self.listening = self._reactor.listenTCP(
                    self.port_number, self.factory, interface=self.address)
        except error.CannotListenError as exc:
            raise StartupError(bind_error_message(
                self.name or "listener", self.port_key, self.bind_key, self.address, self.port_number,
                exc, self.origin)) from None
        host: Any = self.listening.getHost()
        kind = "TLS" if self.tls is not None else "TCP"
        log.info("{name} listening on {host}:{port} ({kind})", name=self.name,
                 host=host.host, port=host.port, kind=kind)
        if self._on_listening is not None:
            self._on_listening(self.listening)

    @property
    def bound_port(self) -> int:
        """The port actually bound (differs from the setting when it is 0 in tests)."""
        assert self.listening is not None
        return int(getattr(self.listening.getHost(), "port"))

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        if self.listening is None:
            return
        yield self.listening.stopListening()
        self.listening = None
        yield self._drain()

    @defer.inlineCallbacks
    def _drain(self) -> Any:
        """Let sessions finish for up to grace_seconds, then close what is left."""
        if not IDrainable.providedBy(self.factory):
            return
        for protocol in list(self.factory.open_connections()):
            notify = getattr(protocol, "server_shutting_down", None)
            if notify is not None:
                notify()
        waited = 0.0
        step = 0.1
        while self.factory.open_connections() and waited < self.grace_seconds:
            yield task.deferLater(self._clock, step, lambda: None)
            waited += step
        left = list(self.factory.open_connections())
        if left:
            log.info("{name}: closing {count} session(s) still open after {grace} s",
                     name=self.name, count=len(left), grace=self.grace_seconds)
        for protocol in left:
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.abortConnection()
