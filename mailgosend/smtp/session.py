"""The state of one SMTP connection, as the backend sees it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from mailgosend.smtp.params import MailParams, RcptParams

ListenerKind = Literal["inbound", "submission", "smtps"]
LISTENER_KINDS: tuple[ListenerKind, ...] = ("inbound", "submission", "smtps")


def new_id() -> str:
    """A random id for log correlation (session and transaction); never derived from input."""
    return secrets.token_hex(8)


@dataclass
class SMTPSession:
    """Connection and transaction state handed to every :class:`ISMTPBackend` call.

    The protocol owns it and changes it; backends read it. ``mail_from`` is ``None`` outside a
    transaction and ``""`` for the null reverse-path. Addresses are canonical (see
    :attr:`mailgosend.smtp.address.Mailbox.address`).
    """

    listener: ListenerKind
    peer_ip: str
    peer_port: int
    local_ip: str
    local_port: int
    session_id: str = field(default_factory=new_id)
    helo: str | None = None
    esmtp: bool = False
    tls: bool = False
    tls_summary: str = ""  # "TLSv1.3 TLS_AES_256_GCM_SHA384", for Received headers and logs
    authenticated: str | None = None
    mail_from: str | None = None
    mail_params: MailParams = field(default_factory=MailParams)
    recipients: list[str] = field(default_factory=list)
    # RFC 3461 NOTIFY/ORCPT of the recipients that gave any (submission only).
    rcpt_params: dict[str, RcptParams] = field(default_factory=dict)
    transaction_id: str | None = None
    body_8bit: bool = False  # set before IMessageSink.finish(): the data had 8-bit octets
    commands: int = 0
    # What the backend learnt about this transaction's recipients at RCPT time (so DATA
    # need not ask the database again); the protocol only clears it.
    resolved: dict[str, Any] = field(default_factory=dict)

    @property
    def in_transaction(self) -> bool:
        return self.mail_from is not None

    def reset_transaction(self) -> None:
        """RSET semantics (RFC 5321 §4.1.1.5): forget sender, recipients, parameters."""
        self.mail_from = None
        self.mail_params = MailParams()
        self.recipients = []
        self.rcpt_params = {}
        self.transaction_id = None
        self.body_8bit = False
        self.resolved = {}

    def reset_after_tls(self) -> None:
        """RFC 3207 §4.2: after the handshake the client starts over, knowing nothing."""
        self.reset_transaction()
        self.helo = None
        self.esmtp = False
        self.authenticated = None
