"""IMAP status replies as exceptions, mapped to the wire in one place (server.py).

``ImapError(status, text, code)`` becomes ``<tag> <status> [<code>] <text>``.  BAD is for
protocol errors (RFC 3501 §7.1.3), NO for operations refused (§7.1.2); codes are RFC 3501
§7.1 and RFC 5530 response codes.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["ImapError", "bad", "no"]


class ImapError(Exception):
    """A command answered with a tagged NO or BAD."""

    def __init__(self, status: str, text: str, code: Optional[str] = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code


def bad(text: str, code: Optional[str] = None) -> ImapError:
    return ImapError("BAD", text, code)


def no(text: str, code: Optional[str] = None) -> ImapError:
    return ImapError("NO", text, code)
