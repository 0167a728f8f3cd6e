# -*- test-case-name: tests.test_jmap_core -*-
"""JMAP ids (RFC 8620 §1.2): short, URL-safe, one prefix per kind, never reused.

- Mailbox ``B<mailboxes.id>``; Email ``M<messages.email_id>`` (the email id is kept by a move,
  new for a copy); Thread ``T<thread id>``; Identity ``I<n>``; EmailSubmission ``S<n>``.
- Blobs (RFC 8620 §6): ``G<email id>`` a whole message (its RFC 5322 bytes);
  ``G<email id>.<partId>`` one part, transfer-decoded (partId as in ``bodyStructure``, the
  IMAP part number "1.2"); ``U<token>`` an upload.

A malformed id is not an error in itself: RFC 8620 §5.1 wants it reported as ``notFound``,
so the parsers return None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

__all__ = ["format_id", "parse_id", "BlobRef", "parse_blob_id", "message_blob_id",
           "part_blob_id", "upload_blob_id"]

_NUMBER = re.compile(r"[1-9][0-9]{0,18}\Z")
_PART = re.compile(r"[1-9][0-9]{0,4}(?:\.[1-9][0-9]{0,4}){0,31}\Z")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}\Z")


def format_id(prefix: str, number: int) -> str:
    """``format_id("M", 42) == "M42"``."""
    return f"{prefix}{number}"


def parse_id(prefix: str, value: object) -> Optional[int]:
    """The number of an id of kind ``prefix``, or None when ``value`` is not one."""
    if not isinstance(value, str) or not value.startswith(prefix):
        return None
    digits = value[len(prefix):]
    return int(digits) if _NUMBER.match(digits) else None


@dataclass(frozen=True)
class BlobRef:
    """What a blob id names: a message (``part`` None), one of its parts, or an upload."""

    email_id: Optional[int] = None
    part: Optional[str] = None
    upload: Optional[str] = None


def message_blob_id(email_id: int) -> str:
    return f"G{email_id}"


def part_blob_id(email_id: int, part: str) -> str:
    return f"G{email_id}.{part}"


def upload_blob_id(token: str) -> str:
    return f"U{token}"


def parse_blob_id(value: object) -> Optional[BlobRef]:
    if not isinstance(value, str) or len(value) < 2:
        return None
    if value[0] == "U":
        return BlobRef(upload=value[1:]) if _TOKEN.match(value[1:]) else None
    if value[0] != "G":
        return None
    number, _, part = value[1:].partition(".")
    if not _NUMBER.match(number) or (part and not _PART.match(part)):
        return None
    return BlobRef(email_id=int(number), part=part or None)
