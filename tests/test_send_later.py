"""Send later: a message held in alpha's queue until its time, over SMTP (RFC 4865
FUTURERELEASE, MAIL FROM HOLDFOR/HOLDUNTIL on the submission port) and JMAP
(EmailSubmission with envelope.mailFrom.parameters HOLDUNTIL, pending and cancelable until
then).  alpha runs on a reactor whose clock the test moves forward
(tests/support/shiftclock.py); bob@beta.test receives over SMTP once the time has come,
also across a restart of alpha over the same database."""

from __future__ import annotations

import smtplib
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

from twisted.internet import defer, reactor, task, threads

from mailgosend.jmap import email_set, identity, submission
from mailgosend.jmap.methods import Call, Limits
from mailgosend.jmap.submission import SubmissionSettings, capabilities
from tests.support.mailserver import PASSWORD
from tests.support.shiftclock import ShiftedReactor
from tests.support.twoservers import ALPHA_IP, TwoServers
from tests.test_delivery_e2e import TwoServerTestCase, message, wait_for

LIMIT = 30 * 86400   # FUTURE_RELEASE_MAX_DAYS's default, in seconds


async def pause(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


class SendLaterTestCase(TwoServerTestCase):
    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        self.clock = ShiftedReactor()
        self.servers = TwoServers(self.mktemp(), alpha_settings=self.alpha_settings,
                                  beta_settings=self.beta_settings, alpha_clock=self.clock)
        self.addCleanup(self.servers.stop)
        yield self.servers.start()
        self.alpha, self.beta = self.servers.alpha, self.servers.beta

    async def restart_alpha(self) -> None:
        """A new service over the same database and files (what a restart keeps)."""
        await self.alpha.stop()
        await self.alpha.start()

    def smtp(self, port: str, script: Any) -> Any:
        def run() -> Any:
            with smtplib.SMTP(ALPHA_IP, self.alpha.ports[port], timeout=30,
                              local_hostname="laptop.test") as client:
                client.ehlo()
                if port == "SUBMIT":
                    client.starttls(context=self.alpha.client_tls())
                    client.ehlo()
                    client.login("alice@alpha.test", PASSWORD)
                return script(client)
        return threads.deferToThread(run)


class SMTPSendLaterTests(SendLaterTestCase):
    def test_holdfor_is_queued_then_delivered_at_its_time_across_a_restart(self) -> Any:
        return defer.Deferred.fromCoroutine(self._holdfor())

    async def _holdfor(self) -> None:
        ehlo = await self.smtp("SUBMIT", lambda c: c.esmtp_features.get("futurerelease"))
        interval, latest = ehlo.split()
        self.assertEqual(int(interval), LIMIT)      # RFC 4865 §3: <max-interval> <max-date>
        self.assertEqual(datetime.fromisoformat(latest.replace("Z", "+00:00")),
                         (self.alpha.now() + timedelta(seconds=LIMIT)).replace(microsecond=0))
        raw = message("alice@alpha.test", "bob@beta.test", "later")
        await self.smtp("SUBMIT", lambda c: c.sendmail(
            "alice@alpha.test", ["bob@beta.test"], raw, mail_options=["HOLDFOR=3600"]))
        [(row, rcpts)] = self.alpha.queued()
        ahead = (row.release_at - self.alpha.now()).total_seconds()
        self.assertTrue(3570 < ahead <= 3600, ahead)
        self.assertEqual(rcpts[0].next_attempt_at, row.release_at)
        self.alpha.root.components["delivery"].wake()
        await pause(1.5)
        self.assertEqual(self.beta.stored("bob@beta.test"), [])   # not before its time
        self.assertEqual(self.log_rows(self.alpha), [])
        await self.restart_alpha()
        await pause(1.0)
        self.assertEqual(len(self.alpha.queued()), 1)             # a 250 was a promise
        self.assertEqual(self.beta.stored("bob@beta.test"), [])
        self.clock.advance(3600 + 5)
        [stored] = await wait_for(lambda: self.beta.stored("bob@beta.test"))
        self.assertIn(b"Subject: later", stored)
        await self.queue_drained(self.alpha)
        self.assertEqual([r.status for r in self.log_rows(self.alpha)], ["delivered"])

    def test_holduntil_and_bad_values(self) -> Any:
        return defer.Deferred.fromCoroutine(self._bad_values())

    async def _bad_values(self) -> None:
        def mail(options: list[str]) -> Any:
            return self.smtp("SUBMIT", lambda c: c.mail("alice@alpha.test", options))

        for options, code, enhanced in [
                (["HOLDFOR=soon"], 501, b"5.5.4"),
                (["HOLDFOR=-5"], 501, b"5.5.4"),
                (["HOLDFOR"], 501, b"5.5.4"),
                (["HOLDFOR=1234567890"], 501, b"5.5.4"),           # 1*9DIGIT
                (["HOLDUNTIL=tomorrow"], 501, b"5.5.4"),
                (["HOLDUNTIL=2026-12-05T17:00:00"], 501, b"5.5.4"),   # no time zone
                (["HOLDUNTIL=2026-13-45T17:00:00Z"], 501, b"5.5.4"),
                (["HOLDFOR=60", "HOLDUNTIL=2030-01-01T00:00:00Z"], 501, b"5.5.4"),
                ([f"HOLDFOR={LIMIT + 1}"], 554, b"5.3.4"),          # RFC 4865 §4
                ([f"HOLDUNTIL={(self.alpha.now() + timedelta(days=31)):%Y-%m-%dT%H:%M:%SZ}"],
                 554, b"5.3.4")]:
            got_code, text = await mail(options)
            self.assertEqual(got_code, code, (options, text))
            self.assertTrue(text.startswith(enhanced), (options, text))
            self.assertIn(b"HOLD", text, text)                   # names the parameter
        # a good HOLDUNTIL, with an offset: held until that instant, in UTC
        when = (self.alpha.now() + timedelta(hours=2)).astimezone(
            timezone(timedelta(hours=1))).replace(microsecond=0)
        raw = message("alice@alpha.test", "bob@beta.test", "until")
        await self.smtp("SUBMIT", lambda c: c.sendmail(
            "alice@alpha.test", ["bob@beta.test"], raw,
            mail_options=[f"HOLDUNTIL={when.isoformat()}"]))
        [(row, _)] = self.alpha.queued()                          # the refused ones: nothing
        self.assertEqual(row.release_at, when)

    def test_a_held_message_is_refused_for_local_recipients(self) -> Any:
        return defer.Deferred.fromCoroutine(self._local())

    async def _local(self) -> None:
        self.alpha.add_user("carol@alpha.test")
        raw = message("alice@alpha.test", "bob@beta.test", "mixed")
        refused = await self.smtp("SUBMIT", lambda c: c.sendmail(
            "alice@alpha.test", ["carol@alpha.test", "bob@beta.test"], raw,
            mail_options=["HOLDFOR=600"]))
        code, text = refused["carol@alpha.test"]
        self.assertEqual(code, 550)
        self.assertIn(b"5.7.1", text)
        self.assertEqual(self.alpha.stored("carol@alpha.test"), [])   # not filed early
        [(row, rcpts)] = self.alpha.queued()
        self.assertEqual([r.recipient for r in rcpts], ["bob@beta.test"])
        self.assertIsNotNone(row.release_at)

    def test_not_on_port_25(self) -> Any:
        return defer.Deferred.fromCoroutine(self._port25())

    async def _port25(self) -> None:
        features = await self.smtp("SMTP", lambda c: dict(c.esmtp_features))
        self.assertNotIn("futurerelease", features)
        code, _ = await self.smtp("SMTP", lambda c: c.mail("bob@example.com", ["HOLDFOR=60"]))
        self.assertEqual(code, 555)


class SMTPSendLaterOffTests(SendLaterTestCase):
    alpha_settings = {"FUTURE_RELEASE_MAX_DAYS": "0"}

    def test_zero_disables_and_removes_the_keyword(self) -> Any:
        return defer.Deferred.fromCoroutine(self._off())

    async def _off(self) -> None:
        features = await self.smtp("SUBMIT", lambda c: dict(c.esmtp_features))
        self.assertIn("dsn", features)
        self.assertNotIn("futurerelease", features)
        code, _ = await self.smtp("SUBMIT", lambda c: c.mail("alice@alpha.test",
                                                              ["HOLDFOR=60"]))
        self.assertEqual(code, 555)
        self.assertEqual(capabilities(SubmissionSettings(0, None, 0)),
                         {"maxDelayedSend": 0, "submissionExtensions": {}})


class JMAPSendLaterTests(SendLaterTestCase):
    def test_holduntil_pending_cancelable_then_sent_at_its_time(self) -> Any:
        return defer.Deferred.fromCoroutine(self._jmap())

    async def jmap(self, mail: Any, name: str, args: dict[str, Any]) -> Any:
        methods = {**email_set.METHODS, **identity.METHODS, **submission.METHODS}
        settings = SubmissionSettings(0, "mx.alpha.test", LIMIT)
        context = SimpleNamespace(services=SimpleNamespace(extra={"submission": settings}))
        call = Call(name=name, call_id="c", account_id="A", mail=mail, context=context,
                    limits=Limits(), created=self.created)
        return await methods[name].handler(call, {"accountId": "A", **args})

    async def _draft(self, mail: Any, subject: str) -> str:
        boxes, _ = await mail.mailboxes_and_subscriptions()
        drafts = next(f"B{b.id}" for b in boxes if b.role == "drafts")
        created = await self.jmap(mail, "Email/set", {"create": {"d": {
            "mailboxIds": {drafts: True}, "keywords": {"$draft": True},
            "from": [{"email": "alice@alpha.test"}], "to": [{"email": "bob@beta.test"}],
            "subject": subject, "textBody": [{"partId": "1"}],
            "bodyValues": {"1": {"value": "Hello Bob"}}}}})
        return str(created["created"]["d"]["id"])

    async def _jmap(self) -> None:
        self.created: dict[str, str] = {}
        self.assertEqual(capabilities(SubmissionSettings(0, None, LIMIT)),
                         {"maxDelayedSend": LIMIT,
                          "submissionExtensions": {"FUTURERELEASE": [str(LIMIT)]}})
        mail = await self.alpha.root.components["mail"].open_account("alice@alpha.test")
        me = (await self.jmap(mail, "Identity/get", {"ids": None}))["list"][0]["id"]
        when = (self.alpha.now() + timedelta(hours=1)).replace(microsecond=0)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        envelope = {"mailFrom": {"email": "alice@alpha.test",
                                 "parameters": {"HOLDUNTIL": stamp}},
                    "rcptTo": [{"email": "bob@beta.test"}]}
        sent_id = await self._draft(mail, "kept")
        canceled_id = await self._draft(mail, "canceled")
        result = await self.jmap(mail, "EmailSubmission/set", {"create": {
            "a": {"identityId": me, "emailId": sent_id, "envelope": envelope},
            "b": {"identityId": me, "emailId": canceled_id, "envelope": envelope}}})
        for key in ("a", "b"):
            self.assertEqual(result["created"][key]["sendAt"], stamp, result)
            self.assertEqual(result["created"][key]["undoStatus"], "pending", result)
        # bad and over-limit values: refused, nothing created
        for params in ({"HOLDFOR": "soon"}, {"HOLDFOR": str(LIMIT + 1)},
                       {"HOLDUNTIL": "2026-12-05 17:00"}):
            bad = await self.jmap(mail, "EmailSubmission/set", {"create": {"x": {
                "identityId": me, "emailId": sent_id,
                "envelope": dict(envelope, mailFrom={"email": "alice@alpha.test",
                                                     "parameters": params})}}})
            error = bad["notCreated"]["x"]
            self.assertEqual(error["type"], "invalidProperties", error)
            self.assertIn("HOLD", error["description"])
        canceled = await self.jmap(mail, "EmailSubmission/set", {"update": {
            result["created"]["b"]["id"]: {"undoStatus": "canceled"}}})
        self.assertIn(result["created"]["b"]["id"], canceled["updated"], canceled)
        await pause(1.0)
        self.assertEqual(self.alpha.queued(), [])
        self.assertEqual(self.beta.stored("bob@beta.test"), [])
        await self.restart_alpha()                 # the timer is gone; the Releaser is not
        mail = await self.alpha.root.components["mail"].open_account("alice@alpha.test")
        self.clock.advance(3600 + 5)
        [stored] = await wait_for(lambda: self.beta.stored("bob@beta.test"))
        self.assertIn(b"Subject: kept", stored)
        await self.queue_drained(self.alpha)
        got = await self.jmap(mail, "EmailSubmission/get", {"ids": None})
        by_status = {item["undoStatus"]: item for item in got["list"]}
        self.assertEqual(set(by_status), {"final", "canceled"})
        self.assertEqual(by_status["final"]["deliveryStatus"]["bob@beta.test"]["delivered"],
                         "yes")
        self.assertIsNone(by_status["canceled"]["deliveryStatus"])
        await pause(6.0)                            # the canceled one never goes
        self.assertEqual(len(self.beta.stored("bob@beta.test")), 1)
