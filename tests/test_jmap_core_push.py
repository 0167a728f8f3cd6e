"""JMAP push over EventSource (RFC 8620 §7.3, jmap/push.py) from the change feed: a
StateChange within a second of an SMTP delivery and of an IMAP STORE, the types filter,
pings, closeafter=state, and the stream closed cleanly at shutdown."""

from __future__ import annotations

import imaplib
import json
import smtplib
import threading
import time
from typing import Any, Optional

import requests
from twisted.internet import defer, reactor, task, threads

from mailgosend.events import (ChangeBatch, Expunged, FlagsChanged, IdentityChanged,
                               MailboxCreated, RemoteChange, Resync, SubmissionChanged,
                               VacationChanged)
from mailgosend.jmap.methods import CORE, MAIL, SUBMISSION, VACATION
from mailgosend.jmap.push import changed_types
from tests.support.imap import message
from tests.support.mailserver import PASSWORD
from tests.support.web import csrf_from
from tests.test_jmap_core import ALICE, BOB, JMAPTestCase

END = ("end", None)
_threads_reactor: Any = reactor  # typed _IReactorCommon; the real one has callFromThread


class EventStream:
    """An EventSource client in a thread: (event, data) pairs handed to the reactor thread,
    END at the end.

    The test waits with the reactor (its timers, Deferreds fired from the reading thread),
    never with a timed thread wait (``Event.wait(t)``, ``Queue.get(timeout=t)``): those never
    return when the clock is faked (libfaketime), and a test that expects nothing for a
    while would hang there."""

    def __init__(self, url: str, auth: Any) -> None:
        self.events: defer.DeferredQueue[tuple[str, Any]] = defer.DeferredQueue()
        self.response: Optional[requests.Response] = None
        self.opened: defer.Deferred[None] = defer.Deferred()
        self._thread = threading.Thread(target=self._run, args=(url, auth), daemon=True)
        self._thread.start()

    def _open(self) -> None:
        if not self.opened.called:
            self.opened.callback(None)

    def _put(self, item: tuple[str, Any]) -> None:
        _threads_reactor.callFromThread(self.events.put, item)

    def _run(self, url: str, auth: Any) -> None:
        try:
            with requests.get(url, auth=auth, stream=True, timeout=(10, 30)) as response:
                self.response = response
                _threads_reactor.callFromThread(self._open)
                event, data = "message", ""
                for line in response.iter_lines(decode_unicode=True):
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif line == "" and data:
                        self._put((event, json.loads(data)))
                        event, data = "message", ""
        except Exception as exc:  # the test sees it as the end of the stream
            self._put(("error", repr(exc)))
        finally:
            _threads_reactor.callFromThread(self._open)
            self._put(END)

    def next(self, timeout: float) -> defer.Deferred[tuple[str, Any]]:
        """The next (event, data), or ("timeout", None) when none came within ``timeout``
        seconds of the reactor's clock."""
        waiting = self.events.get()
        return waiting.addTimeout(timeout, reactor,
                                  onTimeoutCancel=lambda _result, _t: ("timeout", None))


