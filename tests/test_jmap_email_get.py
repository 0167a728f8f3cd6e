"""Email/get (RFC 8621 §4.2) through the method handler over a real database."""

from __future__ import annotations

import base64
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.jmap import parts as jparts
from mailgosend.jmap.headers import HeaderProperty, fields, parse
from mailgosend.mail import service as service_module
from mailgosend.store.mimeinfo import analyse
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.imap import message
from tests.support.jmapcall import JMAPCallFixture

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake image bytes").decode()
PDF = base64.b64encode(b"%PDF-1.4 fake").decode()

# multipart/mixed [ multipart/related [ multipart/alternative [ text/plain (ISO-8859-1, QP),
# text/html ], image/png inline (cid) ], application/pdf attachment with an RFC 2231
# filename ]
RICH = (
    "From: =?ISO-8859-1?Q?Andr=E9?= Pirard <andre@example.org>\r\n"
    "To: Bob <bob@example.com>, friends: carol@example.net, Dan <dan@example.net>;\r\n"
    "Cc: eve@example.org\r\n"
    "Subject: =?UTF-8?B?SMOpbGxv?= world\r\n"
    "Date: Tue, 3 Mar 2026 10:20:30 +0100\r\n"
    "Message-ID: <rich.1@example.org>\r\n"
    "In-Reply-To: <parent@example.org>\r\n"
    "References: <root@example.org>\r\n <parent@example.org>\r\n"
    "List-Unsubscribe: <mailto:leave@example.org>, (comment) <https://example.org/leave>\r\n"
    "X-Custom: one\r\n"
    "X-Custom: two\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="outer"\r\n'
    "\r\n"
    "--outer\r\n"
    'Content-Type: multipart/related; boundary="rel"\r\n'
    "\r\n"
    "--rel\r\n"
    'Content-Type: multipart/alternative; boundary="alt"\r\n'
    "\r\n"
    "--alt\r\n"
    "Content-Type: text/plain; charset=ISO-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Voil=E0 le caf=E9.\r\n"
    "--alt\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    '<p>Voil\u00e0 le caf\u00e9 <img src="cid:logo@x"></p>\r\n'
    "--alt--\r\n"
    "--rel\r\n"
    "Content-Type: image/png\r\n"
    "Content-ID: <logo@x>\r\n"
    "Content-Disposition: inline\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    f"{PNG}\r\n"
    "--rel--\r\n"
    "--outer\r\n"
    "Content-Type: application/pdf\r\n"
    "Content-Disposition: attachment;\r\n"
    " filename*0*=UTF-8''R%C3%A9sum%C3%A9;\r\n"
    " filename*1=\".pdf\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    f"{PDF}\r\n"
    "--outer--\r\n").encode("utf-8")


