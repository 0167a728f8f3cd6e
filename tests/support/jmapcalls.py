"""Calling JMAP method handlers directly, over a real database (the mail service and a
UserMail, as the endpoint builds them), for tests of the data-type modules.

``JMAPCallFixture`` is a test mixin after ``IMAPFixture`` (tests/support/imap.py): it opens
alice's mail and offers ``jmap(name, args)`` (the handler's response, or the MethodError's
type as ``{"error": type}``), ``send(raw, subject...)`` (a delivery through the one local
delivery path, mail/delivery.py), and small readers of a /changes answer.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet import defer, reactor

from mailgosend.jmap import email_changes, mailbox, thread
from mailgosend.jmap.errors import MethodError
from mailgosend.jmap.methods import Call, Limits
from mailgosend.mail.delivery import Placement
from mailgosend.mail.service import MailService, UserMail
from tests.support.imap import KEYRING

ACCOUNT = "A1"
METHODS = {**mailbox.METHODS, **thread.METHODS, **email_changes.METHODS}


def mail_message(subject: str, message_id: str, *, in_reply_to: str = "",
                 references: str = "", body: str = "Hello.\r\n") -> bytes:
    """A small message with the threading headers given."""
    extra = ""
    if in_reply_to:
        extra += f"In-Reply-To: {in_reply_to}\r\n"
    if references:
        extra += f"References: {references}\r\n"
    return (f"From: Carol <carol@example.net>\r\nTo: alice@example.com\r\n"
            f"Subject: {subject}\r\nMessage-ID: {message_id}\r\n{extra}"
            f"Date: Sat, 14 Mar 2026 09:26:53 +0100\r\n\r\n{body}").encode()


class JMAPCallFixture:
    runner: Any
    blobs: Any
    workers: Any
    trainer: Any
    events: Any
    alice: Any
    limits = Limits()

    def service(self) -> MailService:
        return MailService(runner=self.runner, keyring=KEYRING, blob_store=self.blobs,
                           workers=self.workers, clock=reactor, trainer=self.trainer,
                           events=self.events)

    @defer.inlineCallbacks
    def open_mail(self, service: Optional[MailService] = None) -> Any:
        self.mail: UserMail = yield (service or self.service()).open_account(self.alice.email)
        return self.mail

    @defer.inlineCallbacks
    def jmap(self, name: str, args: dict[str, Any], *, created: Optional[dict[str, str]] = None
             ) -> Any:
        """The handler's response arguments, or ``{"error": type, ...}``."""
        call = Call(name, "c0", ACCOUNT, self.mail, None, self.limits,
                    created=created if created is not None else {})
        try:
            result = yield defer.Deferred.fromCoroutine(
                METHODS[name].handler(call, {"accountId": ACCOUNT, **args}))
        except MethodError as exc:
            return {"error": exc.kind, **exc.response()}
        return result

    @defer.inlineCallbacks
    def send(self, raw: bytes, target: Any = "inbox", flags: tuple[str, ...] = ()) -> Any:
        """Deliver as SMTP does (seal in a worker, file in one transaction, publish)."""
        now = self.mail.service.now()
        results = yield defer.Deferred.fromCoroutine(self.mail.service.delivery.deliver(
            raw, [Placement(self.mail.user, target, flags)], now))
        return results[0]

    @defer.inlineCallbacks
    def state(self) -> Any:
        result = yield self.jmap("Mailbox/get", {"ids": []})
        return result["state"]

    @defer.inlineCallbacks
    def changes(self, method: str, since: str, **args: Any) -> Any:
        """A /changes answer as (created, updated, destroyed) sets, with the whole answer."""
        result = yield self.jmap(method, {"sinceState": since, **args})
        if "error" in result:
            return result
        return (set(result["created"]), set(result["updated"]), set(result["destroyed"]),
                result)
