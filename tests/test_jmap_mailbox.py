"""Mailbox/get, /changes, /query, /queryChanges and /set (RFC 8621 §2), called through a Call
over a real database (SQLite and PostgreSQL), and over HTTP through the JMAP endpoint with
IMAP seeing what JMAP changed."""

from __future__ import annotations

import imaplib
import smtplib
from typing import Any

from twisted.internet import defer, threads
from twisted.trial import unittest

from mailgosend.jmap.methods import MAIL
from mailgosend.store.emails import mailbox_tallies
from tests.support.mailserver import PASSWORD
from tests.test_jmap_core import ALICE, JMAPTestCase
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.imap import IMAPFixture, message
from tests.support.jmapcalls import JMAPCallFixture, mail_message


class MailboxTestsMixin(JMAPCallFixture, IMAPFixture):
    @defer.inlineCallbacks
    def boxes(self) -> Any:
        result = yield self.jmap("Mailbox/get", {"ids": None})
        return {box["name"]: box for box in result["list"]}

    @defer.inlineCallbacks
    def test_get_describes_the_default_mailboxes(self) -> Any:
        yield self.open_mail()
        boxes = yield self.boxes()
        self.assertEqual({name: box["role"] for name, box in boxes.items()},
                         {"INBOX": "inbox", "Sent": "sent", "Drafts": "drafts",
                          "Trash": "trash", "Spam": "junk", "Archive": "archive"})
        inbox = boxes["INBOX"]
        self.assertEqual((inbox["parentId"], inbox["totalEmails"], inbox["isSubscribed"],
                          inbox["sortOrder"]), (None, 0, True, 0))
        self.assertTrue(inbox["myRights"]["mayAddItems"])
        self.assertFalse(inbox["myRights"]["mayDelete"])
        self.assertTrue(boxes["Archive"]["myRights"]["mayDelete"])
        result = yield self.jmap("Mailbox/get", {"ids": [inbox["id"], "B99999", "nope"],
                                                 "properties": ["name"]})
        self.assertEqual(result["list"], [{"id": inbox["id"], "name": "INBOX"}])
        self.assertEqual(result["notFound"], ["B99999", "nope"])
        bad = yield self.jmap("Mailbox/get", {"ids": None, "properties": ["colour"]})
        self.assertEqual(bad["error"], "invalidArguments")
        bad = yield self.jmap("Mailbox/get", {"ids": None, "accountId": "A2"})
        self.assertEqual(bad["error"], "accountNotFound")

    @defer.inlineCallbacks
    def test_counts_from_flags_and_threads(self) -> Any:
        yield self.open_mail()
        archive = yield self.mail.get_mailbox("Archive")
        trash = yield self.mail.get_mailbox("Trash")
        yield self.send(mail_message("Lunch", "<p@x>"), flags=("\\Seen",))
        yield self.send(mail_message("Re: Lunch", "<r@x>", in_reply_to="<p@x>"))  # unread
        yield self.send(message("draft"), flags=("\\Draft",))  # a draft is not unread
        yield self.send(mail_message("Re: Lunch", "<s@x>", in_reply_to="<p@x>"),
                        target=archive.id, flags=("\\Seen",))
        yield self.send(mail_message("Old", "<o@x>"), target=trash.id)  # unread, in trash
        yield self.send(mail_message("Re: Old", "<o2@x>", in_reply_to="<o@x>"),
                        flags=("\\Seen",))
        boxes = yield self.boxes()
        inbox = boxes["INBOX"]
        self.assertEqual((inbox["totalEmails"], inbox["unreadEmails"], inbox["totalThreads"],
                          inbox["unreadThreads"]), (4, 1, 3, 1))
        # Archive's email is read, but its thread has an unread email (in INBOX).
        self.assertEqual((boxes["Archive"]["totalEmails"], boxes["Archive"]["unreadEmails"],
                          boxes["Archive"]["unreadThreads"]), (1, 0, 1))
        # Trash: its unread email counts for the trash only.
        self.assertEqual((boxes["Trash"]["unreadEmails"], boxes["Trash"]["unreadThreads"]),
                         (1, 1))

    @defer.inlineCallbacks
    def test_counts_follow_every_change_as_the_rows_say(self) -> Any:
        """The counts come from the query index, changed per change (mail/query.py
        ``_Tallies``): after each kind of change they equal the counts read from every row
        (store/emails.py ``mailbox_tallies``)."""
        yield self.open_mail()
        archive = yield self.mail.get_mailbox("Archive")
        trash = yield self.mail.get_mailbox("Trash")
        inbox = yield self.mail.get_mailbox("INBOX")

        @defer.inlineCallbacks
        def check(step: str) -> Any:
            boxes = yield self.boxes()
            got = {box["id"]: (box["totalEmails"], box["unreadEmails"], box["totalThreads"],
                               box["unreadThreads"]) for box in boxes.values()}
            rows = yield self.runner.read(mailbox_tallies, self.mail.user.id, trash.id)
            wanted = {key: (0, 0, 0, 0) for key in got}
            wanted.update({f"B{number}": (t.total_emails, t.unread_emails, t.total_threads,
                                          t.unread_threads) for number, t in rows.items()})
            self.assertEqual(got, wanted, step)
            return got

        yield check("empty")
        first = yield self.send(mail_message("Lunch", "<p@x>"))
        yield self.send(mail_message("Re: Lunch", "<r@x>", in_reply_to="<p@x>"),
                        flags=("\\Seen",))
        yield self.send(mail_message("Re: Lunch", "<s@x>", in_reply_to="<p@x>"),
                        target=archive.id, flags=("\\Seen",))
        other = yield self.send(mail_message("Old", "<o@x>"), target=trash.id)
        yield self.send(message("draft"), flags=("\\Draft",))
        got = yield check("delivered")
        self.assertEqual(got[f"B{archive.id}"], (1, 0, 1, 1))
        yield self.mail.set_flags(inbox.id, [first.uid], ["\\Seen"], "add")
        got = yield check("read")
        self.assertEqual(got[f"B{archive.id}"], (1, 0, 1, 0))
        yield self.mail.set_flags(inbox.id, [first.uid], ["\\Seen"], "remove")
        yield check("unread again")
        yield self.mail.copy(inbox, [first.uid], trash, move=True)
        got = yield check("moved to the trash")
        self.assertEqual(got[f"B{archive.id}"], (1, 0, 1, 0))
        yield self.mail.copy(trash, [other.uid], archive, move=False)
        yield check("copied out of the trash")
        yield self.mail.set_flags(trash.id, None, ["\\Deleted"], "add")
        yield self.mail.expunge(trash.id, None)
        yield check("trash emptied")
        yield self.mail.delete_mailbox("Archive")
        yield check("a mailbox deleted")

    @defer.inlineCallbacks
    def test_changes_tell_counts_from_properties(self) -> Any:
        yield self.open_mail()
        boxes = yield self.boxes()
        s0 = yield self.state()
        yield self.send(message("counted"))
        created, updated, destroyed, result = yield self.changes("Mailbox/changes", s0)
        self.assertEqual((created, updated, destroyed), (set(), {boxes["INBOX"]["id"]}, set()))
        self.assertEqual(result["updatedProperties"],
                         ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"])
        s1 = result["newState"]
        yield self.mail.rename_mailbox("Archive", "Archives")
        created, updated, destroyed, result = yield self.changes("Mailbox/changes", s1)
        self.assertEqual(updated, {boxes["Archive"]["id"]})
        self.assertIsNone(result["updatedProperties"])
        s2 = result["newState"]
        yield self.mail.set_subscription("Archives", False)
        created, updated, destroyed, result = yield self.changes("Mailbox/changes", s2)
        self.assertEqual(updated, {boxes["Archive"]["id"]})
        self.assertIsNone(result["updatedProperties"])
        s3 = result["newState"]
        box = yield self.mail.create_mailbox("New")
        created, updated, destroyed, result = yield self.changes("Mailbox/changes", s3)
        self.assertEqual((created, updated, destroyed), ({f"B{box.id}"}, set(), set()))
        yield self.mail.delete_mailbox("New")
        created, updated, destroyed, result = yield self.changes("Mailbox/changes", s3)
        self.assertEqual((created, updated, destroyed), (set(), set(), set()))

    @defer.inlineCallbacks
    def test_set_create_update_destroy(self) -> Any:
        yield self.open_mail()
        s0 = yield self.state()
        created_ids: dict[str, str] = {}
        result = yield self.jmap("Mailbox/set", {"ifInState": s0, "create": {
            "p": {"name": "Projects", "isSubscribed": True, "sortOrder": 5},
            "c": {"name": "Alpha", "parentId": "#p"},
            "bad": {"name": "a/b"},
            "dup": {"name": "Archive"},
            "ro": {"name": "X", "totalEmails": 3},
            "role": {"name": "Y", "role": "inbox"},
        }}, created=created_ids)
        self.assertEqual(set(result["created"]), {"p", "c"})
        self.assertEqual(result["oldState"], s0)
        self.assertEqual({k: v["type"] for k, v in result["notCreated"].items()},
                         {"bad": "invalidProperties", "dup": "invalidProperties",
                          "ro": "invalidProperties", "role": "invalidProperties"})
        self.assertEqual(result["notCreated"]["ro"]["properties"], ["totalEmails"])
        self.assertEqual(created_ids["p"], result["created"]["p"]["id"])
        boxes = yield self.boxes()
        self.assertEqual(boxes["Alpha"]["parentId"], boxes["Projects"]["id"])
        self.assertEqual((boxes["Projects"]["sortOrder"], boxes["Projects"]["isSubscribed"]),
                         (5, True))
        found = yield self.mail.get_mailbox("Projects/Alpha")  # IMAP sees the hierarchy
        self.assertIsNotNone(found)
        # ifInState: the state moved on.
        stale = yield self.jmap("Mailbox/set", {"ifInState": s0, "destroy": ["B1"]})
        self.assertEqual(stale["error"], "stateMismatch")
        # Update: rename, move under INBOX's sibling, subscription, sort order; role refused.
        alpha, projects = boxes["Alpha"]["id"], boxes["Projects"]["id"]
        result = yield self.jmap("Mailbox/set", {"update": {
            alpha: {"name": "Beta", "parentId": None, "isSubscribed": True, "sortOrder": 2},
            projects: {"role": "archive"},
            boxes["INBOX"]["id"]: {"name": "Renamed"},
            boxes["Trash"]["id"]: {"parentId": boxes["Trash"]["id"]},
            "B99999": {"name": "Nobody"},
        }})
        self.assertEqual(list(result["updated"]), [alpha])
        self.assertEqual({k: v["type"] for k, v in result["notUpdated"].items()},
                         {projects: "invalidProperties", boxes["INBOX"]["id"]: "forbidden",
                          boxes["Trash"]["id"]: "invalidProperties", "B99999": "notFound"})
        self.assertEqual(result["notUpdated"][projects]["properties"], ["role"])
        boxes = yield self.boxes()
        self.assertEqual((boxes["Beta"]["parentId"], boxes["Beta"]["isSubscribed"],
                          boxes["Beta"]["sortOrder"]), (None, True, 2))
        subscribed = (yield self.mail.mailboxes_and_subscriptions())[1]
        self.assertIn("Beta", subscribed)
        # Destroy: a mailbox with mail needs onDestroyRemoveEmails; a parent its children gone.
        child = yield self.mail.create_mailbox("Projects/Child")
        yield self.send(message("keep me"), target=int(boxes["Beta"]["id"][1:]))
        result = yield self.jmap("Mailbox/set", {"destroy": [
            boxes["Beta"]["id"], projects, boxes["INBOX"]["id"]]})
        self.assertEqual({k: v["type"] for k, v in result["notDestroyed"].items()},
                         {boxes["Beta"]["id"]: "mailboxHasEmail", projects: "mailboxHasChild",
                          boxes["INBOX"]["id"]: "forbidden"})
        result = yield self.jmap("Mailbox/set", {"onDestroyRemoveEmails": True, "destroy": [
            projects, f"B{child.id}", boxes["Beta"]["id"]]})
        self.assertEqual(set(result["destroyed"]), {projects, f"B{child.id}",
                                                    boxes["Beta"]["id"]})
        self.assertIsNone(result["notDestroyed"])
        self.assertEqual(result["newState"], (yield self.state()))
        boxes = yield self.boxes()
        self.assertNotIn("Projects", boxes)

    @defer.inlineCallbacks
    def test_set_refuses_bad_arguments_and_too_many_objects(self) -> Any:
        yield self.open_mail()
        result = yield self.jmap("Mailbox/set", {"create": []})
        self.assertEqual(result["error"], "invalidArguments")
        self.limits = type(self.limits)(max_objects_in_set=1)
        result = yield self.jmap("Mailbox/set", {"destroy": ["B1", "B2"]})
        self.assertEqual(result["error"], "requestTooLarge")

    @defer.inlineCallbacks
    def test_query_filters_sorts_and_trees(self) -> Any:
        yield self.open_mail()
        yield self.mail.create_mailbox("Work")
        yield self.mail.create_mailbox("Work/Beta")
        yield self.mail.create_mailbox("Work/alpha")
        yield self.mail.set_subscription("Work/alpha", True)
        boxes = yield self.boxes()
        ids = {name: box["id"] for name, box in boxes.items()}

        @defer.inlineCallbacks
        def query(**args: Any) -> Any:
            result = yield self.jmap("Mailbox/query", args)
            return result.get("ids", result)

        names = {v: k for k, v in ids.items()}
        result = yield query(filter={"parentId": ids["Work"]}, sort=[{"property": "name"}])
        self.assertEqual([names[i] for i in result], ["alpha", "Beta"])
        result = yield query(filter={"role": "trash"})
        self.assertEqual(result, [ids["Trash"]])
        result = yield query(filter={"hasAnyRole": False}, sort=[{"property": "name"}])
        self.assertEqual([names[i] for i in result], ["alpha", "Beta", "Work"])
        result = yield query(filter={"operator": "AND", "conditions": [
            {"isSubscribed": True}, {"hasAnyRole": False}]})
        self.assertEqual([names[i] for i in result], ["alpha"])
        result = yield query(filter={"name": "ALP"})
        self.assertEqual([names[i] for i in result], ["alpha"])
        result = yield query(filter={"parentId": None, "hasAnyRole": False})
        self.assertEqual(result, [ids["Work"]])
        # filterAsTree: a child whose parent does not match is left out.
        result = yield query(filter={"isSubscribed": True}, filterAsTree=True)
        self.assertNotIn(ids["alpha"], result)
        result = yield query(sort=[{"property": "name", "isAscending": False}],
                             sortAsTree=True, filter={"hasAnyRole": False})
        self.assertEqual([names[i] for i in result], ["Work", "Beta", "alpha"])
        result = yield self.jmap("Mailbox/query", {"sort": [{"property": "name"}],
                                                   "position": 1, "limit": 2,
                                                   "calculateTotal": True})
        self.assertEqual((result["position"], len(result["ids"]), result["total"]), (1, 2, 9))
        anchored = yield self.jmap("Mailbox/query", {"sort": [{"property": "name"}],
                                                     "anchor": result["ids"][0],
                                                     "anchorOffset": -1, "limit": 1})
        self.assertEqual(anchored["position"], 0)
        for bad, kind in (({"sort": [{"property": "totalEmails"}]}, "unsupportedSort"),
                          ({"filter": {"colour": "red"}}, "unsupportedFilter"),
                          ({"anchor": "B99999"}, "anchorNotFound"),
                          ({"filter": {"hasAnyRole": "yes"}}, "invalidArguments")):
            result = yield self.jmap("Mailbox/query", bad)
            self.assertEqual(result["error"], kind, bad)

    @defer.inlineCallbacks
    def test_query_changes_replays_onto_the_old_result(self) -> Any:
        yield self.open_mail()
        args = {"filter": {"hasAnyRole": False}, "sort": [{"property": "name"}]}
        yield self.mail.create_mailbox("B")
        yield self.mail.create_mailbox("D")
        old = yield self.jmap("Mailbox/query", args)
        yield self.mail.create_mailbox("C")
        yield self.mail.rename_mailbox("D", "A")
        yield self.send(message("counts only"))  # INBOX counts: not a query change
        changes = yield self.jmap("Mailbox/queryChanges", {
            **args, "sinceQueryState": old["queryState"], "calculateTotal": True})
        ids = [i for i in old["ids"] if i not in changes["removed"]]
        for item in sorted(changes["added"], key=lambda a: a["index"]):
            ids.insert(item["index"], item["id"])
        new = yield self.jmap("Mailbox/query", args)
        self.assertEqual(ids, new["ids"])
        self.assertEqual(changes["total"], 3)
        self.assertEqual(changes["newQueryState"], new["queryState"])
        stale = yield self.jmap("Mailbox/queryChanges", {**args, "sinceQueryState": "zzz"})
        self.assertEqual(stale["error"], "cannotCalculateChanges")


class MailboxSQLiteTests(SQLiteDatabaseMixin, MailboxTestsMixin, unittest.TestCase):
    pass


class MailboxPostgresTests(PostgresDatabaseMixin, MailboxTestsMixin, unittest.TestCase):
    pass


class HTTPTests(JMAPTestCase):
    """Through the endpoint of a whole server: SMTP delivery, IMAP changes and JMAP calls
    see each other (the state is read from the database by every front end)."""

    @defer.inlineCallbacks
    def call(self, name: str, args: dict[str, Any]) -> Any:
        session = yield self.http("GET", "/.well-known/jmap")
        account = session.json()["primaryAccounts"][MAIL]
        reply = yield self.api([[name, {"accountId": account, **args}, "c0"]])
        self.assertEqual(reply.status_code, 200, reply.text)
        (response_name, result, _), = reply.json()["methodResponses"]
        self.assertEqual(response_name, name, result)
        return result

    def imap(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4_SSL("127.0.0.1", self.server.ports["IMAPS"], timeout=20,
                                   ssl_context=self.server.client_tls())
        client.login(ALICE, PASSWORD)
        return client

    @defer.inlineCallbacks
    def test_smtp_imap_and_jmap_see_each_others_changes(self) -> Any:
        got = yield self.call("Mailbox/get", {"ids": None})
        s0 = got["state"]
        inbox = next(box for box in got["list"] if box["role"] == "inbox")

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", self.server.ports["SMTP"], timeout=20) as smtp:
                smtp.sendmail("carol@example.net", [ALICE],
                              mail_message("Hello", "<h1@example.net>"))
        yield threads.deferToThread(send)
        changes = yield self.call("Email/changes", {"sinceState": s0})
        self.assertEqual(len(changes["created"]), 1)
        (email_id,) = changes["created"]
        s1 = changes["newState"]

        def imap_work() -> None:
            client = self.imap()
            client.select("INBOX")
            client.store("1", "+FLAGS", "\\Seen")
            client.create("FromIMAP")
            client.logout()
        yield threads.deferToThread(imap_work)
        changes = yield self.call("Email/changes", {"sinceState": s1})
        self.assertEqual((changes["created"], changes["updated"]), ([], [email_id]))
        changes = yield self.call("Mailbox/changes", {"sinceState": s1})
        self.assertEqual(len(changes["created"]), 1)
        self.assertEqual(changes["updated"], [inbox["id"]])  # \Seen: INBOX's counts only
        self.assertEqual(changes["updatedProperties"],
                         ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"])
        created = yield self.call("Mailbox/set", {"create": {"n": {"name": "FromJMAP"}}})
        new_id = created["created"]["n"]["id"]
        got = yield self.call("Mailbox/get", {"ids": [inbox["id"]]})
        self.assertEqual((got["list"][0]["totalEmails"], got["list"][0]["unreadEmails"]),
                         (1, 0))

        def imap_move() -> list[Any]:
            client = self.imap()
            listed = client.list()[1]
            client.select("INBOX")
            client.uid("MOVE", "1:*", "FromJMAP")
            client.logout()
            return listed
        listed = yield threads.deferToThread(imap_move)
        self.assertTrue(any(b'"FromJMAP"' in line or b" FromJMAP" in line for line in listed))
        changes = yield self.call("Email/changes", {"sinceState": created["newState"]})
        self.assertEqual((changes["created"], changes["updated"], changes["destroyed"]),
                         ([], [email_id], []))
        threads_got = yield self.call("Thread/get", {"ids": [f"T{email_id[1:]}"]})
        self.assertEqual(threads_got["list"][0]["emailIds"], [email_id])
        removed = yield self.call("Mailbox/set", {"destroy": [new_id],
                                                  "onDestroyRemoveEmails": True})
        self.assertEqual(removed["destroyed"], [new_id])
        changes = yield self.call("Email/changes", {"sinceState": created["newState"]})
        self.assertEqual(changes["destroyed"], [email_id])
