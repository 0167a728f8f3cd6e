# -*- test-case-name: tests.test_imap_account -*-
"""The one door to a stored message's structure and bytes, for thread-side jobs.

A ``MessageSource`` reads one user's messages on a database connection (or opens short-lived
ones through the runner): the sealed structures (``messages.meta``), decrypted with the
user's key on first need, and the blobs, through readers that decrypt only the segments a
byte range touches.  The keyring stays here: front ends get plaintext, structures and
readers, never keys.  ``UserMail.read_messages`` runs a job with a source bound to its
connection; ``UserMail.message_source`` gives one for threads outside a job.

The caches are values by (mailbox id, UIDVALIDITY, UID), which never names two messages
(RFC 3501 §2.3.1.1), so an entry never goes stale.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Optional, Sequence, TypeVar, Union

from sqlalchemy.engine import Connection

from mailgosend.crypto import KeyRing
from mailgosend.store.accounts import User
from mailgosend.store.blobs import BlobReader, BlobStore, Connectable, SealedBlobCache
from mailgosend.store.messages import (MessageRow, SealedInfo, load_info, load_sealed_infos,
                                       open_info)
from mailgosend.store.mimeinfo import MessageInfo

__all__ = ["BoundedCache", "InfoCache", "InfoKey", "MessageSource", "Remember"]


InfoKey = tuple[int, int, int]  # (mailbox id, UIDVALIDITY, UID): never names two messages
Remember = Callable[[InfoKey, MessageInfo], None]  # told of every structure decrypted


V = TypeVar("V")


class BoundedCache(Generic[V]):
    """Values by (mailbox id, UIDVALIDITY, UID), at most ``limit`` of them, the least recently
    used evicted first.  An entry never goes stale: a message's bytes never change and
    (mailbox, UIDVALIDITY, UID) is never reused (RFC 3501 §2.3.1.1).  Database threads use it
    concurrently: writers take the lock, readers do not (see ``get``)."""

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._entries: OrderedDict[InfoKey, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: InfoKey) -> Optional[V]:
        # No lock: each OrderedDict call is atomic under the GIL, and a lock taken per
        # message by several database threads convoyed (a quarter of the mixed workload's
        # CPU).  An entry evicted between the two calls is simply not moved.
        entries = self._entries
        value = entries.get(key)
        if value is not None:
            try:
                entries.move_to_end(key)
            except KeyError:
                pass
        return value

    def put(self, key: InfoKey, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)


class InfoCache(BoundedCache[MessageInfo]):
    """Decoded structures shared by a listener's sessions (see BoundedCache).

    Kept small: a structure is dozens of Python objects the cyclic garbage collector scans
    at every full collection (20,000 of them made collections of ~250 ms in the middle of
    commands).  The hot answers have caches of their own made of bytes and tuples of
    strings, which the collector skips: encoded ENVELOPEs, header blocks, SEARCH fields."""

    def __init__(self, limit: int = 2_000) -> None:
        super().__init__(limit)


class MessageSource:
    """What a thread-side job needs to read one user's messages.

    ``prefetch`` fetches the sealed structures of the rows a job is about to reach in one query
    per 500 (a per-message query dominated FETCH ENVELOPE and SEARCH SUBJECT); each is still
    decrypted only when first asked for.  With ``cache`` and ``uidvalidity`` (the rows are of
    one mailbox), decrypted structures are remembered across jobs and sessions."""

    def __init__(self, storage: Union[Connection, Connectable], keyring: KeyRing,
                 blob_store: BlobStore, user: User, *, cache: Optional[InfoCache] = None,
                 uidvalidity: Optional[int] = None,
                 headers: Optional[BoundedCache[bytes]] = None,
                 remember: Optional[Remember] = None,
                 blob_cache: Optional[SealedBlobCache] = None) -> None:
        self.storage, self.keyring, self.blob_store, self.user = storage, keyring, blob_store, user
        self.blob_cache = blob_cache  # small sealed blobs, shared by the listener
        self.remember = remember if uidvalidity is not None else None
        self.cache = cache if uidvalidity is not None else None
        self.headers = headers if uidvalidity is not None else None  # header blocks
        self.uidvalidity = uidvalidity or 0
        self.mailbox_uidvalidity = uidvalidity  # None: rows of any mailbox, nothing cached
        self._sealed: dict[int, SealedInfo] = {}
        self._prefetched: set[int] = set()
        # (message id, blob id, structure) whose header block was read from the blob and
        # added to the structure: messages stored before structures kept it.
        self.upgraded: list[tuple[int, str, MessageInfo]] = []
        self._readers: dict[str, BlobReader] = {}  # prefetch_blobs

    def _key(self, row: MessageRow) -> InfoKey:
        return (row.mailbox_id, self.uidvalidity, row.uid)

    def cached_header(self, row: MessageRow) -> Optional[bytes]:
        return None if self.headers is None else self.headers.get(self._key(row))

    def prefetch(self, rows: Sequence[MessageRow]) -> None:
        """Replace the prefetched batch with the sealed structures of ``rows`` not cached."""
        cache = self.cache
        wanted = [row for row in rows if cache is None or cache.get(self._key(row)) is None]
        self._sealed, self._prefetched = {}, {row.id for row in wanted}
        if not wanted:
            return
        if not isinstance(self.storage, Connection):
            with self.storage.connect() as conn:
                self._sealed = load_sealed_infos(conn, self.user, wanted)
        else:
            self._sealed = load_sealed_infos(self.storage, self.user, wanted)

    def load_info(self, row: MessageRow) -> MessageInfo:
        if self.cache is not None:
            cached = self.cache.get(self._key(row))
            if cached is not None:
                return cached
        sealed = self._sealed.get(row.id)
        if sealed is not None:
            info = open_info(self.keyring, self.user, sealed)
            del self._sealed[row.id]
        elif row.id in self._prefetched:  # what load_info says of a purged message
            raise LookupError(f"message {row.id} has no structure for this user")
        elif not isinstance(self.storage, Connection):
            with self.storage.connect() as conn:
                info = load_info(conn, self.keyring, self.user, row)
        else:
            info = load_info(self.storage, self.keyring, self.user, row)
        if self.cache is not None:
            self.cache.put(self._key(row), info)
        if self.remember is not None:
            self.remember(self._key(row), info)
        return info

    def prefetch_blobs(self, rows: Sequence[MessageRow]) -> None:
        """Fetch the small blobs of ``rows`` in a query per 500 (SEARCH BODY/TEXT); each is
        decrypted only when first read."""
        ids = sorted({row.blob_id for row in rows})
        if not ids:
            return
        if not isinstance(self.storage, Connection):
            with self.storage.connect() as conn:
                self._readers = self.blob_store.open_small_blobs(
                    conn, self.keyring, self.user.uuid, ids, cache=self.blob_cache)
        else:
            self._readers = self.blob_store.open_small_blobs(
                self.storage, self.keyring, self.user.uuid, ids, cache=self.blob_cache)

    def open_blob(self, blob_id: str) -> BlobReader:
        reader = self._readers.pop(blob_id, None)
        if reader is not None:
            return reader
        if self.blob_cache is None:
            return self.blob_store.open_blob(self.storage, self.keyring, self.user.uuid,
                                             blob_id)
        return self.blob_store.open_blob(self.storage, self.keyring, self.user.uuid, blob_id,
                                         cache=self.blob_cache)
