# -*- test-case-name: tests.test_auth_saslplain -*-
"""The SASL PLAIN message (RFC 4616), decoded once for SMTP AUTH, IMAP AUTHENTICATE and
POP3 AUTH.

Each protocol keeps its own framing (the cancel ``*``, continuations) and maps
:class:`MalformedPlain` to its own reply; what a PLAIN response may hold is decided here:

1. ``=`` (the empty response) is refused: PLAIN has no empty message.  Otherwise the
   response is strict base64 (RFC 4648 §3.3: no spaces, no bad padding, nothing after it).
2. ``message = [authzid] NUL authcid NUL passwd``: exactly two NULs (RFC 4616 §2).
3. authcid and passwd are ``1*SAFE``: neither may be empty; authzid may be.
4. Each field is at most 255 octets, the length RFC 4616 §2 says a server MUST accept; a
   longer one is refused before any password work.
5. The fields are UTF-8 (RFC 4616 §2); anything else is refused, not guessed at.

Whether an authzid other than the authcid is allowed is policy, not syntax: none of our
protocols lets a user act as another, see :attr:`PlainCredentials.acts_for_another`.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field

__all__ = ["MalformedPlain", "NotBase64", "PlainCredentials", "decode_plain"]

FIELD_LIMIT = 255  # RFC 4616 §2: "MUST accept up to 255 octets" per field


class MalformedPlain(ValueError):
    """Not a PLAIN message; ``why`` is a short reason a client may be shown."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class NotBase64(MalformedPlain):
    """The response is not base64 at all (IMAP words this one apart)."""

    def __init__(self) -> None:
        super().__init__("not base64")


@dataclass(frozen=True)
class PlainCredentials:
    authzid: str  # "" when the client did not ask to act as anyone
    authcid: str
    password: str = field(repr=False)  # never in a repr, a log line or a traceback

    @property
    def acts_for_another(self) -> bool:
        """The client asks to act as someone other than the user it authenticates as."""
        return bool(self.authzid) and self.authzid != self.authcid


def decode_plain(response: bytes) -> PlainCredentials:
    """The credentials in one base64 PLAIN response; MalformedPlain if it is not one.

    "=" is the empty response of SMTP, IMAP and POP3 (RFC 4954 §4, RFC 4959 §3, RFC 5034 §4),
    which PLAIN cannot use."""
    if response == b"=":
        raise MalformedPlain("empty")
    try:
        message = binascii.a2b_base64(response, strict_mode=True)
    except (binascii.Error, ValueError):
        raise NotBase64() from None
    fields = message.split(b"\0")
    if len(fields) != 3:
        raise MalformedPlain("not a PLAIN message")
    if not fields[1] or not fields[2]:
        raise MalformedPlain("empty user name or password")
    if any(len(part) > FIELD_LIMIT for part in fields):
        raise MalformedPlain("field too long")
    try:
        authzid, authcid, password = (part.decode("utf-8") for part in fields)
    except UnicodeDecodeError:
        raise MalformedPlain("not UTF-8") from None
    return PlainCredentials(authzid, authcid, password)
