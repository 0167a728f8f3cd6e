"""SASL for POP3 AUTH (RFC 5034): the PLAIN mechanism (RFC 4616) and how a bad response is
answered; the PLAIN message itself is decoded by ``mailgosend.auth.saslplain``, as for SMTP
and IMAP.

PLAIN is the only mechanism offered: passwords are stored as bcrypt hashes, so the
challenge-response mechanisms (CRAM-MD5, SCRAM without stored keys, APOP) cannot be verified,
and PLAIN is only accepted under TLS (RFC 4616 §6).
"""

from __future__ import annotations

from mailgosend.auth.saslplain import MalformedPlain, PlainCredentials, decode_plain
from mailgosend.pop3.replies import POP3Refusal

__all__ = ["CANCEL", "MECHANISMS", "InvalidSASLResponse", "plain_credentials"]

MECHANISMS = ("PLAIN",)
CANCEL = b"*"  # RFC 5034 §4: the client aborts the exchange


class InvalidSASLResponse(POP3Refusal):
    """RFC 5034 §4: a response that is not valid base64 or not a PLAIN message is rejected."""

    def __init__(self, why: str) -> None:
        super().__init__(f"Invalid SASL response: {why}")


def plain_credentials(response: bytes) -> PlainCredentials:
    """The credentials in a PLAIN response, or InvalidSASLResponse saying what is wrong."""
    try:
        return decode_plain(response)
    except MalformedPlain as exc:
        raise InvalidSASLResponse(exc.why) from None
