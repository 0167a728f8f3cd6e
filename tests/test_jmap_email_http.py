"""The Email work through the JMAP endpoint over HTTP (requests) with IMAP (imaplib) beside
it: a draft made by Email/set with an uploaded attachment is the same bytes over IMAP and as
the blob JMAP serves; result references between Email/set and Email/get; flags changed over
IMAP seen by Email/get; another user's ids are notFound."""

from __future__ import annotations

import imaplib
from typing import Any

from twisted.internet import defer, threads

from mailgosend.jmap.methods import CORE, MAIL, SUBMISSION
from tests.support.mailserver import PASSWORD
from tests.test_jmap_core import ALICE, BOB, JMAPTestCase

PDF = b"%PDF-1.4 not really\n" * 50


class EmailHTTPTests(JMAPTestCase):
    def imap(self, fn: Any) -> Any:
        def run() -> Any:
            client = imaplib.IMAP4_SSL("127.0.0.1", self.server.ports["IMAPS"],
                                       ssl_context=self.server.client_tls())
            try:
                client.login(ALICE, PASSWORD)
                return fn(client)
            finally:
                client.logout()
        return threads.deferToThread(run)

    @defer.inlineCallbacks
    def session(self) -> Any:
        reply = yield self.http("GET", "/.well-known/jmap")
        return reply.json()

    @defer.inlineCallbacks
    def test_draft_with_attachment_over_http_and_imap(self) -> Any:
        session = yield self.session()
        account = session["primaryAccounts"][MAIL]
        upload = yield self.http("POST", f"/jmap/upload/{account}/", data=PDF,
                                 headers={"Content-Type": "application/pdf"})
        self.assertEqual(upload.status_code, 201, upload.text)
        blob = upload.json()["blobId"]
        boxes = yield self.api([["Mailbox/get", {"accountId": account, "ids": None}, "m"]])
        drafts = [b["id"] for b in boxes.json()["methodResponses"][0][1]["list"]
                  if b["role"] == "drafts"][0]
        reply = yield self.api([
            ["Email/set", {"accountId": account, "create": {"d": {
                "mailboxIds": {drafts: True}, "keywords": {"$draft": True},
                "from": [{"name": "Alice", "email": ALICE}],
                "to": [{"name": "Bob", "email": BOB}], "subject": "Report \u00e9t\u00e9",
                "textBody": [{"partId": "t"}],
                "bodyValues": {"t": {"value": "See attached."}},
                "attachments": [{"blobId": blob, "type": "application/pdf",
                                 "name": "r\u00e9sum\u00e9.pdf"}]}}}, "c1"],
            ["Email/get", {"accountId": account, "ids": ["#d"],
                           "properties": ["subject"]}, "c2"]],
            using=(CORE, MAIL, SUBMISSION), createdIds={})
        self.assertEqual(reply.status_code, 200, reply.text)
        (_, created, _), (_, got, _) = reply.json()["methodResponses"]
        email_id = created["created"]["d"]["id"]
        self.assertEqual(reply.json()["createdIds"], {"d": email_id})
        self.assertEqual(got["list"], [{"id": email_id, "subject": "Report \u00e9t\u00e9"}])
        # a later request names the draft by its creation id (RFC 8620 §3.3 createdIds)
        reply = yield self.api([
            ["Email/get", {"accountId": account, "ids": ["#d"],
                           "properties": ["blobId", "subject", "attachments", "keywords",
                                          "hasAttachment"]}, "c3"]],
            createdIds={"d": email_id})
        [(_, got, _)] = reply.json()["methodResponses"]
        self.assertIn("list", got, got)
        [email] = got["list"]
        self.assertEqual(email["subject"], "Report \u00e9t\u00e9")
        [attachment] = email["attachments"]
        self.assertEqual((attachment["name"], attachment["type"], attachment["size"]),
                         ("r\u00e9sum\u00e9.pdf", "application/pdf", len(PDF)))
        whole = yield self.http("GET", f"/jmap/download/{account}/{email['blobId']}/d.eml"
                                       "?type=message/rfc822")
        self.assertEqual(whole.status_code, 200)
        part = yield self.http("GET", f"/jmap/download/{account}/{attachment['blobId']}/"
                                      "r.pdf?type=application/pdf")
        self.assertEqual(part.content, PDF)

        def fetch(client: imaplib.IMAP4) -> Any:
            client.select("Drafts")
            _, data = client.uid("FETCH", "1", "(BODY.PEEK[])")
            client.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
            return data[0][1]

        over_imap = yield self.imap(fetch)
        self.assertEqual(over_imap, whole.content)  # byte for byte, as built and stored
        reply = yield self.api([["Email/get", {"accountId": account, "ids": [email_id],
                                               "properties": ["keywords"]}, "k"]])
        self.assertEqual(reply.json()["methodResponses"][0][1]["list"][0]["keywords"],
                         {"$draft": True, "$flagged": True})
        # bob cannot read it, download it, or change it
        bob_session = yield self.http("GET", "/.well-known/jmap", auth=(BOB, PASSWORD))
        bob = bob_session.json()["primaryAccounts"][MAIL]
        reply = yield self.api([
            ["Email/get", {"accountId": bob, "ids": [email_id]}, "g"],
            ["Email/set", {"accountId": bob, "update": {email_id: {"keywords": {}}},
                           "destroy": [email_id]}, "s"]], auth=(BOB, PASSWORD))
        (_, got, _), (_, changed, _) = reply.json()["methodResponses"]
        self.assertEqual(got["notFound"], [email_id])
        self.assertEqual(changed["notUpdated"][email_id]["type"], "notFound")
        self.assertEqual(changed["notDestroyed"][email_id]["type"], "notFound")
        stolen = yield self.http("GET", f"/jmap/download/{bob}/{email['blobId']}/d.eml",
                                 auth=(BOB, PASSWORD))
        self.assertEqual(stolen.status_code, 404)

    @defer.inlineCallbacks
    def test_import_an_uploaded_message(self) -> Any:
        raw = (b"From: Carol <carol@example.net>\r\nTo: alice@example.com\r\n"
               b"Subject: imported\r\nMessage-ID: <imp.1@example.net>\r\n"
               b"Date: Mon, 02 Mar 2026 08:00:00 +0000\r\n\r\nOld mail.\r\n")
        session = yield self.session()
        account = session["primaryAccounts"][MAIL]
        upload = yield self.http("POST", f"/jmap/upload/{account}/", data=raw,
                                 headers={"Content-Type": "message/rfc822"})
        blob = upload.json()["blobId"]
        boxes = yield self.api([["Mailbox/get", {"accountId": account, "ids": None}, "m"]])
        archive = [b["id"] for b in boxes.json()["methodResponses"][0][1]["list"]
                   if b["role"] == "archive"][0]
        reply = yield self.api([
            ["Email/import", {"accountId": account, "emails": {"i": {
                "blobId": blob, "mailboxIds": {archive: True}, "keywords": {"$seen": True},
                "receivedAt": "2026-03-02T08:00:05Z"}}}, "c1"],
            ["Email/get", {"accountId": account, "ids": ["#i"],
                           "properties": ["subject", "receivedAt", "keywords", "size"]},
             "c2"]])
        (_, imported, _), (_, got, _) = reply.json()["methodResponses"]
        self.assertIn("i", imported["created"], imported)
        self.assertEqual(got["list"][0]["subject"], "imported")
        self.assertEqual(got["list"][0]["receivedAt"], "2026-03-02T08:00:05Z")
        self.assertEqual(got["list"][0]["size"], len(raw))

        def fetch(client: imaplib.IMAP4) -> Any:
            client.select("Archive")
            _, data = client.uid("FETCH", "1", "(FLAGS BODY.PEEK[])")
            return data[0]

        flags, body = yield self.imap(fetch)
        self.assertEqual(body, raw)
        self.assertIn(b"\\Seen", flags)
