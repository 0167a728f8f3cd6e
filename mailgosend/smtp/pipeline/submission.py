"""What the submission server adds to a message its client left incomplete (RFC 6409 §8).

RFC 6409 §8.2 and §8.3 let an MSA add a missing ``Date:`` and ``Message-ID:``; receivers
score mail without them as spam, and replies cannot thread without a Message-ID.  Postfix's
cleanup does the same for locally submitted mail.  The fields go above the client's header
section (under our Received line), before the message is stored or queued, so the DKIM
signature the queue worker adds later covers them.  Date comes from the injected clock;
the Message-ID's right side is our HOSTNAME and its left side the time and the
transaction id that the log lines carry.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

from mailgosend.mailauth.headers import header_fields


def missing_fields(header_block: bytes, now: datetime, hostname: str, unique: str) -> list[str]:
    """The ``Date:``/``Message-ID:`` lines (no CRLF) that ``header_block`` lacks."""
    present = {field.name.lower() for field in header_fields(header_block) if field.name}
    lines = []
    if b"date" not in present:
        lines.append(f"Date: {format_datetime(now)}")                        # RFC 6409 §8.3
    if b"message-id" not in present:
        lines.append(f"Message-ID: <{now:%Y%m%d%H%M%S}.{unique}@{hostname}>")  # §8.2
    return lines
