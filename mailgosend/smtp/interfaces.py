"""The narrow boundary between the SMTP protocol and everything behind it.

The protocol knows nothing about users, domains, DNS, spam or storage: it asks an
:class:`ISMTPBackend`. Every method may refuse with :class:`~mailgosend.smtp.replies.SMTPReply`
(raised, or as the failure of the returned Deferred); that reply is sent to the client as is.
Any other exception is logged and becomes ``451 4.3.0``.

Calls happen in protocol order, one at a time per connection: the protocol never calls the
backend again on a connection before the previous Deferred has fired.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from zope.interface import Interface

if TYPE_CHECKING:
    from mailgosend.smtp.params import MailParams, RcptParams
    from mailgosend.smtp.replies import SMTPReply
    from mailgosend.smtp.session import SMTPSession


class ISMTPBackend(Interface):
    """Policy and storage for one listener (inbound on 25, submission on 587/465)."""

    def connection_made(session: SMTPSession) -> Deferred[None]:
        """Called once per connection before the greeting.

        :param session: :class:`~mailgosend.smtp.session.SMTPSession` with peer and local address.
        :return: ``Deferred[None]``; failing with an SMTPReply replaces the greeting. 421 closes
            the connection; 554 keeps it open answering 503 to everything but QUIT (RFC 5321 §3.1).
        """

    def authenticate(session: SMTPSession, username: str, password: str) -> Deferred[str]:
        """Check SASL credentials (PLAIN or LOGIN, already decoded to ``str``).

        Only called on submission/smtps listeners and only under TLS.

        :return: ``Deferred[str]``, the authenticated identity to store in the session; failure
            with SMTPReply (default ``535 5.7.8``, or ``454 4.7.0`` for a temporary problem).
        """

    def validate_sender(session: SMTPSession, address: str, params: MailParams) -> Deferred[None]:
        """Accept or refuse MAIL FROM.

        :param address: canonical address, ``""`` for the null reverse-path.
        :param params: :class:`~mailgosend.smtp.params.MailParams`.
        :return: ``Deferred[None]``; failure with SMTPReply (``553 5.7.1``, ``550 5.7.1`` ...).
        """

    def validate_recipient(
        session: SMTPSession, address: str, params: RcptParams
    ) -> Deferred[None]:
        """Accept or refuse one RCPT TO; ``session.recipients`` holds those accepted so far.

        :param address: canonical address, ``"postmaster"`` for the bare ``<postmaster>``.
        :param params: :class:`~mailgosend.smtp.params.RcptParams`.
        :return: ``Deferred[None]``; failure with SMTPReply (``550 5.1.1``, ``550 5.7.1`` relay
            denied, ``452 4.2.2`` ...).
        """

    def begin_message(session: SMTPSession) -> IMessageSink:
        """Start receiving the message of the current transaction (after DATA, before 354).

        :return: an :class:`IMessageSink`; may raise SMTPReply to refuse DATA.
        """


class IMessageSink(Interface):
    """Receives the body of one message, in large chunks, as it streams in."""

    def write(chunk: bytes) -> None:
        """Take the next slice of the message.

        ``chunk`` is ``bytes``: dot-unstuffed (RFC 5321 §4.5.2) message octets, CRLF line ends
        as sent. Chunk boundaries are arbitrary (not line-aligned). May raise SMTPReply (e.g.
        ``452 4.2.2`` over quota): no further writes follow, the rest of the data is read and
        discarded, :meth:`abort` is called and that reply answers the final dot.
        """

    def finish() -> Deferred[SMTPReply]:
        """The final ``CRLF.CRLF`` arrived and every chunk was written.

        :return: ``Deferred[SMTPReply]`` firing with the success reply (``250 2.0.0 ...``) only
            once the message is durably stored (DESIGN §3); failure with SMTPReply otherwise.
            If the connection is gone by then the result is dropped.
        """

    def abort() -> None:
        """Discard everything: the connection was lost mid-DATA, or the message was refused."""
