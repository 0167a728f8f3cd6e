"""EmailSubmission (RFC 8621 §7) through the method handlers over a real database: the
port-587 rules (forbiddenFrom), local delivery and the outbound queue, onSuccessUpdateEmail
with its implicit Email/set, the undo window (pending -> canceled, or released)."""

from __future__ import annotations

import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from twisted.internet import defer, task
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.db.schema import queue, queue_recipients
from mailgosend.delivery.bounces import OutcomeBatch
from mailgosend.events import SubmissionChanged
from mailgosend.jmap.submission import Releaser, SubmissionSettings
from mailgosend.mail.service import MailService
from mailgosend.store.queue import Outcome
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.imap import KEYRING, deferLater
from tests.support.jmapcall import JMAPCallFixture


def context(undo: int = 0) -> Any:
    return SimpleNamespace(services=SimpleNamespace(
        extra={"submission": SubmissionSettings(undo_seconds=undo,
                                                hostname="mx.example.com")}))


class SubmissionTests(SQLiteDatabaseMixin, JMAPCallFixture, unittest.TestCase):
    def call(self, name: str, undo: int = 0, **args: Any) -> Any:
        return defer.Deferred.fromCoroutine(self.jmap(
            name, {"accountId": self.account(), **args}, context=context(undo)))

    @defer.inlineCallbacks
    def draft(self, **extra: Any) -> Any:
        yield defer.Deferred.fromCoroutine(self.mail_of(self.bob.email))  # his mailboxes
        mail = yield defer.Deferred.fromCoroutine(self.mail_of(self.alice.email))
        boxes, _ = yield mail.mailboxes_and_subscriptions()
        self.box = {b.name: f"B{b.id}" for b in boxes}
        obj = {"mailboxIds": {self.box["Drafts"]: True}, "keywords": {"$draft": True},
               "from": [{"name": "Alice", "email": "alice@example.com"}],
               "to": [{"name": "Bob", "email": "bob@example.com"}],
               "bcc": [{"name": None, "email": "carol@elsewhere.test"}],
               "subject": "Lunch", "textBody": [{"partId": "1"}],
               "bodyValues": {"1": {"value": "Noon?"}}, **extra}
        _, result, _ = yield self.call("Email/set", create={"d": obj})
        return result["created"]["d"]["id"]

    @defer.inlineCallbacks
    def identity(self) -> Any:
        _, result, _ = yield self.call("Identity/get", ids=None)
        return [i["id"] for i in result["list"] if i["email"] == self.alice.email][0]

    def bob_inbox(self) -> Any:
        return self.rows("INBOX", user=self.bob)

    def queued(self) -> Any:
        return run_sync(self.engine, lambda c: c.execute(
            select(queue_recipients.c.recipient, queue.c.sender).join(
                queue, queue.c.id == queue_recipients.c.queue_id)).all(), write=False)

    @defer.inlineCallbacks
    def test_send_local_and_remote_then_move_to_sent(self) -> Any:
        email_id = yield self.draft()
        identity = yield self.identity()
        name, result, implied = yield self.call(
            "EmailSubmission/set",
            create={"s": {"identityId": identity, "emailId": email_id}},
            onSuccessUpdateEmail={"#s": {
                f"mailboxIds/{self.box['Drafts']}": None,
                f"mailboxIds/{self.box['Sent']}": True, "keywords/$draft": None}})
        self.assertEqual(name, "EmailSubmission/set", result)
        created = result["created"]["s"]
        self.assertEqual(created["undoStatus"], "final")
        # bob (local) has it, without the Bcc line; carol (remote) is queued
        [copy] = self.bob_inbox()
        mail = yield defer.Deferred.fromCoroutine(self.mail_of(self.bob.email))
        raw = yield mail.read_range(copy.blob_id, 0, copy.size)
        self.assertIn(b"Subject: Lunch", raw)
        self.assertNotIn(b"carol", raw)
        self.assertEqual([tuple(r) for r in self.queued()],
                         [("carol@elsewhere.test", "alice@example.com")])
        # the implicit Email/set moved the draft to Sent and dropped $draft
        self.assertEqual([n for n, _ in implied], ["Email/set"])
        self.assertEqual(len(self.rows("Sent")), 1)
        self.assertEqual(self.rows("Drafts"), [])
        self.assertEqual(self.rows("Sent")[0].flags, ())
        _, got, _ = yield self.call("EmailSubmission/get", ids=[created["id"]])
        status = got["list"][0]["deliveryStatus"]
        self.assertEqual(status["bob@example.com"]["delivered"], "yes")
        self.assertEqual(status["carol@elsewhere.test"]["delivered"], "queued")
        self.assertEqual(got["list"][0]["envelope"]["mailFrom"]["email"], "alice@example.com")
        _, found, _ = yield self.call("EmailSubmission/query",
                                      filter={"undoStatus": "final"})
        self.assertEqual(found["ids"], [created["id"]])

    @defer.inlineCallbacks
    def test_missing_date_and_message_id_are_added_as_on_port_587(self) -> Any:
        yield self.draft()
        identity = yield self.identity()
        bare = b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: bare\r\n\r\nx\r\n"
        mail = yield defer.Deferred.fromCoroutine(self.mail_of(self.alice.email))
        drafts = yield mail.get_mailbox("Drafts")
        delivered = yield mail.append(drafts.id, bare, ["\\Draft"], None)
        _, result, _ = yield self.call("EmailSubmission/set", create={
            "s": {"identityId": identity, "emailId": f"M{delivered.email_id}"}})
        self.assertIn("s", result["created"], result)
        [copy] = self.bob_inbox()
        bob = yield defer.Deferred.fromCoroutine(self.mail_of(self.bob.email))
        raw = yield bob.read_range(copy.blob_id, 0, copy.size)
        self.assertRegex(raw, rb"Message-ID: <[0-9]+\.[0-9a-f]+@mx\.example\.com>\r\n")
        self.assertIn(b"\r\nDate: ", b"\r\n" + raw)
        self.assertTrue(raw.endswith(bare))

    @defer.inlineCallbacks
    def test_forged_from_is_refused_and_nothing_is_sent(self) -> Any:
        email_id = yield self.draft(**{"from": [{"name": None, "email": "bob@example.com"}]})
        identity = yield self.identity()
        _, result, implied = yield self.call(
            "EmailSubmission/set", create={"s": {"identityId": identity, "emailId": email_id}},
            onSuccessDestroyEmail=["#s"])
        self.assertEqual(result["notCreated"]["s"]["type"], "forbiddenFrom")
        self.assertEqual((self.bob_inbox(), self.queued(), implied), ([], [], []))
        _, result, _ = yield self.call("EmailSubmission/set", create={
            "a": {"identityId": "I999", "emailId": email_id},
            "b": {"identityId": identity, "emailId": "M999999"},
            "c": {"identityId": identity, "emailId": email_id,
                  "envelope": {"mailFrom": {"email": "bob@example.com"},
                               "rcptTo": [{"email": "bob@example.com"}]}},
            "d": {"identityId": identity, "emailId": email_id, "sendAt": "x"}})
        self.assertEqual(result["notCreated"]["a"]["properties"], ["identityId"])
        self.assertEqual(result["notCreated"]["b"]["properties"], ["emailId"])
        self.assertEqual(result["notCreated"]["c"]["type"], "forbiddenFrom")
        self.assertEqual(result["notCreated"]["d"]["properties"], ["sendAt"])

    @defer.inlineCallbacks
    def test_undo_window(self) -> Any:
        clock = task.Clock()
        clock.advance(time.time())
        self.service = MailService(runner=self.runner, keyring=KEYRING,
                                   blob_store=self.blobs, workers=self.workers, clock=clock,
                                   trainer=self.trainer, events=self.events)
        self.mails.clear()
        email_id = yield self.draft()
        identity = yield self.identity()
        _, first, _ = yield self.call("EmailSubmission/set", undo=5, create={
            "s": {"identityId": identity, "emailId": email_id}})
        _, second, _ = yield self.call("EmailSubmission/set", undo=5, create={
            "s": {"identityId": identity, "emailId": email_id}})
        one, two = first["created"]["s"]["id"], second["created"]["s"]["id"]
        self.assertEqual(first["created"]["s"]["undoStatus"], "pending")
        self.assertEqual((self.bob_inbox(), self.queued()), ([], []))
        _, result, _ = yield self.call("EmailSubmission/set", update={
            one: {"undoStatus": "canceled"}})
        self.assertEqual(result["updated"], {one: None})
        clock.advance(6)  # the window ends: the second goes, the canceled one never
        for _ in range(100):
            if self.bob_inbox():
                break
            yield deferLater(0.05)
        self.assertEqual(len(self.bob_inbox()), 1)
        _, got, _ = yield self.call("EmailSubmission/get", ids=[one, two],
                                    properties=["undoStatus"])
        self.assertEqual([s["undoStatus"] for s in got["list"]], ["canceled", "final"])
        _, result, _ = yield self.call("EmailSubmission/set", update={
            two: {"undoStatus": "canceled"}})
        self.assertEqual(result["notUpdated"][two]["type"], "cannotUnsend")
        # a releaser after a restart sends nothing more
        releaser = Releaser(self.service, clock)
        yield releaser._tick()
        self.assertEqual(len(self.bob_inbox()), 1)


    @defer.inlineCallbacks
    def test_delivery_outcome_moves_the_state_and_is_published(self) -> Any:
        """The queue worker's outcome for a submitted message changes its deliveryStatus:
        the EmailSubmission state moves in the same transaction and SubmissionChanged is
        published after it (JMAP push, RFC 8620 §7.1)."""
        email_id = yield self.draft()
        identity = yield self.identity()
        _, result, _ = yield self.call("EmailSubmission/set", create={
            "s": {"identityId": identity, "emailId": email_id}})
        sid = result["created"]["s"]["id"]
        before = result["newState"]
        heard: list[Any] = []
        self.events.subscribe(self.alice.id, heard.append)
        [(rid, qid)] = run_sync(self.engine, lambda c: c.execute(
            select(queue_recipients.c.id, queue_recipients.c.queue_id)).all(), write=False)
        now = self.service.now()
        yield OutcomeBatch(self.runner, self.events).add([Outcome(
            rid, qid, "carol@elsewhere.test", "deferred", 451, "4.2.0 try later",
            next_attempt_at=now + timedelta(minutes=5))], now)
        _, got, _ = yield self.call("EmailSubmission/get", ids=[sid])
        self.assertNotEqual(got["state"], before)
        carol = got["list"][0]["deliveryStatus"]["carol@elsewhere.test"]
        self.assertEqual(carol["smtpReply"], "451 4.2.0 try later")
        self.assertEqual([b.changes for b in heard], [(SubmissionChanged(int(sid[1:])),)])
        _, changes, _ = yield self.call("EmailSubmission/changes", sinceState=before)
        self.assertEqual(changes["updated"], [sid])


class PostgresSubmissionTests(PostgresDatabaseMixin, SubmissionTests):
    """The same on PostgreSQL (the conditional pending -> final/canceled updates)."""
