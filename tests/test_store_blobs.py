"""Blob stores (STORAGE_BACKEND = db | fs) on SQLite and PostgreSQL: round trips, ranged
reads that touch only their segments, owner binding, atomic files, discard and purge."""

from __future__ import annotations

import io
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from twisted.trial import unittest

from mailgosend.crypto import TAG_SIZE, DecryptionError, KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import blobs, messages, queue
from mailgosend.store import accounts, mailboxes
from mailgosend.store.blobs import (SMALL_BLOB_BYTES, TEMP_PREFIX, BlobNotFound, BlobStore,
                                    DatabaseBlobs, FileBlobs, SealedBlob, SealedBlobCache,
                                    make_blob_store, seal_to_file)
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
OLD = NOW - timedelta(hours=3)
KEYRING = KeyRing(bytes(range(32)))
SEGMENT = 64 * 1024
STRIDE = SEGMENT + TAG_SIZE
HEADER = 16


def sample(size: int) -> bytes:
    """Non-repeating content, so a wrong offset cannot go unnoticed."""
    return b"".join(i.to_bytes(4, "big") for i in range(size // 4 + 1))[:size]


def add_message_row(conn: Connection, user_id: int, blob_id: str, uid: int) -> None:
    inbox = mailboxes.ensure_default_mailboxes(conn, user_id, NOW)[0]
    conn.execute(insert(messages).values(
        mailbox_id=inbox.id, user_id=user_id, uid=uid, modseq=1, flags="", internal_date=NOW,
        size=1, blob_id=blob_id, created_at=NOW))


def add_queue_row(conn: Connection, blob_id: str) -> None:
    conn.execute(insert(queue).values(sender="", blob_id=blob_id, size=1, created_at=NOW))


class BlobStoreTestsMixin(DatabaseTestBase):
    """What every blob store must do, on every database."""

    store: BlobStore

    def make_store(self) -> BlobStore:
        raise NotImplementedError

    def make_old(self, sealed: SealedBlob) -> None:
        """Make a committed blob older than the purge grace period."""
        raise NotImplementedError

    def make_fresh(self, sealed: SealedBlob) -> None:
        """Make a committed blob as young as the test clock's NOW."""
        raise NotImplementedError

    def setUp(self) -> Any:
        d = super().setUp()
        self.write(accounts.add_domain, "example.com", NOW)
        self.alice = self.write(accounts.add_user, "alice@example.com", "hash", NOW)
        self.bob = self.write(accounts.add_user, "bob@example.com", "hash", NOW)
        self.store = self.make_store()
        return d

    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=True, **kwargs)

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=False, **kwargs)

    def stored(self, data: bytes, owner: accounts.User | None = None,
               now: datetime = NOW) -> SealedBlob:
        user = owner or self.alice
        sealed = self.store.seal(KEYRING, user.uuid, data)
        self.write(self.store.commit, sealed, user.id, now)
        self.store.release(sealed)
        return sealed

    def open(self, blob_id: str, owner: accounts.User | None = None) -> Any:
        return self.store.open_blob(self.engine, KEYRING, (owner or self.alice).uuid, blob_id)

    def test_round_trip_small_message_through_engine_and_connection(self) -> None:
        data = b"Subject: hi\r\n\r\nhello\r\n"
        sealed = self.stored(data)
        self.assertEqual((sealed.size, len(sealed.blob_id)), (len(data), 32))
        with self.open(sealed.blob_id) as reader:
            self.assertEqual((reader.size, b"".join(reader)), (len(data), data))

        def in_job(conn: Connection) -> bytes:
            with self.store.open_blob(conn, KEYRING, self.alice.uuid, sealed.blob_id) as r:
                return r.read_range(0, 100)

        self.assertEqual(self.read(in_job), data)

    def test_round_trip_of_a_spooled_file_source(self) -> None:
        data = sample(700_000)  # above the in-memory limit: sealed through a spool file
        sealed = self.stored(io.BytesIO(data))  # type: ignore[arg-type]
        with self.open(sealed.blob_id) as reader:
            self.assertEqual(b"".join(reader), data)
        self.assertEqual(sealed.size, len(data))

    def test_ranged_read_of_five_megabytes_touches_only_its_segments(self) -> None:
        data = sample(5_000_000)
        sealed = self.stored(data)
        offset = 2 * SEGMENT + SEGMENT // 2  # 100 bytes in the middle of segment 2
        with self.open(sealed.blob_id) as reader:
            self.assertEqual(reader.read_range(offset, 100), data[offset:offset + 100])
            final = HEADER + (-(-len(data) // SEGMENT) - 1) * STRIDE  # the last segment
            self.assertEqual(reader.storage_requests,
                             [(0, HEADER), (final, sealed.sealed_size - final),
                              (HEADER + 2 * STRIDE, STRIDE)])
            self.assertLess(reader.bytes_fetched, 3 * STRIDE)
            # A range across a segment boundary needs exactly the two segments around it.
            across = 4 * SEGMENT - 10
            self.assertEqual(reader.read_range(across, 20), data[across:across + 20])
            self.assertEqual(reader.storage_requests[3:],
                             [(HEADER + 3 * STRIDE, STRIDE), (HEADER + 4 * STRIDE, STRIDE)])

    def test_streaming_yields_segment_sized_chunks(self) -> None:
        data = sample(3 * SEGMENT + 123)
        sealed = self.stored(data)
        with self.open(sealed.blob_id) as reader:
            chunks = list(reader.iter_plaintext(10))
        self.assertEqual(b"".join(chunks), data[10:])
        self.assertTrue(all(len(chunk) <= SEGMENT for chunk in chunks))
        self.assertEqual(len(chunks), 4)

    def test_blob_opened_with_another_users_uuid_fails(self) -> None:
        sealed = self.stored(b"secret")
        self.assertRaises(DecryptionError, self.open, sealed.blob_id, self.bob)

    def test_unknown_blob_is_not_found(self) -> None:
        self.assertRaises(BlobNotFound, self.open, "0" * 32)

    def test_sealed_cache_serves_small_blobs_only_to_their_owner(self) -> None:
        cache = SealedBlobCache()
        data = sample(5000)
        small, big = self.stored(data), self.stored(sample(SMALL_BLOB_BYTES + 1000))
        for blob_id in (small.blob_id, big.blob_id):
            with self.store.open_blob(self.engine, KEYRING, self.alice.uuid, blob_id,
                                      cache=cache) as reader:
                b"".join(reader)
        self.assertIn(small.blob_id, cache)
        self.assertNotIn(big.blob_id, cache)  # over the cap: the normal path, not kept
        self.assertLessEqual(cache.size, SMALL_BLOB_BYTES)
        # Another user's key never opens the entry: refused as without the cache, and dropped.
        self.assertRaises(DecryptionError, self.store.open_blob, self.engine, KEYRING,
                          self.bob.uuid, small.blob_id, cache=cache)
        self.assertNotIn(small.blob_id, cache)
        with self.store.open_blob(self.engine, KEYRING, self.alice.uuid, small.blob_id,
                                  cache=cache) as reader:
            self.assertEqual(reader.read_range(100, 50), data[100:150])
        # Held entries need no storage: the blob purged, the cache still has its bytes.
        self.write(self.store.purge_unreferenced, now=NOW + timedelta(days=1),
                   grace=timedelta(0))
        self.assertRaises(BlobNotFound, self.open, small.blob_id)
        with self.store.open_blob(self.engine, KEYRING, self.alice.uuid, small.blob_id,
                                  cache=cache) as reader:
            self.assertEqual(b"".join(reader), data)

    def test_purge_removes_only_old_unreferenced_blobs(self) -> None:
        in_message = self.stored(b"kept: a message uses it")
        in_queue = self.stored(b"kept: the outbound queue uses it")
        orphan = self.stored(b"removed: nothing uses it", now=OLD)
        fresh = self.stored(b"kept: too young, its transaction may not have committed")
        self.make_fresh(fresh)
        for sealed in (in_message, in_queue, orphan):
            self.make_old(sealed)
        self.write(add_message_row, self.alice.id, in_message.blob_id, 1)
        self.write(add_queue_row, in_queue.blob_id)
        self.assertEqual(self.write(self.store.purge_unreferenced, now=NOW), 1)
        self.assertRaises(BlobNotFound, self.open, orphan.blob_id)
        for sealed in (in_message, in_queue, fresh):
            with self.open(sealed.blob_id) as reader:
                self.assertEqual(reader.size, sealed.size)
        self.assertEqual(self.write(self.store.purge_unreferenced, now=NOW), 0)


class DatabaseBlobsTestsMixin(BlobStoreTestsMixin):
    def make_store(self) -> BlobStore:
        self.spool = os.path.abspath(self.mktemp())
        return DatabaseBlobs(self.spool, clock=NOW.timestamp)

    def make_old(self, sealed: SealedBlob) -> None:
        self.write(lambda conn: conn.execute(
            blobs.update().where(blobs.c.id == sealed.blob_id).values(created_at=OLD)).rowcount)

    def make_fresh(self, sealed: SealedBlob) -> None:
        pass  # committed with created_at = NOW

    def test_small_blob_is_read_in_one_query(self) -> None:
        from sqlalchemy import event

        data = sample(40_000)   # a typical message: well under SMALL_BLOB_BYTES sealed
        sealed = self.stored(data)
        statements: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)
        event.listen(self.engine, "before_cursor_execute", count)
        self.addCleanup(event.remove, self.engine, "before_cursor_execute", count)
        with self.open(sealed.blob_id) as reader:
            self.assertEqual(reader.read_range(1000, 5000), data[1000:6000])
            self.assertEqual(b"".join(reader), data)
        self.assertEqual(len([s for s in statements if s.lstrip().upper().startswith("SELECT")]),
                         1, statements)

    def spool_files(self) -> list[str]:
        return os.listdir(self.spool)

    def test_large_message_is_spooled_and_the_spool_file_released(self) -> None:
        sealed = self.store.seal(KEYRING, self.alice.uuid, sample(300_000))
        assert sealed.path is not None
        self.assertEqual(self.spool_files(), [os.path.basename(sealed.path)])
        self.write(self.store.commit, sealed, self.alice.id, NOW)
        self.store.release(sealed)
        self.assertEqual(self.spool_files(), [])
        row = self.read(lambda c: c.execute(select(blobs.c.user_id, blobs.c.size,
                                                   func.length(blobs.c.data))).one())
        self.assertEqual(tuple(row), (self.alice.id, 300_000, sealed.sealed_size))

    def test_failed_transaction_leaves_no_row_and_discard_drops_the_spool(self) -> None:
        sealed = self.store.seal(KEYRING, self.alice.uuid, sample(300_000))

        def commit_then_fail(conn: Connection) -> None:
            self.store.commit(conn, sealed, self.alice.id, NOW)
            raise RuntimeError("the delivery transaction failed")

        self.assertRaises(RuntimeError, self.write, commit_then_fail)
        self.store.discard(sealed)
        self.assertEqual(self.spool_files(), [])
        self.assertRaises(BlobNotFound, self.open, sealed.blob_id)


class FileBlobsTestsMixin(BlobStoreTestsMixin):
    def make_store(self) -> BlobStore:
        self.root = os.path.abspath(self.mktemp())
        # The store's clock is the test clock: files carry NOW, whatever the wall clock says.
        return FileBlobs(self.root, clock=NOW.timestamp)

    def make_old(self, sealed: SealedBlob) -> None:
        assert sealed.path is not None
        os.utime(sealed.path, (OLD.timestamp(), OLD.timestamp()))

    def make_fresh(self, sealed: SealedBlob) -> None:
        pass  # sealed on the store's clock, which reads NOW

    def test_file_age_comes_from_the_store_clock_not_the_wall_clock(self) -> None:
        # Regression: files carried the wall clock's mtime, compared with the injected ``now``;
        # once the real date passed NOW + 1 day a file sealed "now" already looked old.
        sealed = self.stored(b"sealed at the test clock's NOW")
        assert sealed.path is not None
        self.assertEqual(os.stat(sealed.path).st_mtime, NOW.timestamp())
        self.assertEqual(self.write(self.store.purge_unreferenced,
                                    now=NOW + timedelta(minutes=59), grace=timedelta(hours=1)), 0)
        self.assertEqual(self.write(self.store.purge_unreferenced,
                                    now=NOW + timedelta(hours=1, seconds=1),
                                    grace=timedelta(hours=1)), 1)

    def files(self) -> list[str]:
        return sorted(os.path.relpath(os.path.join(d, f), self.root)
                      for d, _, names in os.walk(self.root) for f in names)

    def test_file_appears_under_its_final_name_only_when_complete(self) -> None:
        seen_during_write: list[list[str]] = []
        data = sample(200_000)
        source = io.BytesIO(data)
        real_read = source.read

        def read(size: int | None = -1) -> bytes:
            seen_during_write.append(self.files())
            return real_read(min(size or -1, 50_000))

        source.read = read  # type: ignore[method-assign]
        sealed = self.store.seal(KEYRING, self.alice.uuid, source)  # type: ignore[arg-type]
        self.assertTrue(seen_during_write)
        for listing in seen_during_write:
            self.assertTrue(all(os.path.basename(p).startswith(TEMP_PREFIX) for p in listing))
        self.assertEqual(self.files(), [os.path.join(sealed.blob_id[:2], sealed.blob_id)])
        with self.open(sealed.blob_id) as reader:
            self.assertEqual(b"".join(reader), data)

    def test_failed_write_leaves_nothing_behind(self) -> None:
        class Broken(io.BytesIO):
            def read(self, size: int | None = -1) -> bytes:
                raise OSError("disk gone")

        self.assertRaises(OSError, self.store.seal, KEYRING, self.alice.uuid, Broken())
        self.assertEqual(self.files(), [])

    def test_crash_leftover_temp_file_is_ignored_then_purged_when_old(self) -> None:
        kept = self.stored(b"a real blob")
        self.write(add_message_row, self.alice.id, kept.blob_id, 1)
        shard = os.path.join(self.root, kept.blob_id[:2])
        leftover = os.path.join(shard, TEMP_PREFIX + "crashed")
        with open(leftover, "wb") as f:
            f.write(b"half a sealed message")
        os.utime(leftover, (NOW.timestamp(), NOW.timestamp()))
        with self.open(kept.blob_id) as reader:
            self.assertEqual(b"".join(reader), b"a real blob")
        self.assertEqual(self.read(self.store.purge_unreferenced, now=NOW), 0)  # still fresh
        self.assertTrue(os.path.exists(leftover))
        os.utime(leftover, (OLD.timestamp(), OLD.timestamp()))
        self.assertEqual(self.read(self.store.purge_unreferenced, now=NOW), 1)
        self.assertFalse(os.path.exists(leftover))
        self.assertTrue(os.path.exists(os.path.join(shard, kept.blob_id)))

    def test_discard_after_failed_commit_leaves_the_file_for_purge(self) -> None:
        sealed = self.store.seal(KEYRING, self.alice.uuid, b"maybe committed")
        self.store.discard(sealed)
        assert sealed.path is not None
        self.assertTrue(os.path.exists(sealed.path))
        self.make_fresh(sealed)
        self.assertEqual(self.read(self.store.purge_unreferenced, now=NOW), 0)
        self.make_old(sealed)
        self.assertEqual(self.read(self.store.purge_unreferenced, now=NOW), 1)
        self.assertFalse(os.path.exists(sealed.path))

    def test_discard_of_a_known_unreferenced_blob_removes_it_at_once(self) -> None:
        sealed = self.store.seal(KEYRING, self.alice.uuid, b"over quota")
        self.store.discard(sealed, unreferenced=True)
        self.assertEqual(self.files(), [])

    def test_commit_refuses_a_missing_file(self) -> None:
        sealed = self.store.seal(KEYRING, self.alice.uuid, b"x")
        self.store.discard(sealed, unreferenced=True)
        self.assertRaises(BlobNotFound, self.write, self.store.commit, sealed, self.alice.id, NOW)

    def test_ids_that_are_not_blob_ids_never_become_paths(self) -> None:
        self.assertRaises(BlobNotFound, self.open, "../../etc/passwd")

    def test_root_must_be_absolute(self) -> None:
        self.assertRaises(ValueError, FileBlobs, "relative/blobs")


class SealedBlobCacheTests(unittest.SynchronousTestCase):
    def test_byte_capacity_lru_and_admission_limits(self) -> None:
        cache = SealedBlobCache(capacity=1000, entry_limit=400, bulk_limit=100)
        cache.put("a", b"a" * 300)
        cache.put("b", b"b" * 300)
        cache.put("c", b"c" * 300)
        self.assertEqual(cache.get("a"), b"a" * 300)  # now the most recently used
        cache.put("d", b"d" * 300)  # over 1000 bytes: "b", the least recently used, goes
        self.assertNotIn("b", cache)
        self.assertEqual([k in cache for k in "acd"], [True, True, True])
        self.assertEqual(cache.size, 900)
        cache.put("e", b"e" * 401)  # over the entry limit
        cache.put("f", b"f" * 101, bulk=True)  # over the bulk limit
        cache.put("g", b"g" * 100, bulk=True)
        self.assertEqual(["e" in cache, "f" in cache, "g" in cache], [False, False, True])
        cache.put("a", b"A" * 10)  # replacing an entry keeps the byte count right
        self.assertEqual(cache.size, 10 + 300 + 100 + (300 if "c" in cache else 0))
        cache.discard("a")
        self.assertIsNone(cache.get("a"))
        self.assertIsNone(cache.open(KEYRING, "x", "missing"))

    def test_open_of_a_damaged_entry_drops_it(self) -> None:
        sealed = seal_to_file(KEYRING, "owner", b"hello", None)
        assert sealed.data is not None
        cache = SealedBlobCache()
        cache.put(sealed.blob_id, sealed.data)
        with cache.open(KEYRING, "owner", sealed.blob_id) as reader:  # type: ignore[union-attr]
            self.assertEqual(b"".join(reader), b"hello")
        self.assertIsNone(cache.open(KEYRING, "intruder", sealed.blob_id))
        self.assertNotIn(sealed.blob_id, cache)


class SealToFileTests(unittest.SynchronousTestCase):
    def test_sealed_file_holds_the_segmented_envelope_and_memory_variant_matches(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        on_disk = seal_to_file(KEYRING, "owner", b"x" * 100_000, directory, blob_id="a" * 32)
        in_memory = seal_to_file(KEYRING, "owner", b"x" * 100_000, None, blob_id="a" * 32)
        assert on_disk.path is not None and in_memory.data is not None
        self.assertEqual(os.path.getsize(on_disk.path), on_disk.sealed_size)
        self.assertEqual(in_memory.sealed_size, on_disk.sealed_size)
        self.assertEqual(on_disk.sealed_size, HEADER + 100_000 + 2 * TAG_SIZE)
        with open(on_disk.path, "rb") as f:
            self.assertEqual(KEYRING.open_segmented(f.read(), purpose="message", owner="owner",
                                                    context=b"blob:" + b"a" * 32), b"x" * 100_000)

    def test_make_blob_store_follows_storage_backend(self) -> None:
        root = os.path.abspath(self.mktemp())
        self.assertIsInstance(make_blob_store("fs", root), FileBlobs)
        self.assertIsInstance(make_blob_store("db", root, root), DatabaseBlobs)
        self.assertRaises(ValueError, make_blob_store, "s3", root)


class DatabaseBlobsSQLiteTests(SQLiteDatabaseMixin, DatabaseBlobsTestsMixin, unittest.TestCase):
    pass


class DatabaseBlobsPostgresTests(PostgresDatabaseMixin, DatabaseBlobsTestsMixin,
                                 unittest.TestCase):
    pass


class FileBlobsSQLiteTests(SQLiteDatabaseMixin, FileBlobsTestsMixin, unittest.TestCase):
    pass


class FileBlobsPostgresTests(PostgresDatabaseMixin, FileBlobsTestsMixin, unittest.TestCase):
    pass