class HeaderFormTests(unittest.TestCase):
    def test_forms(self) -> None:
        block = RICH[:RICH.index(b"\r\n\r\n") + 4]
        found = fields(block)
        self.assertEqual(found[7], ("References", " <root@example.org>\r\n <parent@example.org>"))
        self.assertEqual(parse("Text", found[0][1]), "Andr\u00e9 Pirard <andre@example.org>")
        self.assertEqual(parse("MessageIds", found[7][1]),
                         ["root@example.org", "parent@example.org"])
        self.assertEqual(parse("Date", found[4][1]), "2026-03-03T10:20:30+01:00")
        self.assertEqual(parse("URLs", found[8][1]),
                         ["mailto:leave@example.org", "https://example.org/leave"])
        self.assertEqual(parse("GroupedAddresses", found[1][1]), [
            {"name": None, "addresses": [{"name": "Bob", "email": "bob@example.com"}]},
            {"name": "friends", "addresses": [
                {"name": None, "email": "carol@example.net"},
                {"name": "Dan", "email": "dan@example.net"}]}])
        self.assertIsNone(parse("Date", " not a date"))
        self.assertIsNone(parse("MessageIds", " no ids here"))

    def test_quick_address_parse_agrees_with_the_full_parser(self) -> None:
        from email.policy import default
        samples = ["a@example.com", "Bob <bob@example.com>", '"Doe, Jane" <j@example.com>',
                   "=?UTF-8?Q?Andr=C3=A9?= <andre@example.org>, x@y.example",
                   "  Alice   Liddell  <alice@example.com> ,bob@example.com",
                   '"Quoted \\"Nick\\"" <n@example.com>', "undisclosed-recipients:;",
                   "Bob (work) <bob@example.com>", "friends: a@b.example, c@d.example;"]
        for text in samples:
            groups = default.header_factory("to", text).groups  # type: ignore[attr-defined]
            expected = [{"name": a.display_name or None, "email": a.addr_spec}
                        for g in groups for a in g.addresses]
            self.assertEqual(parse("Addresses", " " + text), expected, text)

    def test_charsets_and_encoding_problems(self) -> None:
        self.assertEqual(parse("Text", " =?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?= =?UTF-8?Q?_ok?="),
                         "\u65e5\u672c\u8a9e ok")
        self.assertEqual(parse("Text", " =?Shift_JIS?B?g2WDWINn?="), "\u30c6\u30b9\u30c8")
        self.assertEqual(parse("Addresses", " =?KOI8-R?B?8NLJ18XU?= <p@example.ru>"),
                         [{"name": "\u041f\u0440\u0438\u0432\u0435\u0442",
                           "email": "p@example.ru"}])
        raw = (b"Content-Type: text/plain; charset=windows-1252\r\n\r\ncaf\xe9 \x93q\x94\r\n")
        info = analyse(raw)
        value = jparts.body_value(info.root, raw)
        self.assertEqual((value.value, value.is_encoding_problem),
                         ("caf\u00e9 \u201cq\u201d\r\n", False))
        raw = b"Content-Type: text/plain; charset=utf-8\r\n\r\nbad \xff byte\r\n"
        value = jparts.body_value(analyse(raw).root, raw)
        self.assertEqual((value.value, value.is_encoding_problem), ("bad \ufffd byte\r\n", True))
        raw = b"Content-Type: text/plain; charset=x-unknown\r\n\r\nabc\r\n"
        value = jparts.body_value(analyse(raw).root, raw)
        self.assertEqual((value.value, value.is_encoding_problem), ("abc\r\n", True))

    def test_header_properties(self) -> None:
        self.assertIsNone(HeaderProperty.of("header:From:asDate"))  # §4.1.2: not allowed
        self.assertIsNone(HeaderProperty.of("header:X-A:asNothing"))
        self.assertIsNone(HeaderProperty.of("header::asRaw"))
        prop = HeaderProperty.of("header:x-custom:asText:all")
        assert prop is not None
        self.assertEqual((prop.name, prop.form, prop.all), ("x-custom", "Text", True))

    def test_classify_follows_the_rfc(self) -> None:
        info = analyse(RICH)
        text, html, attachments = jparts.classify(info.root)
        self.assertEqual([p.number for p in text], ["1.1.1"])
        self.assertEqual([p.number for p in html], ["1.1.2"])
        # not the first part of a multipart/related: an attachment (the HTML shows it)
        self.assertEqual([p.number for p in attachments], ["1.2", "2"])


