"""What every IMAP session of a listener shares: storage, keys, threads, clock, hub, feed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from twisted.internet.interfaces import IReactorTime

from mailgosend.crypto import KeyRing
from mailgosend.db.runner import DatabaseRunner
from mailgosend.events import Events
from mailgosend.imap.fetch import ItemCache
from mailgosend.imap.hub import MailboxHub
from mailgosend.imap.interfaces import ISpamTrainer
from mailgosend.imap.message import BoundedCache, InfoCache
from mailgosend.imap.search import FieldCache, TextParts, search_fields, text_parts
from mailgosend.imap.sort import OrderCache
from mailgosend.imap.structure import envelope
from mailgosend.store.blobs import BlobStore, SealedBlobCache
from mailgosend.store.mimeinfo import MessageInfo

__all__ = ["StoreAccess"]


@dataclass(frozen=True)
class StoreAccess:
    runner: DatabaseRunner
    keyring: KeyRing
    blob_store: BlobStore
    workers: Any  # mailgosend.workers.WorkerPool: run(fn, *args) -> Deferred
    clock: IReactorTime
    hub: MailboxHub
    events: Events  # the change feed: published after every commit (events.py)
    trainer: ISpamTrainer
    max_message_size: int
    spool_dir: Optional[str] = None
    info_cache: InfoCache = field(default_factory=InfoCache)  # decrypted structures, bounded
    field_cache: FieldCache = field(default_factory=FieldCache)  # SEARCH envelope fields
    envelope_cache: BoundedCache[bytes] = field(  # encoded FETCH ENVELOPE items
        default_factory=lambda: BoundedCache(100_000))
    header_cache: BoundedCache[bytes] = field(  # top-level header blocks
        default_factory=lambda: BoundedCache(50_000))
    parts_cache: BoundedCache[TextParts] = field(  # where SEARCH BODY finds the text
        default_factory=lambda: BoundedCache(100_000))
    item_cache: ItemCache = field(default_factory=ItemCache)  # BODY[HEADER.FIELDS ...] answers
    order_cache: OrderCache = field(default_factory=OrderCache)  # SORT/THREAD keys
    blob_cache: SealedBlobCache = field(  # small sealed (still encrypted) blobs, 32 MB
        default_factory=SealedBlobCache)

    def remember(self, key: tuple[int, int, int], info: MessageInfo) -> None:
        """Called (in a database thread) whenever a structure is decrypted: fill every compact
        cache from it at once, so one cold pass over a mailbox (any FETCH or SEARCH that needs
        structures) warms ENVELOPE, header fields and SEARCH alike."""
        if self.envelope_cache.get(key) is None:
            self.envelope_cache.put(key, b"ENVELOPE " + envelope(info.envelope))
        header = info.header_bytes()
        if header is not None and self.header_cache.get(key) is None:
            self.header_cache.put(key, header)
        if self.parts_cache.get(key) is None:
            self.parts_cache.put(key, text_parts(info.root))
        self.field_cache.put(key[0], key[1], {key[2]: search_fields(info)})

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
