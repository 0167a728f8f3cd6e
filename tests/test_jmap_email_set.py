"""Email/set, Email/import and Email/copy (RFC 8621 §4.6-4.8) through the method handlers
over a real database, with IMAP (imaplib) seeing the changes and the reverse."""

from __future__ import annotations

import email
import email.policy
import re
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.jmap import compose
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.imap import message
from tests.support.jmapcall import JMAPCallFixture

DRAFT = {
    "from": [{"name": "Alice Lidd\u00e9ll", "email": "alice@example.com"}],
    "to": [{"name": "Bob", "email": "bob@example.com"}],
    "subject": "Caf\u00e9 at ten? \u2615",
    "keywords": {"$draft": True, "$seen": True},
    "textBody": [{"partId": "t", "type": "text/plain"}],
    "htmlBody": [{"partId": "h", "type": "text/html"}],
    "bodyValues": {"t": {"value": "Caf\u00e9 at ten?\nA.\n"},
                   "h": {"value": "<p>Caf\u00e9 at <b>ten</b>?</p>"}},
}


class ComposeTests(unittest.TestCase):
    def test_alternative_with_encoded_headers(self) -> None:
        raw = compose.build({k: v for k, v in DRAFT.items() if k != "keywords"}, {},
                            _now(), "example.com")
        self.assertNotIn(b"\n", raw.replace(b"\r\n", b""))  # CRLF only
        self.assertTrue(all(b < 128 for b in raw))  # 7-bit: encoded words, QP/base64
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(parsed["Subject"], "Caf\u00e9 at ten? \u2615")
        self.assertEqual(parsed["From"].addresses[0].display_name, "Alice Lidd\u00e9ll")
        self.assertEqual(parsed.get_content_type(), "multipart/alternative")
        self.assertEqual(parsed["MIME-Version"], "1.0")
        self.assertRegex(parsed["Message-ID"], r"^<.+@example\.com>$")
        self.assertIsNotNone(parsed["Date"])
        plain, html = parsed.iter_parts()
        self.assertEqual(plain.get_content(), "Caf\u00e9 at ten?\r\nA.\r\n")  # canonical CRLF
        self.assertEqual(html.get_content_type(), "text/html")

    def test_attachment_with_a_non_ascii_name(self) -> None:
        raw = compose.build({"textBody": [{"partId": "1"}], "bodyValues": {"1": {"value": "x"}},
                             "attachments": [{"blobId": "Ub", "type": "application/pdf",
                                              "name": "R\u00e9sum\u00e9.pdf"}]},
                            {"Ub": b"%PDF"}, _now(), "example.com")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(parsed.get_content_type(), "multipart/mixed")
        attachment = list(parsed.iter_attachments())[0]
        self.assertEqual(attachment.get_filename(), "R\u00e9sum\u00e9.pdf")
        self.assertEqual(attachment.get_content(), b"%PDF")

    def test_bad_input_names_the_property(self) -> None:
        cases = [({"to": "bob"}, "to"), ({"subject": 5}, "subject"),
                 ({"colour": "red"}, "colour"), ({"id": "M1"}, "id"),
                 ({"textBody": [{"partId": "x"}]}, "textBody"),
                 ({"textBody": [{"partId": "1"}], "bodyValues": {"1": {"value": "a"}},
                   "bodyStructure": {"partId": "1"}}, "bodyStructure"),
                 ({"header:Subject:asText": "a\r\nBcc: x@y"}, "header:Subject:asText"),
                 ({"sentAt": "yesterday"}, "sentAt")]
        for obj, prop in cases:
            with self.assertRaises(compose.Invalid) as caught:
                compose.build(obj, {}, _now(), "example.com")
            self.assertEqual(caught.exception.prop, prop, obj)