class EmailGetTests(SQLiteDatabaseMixin, JMAPCallFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def deliver(self, raw: bytes, flags: Any = (), user: Any = None) -> Any:
        mail = yield defer.Deferred.fromCoroutine(self.mail_of((user or self.alice).email))
        inbox = yield mail.get_mailbox("INBOX")
        delivered = yield mail.append(inbox.id, raw, list(flags), None)
        return f"M{delivered.email_id}", inbox, delivered

    def get(self, **args: Any) -> Any:
        return defer.Deferred.fromCoroutine(self.jmap(
            "Email/get", {"accountId": self.account(), **args}))

    @defer.inlineCallbacks
    def test_rich_message(self) -> Any:
        email_id, inbox, delivered = yield self.deliver(RICH, ["\\Seen", "$Forwarded",
                                                                "\\Deleted"])
        name, result, _ = yield self.get(
            ids=[email_id, "M999999", "nonsense"], fetchAllBodyValues=True,
            properties=["id", "blobId", "mailboxIds", "keywords", "size", "receivedAt",
                        "messageId", "inReplyTo", "references", "from", "to", "cc",
                        "subject", "sentAt", "hasAttachment", "preview", "bodyStructure",
                        "bodyValues", "textBody", "htmlBody", "attachments",
                        "header:X-Custom:all", "header:x-custom:asText",
                        "header:List-Unsubscribe:asURLs"])
        self.assertEqual(name, "Email/get")
        self.assertEqual(result["notFound"], ["M999999", "nonsense"])
        [email] = result["list"]
        self.assertEqual(email["id"], email_id)
        self.assertEqual(email["blobId"], "G" + email_id[1:])
        self.assertEqual(email["mailboxIds"], {f"B{inbox.id}": True})
        self.assertEqual(email["keywords"], {"$seen": True, "$forwarded": True})
        self.assertEqual(email["size"], len(RICH))
        self.assertTrue(email["receivedAt"].endswith("Z"))
        self.assertEqual(email["messageId"], ["rich.1@example.org"])
        self.assertEqual(email["inReplyTo"], ["parent@example.org"])
        self.assertEqual(email["references"], ["root@example.org", "parent@example.org"])
        self.assertEqual(email["from"], [{"name": "Andr\u00e9 Pirard",
                                          "email": "andre@example.org"}])
        self.assertEqual([a["email"] for a in email["to"]],
                         ["bob@example.com", "carol@example.net", "dan@example.net"])
        self.assertEqual(email["cc"], [{"name": None, "email": "eve@example.org"}])
        self.assertEqual(email["subject"], "H\u00e9llo world")
        self.assertEqual(email["sentAt"], "2026-03-03T10:20:30+01:00")
        self.assertTrue(email["hasAttachment"])
        self.assertEqual(email["preview"], "Voil\u00e0 le caf\u00e9.")
        self.assertEqual(email["header:X-Custom:all"], [" one", " two"])
        self.assertEqual(email["header:x-custom:asText"], "two")
        self.assertEqual(email["header:List-Unsubscribe:asURLs"],
                         ["mailto:leave@example.org", "https://example.org/leave"])
        structure = email["bodyStructure"]
        self.assertEqual((structure["type"], structure["partId"]), ("multipart/mixed", None))
        related, pdf = structure["subParts"]
        self.assertEqual(pdf["name"], "R\u00e9sum\u00e9.pdf")
        self.assertEqual((pdf["type"], pdf["disposition"], pdf["partId"], pdf["size"]),
                         ("application/pdf", "attachment", "2", len(b"%PDF-1.4 fake")))
        self.assertEqual(related["subParts"][1]["cid"], "logo@x")
        self.assertEqual([p["partId"] for p in email["textBody"]], ["1.1.1"])
        self.assertEqual([p["partId"] for p in email["htmlBody"]], ["1.1.2"])
        self.assertEqual([p["partId"] for p in email["attachments"]], ["1.2", "2"])
        self.assertEqual(email["textBody"][0]["charset"], "ISO-8859-1")
        _, again, _ = yield self.get(ids=[email_id], properties=["attachments"],
                                     bodyProperties=["partId", "header:Content-Type:asRaw",
                                                     "headers"])
        pdf_part = again["list"][0]["attachments"][1]
        self.assertEqual(pdf_part["header:Content-Type:asRaw"], " application/pdf")
        self.assertEqual([h["name"] for h in pdf_part["headers"]],
                         ["Content-Type", "Content-Disposition",
                          "Content-Transfer-Encoding"])
        values = email["bodyValues"]
        self.assertEqual(values["1.1.1"], {"value": "Voil\u00e0 le caf\u00e9.",
                                           "isEncodingProblem": False, "isTruncated": False})
        self.assertIn("cid:logo@x", values["1.1.2"]["value"])
        self.assertEqual(set(values), {"1.1.1", "1.1.2"})  # text/* parts only

    @defer.inlineCallbacks
    def test_default_properties_and_truncation(self) -> Any:
        email_id, _, _ = yield self.deliver(message("Caf\u00e9", body="\u00e9" * 10 + "\r\n"))
        _, result, _ = yield self.get(ids=[email_id], fetchTextBodyValues=True,
                                      maxBodyValueBytes=5)
        [email] = result["list"]
        self.assertEqual(set(email), {"id", "blobId", "threadId", "mailboxIds", "keywords",
                                      "size", "receivedAt", "messageId", "inReplyTo",
                                      "references", "sender", "from", "to", "cc", "bcc",
                                      "replyTo", "subject", "sentAt", "hasAttachment",
                                      "preview", "bodyValues", "textBody", "htmlBody",
                                      "attachments"})
        self.assertEqual(email["bodyValues"]["1"], {"value": "\u00e9\u00e9",
                                                    "isEncodingProblem": False,
                                                    "isTruncated": True})
        self.assertEqual([p["partId"] for p in email["htmlBody"]], ["1"])  # §4.1.4 copies
        self.assertIsNone(email["inReplyTo"])

    @defer.inlineCallbacks
    def test_list_properties_of_50_in_one_job_without_reading_bodies(self) -> Any:
        ids = []
        for n in range(50):
            email_id, _, _ = yield self.deliver(message(f"number {n}"))
            ids.append(email_id)
        jobs: list[Any] = []
        read = self.runner.read

        def counting(*args: Any, **kwargs: Any) -> Any:
            jobs.append(args[0])
            return read(*args, **kwargs)

        self.patch(self.runner, "read", counting)
        opened = self.blobs.opened
        _, result, _ = yield self.get(ids=ids, properties=[
            "id", "threadId", "mailboxIds", "keywords", "from", "subject", "receivedAt",
            "size", "preview", "hasAttachment"])
        # one job reads all 50 (rows and sealed structures); the account state is one more
        # small read (jmap/state.py), whatever the number of emails
        self.assertEqual(len([job for job in jobs if job.__name__ == "_with_source"]), 1)
        self.assertEqual(len(jobs), 2)
        self.assertEqual(self.blobs.opened, opened)
        self.assertEqual([e["subject"] for e in result["list"]],
                         [f"number {n}" for n in range(50)])

    @defer.inlineCallbacks
    def test_list_properties_again_from_the_cache_and_the_index_follow_changes(self) -> Any:
        """Once the query index is loaded and an Email's content properties were made, its
        list properties are made without reading its structure; the row's own (keywords,
        mailbox) still follow every change."""
        ids = []
        for n in range(3):
            email_id, inbox, delivered = yield self.deliver(message(f"number {n}"))
            ids.append((email_id, delivered))
        mail = yield defer.Deferred.fromCoroutine(self.mail_of(self.alice.email))
        archive = yield mail.get_mailbox("Archive")
        # what a client's Email/query does first: the user's query index is loaded
        yield mail.query_emails(None, [("receivedAt", False, "i;ascii-casemap", None)],
                                False, 0, None, 0, None, "test")
        listed = ["id", "threadId", "mailboxIds", "keywords", "from", "subject",
                  "receivedAt", "size", "preview", "hasAttachment", "header:To:asAddresses"]
        _, first, _ = yield self.get(ids=[i for i, _ in ids], properties=listed)
        loads: list[Any] = []
        real = service_module.load_emails

        def counting(*args: Any, **kwargs: Any) -> Any:
            loads.append(args[1])
            return real(*args, **kwargs)

        self.patch(service_module, "load_emails", counting)
        _, again, _ = yield self.get(ids=[i for i, _ in ids], properties=listed)
        self.assertEqual((again["list"], loads), (first["list"], []))
        (one, one_row), (two, two_row), (three, three_row) = ids
        yield mail.set_flags(inbox.id, [one_row.uid], ["\\Flagged"], "add")
        yield mail.copy(inbox, [two_row.uid], archive, move=True)
        yield mail.set_flags(inbox.id, [three_row.uid], ["\\Deleted"], "add")
        yield mail.expunge(inbox.id, [three_row.uid])
        _, after, _ = yield self.get(ids=[one, two, three], properties=listed)
        self.assertEqual(loads, [])
        self.assertEqual(after["notFound"], [three])
        by_id = {e["id"]: e for e in after["list"]}
        self.assertEqual(by_id[one]["keywords"], {"$flagged": True})
        self.assertEqual(by_id[two]["mailboxIds"], {f"B{archive.id}": True})
        self.assertEqual([by_id[one]["subject"], by_id[two]["subject"]],
                         ["number 0", "number 1"])
        # a property not made before: read from the structure, once
        _, more, _ = yield self.get(ids=[one], properties=["id", "sentAt"])
        self.assertEqual(len(loads), 1)
        self.assertIn("sentAt", more["list"][0])

    @defer.inlineCallbacks
    def test_bad_input(self) -> Any:
        email_id, _, _ = yield self.deliver(message())
        bob_id, _, _ = yield self.deliver(message("bob's"), user=self.bob)
        name, error, _ = yield self.get(ids=[email_id], properties=["id", "colour"])
        self.assertEqual((name, error["type"], error["arguments"]),
                         ("error", "invalidArguments", ["properties"]))
        self.assertIn("colour", error["description"])
        name, error, _ = yield self.get(ids=[email_id], properties=["header:From:asDate"])
        self.assertEqual(error["type"], "invalidArguments")
        name, error, _ = yield self.get(ids=[email_id], bodyProperties=["partId", "colour"])
        self.assertEqual(error["arguments"], ["bodyProperties"])
        name, error, _ = yield self.get(ids=email_id)
        self.assertEqual(error["arguments"], ["ids"])
        name, error, _ = yield self.get(ids=[email_id], maxBodyValueBytes="10")
        self.assertEqual(error["arguments"], ["maxBodyValueBytes"])
        name, error, _ = yield self.get(ids=[email_id] * 1001)
        self.assertEqual(error["type"], "requestTooLarge")
        name, error, _ = yield defer.Deferred.fromCoroutine(self.jmap(
            "Email/get", {"accountId": self.account(self.bob), "ids": [email_id]}))
        self.assertEqual(error["type"], "accountNotFound")
        _, result, _ = yield self.get(ids=[bob_id])
        self.assertEqual((result["list"], result["notFound"]), ([], [bob_id]))

    def test_attached_message_is_one_leaf(self) -> None:
        inner = (b"From: x@example.org\r\nSubject: inner\r\nContent-Type: multipart/mixed; "
                 b"boundary=in\r\n\r\n--in\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
                 b"--in--\r\n")
        raw = (b"From: y@example.org\r\nSubject: fwd\r\nContent-Type: multipart/mixed; "
               b"boundary=out\r\n\r\n--out\r\nContent-Type: text/plain\r\n\r\nsee below"
               b"\r\n--out\r\nContent-Type: message/rfc822\r\n\r\n" + inner +
               b"\r\n--out--\r\n")
        info = analyse(raw)
        text, html, attachments = jparts.classify(info.root)
        self.assertEqual(([p.number for p in text], [p.number for p in attachments]),
                         (["1"], ["2"]))
        structure = jparts.body_part(7, info.root, raw, ["partId", "type", "subParts"])
        self.assertEqual(structure["subParts"][1], {"partId": "2", "type": "message/rfc822",
                                                    "subParts": None})
        blob = jparts.part_blob(info, raw, "2")
        assert blob is not None
        self.assertEqual((blob.data, blob.type), (inner, "message/rfc822"))
        self.assertIsNone(jparts.part_blob(info, raw, "2.1"))  # inside the attached one

    def test_part_blob(self) -> None:
        info = analyse(RICH)
        blob = jparts.part_blob(info, RICH, "1.2")
        assert blob is not None
        self.assertEqual((blob.data, blob.type), (base64.b64decode(PNG), "image/png"))
        self.assertIsNone(jparts.part_blob(info, RICH, "1"))  # a multipart has no blob
        self.assertIsNone(jparts.part_blob(info, RICH, "7"))


class PostgresEmailGetTests(PostgresDatabaseMixin, EmailGetTests):
    """The same on PostgreSQL."""
