"""The search index behind Email/query's text conditions and SearchSnippet/get: built at
delivery from keyed hashes only, exact despite collisions, backfilled for older mail,
removed with the message; and the snippets."""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, select, text
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.db.schema import search_docs, search_tokens
from mailgosend.maintenance import MaintenanceService
from mailgosend.mail import searchtext
from mailgosend.store import search as search_store
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.imap import KEYRING
from tests.support.jmapquery import QueryFixture, mime

def filler(seed: int, count: int = 400) -> str:
    """Many different words, so one-byte tokens take nearly all 256 values."""
    rnd = random.Random(seed)
    return " ".join("".join(rnd.choice("abcdefghijklmnop") for _ in range(7))
                    for _ in range(count))


class SearchIndexMixin(QueryFixture):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        yield self.open()

    def read(self, fn: Any) -> Any:
        return run_sync(self.engine, fn, write=False)

    @defer.inlineCallbacks
    def body_search(self, words: str) -> Any:
        response = yield self.call("Email/query", {"filter": {"body": words}})
        return response["ids"]

    @defer.inlineCallbacks
    def test_the_index_holds_no_plaintext(self) -> Any:
        secret = "zanzibarquuxplover"
        yield self.add(mime(f"About {secret}", f"The {secret} is hidden, {secret}!",
                            sender=f"{secret} <{secret}@example.org>"))
        self.assertEqual(len((yield self.body_search(secret[:8]))), 1)
        tokens = self.read(lambda c: [bytes(r.token) for r in c.execute(
            select(search_tokens.c.token))])
        self.assertTrue(tokens)
        self.assertEqual({len(t) for t in tokens}, {searchtext.HASH_BYTES})
        plain = {w[:n].encode() for w in (secret, "about", "hidden") for n in (3, 6, len(w))}
        self.assertFalse(plain & set(tokens))
        if self.backend != "sqlite":
            return
        # Nowhere in the database file either: messages, structures and tokens are sealed.
        self.read(lambda c: c.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).all())
        path = self.engine.url.database
        assert path is not None
        for name in (path, path + "-wal"):
            if os.path.exists(name):
                with open(name, "rb") as handle:
                    self.assertNotIn(secret.encode(), handle.read())

    @defer.inlineCallbacks
    def test_collisions_never_give_false_results(self) -> Any:
        # One-byte tokens: nearly every lookup proposes every message.
        self.patch(searchtext, "HASH_BYTES", 1)
        ids = []
        for n in range(4):
            ids.append((yield self.add(mime(f"Note {n}", filler(n)))))
        key = KEYRING.derive(searchtext.KEY_PURPOSE, self.mail.user.uuid)
        term = searchtext.parse_terms("zygomorphic")[0]
        proposed = self.read(lambda c: search_store.find_documents(
            c, self.mail.user.id, searchtext.lookup_tokens(key, ["body"], term)[-1]))
        self.assertTrue(proposed, "the tiny hash should collide")
        self.assertEqual((yield self.body_search("zygomorphic")), [])
        # A real word is still found, only where it is.
        word = filler(2).split()[5]
        self.assertEqual((yield self.body_search(word)),
                         [i for n, i in enumerate(ids) if word in filler(n).split()][::-1])

    @defer.inlineCallbacks
    def test_confirmation_rejects_a_prefix_of_another_word_and_word_order(self) -> Any:
        first = yield self.add(mime("x", "international relations"))
        yield self.add(mime("y", "interesting times relations"))
        # "intern" is a 6-prefix shared with "interesting"? No: "intere" differs; the
        # 3-prefix "int" of "inter" is shared, and only the text decides.
        self.assertEqual((yield self.body_search("inter")), ["M2", first])
        self.assertEqual((yield self.body_search("interna")), [first])
        self.assertEqual((yield self.body_search('"relations international"')), [])

    @defer.inlineCallbacks
    def test_older_mail_is_found_and_backfilled(self) -> Any:
        for n in range(3):
            yield self.add(mime(f"Old {n}", f"archived message number{n}"))
        run_sync(self.engine, lambda c: (c.execute(delete(search_tokens)),
                                         c.execute(delete(search_docs))), write=True)
        self.assertEqual((yield self.body_search("number1")), ["M2"])  # exact meanwhile
        # The query started the backfill in the background; wait for it.
        index = self.service.query_indexes.get(self.mail.user.id)
        for _ in range(200):
            if not index.backfilling:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        count = self.read(lambda c: c.execute(select(func.count()).select_from(
            search_docs)).scalar_one())
        self.assertEqual(count, 3)
        self.assertEqual(index.unindexed, set())
        self.assertEqual((yield self.body_search("number2")), ["M3"])
        self.assertEqual((yield self.mail.index_backlog()), 0)

    @defer.inlineCallbacks
    def test_the_index_goes_with_the_message(self) -> Any:
        inbox = self.boxes["INBOX"]
        yield self.add(mime("Gone", "ephemeral words"), flags=("\\Deleted",))
        kept = yield self.add(mime("Kept", "ephemeral too"))
        yield self.mail.expunge(inbox.id, None)
        self.assertEqual((yield self.body_search("ephemeral")), [kept])
        clock = task.Clock()
        clock.advance((datetime.now(timezone.utc) + timedelta(days=2)).timestamp())
        maintenance = MaintenanceService(self.runner, self.blobs, clock)
        yield maintenance.run_once()
        docs = self.read(lambda c: c.execute(select(func.count()).select_from(
            search_docs)).scalar_one())
        self.assertEqual(docs, 1)
        self.assertEqual((yield self.body_search("ephemeral")), [kept])

    @defer.inlineCallbacks
    def test_a_copy_shares_the_document(self) -> Any:
        yield self.mail.create_mailbox("Copies")
        boxes, _ = yield self.mail.mailboxes_and_subscriptions()
        target = next(b for b in boxes if b.name == "Copies")
        yield self.add(mime("Original", "duplicated wording"))
        yield self.mail.copy(self.boxes["INBOX"], [1], target, move=False)
        self.assertEqual(len((yield self.body_search("duplicated"))), 2)
        docs = self.read(lambda c: c.execute(select(func.count()).select_from(
            search_docs)).scalar_one())
        self.assertEqual(docs, 1)

    @defer.inlineCallbacks
    def test_search_snippets(self) -> Any:
        plain = yield self.add(mime("Budget <2026> & plans",
                                    "Hello,\r\nthe budget for <b>2026</b> is attached; "
                                    "budgeting starts Monday." + " more" * 100))
        other = yield self.add(mime("Lunch", "nothing relevant"))
        response = yield self.call("SearchSnippet/get", {
            "filter": {"operator": "AND", "conditions": [
                {"text": "budget"}, {"operator": "NOT", "conditions": [{"text": "lunch"}]}]},
            "emailIds": [plain, other, "M999", "bogus"]})
        by_id = {item["emailId"]: item for item in response["list"]}
        self.assertEqual(by_id[plain]["subject"],
                         "<mark>Budget</mark> &lt;2026&gt; &amp; plans")
        preview = by_id[plain]["preview"]
        self.assertIn("the <mark>budget</mark> for &lt;b&gt;2026&lt;/b&gt;", preview)
        self.assertIn("<mark>budgeting</mark>", preview)
        self.assertLessEqual(len(preview.encode("utf-8")), 255)  # RFC 8621 §5, markup too
        self.assertEqual((by_id[other]["subject"], by_id[other]["preview"]), (None, None))
        self.assertEqual(response["notFound"], ["M999", "bogus"])
        response = yield self.call("SearchSnippet/get", {"filter": {"subject": "plans"},
                                                         "emailIds": [plain]})
        self.assertEqual((response["list"][0]["subject"], response["list"][0]["preview"],
                          response["notFound"]),
                         ("Budget &lt;2026&gt; &amp; <mark>plans</mark>", None, None))
        bob = yield self.service.open_account("bob@example.com")
        response = yield self.call("SearchSnippet/get", {"filter": {"text": "budget"},
                                                         "emailIds": [plain]}, mail=bob)
        self.assertEqual((response["list"], response["notFound"]), ([], [plain]))



class SearchIndexTests(SQLiteDatabaseMixin, SearchIndexMixin, unittest.TestCase):
    pass


class SearchIndexPostgresTests(PostgresDatabaseMixin, SearchIndexMixin, unittest.TestCase):
    pass
