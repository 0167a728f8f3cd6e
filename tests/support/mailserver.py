"""A whole mailgosend server in the test process: real listeners on free
loopback ports, TLS from a test CA, DNS from a local twisted.names server,
and helpers to read back what was stored (decrypted, as IMAP will).

Protocol tests talk to it with real clients (smtplib, swaks) in threads, so
the reactor keeps serving while they block.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import select
from twisted.internet import defer, reactor
from twisted.trial import unittest

from mailgosend import passwords
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import queue, queue_recipients
from mailgosend.service import makeService
from mailgosend.store import accounts, mailboxes, messages
from tests.support.certs import client_context, make_ca, make_cert
from tests.support.config import make_config
from tests.support.dnsserver import TestDNSServer
from tests.support.net import free_ports

PASSWORD = "pw-SECRET-mail-fixture-9"
HOSTNAME = "mx.mailgo.test"


class MailServer:
    def __init__(self, directory: str, dns_records: Optional[dict[str, Any]] = None, *,
                 dns: Optional[TestDNSServer] = None, hostname: str = HOSTNAME,
                 bind: str = "127.0.0.1", ports: Optional[dict[str, int]] = None,
                 clock: Any = None, **settings: Any) -> None:
        """``dns``: a server shared with other instances (started and stopped by the
        caller); ``bind``/``ports``: where to listen (two instances on 127.0.0.2 and
        127.0.0.3 share SMTP port numbers so that each finds the other on DELIVERY_PORT).
        Outbound delivery is paused unless DELIVERY_PAUSED="false" is passed."""
        self.directory = os.path.abspath(directory)
        self._own_dns = dns is None
        self.dns = dns if dns is not None else TestDNSServer(dns_records or {})
        self.hostname = hostname
        self.bind = bind
        names = ("SMTP", "SUBMIT", "SMTPS", "POP3", "POP3S", "IMAP", "IMAPS")
        # Ports given by the caller (the web ports of WebServerTestCase, shared SMTP ports of
        # two servers) are kept; only the others are chosen, never one of the given ones.
        given = dict(ports or {})
        wanted = [name for name in names if name not in given]
        chosen = free_ports(len(wanted), bind, exclude=set(given.values()))
        self.ports = {**dict(zip(wanted, chosen)), **given}
        self.settings = settings
        self.root: Any = None
        # the reactor the server runs on (tests/support/shiftclock.py to move its clock)
        self.reactor = clock if clock is not None else reactor

    @defer.inlineCallbacks
    def start(self) -> Any:
        if self._own_dns:
            self.dns.start()
        self.ca = make_ca(os.path.join(self.directory, "pki"))
        cert, key = make_cert(os.path.join(self.directory, "pki"),
                              [self.hostname, "localhost", self.bind], ca=self.ca)
        values: dict[str, Any] = {f"{name}_PORT": port for name, port in self.ports.items()}
        values.update(HOSTNAME=self.hostname, DEFAULT_DOMAIN="example.com", TLS_MODE="file",
                      TLS_CERT=cert, TLS_KEY=key, DNS_PRIMARY=self.dns.nameserver,
                      DNSBL_ZONES="", DNSBL_CHECK_PRIVATE="true", BRUTE_MAX_TRIES="50",
                      DELIVERY_PAUSED="true")
        if self.bind != "127.0.0.1":
            values.update(BIND_ADDRESS=self.bind)
        values.update(self.settings)
        self.config = make_config(os.path.join(self.directory, "server"), **values)
        self.root = makeService(self.config, reactor=self.reactor)
        try:
            self.root.privilegedStartService()
        except Exception:
            # A port taken meanwhile by another program (a parallel run): twistd would exit,
            # but here the listeners bound before it would stay open and make the next test
            # fail too ("Reactor was unclean").
            yield self._release_listeners()
            self.root.runner.engine.dispose()
            raise
        self.root.startService()
        self.engine = self.root.runner.engine
        yield None

    @defer.inlineCallbacks
    def _release_listeners(self) -> Any:
        for listener in self.root.listeners:
            port = getattr(listener, "listening", None)
            if port is not None:
                listener.listening = None
                yield port.stopListening()

    def imap_factory(self) -> Any:
        """A plaintext (loopback) IMAP factory over this server's own mail service, with its
        realm registered: for tests that watch the factory's sessions (its ``access``)."""
        from mailgosend.imap.factory import build_imap_factory, imap_avatars
        from mailgosend.imap.interfaces import IIMAPAccount

        parts = self.root.components
        factory = build_imap_factory(
            mail=parts["mail"], portal=parts["portal"], bans=parts["bans"],
            events=parts["events"], tls=None, hostname="imap.example.com",
            max_message_size=1 << 20, clock=reactor, implicit_tls=False,
            allow_plaintext_loopback=True)
        parts["portal"].realm_registry.register(IIMAPAccount, imap_avatars(factory.access))
        return factory

    @defer.inlineCallbacks
    def stop(self) -> Any:
        if self.root is not None and self.root.running:
            yield self.root.stopService()
        if self._own_dns:
            yield self.dns.stop()

    # --- accounts ----------------------------------------------------------------
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.reactor.seconds(), timezone.utc)

    def add_domain(self, name: str) -> None:
        run_sync(self.engine, accounts.add_domain, name, self.now(), write=True)

    def add_user(self, email: str, quota: int = 0) -> accounts.User:
        return run_sync(self.engine, accounts.add_user, email,
                        passwords.hash_password(PASSWORD, 4), self.now(), quota_bytes=quota,
                        write=True)

    def add_alias(self, source: str, destination: str) -> None:
        run_sync(self.engine, accounts.add_alias, source, destination, self.now(), write=True)

    # --- what was stored -----------------------------------------------------------
    def stored(self, email: str, role: str = "inbox") -> list[bytes]:
        """Every live message in the user's mailbox with that role, decrypted."""
        user = run_sync(self.engine, accounts.get_user, email, write=False)
        box = run_sync(self.engine, mailboxes.get_by_role, user.id, role, write=False)
        if box is None:
            return []
        rows = run_sync(self.engine, messages.list_messages, box.id, write=False)
        store = self.root.components["blob_store"]
        keyring = self.root.components["keyring"]
        out = []
        for row in rows:
            with store.open_blob(self.engine, keyring, user.uuid, row.blob_id) as reader:
                out.append(b"".join(reader))
        return out

    def queued(self) -> list[tuple[Any, list[Any]]]:
        def read(conn: Any) -> list[tuple[Any, list[Any]]]:
            result = []
            for row in conn.execute(select(queue).order_by(queue.c.id)):
                rcpts = list(conn.execute(select(queue_recipients).where(
                    queue_recipients.c.queue_id == row.id).order_by(queue_recipients.c.id)))
                result.append((row, rcpts))
            return result
        return run_sync(self.engine, read, write=False)

    def client_tls(self) -> Any:
        return client_context(self.ca)


class MailServerTestCase(unittest.TestCase):
    """A whole server per test, with the domain example.com and ``users`` in it.

    Subclasses set ``zones`` (the test DNS), ``settings`` (configuration overrides) and
    ``users``; ``self.server`` is running when a test starts and stopped at cleanup."""

    zones: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    users: tuple[str, ...] = ("alice@example.com",)

    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        self.server = MailServer(self.mktemp(), self.zones, **self.settings)
        self.addCleanup(self.server.stop)
        yield self.server.start()
        self.server.add_domain("example.com")
        for user in self.users:
            self.server.add_user(user)
