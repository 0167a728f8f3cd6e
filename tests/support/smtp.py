"""An in-memory ISMTPBackend for SMTP protocol and client tests.

Policy, kept small but real enough to test against: inbound (port 25) accepts any sender and
only recipients in ``local_domains`` (``550 5.7.1`` relay denied otherwise, ``550 5.1.1`` for an
unknown mailbox when ``mailboxes`` is given); submission accepts any recipient once
authenticated. Any method can be *held*: its Deferred is parked in :attr:`MemoryBackend.pending`
and fired by the test, in any order, to exercise pipelining.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from mailgosend.smtp.interfaces import IMessageSink, ISMTPBackend
from mailgosend.smtp.params import MailParams, RcptParams
from mailgosend.smtp.replies import SMTPReply
from mailgosend.smtp.session import SMTPSession


@dataclass
class StoredMessage:
    """What the backend durably 'stored': envelope, session facts and the exact bytes."""

    mail_from: str
    recipients: list[str]
    data: bytes
    params: MailParams
    authenticated: str | None
    tls: bool
    tls_summary: str
    helo: str | None
    listener: str
    body_8bit: bool
    chunks: int


@dataclass
class Pending:
    """A held backend call; :meth:`release` fires it with the outcome the backend decided."""

    name: str
    args: tuple[Any, ...]
    deferred: Deferred[Any]
    outcome: Any
    refusal: SMTPReply | None = None

    def release(self) -> None:
        if self.refusal is not None:
            self.deferred.errback(self.refusal)
        else:
            self.deferred.callback(self.outcome)


@implementer(IMessageSink)
class MemorySink:
    """Collects the chunks of one message; refuses past ``quota`` octets with 552 5.2.2."""

    def __init__(self, backend: MemoryBackend, session: SMTPSession) -> None:
        self.backend = backend
        self.session = session
        self.chunks: list[bytes] = []
        self.size = 0
        self.aborted = False
        self.finished = False

    def write(self, chunk: bytes) -> None:
        assert not self.aborted and not self.finished, "write after abort/finish"
        self.size += len(chunk)
        if self.backend.quota is not None and self.size > self.backend.quota:
            raise SMTPReply(552, "5.2.2", "Mailbox full")
        self.chunks.append(chunk)

    def finish(self) -> Deferred[SMTPReply]:
        assert not self.aborted, "finish after abort"
        self.finished = True
        session = self.session
        stored = StoredMessage(
            mail_from=session.mail_from or "",
            recipients=list(session.recipients),
            data=b"".join(self.chunks),
            params=session.mail_params,
            authenticated=session.authenticated,
            tls=session.tls,
            tls_summary=session.tls_summary,
            helo=session.helo,
            listener=session.listener,
            body_8bit=session.body_8bit,
            chunks=len(self.chunks),
        )
        if self.backend.finish_reply is not None:
            return self.backend.outcome("finish", (session,), refusal=self.backend.finish_reply)
        reply = SMTPReply(250, "2.0.0", f"Ok: queued as {session.transaction_id}")
        def stored_now(result: SMTPReply) -> SMTPReply:
            self.backend.messages.append(stored)  # only once "durable", as a real store would
            return result

        return self.backend.outcome("finish", (session,), reply).addCallback(stored_now)

    def abort(self) -> None:
        self.aborted = True
        self.backend.aborted.append(self)


@implementer(ISMTPBackend)
class MemoryBackend:
    """See the module docstring. Every call is appended to :attr:`calls` as (name, detail)."""

    def __init__(
        self,
        users: dict[str, str] | None = None,
        local_domains: tuple[str, ...] = ("example.com",),
        mailboxes: set[str] | None = None,
    ) -> None:
        self.users = dict(users or {})
        self.local_domains = local_domains
        self.mailboxes = mailboxes
        self.connect_reply: SMTPReply | None = None
        self.rejected_senders: set[str] = set()
        self.quota: int | None = None
        self.finish_reply: SMTPReply | None = None  # a refusal for finish(), e.g. 451
        self.held: set[str] = set()
        self.pending: list[Pending] = []
        self.calls: list[tuple[str, str]] = []
        self.messages: list[StoredMessage] = []
        self.sinks: list[MemorySink] = []
        self.aborted: list[MemorySink] = []
        self.sessions: list[SMTPSession] = []

    def hold(self, *names: str) -> None:
        self.held.update(names)

    def release_all(self) -> None:
        pending, self.pending = self.pending, []
        for call in pending:
            call.release()

    def outcome(
        self, name: str, args: tuple[Any, ...], outcome: Any = None, refusal: SMTPReply | None = None
    ) -> Deferred[Any]:
        """The Deferred for a backend call: fired now, or parked in :attr:`pending` if held."""
        if name in self.held:
            d: Deferred[Any] = Deferred()
            self.pending.append(Pending(name, args, d, outcome, refusal))
            return d
        if refusal is not None:
            return fail(refusal)
        return succeed(outcome)

    def connection_made(self, session: SMTPSession) -> Deferred[None]:
        self.sessions.append(session)
        self.calls.append(("connection_made", session.peer_ip))
        return self.outcome("connection_made", (session,), refusal=self.connect_reply)

    def authenticate(self, session: SMTPSession, username: str, password: str) -> Deferred[str]:
        self.calls.append(("authenticate", username))
        if self.users.get(username) == password:
            return self.outcome("authenticate", (session, username), username)
        refusal = SMTPReply(535, "5.7.8", "Authentication credentials invalid")
        return self.outcome("authenticate", (session, username), refusal=refusal)

    def validate_sender(self, session: SMTPSession, address: str, params: MailParams) -> Deferred[None]:
        self.calls.append(("validate_sender", address))
        refusal = None
        if address in self.rejected_senders:
            refusal = SMTPReply(553, "5.7.1", "Sender address rejected")
        return self.outcome("validate_sender", (session, address, params), refusal=refusal)

    def validate_recipient(self, session: SMTPSession, address: str, params: RcptParams) -> Deferred[None]:
        self.calls.append(("validate_recipient", address))
        refusal = self._rcpt_refusal(session, address)
        return self.outcome("validate_recipient", (session, address, params), refusal=refusal)

    def _rcpt_refusal(self, session: SMTPSession, address: str) -> SMTPReply | None:
        if address == "postmaster":
            return None
        local, _, domain = address.rpartition("@")
        if domain not in self.local_domains:
            if session.authenticated is None:
                return SMTPReply(550, "5.7.1", "Relay access denied")
            return None
        if self.mailboxes is not None and local not in self.mailboxes:
            return SMTPReply(550, "5.1.1", "Recipient address rejected: User unknown")
        return None

    def begin_message(self, session: SMTPSession) -> IMessageSink:
        self.calls.append(("begin_message", session.transaction_id or ""))
        sink = MemorySink(self, session)
        self.sinks.append(sink)
        return sink

