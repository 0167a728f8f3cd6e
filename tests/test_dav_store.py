"""store/dav.py and mail/dav.py on SQLite and PostgreSQL: objects are sealed with the
user's key, writes bump the collection's sync counter, tombstones report removals until
pruned (then the token is too old), UIDs are unique per collection, preconditions and the
quota refuse before anything is written."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial import unittest

from mailgosend.crypto import KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.mail.dav import DavService, ObjectFacts
from mailgosend.store import accounts
from mailgosend.store import dav as store
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)
CARD = b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:u1\r\nFN:Zebulon Quist\r\nEND:VCARD\r\n"


class DavStoreMixin(DatabaseTestBase):
    def setUp(self):  # type: ignore[no-untyped-def]
        result = super().setUp()
        run_sync(self.engine, accounts.add_domain, "example.com", NOW, write=True)
        self.alice = run_sync(self.engine, accounts.add_user, "alice@example.com", "x", NOW,
                              quota_bytes=1000, write=True)
        self.service = DavService(runner=self.runner, keyring=KeyRing(b"k" * 32),
                                  clock=reactor)
        self.dav = self.service.for_user(self.alice)
        return result

    def go(self, coro: Any) -> Deferred[Any]:
        return ensureDeferred(coro)

    def test_default_collection_sealed_objects_and_sync(self) -> Deferred[Any]:
        async def go() -> None:
            (book,) = await self.dav.collections("addressbook")
            self.assertEqual(book.name, "contacts")
            etag, created = await self.dav.put(book, "a.vcf", CARD, ObjectFacts("u1", "VCARD"))
            self.assertTrue(created)
            raw = run_sync(self.engine, store.get_objects, book.id, write=False)
            self.assertNotIn(b"Zebulon", raw[0].data)
            (item,) = await self.dav.items(book)
            self.assertEqual((item.data, item.etag), (CARD, etag))
            book = await self.dav.collection("addressbook", "contacts")
            first = book.modseq
            await self.dav.put(book, "b.vcf", CARD.replace(b"u1", b"u2"),
                               ObjectFacts("u2", "VCARD"))
            await self.dav.delete(book, "a.vcf")
            modseq, changed, removed = await self.dav.changes_since(book, first)
            self.assertEqual(([i.name for i in changed], removed), (["b.vcf"], ["a.vcf"]))
            self.assertEqual(modseq, first + 2)
            await self.dav.prune_tombstones(book, modseq)
            with self.assertRaises(store.SyncTokenTooOld):
                await self.dav.changes_since(book, first)
            self.assertEqual(await self.dav.changes_since(book, modseq), (modseq, [], []))
        return self.go(go())

    def test_refusals_change_nothing(self) -> Deferred[Any]:
        async def go() -> None:
            (book,) = await self.dav.collections("addressbook")
            etag, _ = await self.dav.put(book, "a.vcf", CARD, ObjectFacts("u1", "VCARD"))
            before = await self.dav.quota()
            with self.assertRaises(store.UidConflict):
                await self.dav.put(book, "other.vcf", CARD, ObjectFacts("u1", "VCARD"))
            with self.assertRaises(store.PreconditionFailed):
                await self.dav.put(book, "a.vcf", CARD, ObjectFacts("u1", "VCARD"),
                                   if_match='"nope"')
            with self.assertRaises(store.PreconditionFailed):
                await self.dav.put(book, "a.vcf", CARD, ObjectFacts("u1", "VCARD"),
                                   if_none_match="*")
            with self.assertRaises(store.QuotaExceeded):
                await self.dav.put(book, "big.vcf", b"x" * 2000, ObjectFacts("u9", "VCARD"))
            self.assertEqual(await self.dav.quota(), before)
            self.assertEqual(before, (len(CARD), 1000))
            (item,) = await self.dav.list_items(book)
            self.assertEqual(item.etag, etag)
            await self.dav.delete(book, "a.vcf", if_match=f'"{etag}"')
            self.assertEqual(await self.dav.quota(), (0, 1000))
        return self.go(go())

    def test_tombstones_are_bounded(self) -> Deferred[Any]:
        async def go() -> None:
            (book,) = await self.dav.collections("addressbook")
            start = (await self.dav.collection("addressbook", "contacts")).modseq
            for n in range(6):
                await self.dav.put(book, f"{n}.vcf", CARD, ObjectFacts("u1", "VCARD"))
                await self.dav.delete(book, f"{n}.vcf")
            book = await self.dav.collection("addressbook", "contacts")
            run_sync(self.engine, store.bound_tombstones, book.id, 3, write=True)
            with self.assertRaises(store.SyncTokenTooOld):
                await self.dav.changes_since(book, start)
            # a token after the kept removals still gets exactly those
            _, _, removed = await self.dav.changes_since(book, book.modseq - 6)
            self.assertEqual(removed, ["3.vcf", "4.vcf", "5.vcf"])
        return self.go(go())


class DavStoreSQLiteTests(SQLiteDatabaseMixin, DavStoreMixin, unittest.TestCase):
    pass


class DavStorePostgresTests(PostgresDatabaseMixin, DavStoreMixin, unittest.TestCase):
    pass
