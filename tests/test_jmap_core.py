"""The JMAP endpoint (RFC 8620): the Session resource, the API's request-level and
method-level errors, result references and creation ids, over real HTTP (requests) and
the third-party client jmapc."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import requests
from twisted.internet import defer, threads

from mailgosend.jmap.methods import CORE, MAIL
from tests.support.mailserver import PASSWORD
from tests.support.web import WebServerTestCase

ALICE = "alice@example.com"
BOB = "bob@example.com"


class JMAPTestCase(WebServerTestCase):
    users = (ALICE, BOB)

    def http(self, method: str, path: str, *, auth: Any = (ALICE, PASSWORD),
             **kwargs: Any) -> Any:
        url = path if path.startswith("http") else self.web_base + path
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("allow_redirects", False)
        return threads.deferToThread(requests.request, method, url, auth=auth, **kwargs)

    def api(self, calls: list[Any], using: tuple[str, ...] = (CORE, MAIL),
            auth: Any = (ALICE, PASSWORD), **extra: Any) -> Any:
        body = {"using": list(using), "methodCalls": calls, **extra}
        return self.http("POST", "/jmap/api", auth=auth, json=body)

    def download(self, account: str, blob_id: str, name: str, kind: str = "",
                 auth: Any = (ALICE, PASSWORD)) -> Any:
        path = f"/jmap/download/{account}/{blob_id}/{quote(name)}"
        if kind:
            path += "?type=" + quote(kind)
        return self.http("GET", path, auth=auth)

    def raw(self, data: bytes, auth: Any = (ALICE, PASSWORD)) -> Any:
        return self.http("POST", "/jmap/api", auth=auth, data=data,
                         headers={"Content-Type": "application/json"})


class SessionTests(JMAPTestCase):
    @defer.inlineCallbacks
    def test_session_resource(self) -> Any:
        reply = yield self.http("GET", "/.well-known/jmap")
        self.assertEqual(reply.status_code, 200, reply.text)
        self.assertEqual(reply.headers["Content-Type"], "application/json")
        session = reply.json()
        core = session["capabilities"][CORE]
        self.assertEqual(core["maxCallsInRequest"], 64)
        self.assertEqual(core["maxSizeRequest"], 10_000_000)
        self.assertIn("i;unicode-casemap", core["collationAlgorithms"])
        self.assertEqual(session["username"], ALICE)
        (account_id, account), = session["accounts"].items()
        self.assertEqual(account["name"], ALICE)
        self.assertTrue(account["isPersonal"])
        self.assertEqual(account["accountCapabilities"][MAIL]["maxMailboxesPerEmail"], 1)
        self.assertEqual(session["primaryAccounts"][MAIL], account_id)
        self.assertEqual(session["apiUrl"], self.web_base + "/jmap/api")
        self.assertEqual(session["uploadUrl"], self.web_base + "/jmap/upload/{accountId}/")
        self.assertIn("{blobId}", session["downloadUrl"])
        self.assertIn("{closeafter}", session["eventSourceUrl"])
        again = yield self.http("GET", "/.well-known/jmap")
        self.assertEqual(again.json()["accounts"].keys(), session["accounts"].keys())
        self.assertEqual(again.json()["state"], session["state"])
        bob = yield self.http("GET", "/.well-known/jmap", auth=(BOB, PASSWORD))
        self.assertNotEqual(bob.json()["accounts"].keys(), session["accounts"].keys())

    @defer.inlineCallbacks
    def test_echo(self) -> Any:
        reply = yield self.api([["Core/echo", {"hello": True, "n": [1, 2]}, "c1"]])
        self.assertEqual(reply.status_code, 200, reply.text)
        body = reply.json()
        self.assertEqual(body["methodResponses"],
                         [["Core/echo", {"hello": True, "n": [1, 2]}, "c1"]])
        session = yield self.http("GET", "/.well-known/jmap")
        self.assertEqual(body["sessionState"], session.json()["state"])


class DisabledTests(JMAPTestCase):
    settings = {"JMAP_ENABLED": "false"}

    @defer.inlineCallbacks
    def test_jmap_enabled_false_serves_nothing(self) -> Any:
        for method, path in (("GET", "/.well-known/jmap"), ("POST", "/jmap/api")):
            reply = yield self.http(method, path, json={})
            self.assertIn(reply.status_code, (404, 405), path)
            self.assertNotIn("apiUrl", reply.text)


def problem_type(reply: Any) -> str:
    assert reply.headers["Content-Type"] == "application/problem+json", reply.headers
    return str(reply.json()["type"]).rsplit(":", 1)[-1]


class RequestErrorTests(JMAPTestCase):
    """RFC 8620 §3.6.1: each request-level error as an RFC 7807 problem document."""

    @defer.inlineCallbacks
    def test_not_json(self) -> Any:
        for body in (b"{not json", b"\xff\xfe{}", b""):
            reply = yield self.raw(body)
            self.assertEqual(reply.status_code, 400)
            self.assertEqual(problem_type(reply), "notJSON", body)

    @defer.inlineCallbacks
    def test_not_request(self) -> Any:
        for body in ([], {"using": [CORE]}, {"using": CORE, "methodCalls": []},
                     {"using": [CORE], "methodCalls": [["Core/echo", {}]]},
                     {"using": [CORE], "methodCalls": [["Core/echo", [], "c"]]},
                     {"using": [CORE], "methodCalls": [], "createdIds": []}):
            reply = yield self.raw(json.dumps(body).encode())
            self.assertEqual(reply.status_code, 400, body)
            self.assertEqual(problem_type(reply), "notRequest", body)
            self.assertTrue(reply.json()["detail"])

    @defer.inlineCallbacks
    def test_unknown_capability(self) -> Any:
        reply = yield self.api([["Core/echo", {}, "c"]], using=(CORE, "urn:example:nope"))
        self.assertEqual(reply.status_code, 400)
        self.assertEqual(problem_type(reply), "unknownCapability")
        self.assertIn("urn:example:nope", reply.json()["detail"])

    @defer.inlineCallbacks
    def test_too_many_calls(self) -> Any:
        reply = yield self.api([["Core/echo", {}, f"c{i}"] for i in range(65)])
        self.assertEqual(reply.status_code, 400)
        self.assertEqual(problem_type(reply), "limit")
        self.assertEqual(reply.json()["limit"], "maxCallsInRequest")
        fine = yield self.api([["Core/echo", {}, f"c{i}"] for i in range(64)])
        self.assertEqual(len(fine.json()["methodResponses"]), 64)

    @defer.inlineCallbacks
    def test_request_too_large(self) -> Any:
        big = {"using": [CORE], "methodCalls": [["Core/echo", {"x": "a" * 10_000_001}, "c"]]}
        reply = yield self.raw(json.dumps(big).encode())
        self.assertEqual(reply.status_code, 400)
        self.assertEqual(problem_type(reply), "limit")
        self.assertEqual(reply.json()["limit"], "maxSizeRequest")
        # The connection is closed, the server goes on answering.
        after = yield self.api([["Core/echo", {}, "c"]])
        self.assertEqual(after.status_code, 200)

    @defer.inlineCallbacks
    def test_too_many_concurrent_requests(self) -> Any:
        site = self.server.root.components["web_site"]
        resource = site.mounted[b"jmap"]
        session = yield self.http("GET", "/.well-known/jmap")
        self.assertEqual(session.status_code, 200)
        user_id = self.user_id(ALICE)
        resource.in_flight.counts[user_id] = 4   # four requests of Alice's are being answered
        try:
            reply = yield self.api([["Core/echo", {}, "c"]])
            self.assertEqual(reply.status_code, 429)
            self.assertEqual(reply.json()["limit"], "maxConcurrentRequests")
            bob = yield self.api([["Core/echo", {}, "c"]], auth=(BOB, PASSWORD))
            self.assertEqual(bob.status_code, 200)
        finally:
            del resource.in_flight.counts[user_id]
        reply = yield self.api([["Core/echo", {}, "c"]])
        self.assertEqual(reply.status_code, 200)

    def user_id(self, email: str) -> int:
        from mailgosend.db.runner import run_sync
        from mailgosend.store import accounts
        return int(run_sync(self.server.engine, accounts.get_user, email, write=False).id)

    @defer.inlineCallbacks
    def test_wrong_http_method_and_path(self) -> Any:
        reply = yield self.http("GET", "/jmap/api")
        self.assertEqual(reply.status_code, 405)
        self.assertEqual(reply.headers["Allow"], "POST")
        reply = yield self.http("GET", "/jmap/nothing")
        self.assertEqual(reply.status_code, 404)


class MethodTests(JMAPTestCase):
    """Method calls in order, method-level errors, result references, createdIds."""

    @defer.inlineCallbacks
    def test_unknown_method(self) -> Any:
        reply = yield self.api([["Nothing/here", {}, "a"], ["Core/echo", {"n": 1}, "b"]])
        self.assertEqual(reply.status_code, 200)
        first, second = reply.json()["methodResponses"]
        self.assertEqual(first[0], "error")
        self.assertEqual(first[1]["type"], "unknownMethod")
        self.assertEqual(first[2], "a")
        self.assertEqual(second, ["Core/echo", {"n": 1}, "b"])

    @defer.inlineCallbacks
    def test_method_of_a_capability_not_used_is_unknown(self) -> Any:
        reply = yield self.api([["Core/echo", {}, "a"]], using=(MAIL,))
        (only,) = reply.json()["methodResponses"]
        self.assertEqual(only[:1], ["error"])
        self.assertEqual(only[1]["type"], "unknownMethod")

    @defer.inlineCallbacks
    def test_result_references(self) -> Any:
        items = {"list": [{"id": "a", "x": [1, 2], "y": {"z": "deep"}},
                          {"id": "b", "x": [3], "y": {"z": "er"}}],
                 "a/b~c": 7}

        def ref(path: str, name: str = "Core/echo", of: str = "c0") -> dict[str, str]:
            return {"resultOf": of, "name": name, "path": path}

        reply = yield self.api([
            ["Core/echo", items, "c0"],
            ["Core/echo", {"#ids": ref("/list/*/id")}, "c1"],
            ["Core/echo", {"#xs": ref("/list/*/x")}, "c2"],
            ["Core/echo", {"#z": ref("/list/1/y/z"), "#esc": ref("/a~1b~0c")}, "c3"],
            ["Core/echo", {"#whole": ref("")}, "c4"],
            ["Core/echo", {"#again": ref("/ids", of="c1")}, "c5"],
            ["Core/echo", {"#bad": ref("/list/7/id")}, "c6"],
            ["Core/echo", {"#bad": ref("/ids", name="Email/get")}, "c7"],
            ["Core/echo", {"#bad": ref("/ids", of="nope")}, "c8"],
            ["Core/echo", {"#bad": {"resultOf": "c0"}}, "c9"],
            ["Core/echo", {"ids": [], "#ids": ref("/list/*/id")}, "c10"],
            ["Core/echo", {"#later": ref("/x", of="c12")}, "c11"],
            ["Core/echo", {"x": 1}, "c12"],
        ])
        got = {r[2]: r for r in reply.json()["methodResponses"]}
        self.assertEqual(got["c1"][1], {"ids": ["a", "b"]})
        self.assertEqual(got["c2"][1], {"xs": [1, 2, 3]})  # arrays flattened (§3.7)
        self.assertEqual(got["c3"][1], {"z": "er", "esc": 7})
        self.assertEqual(got["c4"][1], {"whole": items})
        self.assertEqual(got["c5"][1], {"again": ["a", "b"]})
        for bad in ("c6", "c7", "c8", "c9", "c11"):
            self.assertEqual(got[bad][0], "error", bad)
            self.assertEqual(got[bad][1]["type"], "invalidResultReference", bad)
        self.assertEqual(got["c10"][1]["type"], "invalidArguments")
        self.assertEqual(got["c12"][1], {"x": 1})

    @defer.inlineCallbacks
    def test_created_ids_in_and_out(self) -> Any:
        reply = yield self.api([["Core/echo", {}, "c"]], createdIds={"k1": "M1"})
        self.assertEqual(reply.json()["createdIds"], {"k1": "M1"})
        reply = yield self.api([["Core/echo", {}, "c"]])
        self.assertNotIn("createdIds", reply.json())


class MethodErrorTests(JMAPTestCase):
    """The method-level errors the endpoint's shared helpers give every data method."""

    @defer.inlineCallbacks
    def test_another_users_account_and_wrong_types(self) -> Any:
        bob = yield self.http("GET", "/.well-known/jmap", auth=(BOB, PASSWORD))
        bob_account = bob.json()["primaryAccounts"][MAIL]
        mine = yield self.http("GET", "/.well-known/jmap")
        account = mine.json()["primaryAccounts"][MAIL]
        reply = yield self.api([
            ["Mailbox/get", {"accountId": bob_account, "ids": None}, "a"],
            ["Mailbox/get", {"accountId": account, "ids": "notalist"}, "b"],
            ["Mailbox/get", {"accountId": 7, "ids": None}, "c"],
            ["Mailbox/get", {"accountId": account, "ids": None}, "d"],
            ["Mailbox/get", {"accountId": account,
                             "ids": [f"B{i}" for i in range(1, 1002)]}, "e"],
        ])
        got = {r[2]: r for r in reply.json()["methodResponses"]}
        self.assertEqual(got["a"][1]["type"], "accountNotFound")
        self.assertEqual(got["b"][1]["type"], "invalidArguments")
        self.assertIn("ids", got["b"][1]["description"])
        self.assertEqual(got["c"][1]["type"], "invalidArguments")
        self.assertEqual(got["d"][0], "Mailbox/get")
        self.assertEqual(got["e"][1]["type"], "requestTooLarge")   # > maxObjectsInGet
        self.assertNotIn(bob_account, json.dumps(got["d"]))

    def test_server_fail_logs_no_content(self) -> Any:
        from twisted.logger import formatEvent, globalLogPublisher

        from mailgosend.jmap.api import Dispatcher
        from mailgosend.jmap.methods import Limits, Method

        async def broken(call: Any, args: dict[str, Any]) -> dict[str, Any]:
            raise ValueError(f"cannot parse {args['secret']}")

        seen: list[str] = []

        def observe(event: Any) -> None:
            seen.append(formatEvent(event))
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

        class Context:
            session_state = "x"
        dispatcher = Dispatcher({"Test/broken": Method(CORE, broken)}, {CORE: {}}, Limits())
        body = json.dumps({"using": [CORE], "methodCalls": [
            ["Test/broken", {"secret": "Dear Bob, the password is hunter2"}, "c"]]}).encode()
        d = defer.Deferred.fromCoroutine(dispatcher.run(body, account_id="A1", mail=None,
                                                        context=Context()))
        answer = self.successResultOf(d)
        (response,) = answer["methodResponses"]
        self.assertEqual(response[0], "error")
        self.assertEqual(response[1]["type"], "serverFail")
        self.assertNotIn("hunter2", json.dumps(answer))
        logged = "\n".join(seen)
        self.assertIn("Test/broken failed with ValueError", logged)
        self.assertNotIn("hunter2", logged)


