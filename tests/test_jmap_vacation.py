"""VacationResponse (RFC 8621 §8) set through the handlers, applied to real SMTP deliveries
following RFC 3834: one reply per sender per period, none to lists, automatic mail or the
null sender; the reply is queued with the null reverse-path and Auto-Submitted."""

from __future__ import annotations

import email
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.jmap import vacation as jvacation
from mailgosend.jmap.methods import Call, Limits
from mailgosend.mail.vacation import should_reply
from tests.test_smtp_receive import ReceiveTestBase


def incoming(sender: str, subject: str, extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: Bob <bob@example.com>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@pass.test>\r\n"
            f"Date: Sat, 05 Dec 2026 10:00:00 +0000\r\n{extra}\r\nHello Bob\r\n").encode()


class RuleTests(unittest.TestCase):
    def test_rfc3834_rules(self) -> None:
        own = ["bob@example.com"]
        block = b"To: bob@example.com\r\nSubject: hi\r\n\r\n"
        self.assertTrue(should_reply("carol@pass.test", block, own))
        self.assertFalse(should_reply("", block, own))
        for local in ("MAILER-DAEMON", "noreply", "no-reply", "owner-list", "list-request"):
            self.assertFalse(should_reply(f"{local}@pass.test", block, own), local)
        for extra in (b"Auto-Submitted: auto-generated\r\n", b"Precedence: bulk\r\n",
                      b"List-Id: <l.pass.test>\r\n", b"List-Unsubscribe: <mailto:x@y>\r\n"):
            self.assertFalse(should_reply("carol@pass.test", extra + block, own), extra)
        self.assertTrue(should_reply("carol@pass.test", b"Auto-Submitted: no\r\n" + block, own))
        self.assertFalse(should_reply("carol@pass.test", b"To: list@pass.test\r\n\r\n", own))


class VacationTests(ReceiveTestBase):
    def call(self, name: str, args: dict[str, Any]) -> Any:
        async def run() -> Any:
            service = self.server.root.components["mail"]
            mail = await service.open_account("bob@example.com")
            call = Call(name=name, call_id="c", account_id="Abob", mail=mail, context=None,
                        limits=Limits())
            return await jvacation.METHODS[name].handler(call, {"accountId": "Abob", **args})
        return defer.Deferred.fromCoroutine(run())

    @defer.inlineCallbacks
    def settled(self) -> Any:
        responder = self.server.root.components["mail"].vacation
        while responder.pending:
            yield defer.DeferredList(list(responder.pending))

    def replies(self) -> list[tuple[Any, list[Any]]]:
        return [(row, rcpts) for row, rcpts in self.server.queued() if row.sender == ""]

    @defer.inlineCallbacks
    def test_vacation_reply_once_per_sender(self) -> Any:
        got = yield self.call("VacationResponse/get", {"ids": None})
        self.assertEqual(got["list"], [{"id": "singleton", "isEnabled": False,
                                        "fromDate": None, "toDate": None, "subject": None,
                                        "textBody": None, "htmlBody": None}])
        result = yield self.call("VacationResponse/set", {"update": {"singleton": {
            "isEnabled": True, "subject": "Away until Monday",
            "textBody": "I am away.\nBob", "toDate": "2099-01-01T00:00:00Z"}},
            "create": {"x": {}}})
        self.assertEqual(result["updated"], {"singleton": None})
        self.assertEqual(result["notCreated"]["x"]["type"], "singleton")
        yield self.send("carol@pass.test", ["bob@example.com"],
                        incoming("Carol <carol@pass.test>", "first"))
        yield self.settled()
        [(row, rcpts)] = self.replies()
        self.assertEqual([r.recipient for r in rcpts], ["carol@pass.test"])
        yield self.send("carol@pass.test", ["bob@example.com"],
                        incoming("Carol <carol@pass.test>", "second"))
        yield self.send("news@pass.test", ["bob@example.com"],
                        incoming("news@pass.test", "letter", "List-Id: <news.pass.test>\r\n"))
        yield self.send("robot@pass.test", ["bob@example.com"],
                        incoming("robot@pass.test", "robot",
                                 "Auto-Submitted: auto-generated\r\n"))
        yield self.send("", ["bob@example.com"], incoming("x@elsewhere.test", "bounce"))
        yield self.settled()
        self.assertEqual(len(self.replies()), 1)  # once per sender; none to the others
        self.assertEqual(len(self.server.stored("bob@example.com")), 5)
        # the reply as queued
        store = self.server.root.components["blob_store"]
        with store.open_blob(self.server.engine, self.server.root.components["keyring"],
                             "queue", row.blob_id) as reader:
            raw = b"".join(reader)
        reply = email.message_from_bytes(raw)
        self.assertEqual(reply["Auto-Submitted"], "auto-replied")
        self.assertEqual(reply["In-Reply-To"], "<first@pass.test>")
        self.assertEqual(reply["To"], "carol@pass.test")
        self.assertEqual(reply["Subject"], "Away until Monday")
        self.assertIn("bob@example.com", reply["From"])
        self.assertIn(b"I am away.", raw)

    @defer.inlineCallbacks
    def test_disabled_or_out_of_dates_sends_nothing(self) -> Any:
        result = yield self.call("VacationResponse/set", {"update": {"singleton": {
            "isEnabled": True, "fromDate": "2098-01-01T00:00:00Z"}}})
        self.assertEqual(result["updated"], {"singleton": None})
        yield self.send("carol@pass.test", ["bob@example.com"],
                        incoming("carol@pass.test", "early"))
        yield self.settled()
        self.assertEqual(self.replies(), [])
        bad = yield self.call("VacationResponse/set", {"update": {"singleton": {
            "isEnabled": "yes", "toDate": "tomorrow"}}})
        self.assertEqual(bad["notUpdated"]["singleton"]["type"], "invalidProperties")
        bad = yield self.call("VacationResponse/set", {"update": {"other": {}}})
        self.assertEqual(bad["notUpdated"]["other"]["type"], "notFound")
        got = yield self.call("VacationResponse/get", {"ids": ["singleton", "x"]})
        self.assertEqual((got["list"][0]["fromDate"], got["notFound"]),
                         ("2098-01-01T00:00:00Z", ["x"]))
