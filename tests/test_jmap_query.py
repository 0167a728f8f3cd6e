"""Email/query (RFC 8621 §4.4): every filter condition and operator, every sort property,
windows by position and anchor, limits and errors, through the method handlers over a real
database and mail service."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.db import SQLiteDatabaseMixin
from tests.support.jmapquery import QueryFixture, mime


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 3, day, hour, 0, 0, tzinfo=timezone.utc)


class EmailQueryTests(SQLiteDatabaseMixin, QueryFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        yield self.open()
        yield self.mail.create_mailbox("Work")
        boxes, _ = yield self.mail.mailboxes_and_subscriptions()
        self.boxes = {box.name: box for box in boxes}
        add = self.add
        # Five messages with one distinguishing property each.
        self.m1 = yield add(mime("Quarterly report", "The numbers for the business quarter",
                                 sender="Carol Jones <carol@corp.example>",
                                 to="alice@example.com", date="Mon, 2 Mar 2026 08:00:00 +0000"),
                            flags=("\\Seen",), date=at(2))
        self.m2 = yield add(mime("Re: lunch", "Shall we take the bus? Meet at noon.",
                                 sender="bob@example.com", to="Zed <zed@example.com>",
                                 cc="Dora <dora@example.com>",
                                 date="Tue, 3 Mar 2026 09:00:00 +0000",
                                 extra="X-Priority: 1 (Highest)\r\n"),
                            flags=("\\Flagged", "project"), date=at(3))
        self.m3 = yield add(mime("Invoice 2026", "Please find the invoice attached.",
                                 sender="Billing <billing@shop.example>",
                                 bcc="audit@example.com", date="Wed, 4 Mar 2026 10:00:00 +0000",
                                 attachment=b"\x00" * 3000),
                            box="Work", flags=("\\Seen", "\\Answered"), date=at(4))
        self.m4 = yield add(mime("=?utf-8?q?=C3=89t=C3=A9_plans?=",
                                 "<p>Vacances &amp; <b>omnibus</b> tours</p>", html=True,
                                 sender="=?utf-8?q?Andr=C3=A9?= <andre@example.fr>",
                                 date="Thu, 5 Mar 2026 11:00:00 +0000"),
                            date=at(5))
        self.m5 = yield add(mime("lunch", "short", sender="Zed <zed@example.com>",
                                 date="Fri, 6 Mar 2026 12:00:00 +0000"), box="Work",
                            flags=("\\Draft",), date=at(6))

    @defer.inlineCallbacks
    def ids(self, filter: Any = None, sort: Any = None, **more: Any) -> Any:
        args: dict[str, Any] = {"filter": filter, **more}
        if sort is not None:
            args["sort"] = sort
        response = yield self.call("Email/query", args)
        return response["ids"]

    @defer.inlineCallbacks
    def assertFinds(self, filter: Any, expected: list[str]) -> Any:
        found = yield self.ids(filter, [{"property": "receivedAt", "isAscending": True}])
        self.assertEqual(found, expected, filter)

    @defer.inlineCallbacks
    def test_default_order_is_newest_first(self) -> Any:
        found = yield self.ids()
        self.assertEqual(found, [self.m5, self.m4, self.m3, self.m2, self.m1])

    @defer.inlineCallbacks
    def test_mailbox_conditions(self) -> Any:
        work, inbox = f"B{self.boxes['Work'].id}", f"B{self.boxes['INBOX'].id}"
        yield self.assertFinds({"inMailbox": work}, [self.m3, self.m5])
        yield self.assertFinds({"inMailboxOtherThan": [work]}, [self.m1, self.m2, self.m4])
        yield self.assertFinds({"inMailboxOtherThan": [work, inbox]}, [])
        yield self.assertFinds({"inMailbox": "B999999"}, [])
        yield self.assertFinds({"inMailbox": "nonsense"}, [])

    @defer.inlineCallbacks
    def test_dates_and_sizes(self) -> Any:
        yield self.assertFinds({"before": "2026-03-04T12:00:00Z"}, [self.m1, self.m2])
        yield self.assertFinds({"after": "2026-03-04T12:00:00Z"}, [self.m3, self.m4, self.m5])
        yield self.assertFinds({"after": "2026-03-03T00:00:00Z",
                                "before": "2026-03-05T00:00:00Z"}, [self.m2, self.m3])
        yield self.assertFinds({"minSize": 3000}, [self.m3])
        yield self.assertFinds({"maxSize": 3000}, [self.m1, self.m2, self.m4, self.m5])

    @defer.inlineCallbacks
    def test_keywords(self) -> Any:
        yield self.assertFinds({"hasKeyword": "$seen"}, [self.m1, self.m3])
        yield self.assertFinds({"notKeyword": "$seen"}, [self.m2, self.m4, self.m5])
        yield self.assertFinds({"hasKeyword": "PROJECT"}, [self.m2])
        yield self.assertFinds({"hasKeyword": "$answered"}, [self.m3])
        yield self.assertFinds({"hasKeyword": "$draft"}, [self.m5])
        yield self.assertFinds({"hasKeyword": "$flagged"}, [self.m2])
        # Each message is its own thread until threading lands: thread = the message.
        yield self.assertFinds({"allInThreadHaveKeyword": "$seen"}, [self.m1, self.m3])
        yield self.assertFinds({"someInThreadHaveKeyword": "$flagged"}, [self.m2])
        yield self.assertFinds({"noneInThreadHaveKeyword": "$seen"},
                               [self.m2, self.m4, self.m5])

    @defer.inlineCallbacks
    def test_has_attachment(self) -> Any:
        yield self.assertFinds({"hasAttachment": True}, [self.m3])
        yield self.assertFinds({"hasAttachment": False}, [self.m1, self.m2, self.m4, self.m5])

    @defer.inlineCallbacks
    def test_address_and_subject_conditions(self) -> Any:
        yield self.assertFinds({"from": "carol"}, [self.m1])
        yield self.assertFinds({"from": "corp.example"}, [self.m1])
        yield self.assertFinds({"from": "andré"}, [self.m4])  # RFC 2047 decoded
        yield self.assertFinds({"from": "ANDRE@example.fr"}, [self.m4])
        yield self.assertFinds({"to": "zed"}, [self.m2])
        yield self.assertFinds({"cc": "dora@example.com"}, [self.m2])
        yield self.assertFinds({"bcc": "audit"}, [self.m3])
        yield self.assertFinds({"subject": "lunch"}, [self.m2, self.m5])
        yield self.assertFinds({"subject": "été"}, [self.m4])
        yield self.assertFinds({"subject": "ÉTÉ plans"}, [self.m4])

    @defer.inlineCallbacks
    def test_body_and_text_semantics(self) -> Any:
        # Word prefixes: "bus" finds "bus" and "business", never "omnibus".
        yield self.assertFinds({"body": "bus"}, [self.m1, self.m2])
        yield self.assertFinds({"body": "omni"}, [self.m4])  # HTML read without markup
        yield self.assertFinds({"body": "vacances tours"}, [self.m4])  # every term
        yield self.assertFinds({"body": "b"}, [self.m1, self.m2])  # short: scanned, no <b>
        yield self.assertFinds({"body": '"take the bus"'}, [self.m2])  # a phrase
        yield self.assertFinds({"body": '"the bus take"'}, [])
        yield self.assertFinds({"body": '"busi"'}, [])  # a phrase is exact words
        yield self.assertFinds({"text": "lunch"}, [self.m2, self.m5])
        yield self.assertFinds({"text": "invoice billing"}, [self.m3])
        yield self.assertFinds({"text": "zed"}, [self.m2, self.m5])
        yield self.assertFinds({"body": "lunch"}, [])
        yield self.assertFinds({"text": "!!!"}, [self.m1, self.m2, self.m3, self.m4, self.m5])

    @defer.inlineCallbacks
    def test_header(self) -> Any:
        yield self.assertFinds({"header": ["X-Priority"]}, [self.m2])
        yield self.assertFinds({"header": ["x-priority", "highest"]}, [self.m2])
        yield self.assertFinds({"header": ["X-Priority", "lowest"]}, [])
        yield self.assertFinds({"header": ["Cc"]}, [self.m2])

    @defer.inlineCallbacks
    def test_operators_nest(self) -> Any:
        yield self.assertFinds({"operator": "OR", "conditions": [
            {"hasKeyword": "$draft"}, {"from": "carol"}]}, [self.m1, self.m5])
        yield self.assertFinds({"operator": "NOT", "conditions": [
            {"hasKeyword": "$seen"}, {"subject": "lunch"}]}, [self.m4])
        yield self.assertFinds({"operator": "AND", "conditions": [
            {"text": "lunch"},
            {"operator": "NOT", "conditions": [{"hasKeyword": "$draft"}]}]}, [self.m2])

    @defer.inlineCallbacks
    def test_each_sort_property(self) -> Any:
        def by(prop: str, ascending: bool = True, **more: Any) -> Any:
            return self.ids(None, [{"property": prop, "isAscending": ascending, **more}])

        self.assertEqual((yield by("receivedAt")), [self.m1, self.m2, self.m3, self.m4, self.m5])
        self.assertEqual((yield by("size", False))[0], self.m3)
        # from: the name, else the address: André, billing..., bob@..., Carol, Zed
        self.assertEqual((yield by("from")), [self.m4, self.m3, self.m2, self.m1, self.m5])
        # to: alice@example.com, Bob (x3, ties by id), Zed
        self.assertEqual((yield by("to")), [self.m1, self.m3, self.m4, self.m5, self.m2])
        # subject: base subjects (RFC 5256 §2.1): "Re: lunch" sorts as "lunch"
        self.assertEqual((yield by("subject")), [self.m4, self.m3, self.m2, self.m5, self.m1])
        self.assertEqual((yield by("sentAt", False)),
                         [self.m5, self.m4, self.m3, self.m2, self.m1])
        # Ties go by id in the direction of the first comparator.
        self.assertEqual((yield by("hasKeyword", False, keyword="$seen"))[:2],
                         [self.m3, self.m1])
        self.assertEqual((yield by("allInThreadHaveKeyword", False, keyword="$flagged"))[0],
                         self.m2)
        self.assertEqual((yield by("someInThreadHaveKeyword", True, keyword="$draft"))[-1],
                         self.m5)

    @defer.inlineCallbacks
    def test_several_comparators_and_collations(self) -> Any:
        found = yield self.ids(None, [{"property": "hasKeyword", "keyword": "$seen",
                                       "isAscending": False},
                                      {"property": "receivedAt", "isAscending": False}])
        self.assertEqual(found, [self.m3, self.m1, self.m5, self.m4, self.m2])
        found = yield self.ids({"inMailbox": f"B{self.boxes['Work'].id}"},
                               [{"property": "subject", "collation": "i;ascii-casemap"}])
        self.assertEqual(found, [self.m3, self.m5])
        found = yield self.ids(None, [{"property": "subject", "collation": "i;ascii-numeric"},
                                      {"property": "receivedAt"}])
        self.assertEqual(found, [self.m1, self.m2, self.m3, self.m4, self.m5])

    @defer.inlineCallbacks
    def test_windows_by_position_and_anchor(self) -> Any:
        order = [self.m5, self.m4, self.m3, self.m2, self.m1]
        response = yield self.call("Email/query", {"position": 1, "limit": 2,
                                                   "calculateTotal": True})
        self.assertEqual((response["ids"], response["position"], response["total"]),
                         (order[1:3], 1, 5))
        self.assertNotIn("limit", response)
        response = yield self.call("Email/query", {"position": -2})
        self.assertEqual((response["ids"], response["position"]), (order[3:], 3))
        response = yield self.call("Email/query", {"position": -50, "limit": 1})
        self.assertEqual((response["ids"], response["position"]), (order[:1], 0))
        response = yield self.call("Email/query", {"position": 9})
        self.assertEqual(response["ids"], [])
        response = yield self.call("Email/query", {"anchor": self.m3, "anchorOffset": -1,
                                                   "limit": 2, "position": 4})
        self.assertEqual((response["ids"], response["position"]), (order[1:3], 1))
        response = yield self.call("Email/query", {"anchor": self.m4, "anchorOffset": -5})
        self.assertEqual(response["position"], 0)
        response = yield self.call("Email/query", {"anchor": self.m2, "anchorOffset": 1})
        self.assertEqual(response["ids"], [self.m1])
        error = yield self.error("Email/query", {"anchor": "M424242"})
        self.assertEqual(error.kind, "anchorNotFound")
        error = yield self.error("Email/query", {"anchor": self.m3,
                                                 "filter": {"hasKeyword": "$draft"}})
        self.assertEqual(error.kind, "anchorNotFound")

    @defer.inlineCallbacks
    def test_limit_is_capped_and_said_so(self) -> Any:
        from mailgosend.jmap import email_query
        self.patch(email_query, "MAX_LIMIT", 3)
        response = yield self.call("Email/query", {"limit": 10})
        self.assertEqual((len(response["ids"]), response["limit"]), (3, 3))
        response = yield self.call("Email/query", {})
        self.assertEqual(response["limit"], 3)
        response = yield self.call("Email/query", {"limit": 0})
        self.assertEqual(response["ids"], [])

    @defer.inlineCallbacks
    def test_threads_collapse_and_thread_keywords(self) -> Any:
        parent = yield self.add(mime("Plan", "first", extra="Message-ID: <p1@x.org>\r\n"),
                                date=at(7))
        reply = yield self.add(mime("Re: Plan", "second",
                                    extra="Message-ID: <p2@x.org>\r\nIn-Reply-To: <p1@x.org>"
                                          "\r\nReferences: <p1@x.org>\r\n"),
                               flags=("\\Flagged",), date=at(8))
        response = yield self.call("Email/query", {"calculateTotal": True})
        self.assertEqual(response["ids"][:2], [reply, parent])
        response = yield self.call("Email/query", {"collapseThreads": True,
                                                   "calculateTotal": True})
        self.assertEqual((response["ids"][:2], response["total"]), ([reply, self.m5], 6))
        yield self.assertFinds({"someInThreadHaveKeyword": "$flagged"},
                               [self.m2, parent, reply])
        yield self.assertFinds({"allInThreadHaveKeyword": "$flagged"}, [self.m2])
        yield self.assertFinds({"noneInThreadHaveKeyword": "$flagged"},
                               [self.m1, self.m3, self.m4, self.m5])
        found = yield self.ids({"after": "2026-03-07T00:00:00Z"},
                               [{"property": "someInThreadHaveKeyword", "keyword": "$flagged",
                                 "isAscending": False}, {"property": "receivedAt"}])
        self.assertEqual(found, [parent, reply])

    @defer.inlineCallbacks
    def test_bad_arguments_name_the_argument(self) -> Any:
        cases = [({"filter": {"before": "yesterday"}}, "invalidArguments", "filter/before"),
                 ({"filter": {"minSize": -1}}, "invalidArguments", "filter/minSize"),
                 ({"filter": {"hasKeyword": "a b"}}, "invalidArguments", "filter/hasKeyword"),
                 ({"filter": {"header": []}}, "invalidArguments", "filter/header"),
                 ({"filter": {"operator": "XOR", "conditions": [{}]}}, "invalidArguments",
                  "filter/operator"),
                 ({"filter": {"text": 5}}, "invalidArguments", "filter/text"),
                 ({"filter": {"inThread": "T1"}}, "unsupportedFilter", "inThread"),
                 ({"sort": [{"property": "color"}]}, "unsupportedSort", "color"),
                 ({"sort": [{"property": "subject", "collation": "i;octet"}]},
                  "unsupportedSort", "collation"),
                 ({"sort": [{"property": "hasKeyword"}]}, "invalidArguments", "keyword"),
                 ({"limit": -1}, "invalidArguments", "limit"),
                 ({"position": "1"}, "invalidArguments", "position"),
                 ({"accountId": "A999"}, "accountNotFound", "accountId")]
        for args, kind, named in cases:
            error = yield self.error("Email/query", args)
            self.assertEqual(error.kind, kind, args)
            self.assertIn(named, error.description, args)

    @defer.inlineCallbacks
    def test_another_users_mail_is_never_seen(self) -> Any:
        bob = yield self.service.open_account("bob@example.com")
        response = yield self.call("Email/query", {"filter": {"text": "lunch"}}, mail=bob)
        self.assertEqual(response["ids"], [])
        response = yield self.call("Email/query", {}, mail=bob)
        self.assertEqual(response["ids"], [])

    @defer.inlineCallbacks
    def test_the_index_follows_changes_made_elsewhere(self) -> Any:
        yield self.ids()  # warm
        inbox, work = self.boxes["INBOX"], self.boxes["Work"]
        yield self.mail.set_flags(inbox.id, None, ["\\Seen"], "add")
        yield self.assertFinds({"notKeyword": "$seen"}, [self.m5])
        moved = yield self.mail.copy(inbox, [1], work, move=True)
        found = yield self.ids({"inMailbox": f"B{work.id}"},
                               [{"property": "receivedAt", "isAscending": True}])
        # A move keeps the Email id (RFC 8621 §4.1.1: the id names the message, not a copy).
        self.assertEqual(found, [self.m1, self.m3, self.m5])
        self.assertEqual(moved.expunged, [1])
        self.assertNotIn(self.m1, (yield self.ids({"inMailbox": f"B{inbox.id}"})))
        yield self.mail.delete_mailbox("Work")
        found = yield self.ids(None, [{"property": "receivedAt", "isAscending": True}])
        self.assertEqual(found, [self.m2, self.m4])

    @defer.inlineCallbacks
    def test_another_node_sees_changes_without_the_feed(self) -> Any:
        """Two mail services on one database (two nodes): each keeps its own index, exact
        because every query checks the account's change counter first."""
        from mailgosend.mail.service import MailService
        from tests.support.imap import KEYRING
        from twisted.internet import reactor
        other = MailService(runner=self.runner, keyring=KEYRING, blob_store=self.blobs,
                            workers=self.workers, clock=reactor)
        there = yield other.open_account("alice@example.com")
        seen_there = yield self.call("Email/query", {}, mail=there)
        self.assertEqual(len(seen_there["ids"]), 5)
        new = yield self.add(mime("From this node", "fresh words"), flags=("\\Seen",))
        yield self.mail.set_flags(self.boxes["INBOX"].id, None, ["\\Flagged"], "add")
        seen_there = yield self.call("Email/query", {"filter": {"hasKeyword": "$flagged"},
                                                     "calculateTotal": True}, mail=there)
        self.assertEqual((seen_there["ids"][0], seen_there["total"]), (new, 4))
        found = yield self.call("Email/query", {"filter": {"body": "fresh"}}, mail=there)
        self.assertEqual(found["ids"], [new])
