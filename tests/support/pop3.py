"""A POP3 server over a real store for client tests, and a raw line client for wire checks.

:class:`POP3Fixture` is a test mixin (bind it to a back end with the mixins of
``tests.support.db``): it builds the shared Portal, bans, keyring, blob store and test TLS, and
starts POP3 listeners on 127.0.0.1 port 0 with :meth:`POP3Fixture.listen`.  Clients are blocking
(``poplib``, :class:`RawClient`) and run in threads through :meth:`POP3Fixture.in_thread`, so
the reactor keeps serving them.
"""

from __future__ import annotations

import os
import poplib
import socket
import ssl
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional, TypeVar, cast

from sqlalchemy import func, select
from twisted.internet import defer, reactor, task
from twisted.internet.threads import deferToThread

from mailgosend import passwords
from mailgosend.auth.bans import BanCache
from mailgosend.auth.portal import build_portal
from mailgosend.crypto import KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import login_attempts
from mailgosend.db.schema import messages as messages_table
from mailgosend.events import Events
from mailgosend.pop3 import POP3Factory, POP3Limits, build_pop3_factory
from mailgosend.pop3.maildrop import IPOP3Maildrop, maildrop_factory
from mailgosend.mail.messages import read_range
from mailgosend.mail.service import MailService
from mailgosend.store import accounts, mailboxes, messages
from mailgosend.store.blobs import BlobStore, DatabaseBlobs, FileBlobs
from mailgosend.store.mimeinfo import analyse
from mailgosend.store.security import SecurityStore
from mailgosend.tls.context import ServerTLS
from mailgosend.workers import WorkerPool
from tests.support.certs import client_context, make_ca, make_cert
from tests.support.db import DatabaseTestBase
from tests.support.config import auth_settings

__all__ = ["EMAIL", "KEYRING", "PASSWORD", "POP3Fixture", "RawClient", "RecordingRunner",
           "command"]

EMAIL = "alice@example.com"
PASSWORD = "pw-SECRET pop3 with spaces-5"
KEYRING = KeyRing(bytes(range(32)))
HOSTNAME = "mail.example.com"
_T = TypeVar("_T")


def settings() -> dict[str, Any]:
    return auth_settings()