class JmapcTests(JMAPTestCase):
    """The third-party client jmapc (PyPI) against our session resource; it insists on
    https://host/.well-known/jmap, so the web port speaks TLS with the test CA here."""

    # jmapc leaves its finished event stream's TLS connection unread, so shutdown would
    # wait out the grace period for its TLS close: a second is enough here.
    settings = {"WEB_TLS": "true", "SHUTDOWN_GRACE_SECONDS": "1"}

    def setUp(self):  # type: ignore[no-untyped-def]
        import os
        d = super().setUp()
        self.web_base = self.web_base.replace("http://", "https://")

        def trust(_: Any) -> None:
            previous = os.environ.get("REQUESTS_CA_BUNDLE")
            os.environ["REQUESTS_CA_BUNDLE"] = self.server.ca.cert_path

            def restore() -> None:
                if previous is None:
                    os.environ.pop("REQUESTS_CA_BUNDLE", None)
                else:
                    os.environ["REQUESTS_CA_BUNDLE"] = previous
            self.addCleanup(restore)
        return d.addCallback(trust)

    def client(self, **kwargs: Any) -> Any:  # type: ignore[override]
        import jmapc
        host = self.web_base.split("://", 1)[1]
        return jmapc.Client.create_with_password(host, ALICE, PASSWORD, **kwargs)

    @defer.inlineCallbacks
    def test_jmapc_session_and_echo(self) -> Any:
        from jmapc.methods import CoreEcho, CoreEchoResponse

        def run() -> Any:
            client = self.client()
            session = client.jmap_session
            result = client.request(CoreEcho(data={"hello": "jmapc"}))
            return client, session, result
        client, session, result = yield threads.deferToThread(run)
        self.assertEqual(session.username, ALICE)
        self.assertEqual(session.capabilities.core.max_calls_in_request, 64)
        self.assertTrue(session.api_url.startswith("https://"))
        self.assertTrue(client.account_id.startswith("A"))
        self.assertIsInstance(result, CoreEchoResponse)
        self.assertEqual(result.data, {"hello": "jmapc"})

    @defer.inlineCallbacks
    def test_jmapc_upload_and_events(self) -> Any:
        import os
        import queue
        import smtplib
        import time

        from jmapc import EventSourceConfig

        path = os.path.abspath(self.mktemp() + ".pdf")
        with open(path, "wb") as handle:
            handle.write(b"%PDF-1.4 jmapc upload")
        client = self.client(event_source_config=EventSourceConfig(closeafter="state"))
        blob = yield threads.deferToThread(client.upload_blob, path)
        self.assertEqual(blob.type, "application/pdf")
        self.assertEqual(blob.size, 21)
        got = yield self.download(client.account_id, blob.id, "x.pdf")
        self.assertEqual(got.status_code, 200)
        self.assertEqual(got.content, b"%PDF-1.4 jmapc upload")

        events: queue.Queue[Any] = queue.Queue()
        threads.deferToThread(lambda: events.put(next(iter(client.events))))
        route = self.server.root.components["web_site"].mounted[b"jmap"].push
        for _ in range(500):   # until jmapc's stream is open and has read its first state
            if any(s.started for s in route.streams):
                break
            yield threads.deferToThread(time.sleep, 0.01)

        def send() -> None:
            from tests.support.imap import message
            with smtplib.SMTP("127.0.0.1", self.server.ports["SMTP"], timeout=20) as smtp:
                smtp.sendmail("someone@example.org", [ALICE], message("for jmapc"))
        yield threads.deferToThread(send)
        event = yield threads.deferToThread(events.get, True, 10)
        changed = event.data.changed[client.account_id]
        self.assertTrue(changed.email)
        self.assertEqual(changed.email, changed.mailbox)
