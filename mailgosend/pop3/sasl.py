"""SASL for POP3 AUTH (RFC 5034): the PLAIN mechanism (RFC 4616), decoded as a pure function.

PLAIN is the only mechanism offered: passwords are stored as bcrypt hashes, so the
challenge-response mechanisms (CRAM-MD5, SCRAM without stored keys, APOP) cannot be verified,
and PLAIN is only accepted under TLS (RFC 4616 §6).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from mailgosend.pop3.replies import POP3Refusal

__all__ = ["CANCEL", "MECHANISMS", "InvalidSASLResponse", "PlainCredentials", "decode_plain"]

MECHANISMS = ("PLAIN",)
CANCEL = b"*"  # RFC 5034 §4: the client aborts the exchange
_FIELD_LIMIT = 255  # RFC 4616 §2: each of authzid, authcid and passwd is at most 255 octets


class InvalidSASLResponse(POP3Refusal):
    """RFC 5034 §4: a response that is not valid base64 or not a PLAIN message is rejected."""

    def __init__(self, why: str) -> None:
        super().__init__(f"Invalid SASL response: {why}")


@dataclass(frozen=True)
class PlainCredentials:
    authzid: str
    authcid: str
    password: str

    def __repr__(self) -> str:  # never show the password, even in a traceback
        return f"PlainCredentials(authzid={self.authzid!r}, authcid={self.authcid!r})"


def decode_plain(response: bytes) -> PlainCredentials:
    """``[authzid] NUL authcid NUL passwd`` from a base64 client response (RFC 4616 §2).

    "=" is the empty response (RFC 5034 §4), which PLAIN cannot use.  Text is UTF-8; an
    authcid or password that is not is refused here, before any password work.
    """
    if response == b"=":
        raise InvalidSASLResponse("empty")
    try:
        message = binascii.a2b_base64(response, strict_mode=True)
    except binascii.Error:
        raise InvalidSASLResponse("not base64") from None
    fields = message.split(b"\0")
    if len(fields) != 3:
        raise InvalidSASLResponse("not a PLAIN message")
    if not fields[1] or not fields[2]:
        raise InvalidSASLResponse("empty user name or password")
    if any(len(field) > _FIELD_LIMIT for field in fields):
        raise InvalidSASLResponse("field too long")
    try:
        authzid, authcid, password = (field.decode("utf-8") for field in fields)
    except UnicodeDecodeError:
        raise InvalidSASLResponse("not UTF-8") from None
    return PlainCredentials(authzid, authcid, password)