class POP3Fixture(DatabaseTestBase):
    """No tests of its own.  ``blob_backend`` is "db" or "fs"."""

    blob_backend = "db"

    def setUp(self) -> Any:
        result = super().setUp()
        directory = os.path.abspath(self.mktemp())
        now = self.now()
        run_sync(self.engine, accounts.add_domain, "example.com", now, write=True)
        self.user = self.add_user(EMAIL)
        self.blob_store: BlobStore = (FileBlobs(os.path.join(directory, "blobs"))
                                      if self.blob_backend == "fs"
                                      else DatabaseBlobs(os.path.join(directory, "spool")))
        self.events = Events()
        self.security = SecurityStore(self.runner, settings(), reactor)
        self.bans = BanCache(self.security, reactor)
        self.workers = WorkerPool(reactor, 2)
        self.workers.startService()
        self.addCleanup(self.workers.stopService)
        self.portal = build_portal(self.runner, self.security, self.bans, self.workers,
                                   settings())
        ca = make_ca(os.path.join(directory, "pki"))
        cert, key = make_cert(os.path.join(directory, "pki"), ["localhost", "127.0.0.1"], ca)
        self.tls = ServerTLS(cert, key)
        self.client_tls = client_context(ca)
        return result

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    # --- listeners -------------------------------------------------------------------------

    def listen(self, *, implicit_tls: bool = False, allow_plaintext_loopback: bool = False,
               limits: Optional[POP3Limits] = None, clock: Any = None, runner: Any = None,
               tls: Any = "default") -> tuple[POP3Factory, int]:
        """Start a listener on 127.0.0.1 port 0; it and its sessions end with the test."""
        self.portal.realm_registry.register(
            IPOP3Maildrop, maildrop_factory(self.mail_service(runner, clock)))
        factory = build_pop3_factory(
            portal=self.portal, bans=self.bans, tls=self.tls if tls == "default" else tls,
            hostname=HOSTNAME, clock=clock or reactor, implicit_tls=implicit_tls,
            allow_plaintext_loopback=allow_plaintext_loopback, limits=limits)
        if implicit_tls:
            port = cast(Any, reactor).listenSSL(0, factory, self.tls, interface="127.0.0.1")
        else:
            port = cast(Any, reactor).listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.close_sessions, factory)
        self.addCleanup(port.stopListening)
        return factory, port.getHost().port

    def mail_service(self, runner: Any = None, clock: Any = None) -> MailService:
        return MailService(runner=runner or self.runner, keyring=KEYRING,
                           blob_store=self.blob_store, workers=self.workers,
                           clock=clock or reactor, events=self.events)

    @defer.inlineCallbacks
    def close_sessions(self, factory: POP3Factory) -> Any:
        for session in factory.open_connections():
            session.transport.abortConnection()
        yield self.wait_for(lambda: not factory.open_connections())

    @defer.inlineCallbacks
    def wait_for(self, condition: Callable[[], bool], what: str = "condition") -> Any:
        """Let the reactor run until ``condition()`` holds (a bound, not a timing check)."""
        for _ in range(1000):
            if condition():
                return
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.fail(f"gave up waiting for {what}")

    def in_thread(self, fn: Callable[..., _T], *args: Any) -> defer.Deferred[_T]:
        return deferToThread(fn, *args)

    # --- clients (call these in a thread) ---------------------------------------------------

    def pop(self, port: int, *, tls: str = "stls", login: bool = True) -> poplib.POP3:
        """A poplib client: "stls", "implicit" or "plain"; logged in unless login=False."""
        if tls == "implicit":
            client: poplib.POP3 = poplib.POP3_SSL("127.0.0.1", port, timeout=20,
                                                  context=self.client_tls)
        else:
            client = poplib.POP3("127.0.0.1", port, timeout=20)
            if tls == "stls":
                client.stls(self.client_tls)
        if login:
            client.user(EMAIL)
            client.pass_(PASSWORD)
        return client

    def raw(self, port: int, *, implicit_tls: bool = False) -> RawClient:
        client = RawClient(port, self.client_tls)
        if implicit_tls:
            client.starttls()
        return client

    # --- accounts and messages --------------------------------------------------------------

    def add_user(self, email: str) -> accounts.User:
        return run_sync(self.engine, accounts.add_user, email,
                        passwords.hash_password(PASSWORD, 4), self.now(), write=True)

    def deliver(self, raw: bytes, user: Optional[accounts.User] = None) -> messages.Delivered:
        """Store one message in the INBOX, sealed as SMTP delivery seals it."""
        user = user or self.user
        sealed = self.blob_store.seal(KEYRING, user.uuid, raw)
        meta = messages.seal_info(KEYRING, user.uuid, sealed.blob_id, analyse(raw))
        now = self.now()
        delivered = run_sync(self.engine, messages.deliver, user, "inbox", sealed, meta, (),
                             now, now, blob_store=self.blob_store, write=True)
        self.blob_store.release(sealed)
        return delivered

    def inbox(self, user: Optional[accounts.User] = None) -> mailboxes.Mailbox:
        box = run_sync(self.engine, mailboxes.get_by_role, (user or self.user).id, "inbox",
                       write=False)
        assert box is not None, "deliver a message first"
        return box

    def rows(self, user: Optional[accounts.User] = None) -> list[Any]:
        """Every INBOX row, soft-deleted ones included, in UID order."""
        box = self.inbox(user)
        return run_sync(self.engine, lambda conn: list(conn.execute(
            select(messages_table).where(messages_table.c.mailbox_id == box.id)
            .order_by(messages_table.c.uid))), write=False)

    def login_attempts(self) -> int:
        """Rows the checker wrote: zero proves a password never reached it."""
        return run_sync(self.engine, lambda conn: conn.execute(
            select(func.count()).select_from(login_attempts)).scalar_one(), write=False)

    def ban(self, ip: str = "127.0.0.1") -> None:
        self.bans.note(ip, self.now() + timedelta(hours=1))
        self.addCleanup(self.bans.forget, ip)


def command(client: poplib.POP3, line: str) -> bytes:
    """One command and its status line through poplib, which has no method for AUTH (or for
    arbitrary commands); raises ``poplib.error_proto`` on -ERR like its own methods."""
    return cast(bytes, getattr(client, "_shortcmd")(line))


class RecordingRunner:
    """The real runner, recording the message ranges read and the write jobs (and failing
    those if asked): how tests see that RETR streams and that a session wrote nothing."""

    def __init__(self, runner: Any, fail_writes: bool = False) -> None:
        self._runner = runner
        self._fail_writes = fail_writes
        self.ranges: list[tuple[int, int]] = []
        self.writes: list[str] = []

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if fn is read_range:
            self.ranges.append((args[-2], args[-1]))
        return self._runner.read(fn, *args, **kwargs)

    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.writes.append(fn.__name__)
        if self._fail_writes:
            return defer.fail(RuntimeError("database unavailable"))
        return self._runner.write(fn, *args, **kwargs)


class RawClient:
    """Lines on a socket, to check exact bytes and behaviour poplib hides (pipelining,
    injection, over-long lines).  Blocking: use it in a thread."""

    def __init__(self, port: int, tls: ssl.SSLContext) -> None:
        self.sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file = self.sock.makefile("rb")
        self._tls = tls

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """One line with its CRLF; b"" at end of stream."""
        return self.file.readline(1 << 20)

    def lines(self, count: int) -> list[bytes]:
        return [self.line() for _ in range(count)]

    def multiline(self) -> bytes:
        """The body of a multi-line response as sent (still dot-stuffed), without the "."."""
        body: list[bytes] = []
        while True:
            line = self.line()
            if line in (b".\r\n", b""):
                return b"".join(body)
            body.append(line)

    def starttls(self) -> None:
        self.sock = self._tls.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.file = self.sock.makefile("rb")

    def read_to_end(self) -> bytes:
        chunks = []
        while chunk := self.file.read(65536):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.file.close()
        self.sock.close()
