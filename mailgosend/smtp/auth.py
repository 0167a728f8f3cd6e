"""SASL for SMTP AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login).

Pure state machines over the decoded client responses. The stock ``twisted.mail`` path crashes
on ``AUTH`` without a mechanism (IndexError) and on PLAIN without NUL separators
(IllegalClientResponse), dropping the connection (library notes §1); here every malformed input
is a :class:`SASLError` that the protocol answers with 501.

Credentials live only in the returned :class:`Credentials` and are never logged; its repr
hides the password.
"""

from __future__ import annotations

import abc
import base64
import binascii
from dataclasses import dataclass, field

from mailgosend.auth.saslplain import MalformedPlain, decode_plain
from mailgosend.smtp.replies import SMTPReply

MECHANISMS = ("PLAIN", "LOGIN")
# RFC 4954 §4: an AUTH command line or a response line may be up to 12,288 octets.
MAX_AUTH_LINE = 12288


class SASLError(Exception):
    """A malformed SASL exchange; carries the reply that answers it."""

    def __init__(self, reply: SMTPReply) -> None:
        super().__init__(reply)
        self.reply = reply


MALFORMED = SMTPReply(501, "5.5.2", "Cannot decode response")
CANCELLED = SMTPReply(501, "5.7.0", "Authentication cancelled")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    authzid: str = ""


@dataclass(frozen=True)
class Challenge:
    """Text to send base64-encoded in a ``334`` reply."""

    text: bytes


def decode_response(line: bytes) -> bytes:
    """Decode one base64 client response (RFC 4954 §4); ``=`` is the empty initial response."""
    if line == b"*":
        raise SASLError(CANCELLED)
    if line == b"=":
        return b""
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SASLError(MALFORMED) from exc


def _text(raw: bytes) -> str:
    """LOGIN's user name and password: UTF-8, as PLAIN's are (RFC 4616 §2)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SASLError(MALFORMED) from exc


class Mechanism(abc.ABC):
    """One running exchange. ``start`` handles the AUTH line, ``respond`` each later line."""

    name = ""

    @abc.abstractmethod
    def start(self, initial: bytes | None) -> Challenge | Credentials:
        """Answer the AUTH command; ``initial`` is its (still base64) initial response."""

    @abc.abstractmethod
    def respond(self, line: bytes) -> Challenge | Credentials:
        """Answer one base64 client line sent after a 334 challenge."""


class PlainMechanism(Mechanism):
    """RFC 4616: ``[authzid] NUL authcid NUL passwd``, as initial response or after ``334``;
    the message is decoded by ``mailgosend.auth.saslplain`` as for IMAP and POP3."""

    name = "PLAIN"

    def start(self, initial: bytes | None) -> Challenge | Credentials:
        if initial is None:
            return Challenge(b"")
        return self.respond(initial)

    def respond(self, line: bytes) -> Challenge | Credentials:
        if line == b"*":
            raise SASLError(CANCELLED)
        try:
            plain = decode_plain(line)
        except MalformedPlain as exc:
            raise SASLError(MALFORMED) from exc
        return Credentials(plain.authcid, plain.password, plain.authzid)


class LoginMechanism(Mechanism):
    """LOGIN: ``334 VXNlcm5hbWU6`` (Username:), then ``334 UGFzc3dvcmQ6`` (Password:).

    An initial response, if given, is the username (as Outlook and swaks send it).
    """

    name = "LOGIN"

    def __init__(self) -> None:
        self._username: str | None = None

    def start(self, initial: bytes | None) -> Challenge | Credentials:
        if initial is None:
            return Challenge(b"Username:")
        return self.respond(initial)

    def respond(self, line: bytes) -> Challenge | Credentials:
        value = _text(decode_response(line))
        if self._username is None:
            if not value or "\x00" in value:
                raise SASLError(MALFORMED)
            self._username = value
            return Challenge(b"Password:")
        if "\x00" in value:
            raise SASLError(MALFORMED)
        return Credentials(self._username, value)


def parse_auth_command(argument: str) -> tuple[Mechanism, bytes | None]:
    """Parse ``AUTH <mechanism> [initial-response]`` into a fresh mechanism and its response."""
    parts = argument.split()
    if not parts:
        raise SASLError(SMTPReply(501, "5.5.4", "Syntax: AUTH mechanism"))
    if len(parts) > 2:
        raise SASLError(SMTPReply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"))
    name = parts[0].upper()
    mechanism: Mechanism
    if name == "PLAIN":
        mechanism = PlainMechanism()
    elif name == "LOGIN":
        mechanism = LoginMechanism()
    else:
        raise SASLError(SMTPReply(504, "5.5.4", "Unrecognized authentication type"))
    initial = parts[1].encode("ascii", "replace") if len(parts) == 2 else None
    return mechanism, initial


def encode_challenge(challenge: Challenge) -> str:
    """The text of a ``334`` reply (RFC 4954 §4: base64, a lone space for an empty one)."""
    return base64.b64encode(challenge.text).decode("ascii")
