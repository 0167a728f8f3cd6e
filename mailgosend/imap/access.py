"""What every IMAP session of a listener shares: storage, keys, threads, clock, hub."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from twisted.internet.interfaces import IReactorTime

from mailgosend.crypto import KeyRing
from mailgosend.db.runner import DatabaseRunner
from mailgosend.imap.hub import MailboxHub
from mailgosend.imap.interfaces import ISpamTrainer
from mailgosend.imap.message import InfoCache
from mailgosend.store.blobs import BlobStore

__all__ = ["StoreAccess"]


@dataclass(frozen=True)
class StoreAccess:
    runner: DatabaseRunner
    keyring: KeyRing
    blob_store: BlobStore
    workers: Any  # mailgosend.workers.WorkerPool: run(fn, *args) -> Deferred
    clock: IReactorTime
    hub: MailboxHub
    trainer: ISpamTrainer
    max_message_size: int
    spool_dir: Optional[str] = None
    info_cache: InfoCache = field(default_factory=InfoCache)  # decrypted structures, bounded

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
