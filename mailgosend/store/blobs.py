"""Message bytes at rest (DESIGN §4): sealed with segmented AEAD, in the database or in files.

A blob is the raw message sealed with ``crypto.SegmentedWriter`` (64 KiB segments) under purpose
``"message"``, owner = the recipient's uuid and context ``b"blob:" + blob_id``: a blob moved to
another user's rows does not open, and two messages of the same user may share one blob (IMAP
COPY).  Blobs are never deleted with their message; ``purge_unreferenced`` removes those no
``messages`` or ``queue`` row references (DESIGN §3).

The write path is split so the expensive part never runs inside a database transaction:

1. ``store.seal(keyring, owner_uuid, source)`` in a worker thread encrypts the message (AES over
   up to 50 MB).  ``DatabaseBlobs`` seals small messages in memory and larger ones into a spool
   file; ``FileBlobs`` writes the final file atomically (temp file, fsync, rename, fsync dir).
2. ``store.commit(conn, sealed, user_id, now)`` inside the delivery transaction records it: the
   ``blobs`` row for the database back end, a presence check for files.
3. After the transaction: ``release(sealed)`` if it committed, ``discard(sealed)`` if it failed.

Reads never hold a whole blob: ``open_blob`` returns a ``BlobReader`` that fetches and decrypts
only the segments a range touches.  PostgreSQL serves ranges with ``substr(bytea)``, which reads
only the TOAST chunks needed (sealed data does not compress, so it is stored uncompressed).
SQLite's ``substr()`` loads the whole value first (measured: 126 ms per 64 KiB read of a 50 MB
blob), so SQLite ranges use incremental BLOB I/O (``sqlite3.Connection.blobopen``) instead.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import (BinaryIO, Callable, ContextManager, Iterator, Optional, Protocol, TypeVar,
                    Union, cast)

from sqlalchemy import Integer, case, column, delete, exists, func, insert, null, select
from sqlalchemy.engine import Connection

from mailgosend.crypto import (DEFAULT_SEGMENT_SIZE, DecryptionError, KeyRing, SegmentedReader,
                               SegmentedWriter)
from mailgosend.db.schema import blobs, messages, queue, uploads

__all__ = ["PURPOSE", "BlobNotFound", "Connectable", "BlobReader", "BlobStore", "DatabaseBlobs", "FileBlobs",
           "SealedBlob", "SealedBlobCache", "blob_context", "make_blob_store", "new_blob_id",
           "open_sealed", "seal_to_file"]

PURPOSE = "message"
TEMP_PREFIX = ".mailgosend-tmp-"  # specific: a shared spool directory may hold other files
DEFAULT_GRACE = timedelta(hours=1)  # longer than any delivery takes from seal to COMMIT
_CHUNK = 1024 * 1024
SMALL_BLOB_BYTES = 256 * 1024  # sealed blobs up to this size are read in one query
_BLOB_ID = re.compile(r"[0-9a-f]{32}")
_ID_BATCH = 500

Source = Union[BinaryIO, bytes]


class Connectable(Protocol):
    """An Engine, or the DatabaseRunner (``connect``): lends a connection for a moment, so a
    reader can read its ranges from whichever thread calls it next."""

    def connect(self) -> ContextManager[Connection]: ...


Storage = Union[Connection, Connectable]
_T = TypeVar("_T")


class BlobNotFound(LookupError):
    """No blob with this id: purged, never committed, or a file lost outside mailgosend."""


def new_blob_id() -> str:
    """128 random bits in hex: unguessable and collision-free without coordination."""
    return secrets.token_hex(16)


def blob_context(blob_id: str) -> bytes:
    """Associated data binding a ciphertext to its blob id (the message meta uses it too)."""
    return b"blob:" + blob_id.encode("ascii")


@dataclass(frozen=True)
class SealedBlob:
    """A sealed message waiting for (or past) its transaction.

    ``path`` is a spool file (database back end) or the final file (files back end); ``data``
    holds small sealed messages in memory instead.  ``size`` is the plaintext size.
    """

    blob_id: str
    size: int
    sealed_size: int
    path: str | None = None
    data: bytes | None = None


def seal_to_file(keyring: KeyRing, owner_uuid: str, source: Source, directory: str | None, *,
                 blob_id: str | None = None, fsync: bool = False,
                 stamp: float | None = None) -> SealedBlob:
    """Seal ``source`` into a new temp file in ``directory`` (in memory if it is None).

    Runs in a worker thread.  Memory: one 64 KiB segment plus one 1 MiB read chunk.  On error
    the temp file is removed.  ``stamp`` (seconds since the epoch, from the store's clock)
    becomes the file's mtime, so a purge compares it with a time from that same clock.
    """
    blob_id = blob_id or new_blob_id()
    if directory is None:
        memory = io.BytesIO()
        size = _seal(keyring, owner_uuid, source, memory, blob_id)
        data = memory.getvalue()
        return SealedBlob(blob_id, size, len(data), data=data)
    fd, path = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as sink:
            size = _seal(keyring, owner_uuid, source, sink, blob_id)
            sink.flush()
            if stamp is not None:
                os.utime(sink.fileno(), (stamp, stamp))
            if fsync:
                os.fsync(sink.fileno())
            sealed_size = sink.tell()
    except BaseException:
        _unlink(path)
        raise
    return SealedBlob(blob_id, size, sealed_size, path=path)


def _seal(keyring: KeyRing, owner_uuid: str, source: Source, sink: BinaryIO, blob_id: str) -> int:
    writer = SegmentedWriter(keyring, sink, purpose=PURPOSE, owner=owner_uuid,
                             context=blob_context(blob_id), segment_size=DEFAULT_SEGMENT_SIZE)
    if isinstance(source, (bytes, bytearray, memoryview)):
        writer.write(source)
    else:
        while chunk := source.read(_CHUNK):
            writer.write(chunk)
    return writer.close()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _source_length(source: Source) -> int | None:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return len(source)
    try:
        return os.fstat(source.fileno()).st_size - source.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


class _RangeSource:
    """The seekable file SegmentedReader wants, over a ``fetch(offset, length)`` callable.

    Records every range the reader asks for (``requests``), which is how tests prove a partial
    fetch touches only its segments.  A read that continues where the previous one ended is
    streaming, so it fetches ``read_ahead`` bytes at once to save round trips.
    """

    def __init__(self, fetch: Callable[[int, int], bytes], length: int, read_ahead: int) -> None:
        self._fetch, self._length, self._read_ahead = fetch, length, read_ahead
        self._pos = 0
        self._window_start, self._window = 0, b""
        self._next_expected = -1
        self.requests: list[tuple[int, int]] = []
        self.bytes_fetched = 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = base + offset
        return self._pos

    def read(self, size: int = -1) -> bytes:
        end = self._length if size < 0 else min(self._length, self._pos + size)
        if end <= self._pos:
            return b""
        start, wanted = self._pos, end - self._pos
        self.requests.append((start, wanted))
        offset = start - self._window_start
        if not (0 <= offset and start + wanted <= self._window_start + len(self._window)):
            ahead = self._read_ahead if start == self._next_expected else 0
            self._window_start = start
            self._window = self._fetch(start, min(self._length - start, max(wanted, ahead)))
            self.bytes_fetched += len(self._window)
            offset = 0
        data = self._window[offset:offset + wanted]
        self._pos = self._next_expected = start + len(data)
        return data


class BlobReader:
    """Plaintext of one blob by range, decrypting only the segments a read touches.

    ``size`` is authenticated when the reader is created.  Not thread-safe, but it may be used
    from different threads one after another (a reader opened on an Engine takes a connection
    per fetch, so it can outlive one database job, e.g. to stream BODY[] in chunks).
    """

    def __init__(self, reader: SegmentedReader, source: _RangeSource,
                 close: Callable[[], None] | None = None) -> None:
        self._reader, self._source, self._close = reader, source, close

    @property
    def size(self) -> int:
        return self._reader.size

    @property
    def segment_size(self) -> int:
        return self._reader.segment_size

    @property
    def storage_requests(self) -> list[tuple[int, int]]:
        """Sealed byte ranges read from storage so far: the header, final segment, and the
        segments actually needed."""
        return list(self._source.requests)

    @property
    def bytes_fetched(self) -> int:
        return self._source.bytes_fetched

    def read_range(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset + length), cut short at the end (RFC 3501 §6.4.5 partials)."""
        return self._reader.read_range(offset, length)

    def iter_plaintext(self, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Yield the range segment by segment, for streaming without holding it whole."""
        return self._reader.iter_plaintext(offset, length)

    def __iter__(self) -> Iterator[bytes]:
        return self._reader.iter_plaintext()

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reader(keyring: KeyRing, owner_uuid: str, blob_id: str, source: _RangeSource,
            close: Callable[[], None] | None = None) -> BlobReader:
    try:
        segmented = SegmentedReader(keyring, cast(BinaryIO, source), source.seek(0, io.SEEK_END),
                                    purpose=PURPOSE, owner=owner_uuid,
                                    context=blob_context(blob_id))
    except BaseException:
        if close is not None:
            close()
        raise
    return BlobReader(segmented, source, close)


def open_sealed(keyring: KeyRing, owner_uuid: str, blob_id: str, sealed: bytes,
                read_ahead: int = _CHUNK) -> BlobReader:
    """A reader over a whole sealed blob held in memory (no storage access)."""
    return _reader(keyring, owner_uuid, blob_id,
                   _RangeSource(_slicer(sealed), len(sealed), read_ahead))


class SealedBlobCache:
    """Whole *sealed* small blobs by blob id, at most ``capacity`` bytes, least recently used
    evicted first (an IMAP listener's: repeated BODY[] of small messages need no database job).

    Still encrypted: a reader opens an entry with its own user's key, and the AEAD binds the
    ciphertext to its owner and blob id, so an entry can never answer for another user or
    another blob (it fails to decrypt).  Blobs never change, so entries never go stale; a
    purged blob's entry merely occupies memory until evicted.  Bytes only: nothing for the
    garbage collector.  Filled from database threads: writers lock, readers do not (each
    OrderedDict call is atomic under the GIL, as imap.message.BoundedCache).

    Admission: a blob read for itself (BODY[]) up to ``entry_limit``; one read in bulk
    (``open_small_blobs``, SEARCH BODY over a mailbox) only up to ``bulk_limit``, one
    segment: a search over a mailbox of 100 KB attachments would otherwise flush the many
    small messages for a few large ones (measured on the 10k benchmark mailbox: 200 random
    BODY[] after SEARCH BODY took 80 ms with bulk fills up to 256 KiB, 60 ms with 64 KiB)."""

    def __init__(self, capacity: int = 32 << 20, entry_limit: int = SMALL_BLOB_BYTES,
                 bulk_limit: int = DEFAULT_SEGMENT_SIZE + 1024) -> None:
        self.capacity, self.entry_limit, self.bulk_limit = capacity, entry_limit, bulk_limit
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, blob_id: str) -> bool:
        return blob_id in self._entries

    @property
    def size(self) -> int:
        """Sealed bytes held."""
        return self._bytes

    def get(self, blob_id: str) -> Optional[bytes]:
        entries = self._entries
        data = entries.get(blob_id)
        if data is not None:
            try:
                entries.move_to_end(blob_id)
            except KeyError:  # evicted meanwhile by another thread
                pass
        return data

    def put(self, blob_id: str, sealed: bytes, *, bulk: bool = False) -> None:
        limit = min(self.bulk_limit, self.entry_limit) if bulk else self.entry_limit
        if len(sealed) > limit or len(sealed) > self.capacity:
            return
        with self._lock:
            entries = self._entries
            old = entries.pop(blob_id, None)
            if old is not None:
                self._bytes -= len(old)
            entries[blob_id] = sealed
            self._bytes += len(sealed)
            while self._bytes > self.capacity:
                _, dropped = entries.popitem(last=False)
                self._bytes -= len(dropped)

    def discard(self, blob_id: str) -> None:
        with self._lock:
            old = self._entries.pop(blob_id, None)
            if old is not None:
                self._bytes -= len(old)

    def open(self, keyring: KeyRing, owner_uuid: str, blob_id: str,
             read_ahead: int = _CHUNK) -> Optional[BlobReader]:
        """A reader from the cache, or None if the blob is not held.  An entry that does not
        open for this owner is dropped and None returned: storage then decides (the right
        blob, or the caller's usual error), never the cache."""
        sealed = self.get(blob_id)
        if sealed is None:
            return None
        try:
            return open_sealed(keyring, owner_uuid, blob_id, sealed, read_ahead)
        except DecryptionError:
            self.discard(blob_id)
            return None


def _referenced(conn: Connection, ids: list[str]) -> set[str]:
    """Which of ``ids`` a message (expunged or not), queue row or JMAP upload still
    references."""
    found: set[str] = set()
    for table in (messages, queue, uploads):
        found.update(row[0] for row in conn.execute(
            select(table.c.blob_id).where(table.c.blob_id.in_(ids)).distinct()))
    return found


def _stale_temp_files(directory: str, cutoff: float) -> list[str]:
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    return [e.path for e in entries if e.name.startswith(TEMP_PREFIX) and e.is_file()
            and e.stat().st_mtime < cutoff]


class BlobStore(ABC):
    """Where sealed messages live; chosen by STORAGE_BACKEND (see ``make_blob_store``)."""

    #: Whether ``purge_unreferenced`` writes to the database (run it in ``runner.write``)
    #: or only reads it (``runner.read`` keeps a long directory scan out of the writer).
    purge_writes_database: bool = True

    #: Seconds since the epoch, the clock whose ``now`` ``purge_unreferenced`` is given (the
    #: reactor's in the server).  Files are stamped with it, never with the wall clock, so a
    #: file's age and the database's ``created_at`` are measured on one clock.
    clock: Callable[[], float] = staticmethod(time.time)

    @abstractmethod
    def seal(self, keyring: KeyRing, owner_uuid: str, source: Source) -> SealedBlob:
        """Encrypt a message for one user; worker thread, before the transaction."""

    @abstractmethod
    def commit(self, conn: Connection, sealed: SealedBlob, user_id: int, now: datetime) -> None:
        """Record the blob inside the delivery transaction."""

    def release(self, sealed: SealedBlob) -> None:
        """The transaction committed: drop temporary copies (the blob itself stays)."""
        if sealed.path is not None and os.path.basename(sealed.path).startswith(TEMP_PREFIX):
            _unlink(sealed.path)

    @abstractmethod
    def discard(self, sealed: SealedBlob, *, unreferenced: bool = False) -> None:
        """The blob will not be used.  ``unreferenced=True`` asserts that a transaction
        committed without referencing it; after a failed transaction pass False, because a
        COMMIT that raised (a lost PostgreSQL connection) may still have happened."""

    @abstractmethod
    def open_blob(self, storage: Storage, keyring: KeyRing, owner_uuid: str,
                  blob_id: str, *, cache: Optional[SealedBlobCache] = None) -> BlobReader:
        """A reader for one blob; ``DecryptionError`` for the wrong owner or tampering.
        With ``cache``, a small blob is served from it, and one read whole is put in it."""

    def open_small_blobs(self, conn: Connection, keyring: KeyRing, owner_uuid: str,
                         blob_ids: list[str], *, cache: Optional[SealedBlobCache] = None
                         ) -> dict[str, BlobReader]:
        """Readers for those of ``blob_ids`` that can be fetched whole cheaply, in as few
        queries as possible (IMAP SEARCH BODY over a mailbox); the others are absent and
        the caller uses ``open_blob``.  ``cache`` is consulted and filled as by
        ``open_blob``.  Default: none."""
        return {}

    @abstractmethod
    def purge_unreferenced(self, conn: Connection, *, now: datetime,
                           grace: timedelta = DEFAULT_GRACE) -> int:
        """Remove blobs older than ``grace`` that no row references, and stale temp files;
        returns how many.  The grace period protects blobs sealed for a transaction that has
        not committed yet.  Needs an index on messages.blob_id to stay cheap (none yet)."""


class DatabaseBlobs(BlobStore):
    """STORAGE_BACKEND = db: one ``blobs`` row per blob, sealed bytes in ``blobs.data``.

    Messages up to ``memory_limit`` are sealed in memory; larger ones into a temp file under
    ``spool_directory`` so the worker holds one segment, not the message.  Commit memory,
    measured for a 50 MB message: PostgreSQL reads the sealed file once (+50 MB; a bytea
    parameter cannot be streamed).  SQLite inserts a zeroblob and fills it with 1 MiB
    incremental writes; ``data`` is the table's last column, so the zeroblob stays virtual
    (measured +3 MB; with ``data`` before other columns SQLite materialised it: +100 MB).
    """

    def __init__(self, spool_directory: str | None = None, *, memory_limit: int = 256 * 1024,
                 read_ahead: int = _CHUNK, clock: Callable[[], float] | None = None) -> None:
        if clock is not None:
            self.clock = clock
        self._spool = spool_directory or tempfile.gettempdir()
        self._memory_limit = memory_limit
        self._read_ahead = read_ahead
        os.makedirs(self._spool, exist_ok=True)

    def seal(self, keyring: KeyRing, owner_uuid: str, source: Source) -> SealedBlob:
        length = _source_length(source)
        small = length is not None and length <= self._memory_limit
        return seal_to_file(keyring, owner_uuid, source, None if small else self._spool,
                            stamp=self.clock())

    def commit(self, conn: Connection, sealed: SealedBlob, user_id: int, now: datetime) -> None:
        values = dict(id=sealed.blob_id, user_id=user_id, size=sealed.size, created_at=now)
        if sealed.data is not None:
            conn.execute(insert(blobs).values(data=sealed.data, **values))
        elif conn.dialect.name == "sqlite":
            assert sealed.path is not None
            result = conn.execute(insert(blobs).values(data=func.zeroblob(sealed.sealed_size),
                                                       **values))
            driver = conn.connection.driver_connection
            with open(sealed.path, "rb") as f, driver.blobopen(  # type: ignore[union-attr]
                    blobs.name, blobs.c.data.name, result.lastrowid, readonly=False) as target:
                while chunk := f.read(_CHUNK):
                    target.write(chunk)
        else:
            assert sealed.path is not None
            with open(sealed.path, "rb") as f:
                conn.execute(insert(blobs).values(data=f.read(), **values))

    def discard(self, sealed: SealedBlob, *, unreferenced: bool = False) -> None:
        if sealed.path is not None:  # a spool file; the row went with the transaction
            _unlink(sealed.path)

    def open_blob(self, storage: Storage, keyring: KeyRing, owner_uuid: str,
                  blob_id: str, *, cache: Optional[SealedBlobCache] = None) -> BlobReader:
        if cache is not None:
            held = cache.open(keyring, owner_uuid, blob_id, self._read_ahead)
            if held is not None:
                return held
        # One round trip finds the blob; most mail is small, and then the same trip brings
        # all of it, so the reader's header, final-segment and range reads cost no queries.
        located = _on_connection(storage, lambda conn: _locate(conn, blob_id,
                                                                SMALL_BLOB_BYTES))
        total, rowid, whole = located
        if whole is not None:
            reader = open_sealed(keyring, owner_uuid, blob_id, whole, self._read_ahead)
            if cache is not None:  # after it opened: only authentic blobs are kept
                cache.put(blob_id, whole)
            return reader

        def fetch(offset: int, count: int) -> bytes:
            return _on_connection(storage, lambda conn: _fetch_range(conn, blob_id, offset,
                                                                     count, rowid))

        return _reader(keyring, owner_uuid, blob_id, _RangeSource(fetch, total, self._read_ahead))

    def open_small_blobs(self, conn: Connection, keyring: KeyRing, owner_uuid: str,
                         blob_ids: list[str], *, cache: Optional[SealedBlobCache] = None
                         ) -> dict[str, BlobReader]:
        """Blobs up to SMALL_BLOB_BYTES sealed, ``_ID_BATCH`` per query (one query per
        message dominated a SEARCH BODY)."""
        found: dict[str, BlobReader] = {}
        wanted = blob_ids
        if cache is not None:
            wanted = []
            for blob_id in blob_ids:
                held = cache.open(keyring, owner_uuid, blob_id, self._read_ahead)
                if held is None:
                    wanted.append(blob_id)
                else:
                    found[blob_id] = held
        length = func.length(blobs.c.data)
        for i in range(0, len(wanted), _ID_BATCH):
            for row in conn.execute(select(blobs.c.id, blobs.c.data).where(
                    blobs.c.id.in_(wanted[i:i + _ID_BATCH]), length <= SMALL_BLOB_BYTES)):
                whole = bytes(row.data)
                found[row.id] = open_sealed(keyring, owner_uuid, row.id, whole,
                                            self._read_ahead)
                if cache is not None:
                    cache.put(row.id, whole, bulk=True)
        return found

    def purge_unreferenced(self, conn: Connection, *, now: datetime,
                           grace: timedelta = DEFAULT_GRACE) -> int:
        stale = _stale_temp_files(self._spool, (now - grace).timestamp())
        for path in stale:  # spool files of crashed deliveries
            _unlink(path)
        result = conn.execute(delete(blobs).where(
            blobs.c.created_at < now - grace,
            ~exists().where(messages.c.blob_id == blobs.c.id),
            ~exists().where(queue.c.blob_id == blobs.c.id),
            ~exists().where(uploads.c.blob_id == blobs.c.id)))
        return int(result.rowcount) + len(stale)


def _slicer(whole: bytes) -> Callable[[int, int], bytes]:
    return lambda offset, count: whole[offset:offset + count]


def _on_connection(storage: Storage, fn: Callable[[Connection], _T]) -> _T:
    """Run ``fn`` on the caller's connection, or on a short-lived one (Engine, runner)."""
    if not isinstance(storage, Connection):
        with storage.connect() as conn:
            return fn(conn)
    return fn(storage)


_LOCATE_SQL: dict[str, str] = {}


def _locate_sql(conn: Connection) -> str:
    """``_locate``'s statement as driver SQL for this dialect, built once: the per-call
    Core select (construction, cache key, compiled-cache lookup) cost more than the query
    itself on the one-message-per-command BODY[] path."""
    dialect = conn.dialect
    key = f"{dialect.name}:{dialect.paramstyle}"
    sql = _LOCATE_SQL.get(key)
    if sql is None:
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        table, data, ident = blobs.name, blobs.c.data.name, blobs.c.id.name
        extra = ", rowid" if dialect.name == "sqlite" else ""
        sql = _LOCATE_SQL[key] = (
            f"SELECT length({data}), CASE WHEN length({data}) <= {mark} THEN {data} END{extra}"
            f" FROM {table} WHERE {ident} = {mark}")
    return sql


def _locate(conn: Connection, blob_id: str,
            small: int) -> tuple[int, Optional[int], Optional[bytes]]:
    """(sealed length, SQLite rowid, the whole sealed blob when it is at most ``small``)."""
    sqlite = conn.dialect.name == "sqlite"
    if conn.dialect.paramstyle in ("qmark", "format", "pyformat"):
        row = conn.exec_driver_sql(_locate_sql(conn), (small, blob_id)).first()
    else:  # another driver: the portable Core statement
        rowid_column = column("rowid", Integer) if sqlite else None
        length = func.length(blobs.c.data)
        columns = [length, case((length <= small, blobs.c.data), else_=null())]
        if rowid_column is not None:
            columns.append(rowid_column)
        row = conn.execute(select(*columns).select_from(blobs)
                           .where(blobs.c.id == blob_id)).first()
    if row is None or row[0] is None:
        raise BlobNotFound(blob_id)
    whole = bytes(row[1]) if row[1] is not None else None
    return int(row[0]), (int(row[2]) if sqlite else None), whole


def _fetch_range(conn: Connection, blob_id: str, offset: int, count: int,
                 rowid: Optional[int] = None) -> bytes:
    if conn.dialect.name == "sqlite":
        if rowid is None:
            rowid = conn.execute(select(column("rowid", Integer)).select_from(blobs)
                                 .where(blobs.c.id == blob_id)).scalar()
        if rowid is None:
            raise BlobNotFound(blob_id)
        driver = conn.connection.driver_connection
        with driver.blobopen(blobs.name, blobs.c.data.name, rowid,  # type: ignore[union-attr]
                             readonly=True) as handle:
            handle.seek(offset)
            return bytes(handle.read(count))
    data = conn.execute(select(func.substr(blobs.c.data, offset + 1, count))
                        .where(blobs.c.id == blob_id)).scalar()
    if data is None:
        raise BlobNotFound(blob_id)
    return bytes(data)


class FileBlobs(BlobStore):
    """STORAGE_BACKEND = fs: one file per blob at ``root/<first 2 hex>/<blob id>``.

    A file appears under its final name only complete and fsynced (temp file in the same
    directory, fsync, rename, fsync the directory), before the transaction that references it,
    so a committed row never points at a partial file.  Crashes leave ``TEMP_PREFIX`` files, which
    readers never see and ``purge_unreferenced`` removes.
    """

    purge_writes_database = False

    def __init__(self, root: str, *, clock: Callable[[], float] | None = None) -> None:
        if clock is not None:
            self.clock = clock
        if not os.path.isabs(root):
            raise ValueError(f"STORAGE_PATH must be an absolute path, got {root!r}")
        self.root = root
        os.makedirs(root, exist_ok=True)

    def path_for(self, blob_id: str) -> str:
        if not _BLOB_ID.fullmatch(blob_id):  # never let an id become a path component
            raise BlobNotFound(blob_id)
        return os.path.join(self.root, blob_id[:2], blob_id)

    def seal(self, keyring: KeyRing, owner_uuid: str, source: Source) -> SealedBlob:
        blob_id = new_blob_id()
        final = self.path_for(blob_id)
        directory = os.path.dirname(final)
        if not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
            _fsync_directory(self.root)  # the new shard directory's entry must survive a crash
        sealed = seal_to_file(keyring, owner_uuid, source, directory, blob_id=blob_id, fsync=True,
                              stamp=self.clock())
        assert sealed.path is not None
        try:
            os.rename(sealed.path, final)
            _fsync_directory(directory)
        except BaseException:
            _unlink(sealed.path)
            _unlink(final)
            raise
        return replace(sealed, path=final)

    def commit(self, conn: Connection, sealed: SealedBlob, user_id: int, now: datetime) -> None:
        if not os.path.exists(self.path_for(sealed.blob_id)):
            raise BlobNotFound(sealed.blob_id)

    def discard(self, sealed: SealedBlob, *, unreferenced: bool = False) -> None:
        if unreferenced:
            _unlink(self.path_for(sealed.blob_id))
        # Otherwise the COMMIT may have happened; purge_unreferenced decides later.

    def open_blob(self, storage: Storage, keyring: KeyRing, owner_uuid: str,
                  blob_id: str, *, cache: Optional[SealedBlobCache] = None) -> BlobReader:
        if cache is not None:
            held = cache.open(keyring, owner_uuid, blob_id)
            if held is not None:
                return held
        try:
            handle = open(self.path_for(blob_id), "rb")
        except FileNotFoundError:
            raise BlobNotFound(blob_id) from None
        if cache is not None:
            try:
                small = os.fstat(handle.fileno()).st_size <= min(SMALL_BLOB_BYTES,
                                                                 cache.entry_limit)
                whole = handle.read() if small else None
            except BaseException:
                handle.close()
                raise
            if whole is not None:
                handle.close()
                reader = open_sealed(keyring, owner_uuid, blob_id, whole)
                cache.put(blob_id, whole)  # after it opened: only authentic blobs are kept
                return reader

        def fetch(offset: int, count: int) -> bytes:
            handle.seek(offset)
            return handle.read(count)

        source = _RangeSource(fetch, os.fstat(handle.fileno()).st_size, _CHUNK)
        return _reader(keyring, owner_uuid, blob_id, source, handle.close)

    def purge_unreferenced(self, conn: Connection, *, now: datetime,
                           grace: timedelta = DEFAULT_GRACE) -> int:
        cutoff = (now - grace).timestamp()
        removed = 0
        for shard in sorted(os.listdir(self.root)):
            directory = os.path.join(self.root, shard)
            if not (len(shard) == 2 and os.path.isdir(directory)):
                continue
            for path in _stale_temp_files(directory, cutoff):
                _unlink(path)
                removed += 1
            candidates = [e.name for e in os.scandir(directory)
                          if _BLOB_ID.fullmatch(e.name) and e.stat().st_mtime < cutoff]
            for i in range(0, len(candidates), _ID_BATCH):
                batch = candidates[i:i + _ID_BATCH]
                for blob_id in set(batch) - _referenced(conn, batch):
                    _unlink(os.path.join(directory, blob_id))
                    removed += 1
        return removed


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_blob_store(backend: str, storage_path: str, spool_directory: str | None = None, *,
                    clock: Callable[[], float] | None = None) -> BlobStore:
    """The store STORAGE_BACKEND names; ``storage_path`` is STORAGE_PATH (fs only).
    ``clock`` gives seconds since the epoch (``reactor.seconds``): the clock of every ``now``
    later passed to the store."""
    if backend == "fs":
        return FileBlobs(storage_path, clock=clock)
    if backend == "db":
        return DatabaseBlobs(spool_directory, clock=clock)
    raise ValueError(f"STORAGE_BACKEND must be 'db' or 'fs', got {backend!r}")
