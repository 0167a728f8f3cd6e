"""Senders whose remote content a user always shows in the webmail (web/webmail.py).

Rows hold a keyed hash of the address (mail/service.py computes it under the user's key);
this module never sees an address.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from mailgosend.db.schema import remote_content_senders

__all__ = ["add", "contains"]


def contains(conn: Connection, user_id: int, sender_hash: bytes) -> bool:
    row = conn.execute(select(remote_content_senders.c.user_id).where(
        remote_content_senders.c.user_id == user_id,
        remote_content_senders.c.sender_hash == sender_hash)).first()
    return row is not None


def add(conn: Connection, user_id: int, sender_hash: bytes, now: datetime) -> None:
    """Idempotent: an address allowed twice is one row."""
    if not contains(conn, user_id, sender_hash):
        conn.execute(insert(remote_content_senders).values(
            user_id=user_id, sender_hash=sender_hash, created_at=now))
