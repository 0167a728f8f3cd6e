"""The Email work with the third-party client jmapc (PyPI): its models parse our Email,
Identity and EmailSubmission objects, and its requests (Email/set create, Email/get,
EmailSubmission/set with onSuccessUpdateEmail) work as a real client sends them."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, threads

from tests.test_jmap_core import ALICE, BOB, JmapcTests


class JmapcEmailTests(JmapcTests):
    @defer.inlineCallbacks
    def test_draft_get_and_send_with_jmapc(self) -> Any:
        from jmapc import Email, EmailAddress, EmailBodyPart, EmailBodyValue, Ref
        from jmapc.methods import (EmailGet, EmailGetResponse, EmailSet, EmailSetResponse,
                                   EmailSubmissionSet, EmailSubmissionSetResponse,
                                   IdentityGet, IdentityGetResponse, MailboxGet,
                                   MailboxGetResponse)
        from jmapc.models import EmailSubmission

        def run() -> Any:
            client = self.client()
            boxes = client.request(MailboxGet(ids=None))
            assert isinstance(boxes, MailboxGetResponse)
            drafts = next(b.id for b in boxes.data if b.role == "drafts")
            sent = next(b.id for b in boxes.data if b.role == "sent")
            identities = client.request(IdentityGet())
            assert isinstance(identities, IdentityGetResponse), identities
            identity = identities.data[0]
            created = client.request(EmailSet(create={"draft": Email(
                mail_from=[EmailAddress(name="Alice", email=ALICE)],
                to=[EmailAddress(name="Bob", email=BOB)], subject="From jmapc",
                keywords={"$draft": True}, mailbox_ids={drafts: True},
                body_values={"body": EmailBodyValue(value="Hello from jmapc")},
                text_body=[EmailBodyPart(part_id="body", type="text/plain")])}))
            assert isinstance(created, EmailSetResponse), created
            email_id = created.created["draft"].id
            got = client.request(EmailGet(ids=[email_id], fetch_all_body_values=True,
                                          properties=["subject", "from", "textBody",
                                                      "bodyValues", "bodyStructure",
                                                      "mailboxIds", "receivedAt"]))
            assert isinstance(got, EmailGetResponse), got
            sent_result = client.request(EmailSubmissionSet(
                create={"send": EmailSubmission(identity_id=identity.id,
                                                email_id=email_id)},
                on_success_update_email={"#send": {f"mailboxIds/{drafts}": None,
                                                   f"mailboxIds/{sent}": True,
                                                   "keywords/$draft": None}}))
            return identity, got, sent_result

        identity, got, sent_result = yield threads.deferToThread(run)
        self.assertEqual(identity.email, ALICE)
        [email] = got.data
        self.assertEqual(email.subject, "From jmapc")
        self.assertEqual(email.mail_from[0].email, ALICE)
        self.assertEqual(email.text_body[0].type, "text/plain")
        part = email.text_body[0].part_id
        self.assertEqual(email.body_values[part].value, "Hello from jmapc\r\n")  # CRLF-ended
        self.assertIsNotNone(email.received_at)
        # jmapc returns the method's response and the implicit Email/set after it
        responses = sent_result if isinstance(sent_result, list) else [sent_result]
        first = responses[0].response if hasattr(responses[0], "response") else responses[0]
        self.assertIsInstance(first, EmailSubmissionSetResponse)
        self.assertEqual(first.created["send"].undo_status.value, "final")
        self.assertEqual(len(self.server.stored(BOB)), 1)
        self.assertEqual(len(self.server.stored(ALICE, "sent")), 1)
