"""An IMAP listener over a real database, for tests with real clients (imaplib, imapclient).

``IMAPFixture`` is a test mixin (use it after a back-end mixin from tests.support.db): it
creates alice@example.com and bob@example.com, the blob store, the shared portal with
brute-force bans, and ``self.listen()`` starts a factory on 127.0.0.1 port 0.  Messages are
stored through the store's own API (``deliver``), as the SMTP pipeline does.  Blocking clients
run in threads (``in_thread``) so the reactor keeps serving them.
"""

from __future__ import annotations

import imaplib
import os
import socket
import threading
import zlib
import ssl
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from twisted.internet import defer, reactor
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
from twisted.internet.threads import deferToThread
from zope.interface import implementer

from mailgosend import passwords
from mailgosend.auth.bans import BanCache
from mailgosend.auth.portal import build_portal
from mailgosend.crypto import KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.events import Events, new_message_batches
from mailgosend.imap.factory import IMAPServerFactory, build_imap_factory, imap_avatars
from mailgosend.imap.interfaces import IIMAPAccount, ISpamTrainer
from mailgosend.mail.service import MailService
from mailgosend.store import accounts, mailboxes
from mailgosend.store import messages as ms
from mailgosend.store.blobs import BlobReader, DatabaseBlobs
from mailgosend.store.mimeinfo import analyse
from mailgosend.store.security import SecurityStore
from mailgosend.tls.context import ServerTLS
from mailgosend.workers import WorkerPool
from tests.support.certs import client_context, make_ca, make_cert
from tests.support.db import DatabaseTestBase
from tests.support.config import auth_settings

PASSWORD = "pw-SECRET-imap-fixture-7"
ALICE, BOB = "alice@example.com", "bob@example.com"
KEYRING = KeyRing(bytes(range(32)))
NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=timezone.utc)


