"""Queue a message directly, exactly as the SMTP pipeline commits it: the blob sealed under
the queue's key, then the queue row and its recipients in one transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from mailgosend.db.runner import run_sync
from mailgosend.store import queue as queue_store
from mailgosend.store.queue import QUEUE_OWNER


def queue_raw(engine: Any, blob_store: Any, keyring: Any, sender: str,
              recipients: Sequence[str], raw: bytes, now: datetime) -> int:
    sealed = blob_store.seal(keyring, QUEUE_OWNER, raw)

    def record(conn: Any) -> int:
        blob_store.commit(conn, sealed, None, now)
        return queue_store.enqueue(conn, sender=sender, user_id=None, blob_id=sealed.blob_id,
                                   size=len(raw), recipients=list(recipients), now=now)
    queue_id = int(run_sync(engine, record, write=True))
    blob_store.release(sealed)
    return queue_id
