"""The JMAP endpoint (RFC 8620): the Session resource, the API's request-level and
method-level errors, result references and creation ids, over real HTTP (requests) and
the third-party client jmapc."""

from __future__ import annotations

import json
from typing import Any

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
