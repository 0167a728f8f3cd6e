# -*- test-case-name: tests.test_jmap_core_blobs -*-
"""JMAP uploads (RFC 8620 §6.1): a blob a user uploaded, sealed in the blob store under
their key, kept until it expires (UPLOAD_LIFETIME after the upload).

Plain functions over a Connection.  ``add`` checks the quota (RFC 8620 §6.1: "overQuota"
is the client's to expect) against the octets stored plus the user's pending uploads,
then records the blob (``BlobStore.commit``) and the row in one transaction.  Uploads do
not add to used_bytes: a message made from one is counted when it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from mailgosend.db.schema import uploads, users
from mailgosend.store.blobs import SealedBlob
from mailgosend.store.accounts import UnknownUser
from mailgosend.store.messages import QuotaExceeded
from mailgosend.store.quota import fits

__all__ = ["UPLOAD_LIFETIME", "Upload", "add", "find", "purge_expired"]

# RFC 8620 §6: at least an hour; a day lets a slow composer finish a draft.
UPLOAD_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class Upload:
    token: str
    user_id: int
    blob_id: str
    media_type: str
    size: int
    created_at: datetime
    expires_at: datetime


def _upload(row: Any) -> Upload:
    return Upload(row.token, row.user_id, row.blob_id, row.media_type, int(row.size),
                  row.created_at, row.expires_at)


def add(conn: Connection, blob_store: Any, sealed: SealedBlob, *, user_id: int, token: str,
        media_type: str, now: datetime) -> Upload:
    """Record a sealed upload; ``QuotaExceeded`` (nothing recorded) when it does not fit."""
    row = conn.execute(select(users.c.used_bytes, users.c.quota_bytes)
                       .where(users.c.id == user_id)).first()
    if row is None:
        raise UnknownUser(f"user {user_id} no longer exists")
    pending = int(conn.execute(select(func.coalesce(func.sum(uploads.c.size), 0)).where(
        uploads.c.user_id == user_id, uploads.c.expires_at > now)).scalar_one())
    used = int(row.used_bytes) + pending
    if not fits(used, int(row.quota_bytes), sealed.size):
        raise QuotaExceeded(sealed.size, int(row.quota_bytes), used)
    blob_store.commit(conn, sealed, user_id, now)
    expires = now + UPLOAD_LIFETIME
    conn.execute(insert(uploads).values(token=token, user_id=user_id, blob_id=sealed.blob_id,
                                        media_type=media_type, size=sealed.size,
                                        created_at=now, expires_at=expires))
    return Upload(token, user_id, sealed.blob_id, media_type, sealed.size, now, expires)


def find(conn: Connection, user_id: int, token: str, now: datetime) -> Optional[Upload]:
    """The user's own unexpired upload, or None (another user's token is None too)."""
    row = conn.execute(select(uploads).where(uploads.c.token == token,
                                             uploads.c.user_id == user_id,
                                             uploads.c.expires_at > now)).first()
    return _upload(row) if row is not None else None


def purge_expired(conn: Connection, now: datetime) -> int:
    """Delete expired upload rows; their blobs go with the next unreferenced-blob purge."""
    return int(conn.execute(delete(uploads).where(uploads.c.expires_at <= now)).rowcount)
