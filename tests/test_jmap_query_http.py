"""Email/query, Email/queryChanges and SearchSnippet/get through the JMAP endpoint of a whole
server: mail delivered over SMTP, requests as raw JSON (with a result reference) and through
the third-party client jmapc."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

from twisted.internet import defer, threads

from tests import test_jmap_core as core

ALICE = core.ALICE


def send(port: int, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"] = "Carol <carol@example.net>"
    message["To"] = ALICE
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.send_message(message)


class QueryOverHTTPTests(core.JMAPTestCase):
    @defer.inlineCallbacks
    def deliver(self, subject: str, body: str) -> Any:
        yield threads.deferToThread(send, self.server.ports["SMTP"], subject, body)

    @defer.inlineCallbacks
    def test_query_snippets_and_changes_in_one_request(self) -> Any:
        yield self.deliver("Harvest festival", "The pumpkin parade starts at noon.")
        yield self.deliver("Minutes", "Nothing about gourds here.")
        session = yield self.http("GET", "/.well-known/jmap")
        account = session.json()["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        reply = yield self.api([
            ["Email/query", {"accountId": account, "filter": {"text": "pumpkin"},
                             "calculateTotal": True}, "q"],
            ["SearchSnippet/get", {"accountId": account, "filter": {"text": "pumpkin"},
                                   "#emailIds": {"resultOf": "q", "name": "Email/query",
                                                 "path": "/ids"}}, "s"],
            ["Email/query", {"accountId": account}, "all"]])
        self.assertEqual(reply.status_code, 200, reply.text)
        (_, query, _), (_, snippets, _), (_, everything, _) = reply.json()["methodResponses"]
        self.assertEqual((len(query["ids"]), query["total"]), (1, 1))
        self.assertEqual(snippets["list"][0]["emailId"], query["ids"][0])
        self.assertIn("The <mark>pumpkin</mark> parade", snippets["list"][0]["preview"])
        self.assertEqual(len(everything["ids"]), 2)
        state = everything["queryState"]
        yield self.deliver("Pumpkin pie", "recipe")
        reply = yield self.api([["Email/queryChanges", {"accountId": account,
                                                        "sinceQueryState": state}, "c"],
                                ["Email/query", {"accountId": account}, "q"]])
        (_, changes, _), (_, fresh, _) = reply.json()["methodResponses"]
        self.assertEqual(changes["added"], [{"id": fresh["ids"][0], "index": 0}])
        self.assertEqual(changes["newQueryState"], fresh["queryState"])
        reply = yield self.api([["Email/query", {"accountId": account,
                                                 "sort": [{"property": "color"}]}, "bad"]])
        self.assertEqual(reply.json()["methodResponses"][0][:2],
                         ["error", {"type": "unsupportedSort",
                                    "description": "sort/0/property: cannot sort by color"}])


class QueryWithJmapcTests(core.JmapcTests):
    @defer.inlineCallbacks
    def test_jmapc_email_query(self) -> Any:
        yield threads.deferToThread(send, self.server.ports["SMTP"], "Quarterly numbers",
                                    "The revenue grew.")
        yield threads.deferToThread(send, self.server.ports["SMTP"], "Lunch", "Soup?")

        def run() -> Any:
            from jmapc import Comparator, EmailQueryFilterCondition
            from jmapc.methods import EmailQuery
            client = self.client()
            return client.request(EmailQuery(
                filter=EmailQueryFilterCondition(text="revenue"),
                sort=[Comparator(property="receivedAt", is_ascending=False)],
                calculate_total=True))
        result = yield threads.deferToThread(run)
        self.assertEqual((len(result.ids), result.total), (1, 1))
        self.assertTrue(result.ids[0].startswith("M"))
