"""Email/queryChanges (RFC 8620 §5.6): after any sequence of deliveries, flag changes, moves
and deletions, the old results with ``removed`` taken out and ``added`` put in are exactly
the results of a fresh Email/query."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.store import mailstate
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.jmapquery import QueryFixture, mime

SUBJECTS = ["alpha report", "Re: alpha report", "beta", "gamma plans", "Fwd: beta", "delta"]
BODIES = ["the budget meeting", "lunch at noon", "budget cuts ahead", "nothing to see"]


def apply_changes(old: list[str], removed: list[str], added: list[dict[str, Any]]
                  ) -> list[str]:
    """What a client does with a queryChanges response (RFC 8620 §5.6)."""
    gone = set(removed)
    result = [i for i in old if i not in gone]
    for item in sorted(added, key=lambda a: a["index"]):
        result.insert(item["index"], item["id"])
    return result


class QueryChangesMixin(QueryFixture):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        yield self.open()
        yield self.mail.create_mailbox("Other")
        boxes, _ = yield self.mail.mailboxes_and_subscriptions()
        self.boxes = {box.name: box for box in boxes}
        self.rnd = random.Random(8620)
        self.counter = 0
        self.subjects: dict[int, str] = {}
        for _ in range(8):
            yield self.deliver()

    @defer.inlineCallbacks
    def deliver(self) -> Any:
        self.counter += 1
        n = self.counter
        subject = self.rnd.choice(SUBJECTS)
        extra = f"Message-ID: <m{n}@x.org>\r\n"
        if n > 1 and self.rnd.random() < 0.5:  # a reply: the same thread as an earlier one
            parent = self.rnd.randrange(1, n)
            extra += f"In-Reply-To: <m{parent}@x.org>\r\nReferences: <m{parent}@x.org>\r\n"
        box = self.rnd.choice(["INBOX", "INBOX", "Other"])
        flags = tuple(f for f in ("\\Seen", "\\Flagged") if self.rnd.random() < 0.3)
        yield self.add(mime(subject, self.rnd.choice(BODIES) + f" number{n}",
                            sender=self.rnd.choice(["Zoe <z@x.org>", "adam@x.org"]),
                            extra=extra), box=box, flags=flags)

    @defer.inlineCallbacks
    def random_change(self) -> Any:
        kind = self.rnd.choice(["deliver", "flag", "unflag", "move", "delete"])
        box = self.boxes[self.rnd.choice(["INBOX", "Other"])]
        uids = yield self.mail.live_uids(box.id)
        if kind == "deliver" or not uids:
            yield self.deliver()
            return
        chosen = self.rnd.sample(uids, min(len(uids), self.rnd.randint(1, 2)))
        flag = self.rnd.choice(["\\Seen", "\\Flagged"])
        if kind == "flag":
            yield self.mail.set_flags(box.id, chosen, [flag], "add")
        elif kind == "unflag":
            yield self.mail.set_flags(box.id, chosen, [flag], "remove")
        elif kind == "move":
            other = self.boxes["Other" if box.name == "INBOX" else "INBOX"]
            yield self.mail.copy(box, chosen, other, move=True)
        else:
            yield self.mail.set_flags(box.id, chosen, ["\\Deleted"], "add")
            yield self.mail.expunge(box.id, chosen)

    QUERIES: list[dict[str, Any]] = [
        {},
        {"collapseThreads": True},
        {"filter": {"inMailbox": "INBOX"}, "collapseThreads": True,
         "sort": [{"property": "receivedAt", "isAscending": True}]},
        {"filter": {"text": "budget", "noneInThreadHaveKeyword": "$flagged"},
         "collapseThreads": True},
        {"filter": {"inMailbox": "INBOX"}},
        {"filter": {"notKeyword": "$seen"}, "sort": [{"property": "subject"},
                                                     {"property": "receivedAt"}]},
        {"filter": {"someInThreadHaveKeyword": "$flagged"}, "collapseThreads": True},
        {"filter": {"body": "budget"}, "sort": [{"property": "from"}]},
        {"sort": [{"property": "allInThreadHaveKeyword", "keyword": "$seen"},
                  {"property": "size", "isAscending": False}], "collapseThreads": True},
    ]

    def query(self, n: int) -> dict[str, Any]:
        args = dict(self.QUERIES[n])
        if "filter" in args and "inMailbox" in args["filter"]:
            args["filter"] = {"inMailbox": f"B{self.boxes['INBOX'].id}"}
        return args

    @defer.inlineCallbacks
    def test_changes_applied_to_the_old_results_give_the_new_ones(self) -> Any:
        for round_ in range(30):
            before = []
            for n in range(len(self.QUERIES)):
                response = yield self.call("Email/query", self.query(n))
                before.append(response)
            for _ in range(self.rnd.randint(1, 4)):
                yield self.random_change()
            # The standing date order (no sort per query) equals a full sort, ties included
            # (messages of one second are common here).
            for ascending in (True, False):
                fast = yield self.call("Email/query", {"sort": [
                    {"property": "receivedAt", "isAscending": ascending}]})
                full = yield self.call("Email/query", {"sort": [
                    {"property": "receivedAt", "isAscending": ascending},
                    {"property": "hasKeyword", "keyword": "nothing", "isAscending": ascending}]})
                self.assertEqual(fast["ids"], full["ids"])
            fresh_ids = []
            for n, old in enumerate(before):
                fresh = yield self.call("Email/query", {**self.query(n),
                                                        "calculateTotal": True})
                fresh_ids.append(fresh["ids"])
                changes = yield self.call("Email/queryChanges", {
                    **self.query(n), "sinceQueryState": old["queryState"],
                    "calculateTotal": True})
                self.assertEqual(changes["oldQueryState"], old["queryState"])
                self.assertEqual(changes["newQueryState"], fresh["queryState"])
                self.assertEqual(changes["total"], fresh["total"])
                self.assertEqual(apply_changes(old["ids"], changes["removed"],
                                               changes["added"]),
                                 fresh["ids"], (round_, self.QUERIES[n]))
            # The cached results brought up to date equal results computed afresh.
            self.service.query_indexes.get(self.mail.user.id).results.clear()
            for n, expected in enumerate(fresh_ids):
                again = yield self.call("Email/query", self.query(n))
                self.assertEqual(again["ids"], expected, (round_, self.QUERIES[n]))

    @defer.inlineCallbacks
    def test_no_change_means_empty_lists_and_the_same_state(self) -> Any:
        old = yield self.call("Email/query", {})
        changes = yield self.call("Email/queryChanges", {"sinceQueryState": old["queryState"]})
        self.assertEqual((changes["removed"], changes["added"], changes["newQueryState"]),
                         ([], [], old["queryState"]))

    @defer.inlineCallbacks
    def test_max_changes_and_unknown_or_pruned_states(self) -> Any:
        old = yield self.call("Email/query", {})
        yield self.deliver()
        yield self.deliver()
        error = yield self.error("Email/queryChanges", {"sinceQueryState": old["queryState"],
                                                        "maxChanges": 1})
        self.assertEqual(error.kind, "tooManyChanges")
        changes = yield self.call("Email/queryChanges", {"sinceQueryState": old["queryState"],
                                                         "maxChanges": 4})
        self.assertEqual(len(changes["added"]), 2)
        for bad in ("nonsense", "99999999", "-1"):
            error = yield self.error("Email/queryChanges", {"sinceQueryState": bad})
            self.assertEqual(error.kind, "cannotCalculateChanges", bad)
        error = yield self.error("Email/queryChanges", {"sinceQueryState": "0",
                                                        "maxChanges": 0})
        self.assertEqual(error.kind, "invalidArguments")
        # History purged past the state: only then is it impossible.
        state = int(old["queryState"])
        run_sync(self.engine, mailstate.raise_floor, self.mail.user.id, state + 1, write=True)
        error = yield self.error("Email/queryChanges", {"sinceQueryState": old["queryState"]})
        self.assertEqual(error.kind, "cannotCalculateChanges")

    @defer.inlineCallbacks
    def test_up_to_id_omits_changes_after_it_for_immutable_queries(self) -> Any:
        sort = [{"property": "receivedAt", "isAscending": True}]
        old = yield self.call("Email/query", {"sort": sort})
        yield self.deliver()  # lands at the end
        changes = yield self.call("Email/queryChanges", {
            "sort": sort, "sinceQueryState": old["queryState"], "upToId": old["ids"][2]})
        self.assertEqual(changes["added"], [])
        changes = yield self.call("Email/queryChanges", {
            "sort": sort, "sinceQueryState": old["queryState"]})
        self.assertEqual([a["index"] for a in changes["added"]], [len(old["ids"])])
        # A mutable condition: upToId is ignored.
        changes = yield self.call("Email/queryChanges", {
            "sort": sort, "filter": {"notKeyword": "$draft"},
            "sinceQueryState": old["queryState"], "upToId": old["ids"][2]})
        self.assertEqual(len(changes["added"]), 1)

    @defer.inlineCallbacks
    def test_deleting_a_mailbox_is_a_change_not_a_failure(self) -> Any:
        old = yield self.call("Email/query", {})
        yield self.mail.delete_mailbox("Other")
        fresh = yield self.call("Email/query", {})
        changes = yield self.call("Email/queryChanges", {"sinceQueryState": old["queryState"]})
        self.assertEqual(apply_changes(old["ids"], changes["removed"], changes["added"]),
                         fresh["ids"])
        self.assertLess(len(fresh["ids"]), len(old["ids"]))



class QueryChangesTests(SQLiteDatabaseMixin, QueryChangesMixin, unittest.TestCase):
    pass


class QueryChangesPostgresTests(PostgresDatabaseMixin, QueryChangesMixin, unittest.TestCase):
    pass