class PushTests(JMAPTestCase):
    @defer.inlineCallbacks
    def open(self, query: str = "types=*&closeafter=no&ping=0",
             auth: Any = (ALICE, PASSWORD)) -> Any:
        session = yield self.http("GET", "/.well-known/jmap", auth=auth)
        body = session.json()
        url = body["eventSourceUrl"].split("?", 1)[0] + "?" + query
        # No cleanup of its own: the server's stop at cleanup ends every stream (tested
        # below), and closing a response from the reactor thread would block it until the
        # reading thread's timeout.
        stream = EventStream(url, auth)
        yield stream.opened.addTimeout(10, reactor)
        self.assertEqual(stream.response.status_code, 200)
        self.assertTrue(stream.response.headers["Content-Type"].startswith(
            "text/event-stream"))
        yield self.wait_subscribed(body["username"])
        return stream, body["primaryAccounts"]["urn:ietf:params:jmap:mail"]

    @defer.inlineCallbacks
    def wait_subscribed(self, email: str) -> Any:
        """Until the stream has read its first state (then it hears every change)."""
        route = self.server.root.components["web_site"].mounted[b"jmap"].push
        for _ in range(500):
            if any(s.started and s._caller.user.email == email
                   for s in route.streams):
                return
            yield task.deferLater(reactor, 0.01)
        raise AssertionError("the stream did not start")

    def deliver(self, to: str = ALICE, subject: str = "pushed") -> Any:
        def send() -> None:
            with smtplib.SMTP("127.0.0.1", self.server.ports["SMTP"], timeout=20) as smtp:
                smtp.sendmail("someone@example.org", [to], message(subject))
        return threads.deferToThread(send)

    @defer.inlineCallbacks
    def test_state_change_after_smtp_delivery(self) -> Any:
        stream, account = yield self.open()
        bob_stream, _ = yield self.open(auth=(BOB, PASSWORD))
        yield self.deliver()
        event, data = yield stream.next(1.0)   # the issue: within 1 s of the delivery
        self.assertEqual(event, "state", data)
        self.assertEqual(data["@type"], "StateChange")
        changed = data["changed"][account]
        self.assertEqual(set(changed), {"Email", "Mailbox", "Thread", "EmailDelivery"})
        self.assertEqual(len(set(changed.values())), 1)   # one state for the account
        # Bob heard nothing of Alice's mail.
        other = yield bob_stream.next(0.3)
        self.assertEqual(other[0], "timeout")
        # A second delivery: a new state.
        yield self.deliver(subject="again")
        event, again = yield stream.next(1.0)
        self.assertEqual(event, "state")
        self.assertNotEqual(again["changed"][account]["Email"], changed["Email"])

    @defer.inlineCallbacks
    def test_state_change_after_imap_store(self) -> Any:
        yield self.deliver()
        stream, account = yield self.open("types=Email,Mailbox&closeafter=no&ping=0")

        def store() -> None:
            client = imaplib.IMAP4_SSL("127.0.0.1", self.server.ports["IMAPS"],
                                       ssl_context=self.server.client_tls(), timeout=20)
            try:
                client.login(ALICE, PASSWORD)
                client.select("INBOX")
                client.store("1", "+FLAGS", "(\\Seen)")
            finally:
                client.logout()
        yield threads.deferToThread(store)
        event, data = yield stream.next(1.0)
        self.assertEqual(event, "state", data)
        self.assertEqual(set(data["changed"][account]), {"Email", "Mailbox"})

    @defer.inlineCallbacks
    def test_types_filter(self) -> Any:
        stream, account = yield self.open("types=Mailbox&closeafter=no&ping=0")
        yield self.deliver()
        event, data = yield stream.next(2.0)
        self.assertEqual(event, "state")
        self.assertEqual(list(data["changed"][account]), ["Mailbox"])

    @defer.inlineCallbacks
    def test_ping(self) -> Any:
        stream, _ = yield self.open("types=*&closeafter=no&ping=1")
        event, data = yield stream.next(5.0)
        self.assertEqual((event, data), ("ping", {"interval": 1}))
        event, data = yield stream.next(5.0)
        self.assertEqual(event, "ping")

    @defer.inlineCallbacks
    def test_closeafter_state(self) -> Any:
        stream, account = yield self.open("types=*&closeafter=state&ping=0")
        yield self.deliver()
        event, data = yield stream.next(2.0)
        self.assertEqual(event, "state")
        self.assertIn(account, data["changed"])
        ending = yield stream.next(5.0)
        self.assertEqual(ending, END)

    @defer.inlineCallbacks
    def test_bad_arguments(self) -> Any:
        for query in ("closeafter=later", "ping=-1", "ping=soon"):
            reply = yield self.http("GET", "/jmap/eventsource/?" + query)
            self.assertEqual(reply.status_code, 400, query)
            self.assertTrue(reply.json()["detail"])

    @defer.inlineCallbacks
    def test_shutdown_ends_the_stream(self) -> Any:
        stream, _ = yield self.open()
        started = time.monotonic()
        yield self.server.stop()
        # The listener did not wait out SHUTDOWN_GRACE_SECONDS for the open stream.
        self.assertLess(time.monotonic() - started, 5)
        ending = yield stream.next(5.0)
        self.assertIn(ending[0], ("end", "error"))


