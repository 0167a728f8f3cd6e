"""Greylisting through a real inbound listener (RFC 6647): smtplib against a whole in-process
server, with the greylist's clock replaced by a ``task.Clock`` the test advances."""

from __future__ import annotations

import smtplib
import time
from typing import Any

from twisted.internet import defer, task

from tests.test_smtp_receive import ReceiveTestBase, message

SENDER = "someone@pass.test"


class GreylistTestBase(ReceiveTestBase):
    # Tests connect from 127.0.0.1, which the default GREYLIST_EXEMPT_NETWORKS exempts.
    settings: dict[str, Any] = {"GREYLIST_ENABLED": "true", "GREYLIST_EXEMPT_NETWORKS": "",
                                "GREYLIST_DELAY_SECONDS": "300"}

    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        yield super().setUp()
        self.clock = task.Clock()
        self.clock.advance(time.time())
        greylist = self.server.root.components.get("greylist")
        if greylist is not None:
            greylist.clock = self.clock

    def greylisted(self, rcpts: list[str], sender: str = SENDER, **kw: Any) -> Any:
        raw = message(sender or "bounce@pass.test", rcpts[0])
        return self.refused(smtplib.SMTPRecipientsRefused, sender, rcpts, raw, **kw)

    def assert_greylisted(self, failure: Any, rcpt: str) -> None:
        code, text = failure.recipients[rcpt]
        self.assertEqual(code, 451)
        self.assertTrue(text.startswith(b"4.7.1 Greylisted"), text)


class GreylistTests(GreylistTestBase):
    @defer.inlineCallbacks
    def test_first_attempt_and_early_retry_get_451_then_a_later_retry_is_stored(self):  # type: ignore[no-untyped-def]
        failure = yield self.greylisted(["alice@example.com"])
        self.assert_greylisted(failure, "alice@example.com")
        self.assertEqual(self.server.stored("alice@example.com"), [])

        self.clock.advance(299)
        failure = yield self.greylisted(["alice@example.com"])
        self.assert_greylisted(failure, "alice@example.com")
        self.assertIn(b"try again in 1 seconds", failure.recipients["alice@example.com"][1])
        self.assertEqual(self.server.stored("alice@example.com"), [])

        self.clock.advance(1)
        raw = message(SENDER, "alice@example.com", subject="Retried")
        refused = yield self.send(SENDER, ["alice@example.com"], raw)
        self.assertEqual(refused, {})
        [stored] = self.server.stored("alice@example.com")
        self.assertIn(b"Subject: Retried", stored)

    @defer.inlineCallbacks
    def test_each_recipient_is_its_own_triplet_until_the_client_has_passed(self):  # type: ignore[no-untyped-def]
        failure = yield self.greylisted(["alice@example.com", "bob@example.com"])
        self.assert_greylisted(failure, "alice@example.com")
        self.assert_greylisted(failure, "bob@example.com")
        self.clock.advance(300)
        # Alice's triplet passes; the client network is now known, so bob's is not delayed
        # either (the auto-whitelist of spam/greylist.py).
        raw = message(SENDER, "alice@example.com")
        refused = yield self.send(SENDER, ["alice@example.com", "bob@example.com"], raw)
        self.assertEqual(refused, {})
        self.assertEqual(len(self.server.stored("alice@example.com")), 1)
        self.assertEqual(len(self.server.stored("bob@example.com")), 1)
        # Another sender from the same client network is not delayed.
        raw = message("other@pass.test", "postmaster@example.com")
        yield self.send("other@pass.test", ["postmaster@example.com"], raw)
        self.assertEqual(len(self.server.stored("postmaster@example.com")), 1)

    @defer.inlineCallbacks
    def test_null_sender_is_greylisted_like_any_sender(self):  # type: ignore[no-untyped-def]
        failure = yield self.greylisted(["alice@example.com"], sender="")
        self.assert_greylisted(failure, "alice@example.com")

    @defer.inlineCallbacks
    def test_unknown_recipient_is_refused_for_good_not_greylisted(self):  # type: ignore[no-untyped-def]
        failure = yield self.greylisted(["ghost@example.com"])
        code, text = failure.recipients["ghost@example.com"]
        self.assertEqual(code, 550)
        self.assertIn(b"5.1.1", text)

    @defer.inlineCallbacks
    def test_authenticated_submission_is_never_greylisted(self):  # type: ignore[no-untyped-def]
        raw = message("alice@example.com", "bob@example.com", subject="Submitted")
        refused = yield self.send("alice@example.com", ["bob@example.com"], raw, kind="SUBMIT",
                                  login="alice@example.com")
        self.assertEqual(refused, {})
        self.assertEqual(len(self.server.stored("bob@example.com")), 1)


class GreylistExemptLoopbackTests(GreylistTestBase):
    settings = {"GREYLIST_ENABLED": "true"}  # default exempt networks: loopback

    @defer.inlineCallbacks
    def test_loopback_clients_are_exempt_by_default(self):  # type: ignore[no-untyped-def]
        raw = message(SENDER, "alice@example.com")
        refused = yield self.send(SENDER, ["alice@example.com"], raw)
        self.assertEqual(refused, {})
        self.assertEqual(len(self.server.stored("alice@example.com")), 1)


class GreylistDisabledTests(GreylistTestBase):
    settings: dict[str, Any] = {"GREYLIST_EXEMPT_NETWORKS": ""}  # GREYLIST_ENABLED default

    @defer.inlineCallbacks
    def test_greylisting_is_off_by_default(self):  # type: ignore[no-untyped-def]
        self.assertNotIn("greylist", self.server.root.components)
        raw = message(SENDER, "alice@example.com")
        refused = yield self.send(SENDER, ["alice@example.com"], raw)
        self.assertEqual(refused, {})
        self.assertEqual(len(self.server.stored("alice@example.com")), 1)