def _now() -> Any:
    from datetime import datetime, timezone
    return datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class EmailSetTests(SQLiteDatabaseMixin, JMAPCallFixture, unittest.TestCase):
    def call(self, name: str, **args: Any) -> Any:
        return defer.Deferred.fromCoroutine(self.jmap(name, {"accountId": self.account(),
                                                             **args}))

    @defer.inlineCallbacks
    def boxes(self) -> Any:
        mail = yield defer.Deferred.fromCoroutine(self.mail_of(self.alice.email))
        found, _ = yield mail.mailboxes_and_subscriptions()
        return {box.name: box for box in found}

    @defer.inlineCallbacks
    def put(self, raw: bytes, flags: Any = (), user: Any = None) -> Any:
        mail = yield defer.Deferred.fromCoroutine(self.mail_of((user or self.alice).email))
        inbox = yield mail.get_mailbox("INBOX")
        delivered = yield mail.append(inbox.id, raw, list(flags), None)
        return f"M{delivered.email_id}"

    @defer.inlineCallbacks
    def get(self, ids: Any, props: Any) -> Any:
        _, result, _ = yield self.call("Email/get", ids=ids, properties=props)
        return result

    @defer.inlineCallbacks
    def test_draft_round_trips_through_imap_byte_for_byte(self) -> Any:
        boxes = yield self.boxes()
        drafts = f"B{boxes['Drafts'].id}"
        name, result, _ = yield self.call("Email/set", create={"d1": {
            **DRAFT, "mailboxIds": {drafts: True}}})
        self.assertEqual(name, "Email/set")
        created = result["created"]["d1"]
        self.assertEqual(set(created), {"id", "blobId", "threadId", "size"})
        self.assertEqual(self.created["d1"], created["id"])
        mail = yield defer.Deferred.fromCoroutine(self.mail_of(self.alice.email))
        records = yield mail.email_records([int(created["id"][1:])], raw=True)
        stored = records[int(created["id"][1:])].raw
        yield self.listen()

        def fetch() -> Any:
            client = self.imaplib_client()
            try:
                client.select("Drafts")
                _, data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
                return data
            finally:
                client.logout()

        data = yield self.in_thread(fetch)
        self.assertEqual(data[0][1], stored)
        self.assertEqual(len(stored), created["size"])
        self.assertIn(b"\\Draft", data[0][0])
        self.assertIn(b"\\Seen", data[0][0])
        got = yield self.get([created["id"]], ["subject", "keywords", "mailboxIds", "from"])
        self.assertEqual(got["list"][0]["subject"], DRAFT["subject"])
        self.assertEqual(got["list"][0]["keywords"], {"$draft": True, "$seen": True})
        self.assertEqual(got["list"][0]["from"], DRAFT["from"])

    @defer.inlineCallbacks
    def test_keywords_from_jmap_seen_by_imap_and_the_reverse(self) -> Any:
        email_id = yield self.put(message("flags"), ["\\Deleted"])
        yield self.listen()
        name, result, _ = yield self.call("Email/set", update={
            email_id: {"keywords/$seen": True, "keywords/$Forwarded": True}})
        self.assertEqual(result["updated"], {email_id: None})

        def flags(store: Any = None) -> Any:
            client = self.imaplib_client()
            try:
                client.select("INBOX")
                if store:
                    client.uid("STORE", "1", *store)
                _, data = client.uid("FETCH", "1", "(FLAGS)")
                return data[0]
            finally:
                client.logout()

        seen = yield self.in_thread(flags)
        self.assertEqual(sorted(set(re.findall(rb"[\\$]\w+", seen.split(b"FLAGS")[1]))
                                - {b"\\Recent"}),
                         [b"$forwarded", b"\\Deleted", b"\\Seen"])  # \Deleted kept
        yield self.in_thread(flags, ("-FLAGS", "(\\Seen $Forwarded)"))
        yield self.in_thread(flags, ("+FLAGS", "(\\Flagged $Junk)"))
        got = yield self.get([email_id], ["keywords"])
        self.assertEqual(got["list"][0]["keywords"], {"$flagged": True, "$junk": True})
        _, result, _ = yield self.call("Email/set", update={email_id: {"keywords": {}}})
        got = yield self.get([email_id], ["keywords"])
        self.assertEqual(got["list"][0]["keywords"], {})

    @defer.inlineCallbacks
    def test_move_and_destroy(self) -> Any:
        boxes = yield self.boxes()
        email_id = yield self.put(message("move me"))
        other = yield self.put(message("delete me"))
        archive = f"B{boxes['Archive'].id}"
        _, result, _ = yield self.call("Email/set", update={
            email_id: {"mailboxIds": {archive: True}}}, destroy=[other])
        self.assertEqual(result["updated"], {email_id: None})
        self.assertEqual(result["destroyed"], [other])
        self.assertEqual([r.uid for r in self.rows("Archive")], [1])
        self.assertEqual(self.rows("INBOX"), [])
        got = yield self.get([email_id], ["mailboxIds"])  # a move keeps the Email id
        self.assertEqual(got["list"], [{"id": email_id, "mailboxIds": {archive: True}}])
        _, result, _ = yield self.call("Email/set", destroy=[other])
        self.assertEqual(result["notDestroyed"][other]["type"], "notFound")
        # moved and destroyed in one call: the moved copy is the one destroyed
        _, result, _ = yield self.call("Email/set", update={
            email_id: {"mailboxIds": {f"B{boxes['Trash'].id}": True}}}, destroy=[email_id])
        self.assertEqual((result["updated"], result["destroyed"]), ({email_id: None},
                                                                   [email_id]))
        self.assertEqual((self.rows("Trash"), self.rows("Archive")), ([], []))

    @defer.inlineCallbacks
    def test_bad_input_changes_nothing(self) -> Any:
        boxes = yield self.boxes()
        email_id = yield self.put(message("mine"), ["\\Seen"])
        bobs = yield self.put(message("bob's"), user=self.bob)
        inbox, sent = f"B{boxes['INBOX'].id}", f"B{boxes['Sent'].id}"
        _, result, _ = yield self.call("Email/set", update={
            email_id: {"subject": "changed"},
            bobs: {"keywords/$seen": True}}, destroy=[bobs, "M0", "junk"])
        self.assertEqual(result["notUpdated"][email_id],
                         {"type": "invalidProperties", "properties": ["subject"],
                          "description": "subject: cannot be changed (only keywords and "
                                         "mailboxIds)"})
        self.assertEqual(result["notUpdated"][bobs]["type"], "notFound")
        self.assertEqual({k: v["type"] for k, v in result["notDestroyed"].items()},
                         {bobs: "notFound", "M0": "notFound", "junk": "notFound"})
        bad = {"keywords/$seen": "yes"}, {"keywords": {"a b": True}}, {
            "mailboxIds": {inbox: True, sent: True}}, {"mailboxIds": {}}, {
            "mailboxIds": {"B999999": True}}
        for patch in bad:
            _, result, _ = yield self.call("Email/set", update={email_id: patch})
            self.assertIn(result["notUpdated"][email_id]["type"],
                          ("invalidProperties", "tooManyMailboxes"), patch)
        self.assertEqual(result["notUpdated"][email_id]["properties"], ["mailboxIds"])
        _, result, _ = yield self.call("Email/set", update={
            email_id: {"mailboxIds": {inbox: True, sent: True}}})
        self.assertEqual(result["notUpdated"][email_id]["type"], "tooManyMailboxes")
        self.assertEqual([r.flags for r in self.rows("INBOX")], [("\\Seen",)])
        name, error, _ = yield self.call("Email/set", update=[email_id])
        self.assertEqual((name, error["type"], error["arguments"]),
                         ("error", "invalidArguments", ["update"]))
        name, error, _ = yield self.call("Email/set", ifInState="not-the-state",
                                         destroy=[email_id])
        self.assertEqual(error["type"], "stateMismatch")
        name, error, _ = yield self.call("Email/set", destroy=[email_id] * 1001)
        self.assertEqual(error["type"], "requestTooLarge")
        _, result, _ = yield self.call("Email/set", create={"x": {
            "mailboxIds": {inbox: True}, "textBody": [{"blobId": "G999999"}]}})
        self.assertEqual(result["notCreated"]["x"]["type"], "blobNotFound")
        _, result, _ = yield self.call("Email/set", create={"x": {
            "mailboxIds": {inbox: True}, "to": "bob"}})
        self.assertEqual(result["notCreated"]["x"]["properties"], ["to"])
        self.assertEqual(len(self.rows("INBOX")), 1)

    @defer.inlineCallbacks
    def test_import_and_copy(self) -> Any:
        boxes = yield self.boxes()
        email_id = yield self.put(message("original"))
        archive = f"B{boxes['Archive'].id}"
        _, result, _ = yield self.call("Email/import", emails={
            "i": {"blobId": "G" + email_id[1:], "mailboxIds": {archive: True},
                  "keywords": {"$seen": True}, "receivedAt": "2026-01-02T03:04:05Z"},
            "j": {"blobId": "Gnothing", "mailboxIds": {archive: True}}})
        self.assertEqual(result["notCreated"]["j"]["type"], "blobNotFound")
        imported = result["created"]["i"]["id"]
        got = yield self.get([imported], ["subject", "receivedAt", "keywords"])
        self.assertEqual(got["list"][0], {"id": imported, "subject": "original",
                                          "receivedAt": "2026-01-02T03:04:05Z",
                                          "keywords": {"$seen": True}})
        name, error, _ = yield self.call("Email/copy", fromAccountId="A999",
                                         create={"c": {"id": email_id}})
        self.assertEqual(error["type"], "fromAccountNotFound")
        name, error, _ = yield self.call("Email/copy", fromAccountId=self.account(),
                                         create={"c": {"id": email_id}})
        self.assertEqual(error["arguments"], ["fromAccountId"])


class PostgresEmailSetTests(PostgresDatabaseMixin, EmailSetTests):
    """The same on PostgreSQL."""
