"""Submission: the From: header must be the logged-in user's too.

RFC 6409 §8 lets a submission server enforce sender policy; checking only the
envelope would let a user sign mail as anybody (our DKIM signature then
vouches for the forged From, the thing DMARC exists to stop).
"""

from __future__ import annotations

from typing import Optional

from mailgosend.mail.submission import from_addresses
from mailgosend.smtp.replies import SMTPReply

__all__ = ["author_refusal", "from_addresses"]  # from_addresses: mail/submission.py's


def author_refusal(user_email: str, authors: list[str], not_owned: Optional[str]
                   ) -> Optional[SMTPReply]:
    """The reply for a submission whose From: ``authors`` are these, ``not_owned`` the first
    the user may not send as (store.accounts.first_not_owned); None: accepted."""
    if not authors:
        return SMTPReply(550, "5.6.0", "The message has no valid From: header")
    if not_owned is not None:
        return SMTPReply(553, "5.7.1", f"From: header address <{not_owned}> is not owned by "
                                       f"{user_email}")
    return None
