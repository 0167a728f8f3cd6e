"""The per-user mail service (mail/service.py) called directly, as a web front end would:
the same operations IMAP and POP3 use, without a protocol in between."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.mail.service import MailService, UserMail
from mailgosend.spam.interfaces import MessageRef
from mailgosend.store.mailboxes import MailboxNotFound, ensure_default_mailboxes
from mailgosend.store.messages import QuotaExceeded
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import KEYRING, IMAPFixture, message


class MailServiceTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    def service(self) -> MailService:
        return MailService(runner=self.runner, keyring=KEYRING, blob_store=self.blobs,
                           workers=self.workers, clock=reactor, trainer=self.trainer)

    @defer.inlineCallbacks
    def mail(self) -> Any:
        mail: UserMail = yield self.service().open_account(self.alice.email)
        return mail

    @defer.inlineCallbacks
    def test_open_account_creates_the_default_mailboxes(self) -> Any:
        mail = yield self.mail()
        boxes, subscribed = yield mail.mailboxes_and_subscriptions()
        self.assertIn("INBOX", [box.name for box in boxes])
        self.assertIn("junk", [box.role for box in boxes])
        self.assertIsInstance(subscribed, set)

    @defer.inlineCallbacks
    def test_append_then_move_to_junk_teaches_spam_and_expunges_the_source(self) -> Any:
        mail = yield self.mail()
        inbox = yield mail.get_mailbox("INBOX")
        junk = yield mail.get_mailbox("Spam")
        delivered = yield mail.append(inbox.id, message("buy now"), ["\\Seen"], None)
        result = yield mail.copy(inbox, [delivered.uid], junk, move=True)
        self.assertEqual(result.expunged, [delivered.uid])
        self.assertEqual([row.flags for row in self.rows("Spam")], [("\\Seen",)])
        self.assertEqual(self.rows("INBOX"), [])
        self.assertEqual(self.trainer.lessons, [(self.alice.id, MessageRef(
            self.alice.id, junk.id, result.pairs[0][1], delivered.blob_id), True)])

    @defer.inlineCallbacks
    def test_flags_with_unchangedsince_then_expunge(self) -> Any:
        mail = yield self.mail()
        inbox = yield mail.get_mailbox("INBOX")
        first = yield mail.append(inbox.id, message("one"), [], None)
        yield mail.append(inbox.id, message("two"), [], None)
        result = yield mail.set_flags(inbox.id, [1, 2], ["\\Deleted"], "add",
                                      unchanged_since=first.modseq)
        self.assertEqual(([c.uid for c in result.changed], result.modified), ([1], [2]))
        expunged = yield mail.expunge(inbox.id, None)
        self.assertEqual(expunged, [1])
        box, counts, recent = yield mail.status("INBOX", None)
        self.assertEqual((counts.messages, recent), (1, 1))

    @defer.inlineCallbacks
    def test_status_of_a_missing_mailbox_fails_with_the_store_error(self) -> Any:
        mail = yield self.mail()
        yield self.assertFailure(mail.status("Nowhere", None), MailboxNotFound)

    @defer.inlineCallbacks
    def test_pop3_update_and_read_range(self) -> Any:
        run_sync(self.engine, ensure_default_mailboxes, self.alice.id, self.now, write=True)
        service = self.service()
        index = yield service.inbox_index(self.alice.email)
        self.assertEqual(index.rows, [])
        mail = service.for_user(index.user)
        raw = message("pop")
        delivered = yield mail.append(index.mailbox.id, raw, [], None)
        self.assertEqual((yield mail.read_range(delivered.blob_id, 0, 5)), raw[:5])
        expunged = yield mail.delete_and_mark_seen(index.mailbox.id, [delivered.uid], [])
        self.assertEqual(expunged, [delivered.uid])


class QuotaTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    quota = 100

    @defer.inlineCallbacks
    def test_append_over_quota_is_refused_with_its_code(self) -> Any:
        service = MailService(runner=self.runner, keyring=KEYRING, blob_store=self.blobs,
                              workers=self.workers, clock=reactor)
        mail = yield service.open_account(self.alice.email)
        inbox = yield mail.get_mailbox("INBOX")
        failure = yield self.assertFailure(mail.append(inbox.id, message("x" * 200), [], None),
                                           QuotaExceeded)
        self.assertEqual((failure.smtp_code, failure.imap_code), (452, "OVERQUOTA"))
        self.assertEqual((yield mail.quota()), (0, 100))