def message(subject: str = "Hello", body: str = "Hi Bob,\r\nsee you.\r\n",
            sender: str = "Alice <alice@example.com>", extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: bob@example.com\r\nSubject: {subject}\r\n"
            f"Date: Sat, 14 Mar 2026 09:26:53 +0100\r\n"
            # A fixed-width id: sizes must not depend on the interpreter's hash seed.
            f"Message-ID: <{zlib.crc32(subject.encode()):019d}@x>\r\n"
            f"{extra}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode("utf-8")


class CountingBlobs(DatabaseBlobs):
    """Counts open_blob calls: the proof that a FETCH did not touch message bodies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened = 0
        self.threads: set[threading.Thread] = set()

    def open_blob(self, *args: Any, **kwargs: Any) -> BlobReader:
        self.opened += 1
        self.threads.add(threading.current_thread())
        return super().open_blob(*args, **kwargs)


@implementer(ISpamTrainer)
class RecordingTrainer:
    """ISpamTrainer that remembers what it was taught."""

    def __init__(self) -> None:
        self.lessons: list[tuple[int, Any, bool]] = []

    def learn(self, user_id: int, message: Any, is_spam: bool) -> None:
        self.lessons.append((user_id, message, is_spam))


class IMAPFixture(DatabaseTestBase):
    quota = 0
    max_message_size = 1 << 20

    def setUp(self) -> Any:
        d = super().setUp()
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.now = datetime.now(timezone.utc)
        run_sync(self.engine, accounts.add_domain, "example.com", self.now, write=True)
        hashed = passwords.hash_password(PASSWORD, 4)
        self.alice = run_sync(self.engine, accounts.add_user, ALICE, hashed, self.now,
                              quota_bytes=self.quota, write=True)
        self.bob = run_sync(self.engine, accounts.add_user, BOB, hashed, self.now, write=True)
        config = auth_settings(BRUTE_MAX_TRIES=5)
        self.security = SecurityStore(self.runner, config, reactor)
        self.bans = BanCache(self.security, reactor)
        self.workers = WorkerPool(reactor, 4)
        self.workers.startService()
        self.addCleanup(self.workers.stopService)
        self.portal = build_portal(self.runner, self.security, self.bans, self.workers, config)
        self.blobs = CountingBlobs(os.path.join(directory, "spool"))
        self.events = Events()
        self.trainer = RecordingTrainer()
        self.ca = make_ca(os.path.join(directory, "pki"))
        cert, key = make_cert(os.path.join(directory, "pki"), ["localhost", "127.0.0.1"],
                              ca=self.ca)
        self.tls = ServerTLS(cert, key)
        self.client_tls = client_context(self.ca)
        self.spool = os.path.join(directory, "imap-spool")
        os.makedirs(self.spool)
        return d

    # --- listeners -------------------------------------------------------------------------

    def make_factory(self, *, implicit_tls: bool = False, loopback: bool = True,
                     tls: Any = "default", clock: Any = reactor,
                     **extra: Any) -> IMAPServerFactory:
        mail = MailService(runner=self.runner, keyring=KEYRING, blob_store=self.blobs,
                           workers=self.workers, clock=clock, trainer=self.trainer,
                           events=self.events)
        factory = build_imap_factory(
            mail=mail, portal=self.portal, bans=self.bans, events=self.events,
            tls=self.tls if tls == "default" else tls, hostname="imap.example.com",
            max_message_size=self.max_message_size, clock=clock, implicit_tls=implicit_tls,
            allow_plaintext_loopback=loopback, spool_dir=self.spool, **extra)
        self.portal.realm_registry.register(IIMAPAccount, imap_avatars(factory.access))
        return factory

    @defer.inlineCallbacks
    def listen(self, factory: Optional[IMAPServerFactory] = None, **options: Any) -> Any:
        factory = factory or self.make_factory(**options)
        if factory.implicit_tls:
            endpoint: Any = SSL4ServerEndpoint(reactor, 0, self.tls, interface="127.0.0.1")
        else:
            endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port = yield endpoint.listen(factory)
        self.addCleanup(self._close_sessions, factory)
        self.addCleanup(port.stopListening)
        self.factory = factory
        self.port = port.getHost().port
        return self.port

    @defer.inlineCallbacks
    def _close_sessions(self, factory: IMAPServerFactory) -> Any:
        for session in list(factory.open_connections()):
            session.transport.abortConnection()
        while factory.open_connections():
            yield deferLater(0.01)

    # --- clients ---------------------------------------------------------------------------

    def in_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return deferToThread(fn, *args, **kwargs)

    def imaplib_client(self, login: bool = True, user: str = ALICE) -> imaplib.IMAP4:
        """Thread side: a connected (and logged-in) imaplib client."""
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=20)
        if login:
            client.login(user, PASSWORD)
        return client

    def imapclient_client(self, login: bool = True, user: str = ALICE, **kwargs: Any) -> Any:
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=20, **kwargs)
        if login:
            client.login(user, PASSWORD)
        return client

    def raw(self) -> RawClient:
        return RawClient(self.port)

    @defer.inlineCallbacks
    def raw_session(self, select: bool = True, listen: bool = True, **options: Any) -> Any:
        """A raw client logged in as alice, with INBOX selected unless ``select`` is False;
        the listener is started first (with ``options``) unless ``listen`` is False."""
        if listen:
            yield self.listen(**options)
        raw = yield self.in_thread(RawClient, self.port)
        self.addCleanup(raw.close)
        yield self.in_thread(raw.command, b"l", b"LOGIN %s %s" % (ALICE.encode(),
                                                                 PASSWORD.encode()))
        if select:
            yield self.in_thread(raw.command, b"s", b"SELECT INBOX")
        return raw

    # --- mail ------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def deliver(self, raw: bytes, user: Any = None, target: Any = "inbox",
                flags: tuple[str, ...] = (), publish: bool = True,
                internal_date: datetime = NOW) -> Any:
        """Store a message as the SMTP pipeline does, and announce it."""
        user = user or self.alice
        sealed = self.blobs.seal(KEYRING, user.uuid, raw)
        meta = ms.seal_info(KEYRING, user.uuid, sealed.blob_id, analyse(raw))
        delivered = yield self.runner.write(ms.deliver, user, target, sealed, meta, flags,
                                            internal_date, NOW, blob_store=self.blobs)
        if publish:
            self.events.publish_all(new_message_batches([delivered]))
        return delivered

    def mailbox(self, name: str, user: Any = None) -> Any:
        return run_sync(self.engine, mailboxes.get_mailbox, (user or self.alice).id, name,
                        write=False)

    def rows(self, name: str, user: Any = None, **kwargs: Any) -> list[ms.MessageRow]:
        box = self.mailbox(name, user)
        return run_sync(self.engine, ms.list_messages, box.id, write=False, **kwargs)


def deferLater(seconds: float) -> Any:
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


class RawClient:
    """A line-level client for protocol tests (thread side): send bytes, read responses."""

    def __init__(self, port: int, tls: Optional[ssl.SSLContext] = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")
        self.file = self.sock.makefile("rb")
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        line = self.file.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        return line

    def until(self, tag: bytes) -> list[bytes]:
        """Lines up to and including the tagged response for ``tag``, literals inline."""
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.rstrip().endswith(b"}") and b"{" in line:
                size = int(line.rstrip()[line.rstrip().rindex(b"{") + 1:-1].rstrip(b"+"))
                lines.append(self.file.read(size))
            if line.startswith(tag + b" "):
                return lines

    def command(self, tag: bytes, text: bytes) -> list[bytes]:
        self.send(tag + b" " + text + b"\r\n")
        return self.until(tag)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.file.close()
        self.sock.close()


MULTIPART = (
    b"From: \"Doe, Jane\" <jane@example.org>\r\nTo: bob@example.com\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= report\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
    b"Message-ID: <multi@example.org>\r\nX-Priority: 1\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
    b"preamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nna=C3=AFve fa=C3=A7ade, quarterly "
    b"figures\r\n--XX\r\nContent-Type: application/pdf; name=a.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.pdf\""
    b"\r\n\r\nJVBERi0xLjQK\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: x@z.org\r\nSubject: inner\r\n\r\ninner body\r\n--XX--\r\n")
