"""Submission: the From: header must be the logged-in user's too.

RFC 6409 §8 lets a submission server enforce sender policy; checking only the
envelope would let a user sign mail as anybody (our DKIM signature then
vouches for the forged From, the thing DMARC exists to stop).
"""

from __future__ import annotations

from email import policy
from email.parser import BytesHeaderParser
from typing import Optional

from sqlalchemy.engine import Connection

from mailgosend.smtp.replies import SMTPReply
from mailgosend.store import accounts


def from_addresses(header_block: bytes) -> list[str]:
    """The addresses of the From: field(s); empty when missing or unparsable."""
    try:
        headers = BytesHeaderParser(policy=policy.default).parsebytes(header_block)
        values = headers.get_all("From") or []
        return [a.addr_spec for value in values for a in value.addresses if a.addr_spec]
    except Exception:
        return []


def check_author(conn: Connection, user_email: str, header_block: bytes) -> Optional[SMTPReply]:
    authors = from_addresses(header_block)
    if not authors:
        return SMTPReply(550, "5.6.0", "The message has no valid From: header")
    for author in authors:
        if not accounts.may_send_as(conn, user_email, author):
            return SMTPReply(553, "5.7.1", f"From: header address <{author}> is not owned by "
                                           f"{user_email}")
    return None
