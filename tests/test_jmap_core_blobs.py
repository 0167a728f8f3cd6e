"""JMAP blobs (RFC 8620 §6): upload streamed and sealed, quota-checked; download streamed
from the encrypted blob with the asked type, an RFC 6266 name and a sandbox CSP; another
user's blob id is 404; uploads expire after a day (the maintenance run, injected clock)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from twisted.internet import defer, task

from mailgosend.db.runner import run_sync
from mailgosend.db.schema import blobs, uploads
from mailgosend.jmap.transfer import content_disposition, media_type
from mailgosend.maintenance import MaintenanceService
from mailgosend.store import accounts
from tests.support.mailserver import PASSWORD
from tests.test_jmap_core import ALICE, BOB, JMAPTestCase, problem_type

CAROL = "carol@example.com"


class BlobTests(JMAPTestCase):
    users = (ALICE, BOB)

    def setUp(self):  # type: ignore[no-untyped-def]
        d = super().setUp()
        d.addCallback(lambda _: self.server.add_user(CAROL, quota=10_000))
        return d

    @defer.inlineCallbacks
    def account(self, auth: Any = (ALICE, PASSWORD)) -> Any:
        session = yield self.http("GET", "/.well-known/jmap", auth=auth)
        return session.json()["primaryAccounts"]["urn:ietf:params:jmap:mail"]

    @defer.inlineCallbacks
    def upload(self, data: bytes, kind: str = "application/pdf",
               auth: Any = (ALICE, PASSWORD), account: Any = None) -> Any:
        account = account or (yield self.account(auth))
        reply = yield self.http("POST", f"/jmap/upload/{account}/", auth=auth, data=data,
                                headers={"Content-Type": kind})
        return reply

    @defer.inlineCallbacks
    def test_upload_and_download_round_trip(self) -> Any:
        data = os.urandom(700_000)  # spooled to a file by twisted.web, several segments
        account = yield self.account()
        reply = yield self.upload(data)
        self.assertEqual(reply.status_code, 201, reply.text)
        stored = reply.json()
        self.assertEqual(stored["accountId"], account)
        self.assertEqual(stored["type"], "application/pdf")
        self.assertEqual(stored["size"], len(data))
        self.assertTrue(stored["blobId"].startswith("U"))
        # Sealed at rest: the plaintext is nowhere in the blob store.
        sealed = run_sync(self.server.engine, lambda c: [bytes(r.data) for r in c.execute(
            select(blobs.c.data))], write=False)
        self.assertTrue(sealed)
        self.assertFalse(any(data[1000:1064] in s for s in sealed))
        got = yield self.download(account, stored["blobId"], "Report 2026 €.pdf",
                                  "application/pdf")
        self.assertEqual(got.status_code, 200)
        self.assertEqual(got.content, data)
        self.assertEqual(got.headers["Content-Type"], "application/pdf")
        self.assertEqual(got.headers["Content-Length"], str(len(data)))
        self.assertEqual(got.headers["Content-Disposition"],
                         "attachment; filename=\"Report 2026 _.pdf\"; "
                         "filename*=UTF-8''Report%202026%20%E2%82%AC.pdf")
        self.assertEqual(got.headers["X-Content-Type-Options"], "nosniff")
        self.assertIn("sandbox", got.headers["Content-Security-Policy"])

    @defer.inlineCallbacks
    def test_html_blob_is_sandboxed_and_the_type_checked(self) -> Any:
        account = yield self.account()
        reply = yield self.upload(b"<script>alert(1)</script>", kind="text/html")
        blob_id = reply.json()["blobId"]
        got = yield self.download(account, blob_id, "x.html", "text/html; charset=utf-8")
        self.assertEqual(got.headers["Content-Type"], "text/html; charset=utf-8")
        self.assertTrue(got.headers["Content-Disposition"].startswith("attachment;"))
        self.assertTrue(got.headers["Content-Security-Policy"].startswith("sandbox"))
        # A type that is not a media type is not echoed (no header injection).
        got = yield self.download(account, blob_id, "x.html", "text/html\r\nX-A: b")
        self.assertEqual(got.headers["Content-Type"], "application/octet-stream")
        # No ?type: the upload's own type.
        got = yield self.download(account, blob_id, "x.html")
        self.assertEqual(got.headers["Content-Type"], "text/html")

    @defer.inlineCallbacks
    def test_another_users_blob_is_not_found(self) -> Any:
        alice_account = yield self.account()
        bob_account = yield self.account((BOB, PASSWORD))
        reply = yield self.upload(b"alice's secret")
        blob_id = reply.json()["blobId"]
        for account in (bob_account, alice_account):
            got = yield self.download(account, blob_id, "f", auth=(BOB, PASSWORD))
            self.assertEqual(got.status_code, 404)
            self.assertNotIn(b"secret", got.content)
        for bad in ("U" + "x" * 30, "nonsense", "G999999", "G1.2"):
            got = yield self.download(alice_account, bad, "f")
            self.assertEqual(got.status_code, 404, bad)
            self.assertEqual(problem_type(got), "notFound")
        # Uploading into another user's account is refused too.
        reply = yield self.upload(b"x", auth=(BOB, PASSWORD), account=alice_account)
        self.assertEqual(reply.status_code, 404)

    @defer.inlineCallbacks
    def test_quota_refuses_an_upload_that_does_not_fit(self) -> Any:
        carol = (CAROL, PASSWORD)
        first = yield self.upload(b"a" * 6000, auth=carol)
        self.assertEqual(first.status_code, 201, first.text)
        # 6000 pending + 5000 > 10000: refused, and nothing recorded.
        second = yield self.upload(b"b" * 5000, auth=carol)
        self.assertEqual(second.status_code, 413)
        self.assertEqual(problem_type(second), "overQuota")
        rows = run_sync(self.server.engine, lambda c: list(c.execute(select(uploads))),
                        write=False)
        self.assertEqual([r.size for r in rows], [6000])
        third = yield self.upload(b"c" * 4000, auth=carol)
        self.assertEqual(third.status_code, 201)

    @defer.inlineCallbacks
    def test_uploads_expire_after_a_day(self) -> Any:
        account = yield self.account()
        reply = yield self.upload(b"short-lived")
        blob_id = reply.json()["blobId"]
        clock = task.Clock()
        clock.advance((datetime.now(timezone.utc) + timedelta(hours=23)).timestamp())
        components = self.server.root.components
        maintenance = MaintenanceService(self.server.root.runner, components["blob_store"],
                                         clock)
        yield maintenance.run_once()
        got = yield self.download(account, blob_id, "f")
        self.assertEqual(got.status_code, 200)   # 23 hours: still there
        clock.advance(2 * 3600)
        yield maintenance.run_once()
        got = yield self.download(account, blob_id, "f")
        self.assertEqual(got.status_code, 404)
        left = run_sync(self.server.engine, lambda c: list(c.execute(select(uploads))),
                        write=False)
        self.assertEqual(left, [])
        self.assertEqual(run_sync(self.server.engine, lambda c: list(c.execute(
            select(blobs.c.id))), write=False), [])   # its blob purged with it


class UploadLimitTests(JMAPTestCase):
    settings = {"MAX_MESSAGE_SIZE": "4K"}

    @defer.inlineCallbacks
    def test_upload_over_max_size_upload(self) -> Any:
        session = yield self.http("GET", "/.well-known/jmap")
        body = session.json()
        self.assertEqual(body["capabilities"]["urn:ietf:params:jmap:core"]["maxSizeUpload"],
                         4096)
        account = body["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        reply = yield self.http("POST", f"/jmap/upload/{account}/", data=b"x" * 5000)
        self.assertEqual(reply.status_code, 413)
        self.assertEqual(problem_type(reply), "limit")
        self.assertEqual(reply.json()["limit"], "maxSizeUpload")
        reply = yield self.http("POST", f"/jmap/upload/{account}/", data=b"x" * 4096)
        self.assertEqual(reply.status_code, 201)
        self.assertEqual(reply.json()["type"], "application/octet-stream")

    @defer.inlineCallbacks
    def test_too_many_concurrent_uploads(self) -> Any:
        from mailgosend.db.runner import run_sync as run
        session = yield self.http("GET", "/.well-known/jmap")
        account = session.json()["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        routes = self.server.root.components["web_site"].mounted[b"jmap"].uploads
        user = run(self.server.engine, accounts.get_user, ALICE, write=False)
        routes.uploading.counts[user.id] = 4   # four uploads of Alice's are being stored
        try:
            reply = yield self.http("POST", f"/jmap/upload/{account}/", data=b"x")
            self.assertEqual(reply.status_code, 429)
            self.assertEqual(reply.json()["limit"], "maxConcurrentUpload")
        finally:
            del routes.uploading.counts[user.id]
        reply = yield self.http("POST", f"/jmap/upload/{account}/", data=b"x")
        self.assertEqual(reply.status_code, 201)


class HeaderTests(JMAPTestCase):
    users = ()

    def test_content_disposition(self) -> None:
        self.assertEqual(content_disposition('a"b\\c\r\n.txt'),
                         "attachment; filename=\"a_b_c.txt\"; filename*=UTF-8''a%22b%5Cc.txt")
        self.assertEqual(content_disposition(""),
                         "attachment; filename=\"download\"; filename*=UTF-8''download")

    def test_media_type(self) -> None:
        self.assertEqual(media_type("Image/PNG"), "image/png")
        self.assertEqual(media_type('text/plain; charset="utf-8"'),
                         'text/plain; charset="utf-8"')
        for bad in (None, "", "text", "text/html\nX: y", "a/b; c"):
            self.assertEqual(media_type(bad), "application/octet-stream", bad)


ATTACHED = (b"From: someone@example.org\r\nTo: alice@example.com\r\nSubject: report\r\n"
            b"Message-ID: <report-1@example.org>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
            b"--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
            b"--b1\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\n"
            b"Content-Disposition: attachment; filename=\"r.pdf\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcTl8uXr\r\n--b1--\r\n")


class MessageBlobTests(JMAPTestCase):
    """G<email> and G<email>.<part> blobs: the message and one decoded part, only for
    their owner."""

    @defer.inlineCallbacks
    def test_message_and_part_blobs(self) -> Any:
        import smtplib

        from twisted.internet import threads

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", self.server.ports["SMTP"], timeout=20) as smtp:
                smtp.sendmail("someone@example.org", [ALICE], ATTACHED)
        yield threads.deferToThread(send)
        session = yield self.http("GET", "/.well-known/jmap")
        account = session.json()["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        reply = yield self.api([
            ["Email/changes", {"accountId": account, "sinceState": "s0"}, "c"],
            ["Email/get", {"accountId": account, "#ids": {
                "resultOf": "c", "name": "Email/changes", "path": "/created"},
                "properties": ["blobId", "attachments"]}, "g"]])
        responses = reply.json()["methodResponses"]
        self.assertEqual(responses[1][0], "Email/get", responses)
        (email,) = responses[1][1]["list"]
        stored = self.server.stored(ALICE)[0]
        got = yield self.download(account, email["blobId"], "m.eml", "message/rfc822")
        self.assertEqual(got.status_code, 200)
        self.assertEqual(got.content, stored)
        (attachment,) = email["attachments"]
        got = yield self.download(account, attachment["blobId"], attachment["name"],
                                  attachment["type"])
        self.assertEqual(got.status_code, 200)
        self.assertEqual(got.content, b"%PDF-1.4\n%\xc4\xe5\xf2\xe5\xeb")
        self.assertEqual(got.headers["Content-Type"], "application/pdf")
        for blob_id in (email["blobId"], attachment["blobId"]):
            other = yield self.download(account, blob_id, "f", auth=(BOB, PASSWORD))
            self.assertEqual(other.status_code, 404)
