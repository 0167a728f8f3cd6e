# -*- test-case-name: tests.test_jmap_email_get -*-
"""Emails by id for JMAP (RFC 8621 §4): rows, structures and, when asked, raw bytes.

``load_emails`` is a MessageSource job (``UserMail.emails`` runs it): ONE database job for
a whole Email/get, whatever the number of ids.  The list properties (flags, mailbox, dates,
size, subject, from, preview, attachments) come from the row and the sealed structure
(``messages.meta``), so a list of 50 never reads a message body; ``raw=True`` also reads each
message's plaintext, for the properties that need it (headers, bodyStructure, bodyValues).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from sqlalchemy.engine import Connection

from mailgosend.mail.source import MessageSource
from mailgosend.store.emails import emails_by_id
from mailgosend.store.messages import MessageRow
from mailgosend.store.mimeinfo import MessageInfo

__all__ = ["EmailRecord", "load_emails"]


@dataclass(frozen=True)
class EmailRecord:
    """One email: its row, its structure, and its bytes when they were asked for."""

    number: int  # the email id (JMAP M<number>, messages.email_id)
    thread_id: int
    row: MessageRow
    info: MessageInfo
    raw: Optional[bytes] = None


def load_emails(source: MessageSource, numbers: Iterable[int], *, raw: bool = False
                ) -> dict[int, EmailRecord]:
    """Database thread: the user's live emails among ``numbers`` (the others are absent)."""
    storage = source.storage
    assert isinstance(storage, Connection)
    found_rows = emails_by_id(storage, source.user.id, list(numbers))
    rows = {e.email_id: MessageRow(e.message_id, e.mailbox_id, e.uid, e.modseq, e.flags,
                                   e.internal_date, e.size, e.blob_id, None)
            for e in found_rows}
    threads = {e.email_id: e.thread_id for e in found_rows}
    ordered = list(rows.values())
    source.prefetch(ordered)
    if raw:
        source.prefetch_blobs(ordered)
    found: dict[int, EmailRecord] = {}
    for number, row in rows.items():
        try:
            info = source.load_info(row)
        except LookupError:  # purged meanwhile
            continue
        data = None
        if raw:
            reader = source.open_blob(row.blob_id)
            try:
                data = reader.read_range(0, reader.size)
            finally:
                reader.close()
        found[number] = EmailRecord(number, threads[number], row, info, data)
    return found
