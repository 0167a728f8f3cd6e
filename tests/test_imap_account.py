"""The IMAP avatar and its objects: Twisted's interfaces, lazy message layers, LIST patterns,
the spam-learning hook, and the factory the service wires."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from twisted.internet import defer
from twisted.mail import imap4
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mailgosend.auth.credentials import ClientCredentials
from mailgosend.imap.account import IMAPAccount, pattern_regex
from mailgosend.imap.interfaces import IIMAPAccount, ISpamTrainer, MessageRef, NoSpamTraining
from mailgosend.db.runner import run_sync
from mailgosend.imap import cmd_fetch, search
from mailgosend.imap.message import StoredMessage
from mailgosend.listeners import IDrainable
from mailgosend.mail.source import InfoCache, MessageSource
from mailgosend.store import messages as ms
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import (ALICE, KEYRING, MULTIPART, PASSWORD, IMAPFixture, deferLater,
                                message)


class PatternTests(unittest.TestCase):
    def test_list_wildcards(self) -> None:
        cases = [("*", "a/b/c", True), ("%", "a", True), ("%", "a/b", False),
                 ("a/%", "a/b", True), ("a/%", "a/b/c", False), ("a*", "a/b/c", True),
                 ("inbox", "INBOX", True), ("Inbox/%", "INBOX/x", True), ("x.y", "xzy", False),
                 ("%/b", "a/b", True), ("", "a", False)]
        for pattern, name, matches in cases:
            self.assertEqual(bool(pattern_regex(pattern).match(name)), matches, (pattern, name))


class InterfaceTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_factory_registers_the_avatar_and_is_drainable(self) -> Any:
        factory = self.make_factory()
        self.assertTrue(IDrainable.providedBy(factory))
        interface, avatar, _ = yield self.portal.login(
            ClientCredentials(ALICE, PASSWORD, "192.0.2.9", "imap"), None, IIMAPAccount)
        self.assertIs(interface, IIMAPAccount)
        self.assertIsInstance(avatar, IMAPAccount)
        verifyObject(IIMAPAccount, avatar)
        verifyObject(imap4.INamespacePresenter, avatar)
        self.assertEqual(avatar.user.email, ALICE)
        self.assertIsNotNone(self.mailbox("INBOX"))  # a first login creates the defaults
        verifyObject(ISpamTrainer, NoSpamTraining())

    @defer.inlineCallbacks
    def test_the_twisted_interfaces_work(self) -> Any:
        factory = self.make_factory()
        _, account, _ = yield self.portal.login(
            ClientCredentials(ALICE, PASSWORD, "192.0.2.9", "imap"), None, IIMAPAccount)
        account = account.for_access(factory.access)
        self.assertTrue((yield account.create("Twisted/Child")))
        listed = yield account.listMailboxes("", "Twisted*")
        self.assertEqual([(name, info.getFlags()) for name, info in listed],
                         [("Twisted", ["\\HasChildren"]), ("Twisted/Child", ["\\HasNoChildren"])])
        yield account.unsubscribe("Twisted")
        self.assertFalse((yield account.isSubscribed("Twisted")))
        yield account.rename("Twisted/Child", "Twisted/Renamed")
        box = yield account.select("Twisted/Renamed")
        verifyObject(imap4.IMailbox, box)
        verifyObject(imap4.ISearchableMailbox, box)
        uid = yield box.addMessage(message("via IMailbox"), ["\\Seen"])
        self.assertEqual(uid, 1)
        yield box.sync(True)
        self.assertEqual((box.getMessageCount(), box.getUnseenCount()), (1, 0))
        self.assertEqual(box.requestStatus(["MESSAGES", "UIDNEXT"]),
                         {"MESSAGES": 1, "UIDNEXT": 2})
        ((seq, stored),) = box.fetch("1:*", False)
        verifyObject(imap4.IMessage, stored)
        self.assertEqual(seq, 1)
        headers = yield self.in_thread(stored.getHeaders, False, "subject")
        self.assertEqual(headers, {"subject": "via IMailbox"})
        stored.close()
        flags = yield box.store("1", ["\\Deleted"], 1, False)
        self.assertEqual(flags, {1: ("\\Deleted", "\\Seen", "\\Recent")})
        self.assertEqual((yield box.search("SEEN", True)), [1])
        self.assertEqual((yield box.expunge()), [1])
        yield account.delete("Twisted/Renamed")

    @defer.inlineCallbacks
    def test_stored_message_loads_each_layer_only_when_asked(self) -> Any:
        yield self.deliver(MULTIPART)
        row = self.rows("INBOX")[0]
        source = MessageSource(self.engine, KEYRING, self.blobs, self.alice)
        self.blobs.opened = 0
        with StoredMessage(row, source) as stored:
            verifyObject(imap4.IMessage, stored)
            self.assertEqual((stored.getUID(), stored.getSize(), stored.getFlags()),
                             (1, len(MULTIPART), ()))
            self.assertTrue(stored.isMultipart())  # the structure, no blob
            self.assertEqual(self.blobs.opened, 0)
            part = stored.getSubPart(1)
            verifyObject(imap4.IMessagePart, part)
            self.assertEqual(part.getHeaders(False, "content-type"),
                             {"content-type": "application/pdf; name=a.pdf"})
            self.assertEqual(part.getBodyFile().read(), b"JVBERi0xLjQK")
            self.assertEqual(stored.getHeaders(False, "X-Priority"), {"x-priority": "1"})
            self.assertEqual(self.blobs.opened, 1)  # one reader for every part
            self.assertEqual(stored.getSubPart(2).getSubPart(0).getBodyFile().read(),
                             b"inner body")


class SpamTrainingTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def session(self) -> Any:
        yield self.deliver(message("ham"))
        yield self.deliver(message("spam"))
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        return client

    @defer.inlineCallbacks
    def test_moving_into_junk_teaches_spam_and_out_of_it_ham(self) -> Any:
        client = yield self.session()
        yield self.in_thread(client.uid, "MOVE", "2", "Spam")
        spam_box = self.mailbox("Spam")
        blob = self.rows("Spam")[0].blob_id
        self.assertEqual(self.trainer.lessons,
                         [(self.alice.id, MessageRef(self.alice.id, spam_box.id, 1, blob), True)])
        yield self.in_thread(client.select, "Spam")
        yield self.in_thread(client.copy, "1", "INBOX")
        inbox = self.mailbox("INBOX")
        self.assertEqual(self.trainer.lessons[1],
                         (self.alice.id, MessageRef(self.alice.id, inbox.id, 3, blob), False))

    @defer.inlineCallbacks
    def test_deleting_spam_or_filing_ham_teaches_nothing(self) -> Any:
        client = yield self.session()
        yield self.in_thread(client.copy, "1", "Archive")
        yield self.in_thread(client.uid, "MOVE", "2", "Spam")
        yield self.in_thread(client.select, "Spam")
        yield self.in_thread(client.uid, "MOVE", "1", "Trash")
        self.assertEqual([lesson[2] for lesson in self.trainer.lessons], [True])

    @defer.inlineCallbacks
    def test_a_failing_trainer_does_not_fail_the_move(self) -> Any:
        def broken(user_id: int, ref: MessageRef, is_spam: bool) -> None:
            raise RuntimeError("classifier offline")

        self.trainer.learn = broken  # type: ignore[method-assign,assignment]
        client = yield self.session()
        typ, _ = yield self.in_thread(client.uid, "MOVE", "2", "Spam")
        self.assertEqual(typ, "OK")
        self.assertEqual(len(self.rows("Spam")), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class DeliveredFixtureTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_messages_delivered_by_the_store_are_what_imap_serves(self) -> Any:
        delivered = yield self.deliver(message("fixture"))
        self.assertIsInstance(delivered, ms.Delivered)
        self.assertEqual(self.rows("INBOX")[0].uid, delivered.uid)


class MetaQueryTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    """FETCH ENVELOPE and SEARCH SUBJECT read sealed structures a batch per query."""

    def count_meta_selects(self) -> list[str]:
        seen: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "messages.meta" in statement:
                seen.append(statement)

        event.listen(self.engine, "before_cursor_execute", record)
        self.addCleanup(event.remove, self.engine, "before_cursor_execute", record)
        return seen

    @defer.inlineCallbacks
    def test_fetch_envelope_issues_one_meta_query_per_batch_then_uses_the_cache(self) -> Any:
        self.patch(cmd_fetch, "META_BATCH", 10)
        for i in range(30):
            yield self.deliver(message(f"number {i}"), publish=False)
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        queries = self.count_meta_selects()
        typ, data = yield self.in_thread(client.fetch, "1:*", "(ENVELOPE)")
        self.assertEqual(typ, "OK")
        self.assertEqual(len([d for d in data if b"ENVELOPE" in d]), 30)
        self.assertIn(b'"number 29"', data[-1])
        self.assertEqual(len(queries), 3)  # 30 messages, FETCH batches of 10: not 30 queries
        typ, found = yield self.in_thread(client.uid, "SEARCH", "SUBJECT", "\"number 2\"")
        self.assertEqual(found[0].split(), [b"3"] + [b"%d" % uid for uid in range(21, 31)])
        self.assertEqual(len(queries), 3)  # every structure came from the listener's cache

    @defer.inlineCallbacks
    def test_search_subject_issues_one_meta_query_per_chunk(self) -> Any:
        self.patch(search, "PREFETCH_CHUNK", 8)
        for i in range(20):
            yield self.deliver(message(f"number {i}"), publish=False)
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        queries = self.count_meta_selects()
        typ, found = yield self.in_thread(client.uid, "SEARCH", "SUBJECT", "\"number 1\"")
        self.assertEqual(found[0].split(), [b"2"] + [b"%d" % uid for uid in range(11, 21)])
        self.assertEqual(len(queries), 3)  # chunks of 8, 8 and 4 candidates

    @defer.inlineCallbacks
    def test_info_cache_is_bounded_and_evicts_the_least_recently_used(self) -> Any:
        yield self.deliver(MULTIPART)
        row = self.rows("INBOX")[0]
        info = run_sync(self.engine, ms.load_info, KEYRING, self.alice, row, write=False)
        cache = InfoCache(limit=2)
        cache.put((1, 1, 1), info)
        cache.put((1, 1, 2), info)
        self.assertIs(cache.get((1, 1, 1)), info)
        cache.put((1, 1, 3), info)
        self.assertEqual((len(cache), cache.get((1, 1, 2))), (2, None))
        self.assertIs(cache.get((1, 1, 1)), info)


class HeaderBlockTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    """BODY[HEADER...] from the header block the structure keeps, and the fallback for
    messages stored before structures kept it."""

    @defer.inlineCallbacks
    def deliver_old_style(self, raw: bytes) -> Any:
        """A message whose sealed structure has no header block, as stored before."""
        from mailgosend.store.mimeinfo import analyse
        sealed = self.blobs.seal(KEYRING, self.alice.uuid, raw)
        info = analyse(raw)
        info.header = None
        meta = ms.seal_info(KEYRING, self.alice.uuid, sealed.blob_id, info)
        delivered = yield self.runner.write(ms.deliver, self.alice, "inbox", sealed, meta, (),
                                            self.now, self.now, blob_store=self.blobs)
        return delivered

    def stored_header(self, message_id: int) -> Any:
        return run_sync(self.engine, ms.load_info, KEYRING, self.alice, message_id,
                        write=False).header

    @defer.inlineCallbacks
    def test_old_messages_read_the_blob_once_then_keep_the_header_block(self) -> Any:
        raw = message("old one", extra="X-Long: a\r\n folded\r\n")
        delivered = yield self.deliver_old_style(raw)
        self.assertIsNone(self.stored_header(delivered.message_id))
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        self.blobs.opened = 0
        typ, data = yield self.in_thread(client.fetch, "1", "(BODY.PEEK[HEADER.FIELDS "
                                                            "(SUBJECT X-LONG)])")
        self.assertEqual(data[0][1], b"Subject: old one\r\nX-Long: a\r\n folded\r\n\r\n")
        self.assertEqual(self.blobs.opened, 1)
        for _ in range(100):  # the structure is re-sealed by a write job in the background
            if self.stored_header(delivered.message_id) is not None:
                break
            yield deferLater(0.02)
        self.assertEqual(self.stored_header(delivered.message_id).encode(),
                         raw[:raw.index(b"\r\n\r\n") + 4])
        fresh = self.make_factory()  # new caches: what a restarted server sees
        yield self.listen(fresh)
        other = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, other.shutdown)
        yield self.in_thread(other.select, "INBOX")
        self.blobs.opened = 0
        typ, data = yield self.in_thread(other.fetch, "1", "(BODY.PEEK[HEADER])")
        self.assertEqual(data[0][1], raw[:raw.index(b"\r\n\r\n") + 4])
        self.assertEqual(self.blobs.opened, 0)

    @defer.inlineCallbacks
    def test_header_sections_of_new_messages_need_no_blob(self) -> Any:
        raw = message("new one")
        yield self.deliver(raw)
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        self.blobs.opened = 0
        typ, data = yield self.in_thread(client.fetch, "1", "(BODY.PEEK[HEADER.FIELDS.NOT "
                                                            "(SUBJECT)] BODY.PEEK[HEADER]<0.4>)")
        header = raw[:raw.index(b"\r\n\r\n") + 4]
        self.assertEqual(data[0][1], header.replace(b"Subject: new one\r\n", b""))
        self.assertEqual(data[1][1], b"From")
        self.assertEqual(self.blobs.opened, 0)

    @defer.inlineCallbacks
    def test_header_fields_and_envelopes_are_answered_from_the_listener_caches(self) -> Any:
        for n in range(5):
            yield self.deliver(message(f"cached {n}"))
        yield self.listen()
        calls: list[int] = []
        original = cmd_fetch.load_batch

        def counting(source: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(len(args[0]))
            return original(source, *args, **kwargs)

        self.patch(cmd_fetch, "load_batch", counting)
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        query = "(ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
        typ, first = yield self.in_thread(client.fetch, "1:*", query)
        self.assertEqual(calls, [5])
        typ, again = yield self.in_thread(client.fetch, "1:*", query)
        self.assertEqual(again, first)
        self.assertEqual(calls, [5])  # no database job the second time
        self.assertIn(b"Subject: cached 4\r\n\r\n", again[-2][1])
        typ, data = yield self.in_thread(client.fetch, "2", "(BODY.PEEK[HEADER.FIELDS (FROM)])")
        self.assertEqual(calls, [5, 1])  # another field list is another cache entry
        self.assertEqual(data[0][1], b"From: Alice <alice@example.com>\r\n\r\n")
