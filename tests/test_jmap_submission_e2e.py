"""EmailSubmission end to end: alice on alpha writes a draft and submits it with JMAP; bob
on beta receives it over SMTP with a DKIM signature that verifies (beta's own check and
Perl's Mail::DKIM), exactly as mail submitted on port 587 (test_delivery_dkim_e2e.py)."""

from __future__ import annotations

import email
import email.header
from typing import Any

from twisted.internet import defer

from mailgosend.jmap import email_set, identity, submission
from mailgosend.jmap.methods import Call, Limits
from tests.support.dkimcheck import verify_with_perl
from tests.test_delivery_e2e import TwoServerTestCase, wait_for


class JMAPTwoServerTestCase(TwoServerTestCase):
    async def jmap(self, mail: Any, name: str, args: dict[str, Any]) -> Any:
        methods = {**email_set.METHODS, **identity.METHODS, **submission.METHODS}
        call = Call(name=name, call_id="c", account_id="A", mail=mail, context=None,
                    limits=Limits(), created=self.created)
        return await methods[name].handler(call, {"accountId": "A", **args}), call.implied


class SubmissionDKIMTests(JMAPTwoServerTestCase):
    def test_jmap_submission_arrives_signed(self) -> Any:
        return defer.Deferred.fromCoroutine(self._submit())

    async def _submit(self) -> None:
        self.created: dict[str, str] = {}
        self.servers.publish_dkim(self.alpha, "alpha.test", "rsa2048")
        mail = await self.alpha.root.components["mail"].open_account("alice@alpha.test")
        boxes, _ = await mail.mailboxes_and_subscriptions()
        drafts = next(f"B{b.id}" for b in boxes if b.role == "drafts")
        sent = next(f"B{b.id}" for b in boxes if b.role == "sent")
        ids, _ = await self.jmap(mail, "Identity/get", {"ids": None})
        me = ids["list"][0]["id"]
        created, _ = await self.jmap(mail, "Email/set", {"create": {"d": {
            "mailboxIds": {drafts: True}, "keywords": {"$draft": True},
            "from": [{"name": "Alice", "email": "alice@alpha.test"}],
            "to": [{"name": "Bob", "email": "bob@beta.test"}],
            "subject": "Caf\u00e9 from JMAP",
            "textBody": [{"partId": "1"}], "bodyValues": {"1": {"value": "Hello Bob"}}}}})
        self.assertIn("d", created["created"] or {}, created)
        result, implied = await self.jmap(mail, "EmailSubmission/set", {
            "create": {"s": {"identityId": me, "emailId": "#d"}},
            "onSuccessUpdateEmail": {"#s": {f"mailboxIds/{drafts}": None,
                                            f"mailboxIds/{sent}": True,
                                            "keywords/$draft": None}}})
        self.assertEqual(result["created"]["s"]["undoStatus"], "final", result)
        self.assertEqual([name for name, _ in implied], ["Email/set"])
        [stored] = await wait_for(lambda: self.beta.stored("bob@beta.test"))
        parsed = email.message_from_bytes(stored)
        self.assertEqual(str(email.header.make_header(email.header.decode_header(
            parsed["Subject"]))), "Caf\u00e9 from JMAP")
        results = " ".join(parsed.get_all("Authentication-Results", []))
        self.assertIn("dkim=pass header.d=alpha.test", results)
        signed = stored[stored.index(b"DKIM-Signature"):]
        verdicts, _ = await verify_with_perl(signed, self.servers.dns.port)
        self.assertEqual({v[3]: v[0] for v in verdicts}["rsa-sha256"], "pass", verdicts)
        self.assertEqual(len(self.alpha.stored("alice@alpha.test", "sent")), 1)
        await self.queue_drained(self.alpha)
        got, _ = await self.jmap(mail, "EmailSubmission/get", {"ids": None})
        status = got["list"][0]["deliveryStatus"]["bob@beta.test"]
        self.assertEqual(status["delivered"], "yes", status)
        # The peer's own reply (delivery_log), not a "delivered locally" guess.
        self.assertTrue(status["smtpReply"].startswith("250"), status)
        self.assertNotIn("locally", status["smtpReply"], status)


class SubmissionOutcomeTests(JMAPTwoServerTestCase):
    """Regression: once every recipient is final the queue rows are deleted; /get must still
    report each recipient's real outcome (RFC 8621 §7 deliveryStatus) from delivery_log."""

    def test_failed_recipient_reports_no_after_queue_row_is_gone(self) -> Any:
        return defer.Deferred.fromCoroutine(self._failed())

    async def _failed(self) -> None:
        self.created = {}
        mail = await self.alpha.root.components["mail"].open_account("alice@alpha.test")
        boxes, _ = await mail.mailboxes_and_subscriptions()
        drafts = next(f"B{b.id}" for b in boxes if b.role == "drafts")
        ids, _ = await self.jmap(mail, "Identity/get", {"ids": None})
        created, _ = await self.jmap(mail, "Email/set", {"create": {"d": {
            "mailboxIds": {drafts: True},
            "from": [{"email": "alice@alpha.test"}],
            "to": [{"email": "bob@beta.test"}, {"email": "nobody@beta.test"}],
            "subject": "to nobody", "textBody": [{"partId": "1"}],
            "bodyValues": {"1": {"value": "Hello"}}}}})
        self.assertIn("d", created["created"] or {}, created)
        result, _ = await self.jmap(mail, "EmailSubmission/set", {
            "create": {"s": {"identityId": ids["list"][0]["id"], "emailId": "#d"}}})
        self.assertEqual(result["created"]["s"]["undoStatus"], "final", result)
        await wait_for(lambda: self.beta.stored("bob@beta.test"))
        await self.queue_drained(self.alpha)
        got, _ = await self.jmap(mail, "EmailSubmission/get", {"ids": None})
        status = got["list"][0]["deliveryStatus"]
        self.assertEqual(status["nobody@beta.test"]["delivered"], "no", status)
        self.assertTrue(status["nobody@beta.test"]["smtpReply"].startswith("550 5.1.1"), status)
        self.assertEqual(status["bob@beta.test"]["delivered"], "yes", status)
        self.assertTrue(status["bob@beta.test"]["smtpReply"].startswith("250"), status)
