"""POP3 status lines and the refusals that become them (RFC 1939 §3, RFC 2449 §8, RFC 3206).

Every refusal a command can meet is an exception that carries its ``-ERR`` line, so the protocol
maps errors to replies in one place.  Response codes (RFC 2449 §8) are the machine-readable part
clients act on: ``[AUTH]`` means "ask the user for a new password" (RFC 3206 §5), ``[SYS/TEMP]``
means "our fault, try again later" (RFC 3206 §4), so the two must never be mixed up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["AUTH", "IN_USE", "SYS_PERM", "SYS_TEMP", "BadArguments", "NoSuchMessage",
           "POP3Refusal", "Reply", "err", "ok"]

AUTH = "AUTH"  # RFC 3206 §5: the credentials were wrong (or not acceptable here)
SYS_TEMP = "SYS/TEMP"  # RFC 3206 §4: transient server-side problem
SYS_PERM = "SYS/PERM"  # RFC 3206 §4: permanent server-side problem
IN_USE = "IN-USE"  # RFC 2449 §8.1.1; unused: concurrent sessions are allowed (see maildrop.py)

# RFC 2449 §4: a response line is at most 512 octets including CRLF.
_MAX_TEXT = 400


@dataclass(frozen=True)
class Reply:
    """One status line: ``+OK text`` or ``-ERR [CODE] text``."""

    ok: bool
    text: str = ""
    code: Optional[str] = None

    def encode(self) -> bytes:
        status = "+OK" if self.ok else "-ERR"
        code = f" [{self.code}]" if self.code else ""
        text = f" {self.text[:_MAX_TEXT]}" if self.text else ""
        return f"{status}{code}{text}\r\n".encode("utf-8", "replace")


def ok(text: str = "") -> Reply:
    return Reply(True, text)


def err(text: str, code: Optional[str] = None) -> Reply:
    return Reply(False, text, code)


class POP3Refusal(Exception):
    """A command refused with ``reply``; ``close`` ends the session after the reply is sent."""

    def __init__(self, text: str, code: Optional[str] = None, *, close: bool = False) -> None:
        super().__init__(text)
        self.reply = err(text, code)
        self.close = close


class NoSuchMessage(POP3Refusal):
    """RFC 1939 §5: a message number that is out of range or marked as deleted."""

    def __init__(self, number: int) -> None:
        super().__init__(f"No such message {number}" if number > 0 else "No such message")


class BadArguments(POP3Refusal):
    """Arguments that do not match the command's syntax."""

    def __init__(self, usage: str) -> None:
        super().__init__(f"Syntax: {usage}")
