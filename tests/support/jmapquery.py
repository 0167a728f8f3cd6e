"""A user with a real MailService over a real database, and JMAP calls made on it as the
endpoint makes them (a ``Call`` per method), for the Email/query tests."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Optional

from twisted.internet import defer, reactor

from mailgosend import passwords
from mailgosend.db.runner import run_sync
from mailgosend.jmap.errors import MethodError
from mailgosend.jmap.methods import Call, Limits
from mailgosend.mail.service import MailService, UserMail
from mailgosend.store import accounts
from mailgosend.store.blobs import DatabaseBlobs
from mailgosend.workers import WorkerPool
from tests.support.db import DatabaseTestBase
from tests.support.imap import KEYRING

__all__ = ["QueryFixture", "mime"]


def mime(subject: str = "Hello", body: str = "Hi there", *, sender: str = "Alice <a@x.org>",
         to: str = "Bob <bob@example.com>", cc: str = "", bcc: str = "",
         date: str = "Sat, 14 Mar 2026 09:26:53 +0000", extra: str = "",
         attachment: Optional[bytes] = None, html: bool = False) -> bytes:
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
    if cc:
        head += f"Cc: {cc}\r\n"
    if bcc:
        head += f"Bcc: {bcc}\r\n"
    head += extra + "MIME-Version: 1.0\r\n"
    kind = "text/html" if html else "text/plain"
    if attachment is None:
        return (head + f"Content-Type: {kind}; charset=utf-8\r\n\r\n{body}\r\n").encode()
    return (head + 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
            f"Content-Type: {kind}; charset=utf-8\r\n\r\n{body}\r\n--b1\r\n"
            "Content-Type: application/octet-stream\r\n"
            'Content-Disposition: attachment; filename="a.bin"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
            + __import__("base64").b64encode(attachment).decode() + "\r\n--b1--\r\n").encode()


class QueryFixture(DatabaseTestBase):
    """``self.mail``: alice's UserMail; ``self.call(name, args)``: a method's response."""

    def setUp(self) -> Any:
        d = super().setUp()
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        now = datetime.now(timezone.utc)
        run_sync(self.engine, accounts.add_domain, "example.com", now, write=True)
        hashed = passwords.hash_password("pw-query-fixture-1", 4)
        self.alice = run_sync(self.engine, accounts.add_user, "alice@example.com", hashed,
                              now, write=True)
        self.bob = run_sync(self.engine, accounts.add_user, "bob@example.com", hashed, now,
                            write=True)
        self.workers = WorkerPool(reactor, 2)
        self.workers.startService()
        self.addCleanup(self.workers.stopService)
        self.blobs = DatabaseBlobs(os.path.join(directory, "spool"))
        self.service = MailService(runner=self.runner, keyring=KEYRING, blob_store=self.blobs,
                                   workers=self.workers, clock=reactor)
        return d

    @defer.inlineCallbacks
    def open(self, email: str = "alice@example.com") -> Any:
        mail: UserMail = yield self.service.open_account(email)
        self.mail = mail
        boxes, _ = yield mail.mailboxes_and_subscriptions()
        self.boxes = {box.name: box for box in boxes}
        return mail

    def account_id(self, mail: UserMail) -> str:
        return f"A{mail.user.id}"

    @defer.inlineCallbacks
    def call(self, name: str, args: dict[str, Any], mail: Optional[UserMail] = None) -> Any:
        from mailgosend.jmap.email_query import METHODS
        mail = mail or self.mail
        args = {"accountId": self.account_id(mail), **args}
        call = Call(name, "c0", self.account_id(mail), mail, None, Limits())
        response = yield defer.Deferred.fromCoroutine(METHODS[name].handler(call, args))
        return response

    @defer.inlineCallbacks
    def error(self, name: str, args: dict[str, Any]) -> Any:
        """The MethodError a call fails with (its RFC type and description)."""
        try:
            yield self.call(name, args)
        except MethodError as error:
            return error
        raise AssertionError(f"{name} did not fail")

    @defer.inlineCallbacks
    def add(self, raw: bytes, box: str = "INBOX", flags: tuple[str, ...] = (),
            date: Optional[datetime] = None) -> Any:
        """Store a message; its JMAP id."""
        delivered = yield self.mail.append(self.boxes[box].id, raw, flags, date)
        return f"M{delivered.message_id}"
