"""One message in the DATA phase: the chunk scanner, the backend's sink, and the verdict.

Kept apart from the protocol so the rules for refusing a message sit in one short place.
Codes for the cases RFC 5321 leaves open, and why:

- bare CR or LF anywhere in the message: ``554 5.5.2``, after the final dot, session kept.
  Only CRLF.CRLF ends the data here, so nothing can be smuggled *into* this server; refusing
  also keeps such bodies from being relayed to servers that end data differently (SMTP
  smuggling, CVE-2023-51764; Postfix's ``smtpd_forbid_bare_newline`` uses 5.5.2 as well, but
  disconnects with 521: unnecessary when the terminator is never ambiguous).
- NUL: ``554 5.6.0`` (RFC 5322 §2.3 forbids it; storing it breaks IMAP clients).
- 8-bit octets without BODY=8BITMIME/SMTPUTF8: accepted on inbound (robustness, as Postfix),
  ``554 5.6.0`` on submission/smtps: we are the first hop and must know the body type to relay
  it correctly (RFC 6152 §3, RFC 6409 §8); every current MUA declares it.
- over the size limit: ``552 5.3.4`` (RFC 1870 §6.3), data counted as it streams.
- a header section over ``max_header_size`` (HEADER_SIZE_LIMIT, 100 KiB by default as
  Postfix's header_size_limit): ``552 5.3.4`` as well (RFC 3463: a size limit of this
  system), counted as it streams.  Postfix silently drops the excess header lines
  instead; refusing keeps a 250 a promise to store the message as sent (DESIGN §3).
"""

from __future__ import annotations

from twisted.logger import Logger

from mailgosend.smtp.datareader import DataReader
from mailgosend.smtp.interfaces import IMessageSink
from mailgosend.smtp.replies import LOCAL_ERROR, MESSAGE_TOO_BIG, SMTPReply
from mailgosend.smtp.session import SMTPSession

log = Logger()

BARE_NEWLINE_DATA = SMTPReply(554, "5.5.2", "Message rejected: bare <CR> or <LF> received")
NUL_DATA = SMTPReply(554, "5.6.0", "Message rejected: NUL character in message")
HEADER_TOO_BIG = SMTPReply(552, "5.3.4", "Message rejected: header section exceeds "
                                          "the size limit")
UNDECLARED_8BIT = SMTPReply(
    554, "5.6.0", "Message rejected: 8-bit data without BODY=8BITMIME or SMTPUTF8"
)


class IncomingMessage:
    """Streams one message into its sink; nothing is held beyond a few octets of a chunk."""

    def __init__(self, sink: IMessageSink, max_size: int,
                 max_header_size: int | None = None) -> None:
        self.sink = sink
        self.reader = DataReader(max_size, max_header_size)
        self.sink_error: SMTPReply | None = None

    @property
    def size(self) -> int:
        return self.reader.size

    @property
    def eight_bit(self) -> bool:
        return self.reader.eight_bit

    def receive(self, data: bytes) -> bytes | None:
        """Take octets from the wire; once the end of data is seen, return what follows it."""
        feed = self.reader.feed(data)
        if feed.body and self.sink_error is None:
            try:
                self.sink.write(feed.body)
            except SMTPReply as reply:
                self.sink_error = reply
                self.reader.discard()
            except Exception:
                log.failure("smtp message sink write failed")
                self.sink_error = LOCAL_ERROR
                self.reader.discard()
        return feed.rest if feed.done else None

    def verdict(self, session: SMTPSession) -> SMTPReply | None:
        """The refusal for a complete message, or None to hand it to ``sink.finish()``."""
        reader = self.reader
        if reader.bare_newline:
            return BARE_NEWLINE_DATA
        if reader.nul:
            return NUL_DATA
        if reader.oversize:
            return MESSAGE_TOO_BIG
        if reader.header_oversize:
            return HEADER_TOO_BIG
        if reader.eight_bit and session.listener != "inbound":
            if not session.mail_params.allows_8bit:
                return UNDECLARED_8BIT
        return self.sink_error

    def abort(self) -> None:
        try:
            self.sink.abort()
        except Exception:
            log.failure("smtp message sink abort failed")
