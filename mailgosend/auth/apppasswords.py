# -*- test-case-name: tests.test_auth_apppasswords -*-
"""App passwords: what they look like, which protocols they may open, and which service
asks.  Pure functions; storage is store/apppasswords.py, the check auth/checker.py.

An app password is made by the server (never chosen by a person): 20 characters from a
31-letter alphabet, about 99 bits, shown once as ``xxxx-xxxx-xxxx-xxxx-xxxx``.  Dashes,
spaces and case are ignored when it is typed.  Its first four characters (the prefix) are
stored in the clear: lists show them so people can tell their passwords apart, and a login
bcrypt-checks only the rows with that prefix, so a user's tenth app password costs no more
than the first.  The remaining 80 bits keep it out of reach of guessing.
"""

from __future__ import annotations

import secrets
from typing import Iterable, Optional

__all__ = ["PROTOCOLS", "PREFIX_LENGTH", "format_app_password", "new_app_password",
           "normalize_app_password", "parse_protocols", "protocol_of_service"]

# The scopes an app password can have: SMTP AUTH on 587/465 is "submission"; "jmap" is the
# JMAP API on the web port (HTTP Basic or Bearer, jmap/auth.py).
PROTOCOLS = ("imap", "pop3", "submission", "dav", "jmap")
PREFIX_LENGTH = 4
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_LENGTH = 20

# ClientCredentials.service -> the scope it needs; web and admin sign-ins take the account
# password and the second factor, never an app password.
_SERVICE_PROTOCOL = {"imap": "imap", "pop3": "pop3", "submission": "submission",
                     "smtps": "submission", "dav": "dav", "jmap": "jmap"}


def new_app_password() -> str:
    """A fresh app password, normalised (no dashes): format it for display."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))


def format_app_password(password: str) -> str:
    return "-".join(password[i:i + 4] for i in range(0, len(password), 4))


def normalize_app_password(text: str) -> Optional[str]:
    """The app password in ``text`` without dashes, spaces or case; None if ``text`` cannot
    be one (then it is only ever checked as the account password)."""
    candidate = "".join(text.split()).replace("-", "").lower()
    if len(candidate) != _LENGTH or any(c not in _ALPHABET for c in candidate):
        return None
    return candidate


def protocol_of_service(service: str) -> Optional[str]:
    """The app-password scope a login on ``service`` needs; None for web, admin and others."""
    return _SERVICE_PROTOCOL.get(service)


def parse_protocols(items: Iterable[str]) -> tuple[str, ...]:
    """The protocols named (``smtp`` is accepted for submission), in canonical order;
    ValueError names an unknown one or an empty choice."""
    chosen = set()
    for item in items:
        for word in item.replace(",", " ").split():
            name = word.strip().lower()
            name = "submission" if name == "smtp" else name
            if name not in PROTOCOLS:
                raise ValueError(f"unknown protocol {word!r}: choose from "
                                 f"{', '.join(PROTOCOLS)}")
            chosen.add(name)
    if not chosen:
        raise ValueError(f"choose at least one protocol: {', '.join(PROTOCOLS)}")
    return tuple(p for p in PROTOCOLS if p in chosen)
