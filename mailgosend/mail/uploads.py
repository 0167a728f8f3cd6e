# -*- test-case-name: tests.test_jmap_core_blobs -*-
"""Uploads (JMAP, RFC 8620 §6.1) through the mail service: sealed in a worker thread with
the user's key, recorded with the quota check in one transaction (store/uploads.py), the
sealed copy released or discarded after, as deliveries do (delivery.py notes 1-3)."""

from __future__ import annotations

import secrets
from typing import Any, BinaryIO, Union

from mailgosend.store import uploads as store_uploads
from mailgosend.store.messages import QuotaExceeded
from mailgosend.store.uploads import Upload

__all__ = ["add_upload", "find_upload", "Upload"]


async def add_upload(service: Any, user: Any, source: Union[BinaryIO, bytes],
                     media_type: str) -> Upload:
    """Seal and record one upload of ``user``; ``QuotaExceeded`` when it does not fit."""
    blob_store = service.blob_store
    sealed = await service.workers.run(blob_store.seal, service.keyring, user.uuid, source)
    token = secrets.token_urlsafe(24)
    try:
        upload: Upload = await service.runner.write(
            store_uploads.add, blob_store, sealed, user_id=user.id, token=token,
            media_type=media_type, now=service.now())
    except QuotaExceeded:
        blob_store.discard(sealed, unreferenced=True)  # refused before the blob was recorded
        raise
    except BaseException:
        blob_store.discard(sealed)
        raise
    blob_store.release(sealed)
    return upload


def find_upload(service: Any, user: Any, token: str) -> Any:
    """Deferred: the user's own live upload with that token, or None."""
    return service.runner.read(store_uploads.find, user.id, token, service.now())