class ChangedTypesTests(JMAPTestCase):
    users = ()

    def test_changed_types(self) -> None:
        self.assertEqual(changed_types(ChangeBatch(1, (FlagsChanged(1, ()),))),
                         {"Email", "Mailbox"})
        self.assertEqual(changed_types(ChangeBatch(1, (Expunged(1, (3,)),))),
                         {"Email", "Mailbox", "Thread"})
        self.assertEqual(changed_types(ChangeBatch(1, (MailboxCreated(2, "x"),))),
                         {"Mailbox"})
        self.assertEqual(changed_types(ChangeBatch(1, (RemoteChange("new", 1),))),
                         {"Email", "Mailbox", "Thread", "EmailDelivery"})


USING = (CORE, MAIL, SUBMISSION, VACATION)


class AccountDataPushTests(PushTests):
    """RFC 8620 §7.1: a StateChange names every data type whose state changed, so a change
    to an Identity, an EmailSubmission or the VacationResponse is pushed too, with the
    state its /get answers with."""

    settings = {"SUBMISSION_UNDO_SECONDS": "3"}

    @defer.inlineCallbacks
    def call(self, name: str, args: dict[str, Any], account: str) -> Any:
        reply = yield self.api([[name, {"accountId": account, **args}, "c"]], using=USING)
        self.assertEqual(reply.status_code, 200, reply.text)
        [[answered, result, _]] = reply.json()["methodResponses"][-1:]
        self.assertEqual(answered, name, result)
        return result

    @defer.inlineCallbacks
    def state_of(self, kind: str, account: str) -> Any:
        result = yield self.call(f"{kind}/get", {"ids": []}, account)
        return result["state"]

    @defer.inlineCallbacks
    def expect(self, stream: EventStream, account: str, kind: str,
               wanted: Optional[str] = None, timeout: float = 2.0) -> Any:
        """StateChanges until one names ``kind`` with the state ``wanted`` (a /set's
        newState; earlier commits may be announced first), or, without ``wanted``, the
        first naming ``kind``, whose state must be the one /get gives now."""
        while True:
            event, data = yield stream.next(timeout)
            self.assertEqual(event, "state", (kind, data))
            changed = data["changed"][account]
            if kind in changed and wanted in (None, changed[kind]):
                break
        if wanted is None:
            state = yield self.state_of(kind, account)
            self.assertEqual(changed[kind], state)
        return changed[kind]

    @defer.inlineCallbacks
    def quiet(self, stream: EventStream, account: str, kinds: set[str]) -> Any:
        """Nothing naming ``kinds`` arrives on ``stream`` for a while."""
        while True:
            event, data = yield stream.next(0.5)
            if event == "timeout":
                return
            self.assertFalse(kinds & set(data["changed"][account]), data)

    @defer.inlineCallbacks
    def test_identity_set_is_pushed(self) -> Any:
        stream, account = yield self.open()
        email_only, _ = yield self.open("types=Email&closeafter=no&ping=0")
        ids = yield self.call("Identity/get", {"ids": None}, account)
        before = ids["state"]
        result = yield self.call("Identity/set", {"update": {ids["list"][0]["id"]: {
            "name": "Alice Pushed"}}}, account)
        self.assertNotEqual(result["newState"], before)
        yield self.expect(stream, account, "Identity", result["newState"])
        self.assertEqual((yield self.state_of("Identity", account)), result["newState"])
        yield self.quiet(email_only, account, {"Identity"})

    @defer.inlineCallbacks
    def test_display_name_on_the_settings_page_is_pushed(self) -> Any:
        """Regression: the default identity's name is the display name; changing it on the
        settings page moves the Identity state and pushes it (admin.py announce)."""
        stream, account = yield self.open()
        ids = yield self.call("Identity/get", {"ids": None}, account)
        web = self.client()
        yield web.sign_in(ALICE, PASSWORD)
        page = yield web.get("/settings")
        saved = yield web.post("/settings/profile", {"csrf_token": csrf_from(page.text),
                                                     "display_name": "Alice Renamed"})
        self.assertEqual(saved.status_code, 303)
        state = yield self.state_of("Identity", account)
        self.assertNotEqual(state, ids["state"])
        yield self.expect(stream, account, "Identity", state)  # the listing's first, then it
        changes = yield self.call("Identity/changes", {"sinceState": ids["state"]}, account)
        self.assertEqual(changes["updated"], [ids["list"][0]["id"]])
        got = yield self.call("Identity/get", {"ids": [ids["list"][0]["id"]]}, account)
        self.assertEqual(got["list"][0]["name"], "Alice Renamed")

    @defer.inlineCallbacks
    def test_vacation_set_is_pushed(self) -> Any:
        stream, account = yield self.open()
        email_only, _ = yield self.open("types=Email&closeafter=no&ping=0")
        result = yield self.call("VacationResponse/set", {"update": {"singleton": {
            "isEnabled": True, "subject": "Away"}}}, account)
        yield self.expect(stream, account, "VacationResponse", result["newState"])
        self.assertEqual((yield self.state_of("VacationResponse", account)),
                         result["newState"])
        yield self.quiet(email_only, account, {"VacationResponse"})

    @defer.inlineCallbacks
    def draft(self, account: str) -> Any:
        boxes = yield self.call("Mailbox/get", {"ids": None}, account)
        drafts = next(b["id"] for b in boxes["list"] if b["role"] == "drafts")
        created = yield self.call("Email/set", {"create": {"d": {
            "mailboxIds": {drafts: True}, "keywords": {"$draft": True},
            "from": [{"email": ALICE}], "to": [{"email": BOB}], "subject": "held",
            "textBody": [{"partId": "1"}], "bodyValues": {"1": {"value": "Hi"}}}}},
            account)
        return created["created"]["d"]["id"]

    def cancel_timers(self) -> None:
        """A test that failed early leaves its submissions' release timers: cancel them
        (the server is stopped)."""
        for call in reactor.getDelayedCalls():
            if getattr(call.func, "__name__", "") == "_release_later" and call.active():
                call.cancel()

    @defer.inlineCallbacks
    def test_submission_create_cancel_and_release_are_pushed(self) -> Any:
        self.addCleanup(self.cancel_timers)
        stream, account = yield self.open()
        email_only, _ = yield self.open("types=Email&closeafter=no&ping=0")
        identity = (yield self.call("Identity/get", {"ids": None}, account))["list"][0]["id"]
        first = yield self.draft(account)
        second = yield self.draft(account)
        created = yield self.call("EmailSubmission/set", {"create": {
            "a": {"identityId": identity, "emailId": first},
            "b": {"identityId": identity, "emailId": second}}}, account)
        self.assertEqual(created["created"]["a"]["undoStatus"], "pending", created)
        yield self.expect(stream, account, "EmailSubmission", created["newState"])
        # Canceled within the undo window: pushed.
        canceled = yield self.call("EmailSubmission/set", {"update": {
            created["created"]["a"]["id"]: {"undoStatus": "canceled"}}}, account)
        self.assertTrue(canceled["updated"], canceled)
        yield self.expect(stream, account, "EmailSubmission", canceled["newState"])
        # The window ends: the other one is released (pending -> final) and that is pushed.
        yield self.expect(stream, account, "EmailSubmission", timeout=8.0)
        got = yield self.call("EmailSubmission/get", {"ids": None}, account)
        self.assertEqual(sorted(s["undoStatus"] for s in got["list"]), ["canceled", "final"])
        yield self.quiet(email_only, account, {"EmailSubmission"})
        # Both timers have fired by now (the canceled one's found it canceled).
        yield task.deferLater(reactor, 0.5)


class AccountDataTypesTests(JMAPTestCase):
    users = ()

    def test_changed_types(self) -> None:
        self.assertEqual(changed_types(ChangeBatch(1, (IdentityChanged(),))), {"Identity"})
        self.assertEqual(changed_types(ChangeBatch(1, (SubmissionChanged(4),))),
                         {"EmailSubmission"})
        self.assertEqual(changed_types(ChangeBatch(1, (VacationChanged(),))),
                         {"VacationResponse"})
        # Another node's mail change moves the mail types only.
        self.assertNotIn("Identity", changed_types(ChangeBatch(1, (RemoteChange("new", 1),))))
        self.assertIn("VacationResponse", changed_types(ChangeBatch(1, (Resync(),))))
        # An IMAP session's selected mailbox is not concerned.
        batch = ChangeBatch(1, (IdentityChanged(), SubmissionChanged(4), VacationChanged()))
        self.assertEqual(batch.for_mailbox(1), ())
