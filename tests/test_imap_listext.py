"""LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and the SPECIAL-USE selection (RFC 6154):
the selection as a table over the RFC 5258 §5 example hierarchy, then the commands through
imaplib and IMAPClient against the listener."""

from __future__ import annotations

from typing import Any

from imapclient.response_parser import parse_response
from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.imap.errors import ImapError
from mailgosend.imap.listext import ListEntry, extended_list, parse_list
from mailgosend.imap.tokens import Args, tokenize
from mailgosend.store.mailboxes import Mailbox
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import IMAPFixture, message

STATUS_ITEMS = ("MESSAGES", "UNSEEN", "SIZE", "RECENT")


def box(name: str, special_use: Any = None) -> Mailbox:
    return Mailbox(hash(name) % 1000, 1, name, special_use, 1, 1, 1, True)


# RFC 5258 §5: Fruit/Peach is subscribed but does not exist; Fruit is not subscribed.
BOXES = [box("INBOX"), box("Fruit"), box("Fruit/Apple"), box("Fruit/Banana"), box("Tofu"),
         box("Vegetable"), box("Vegetable/Broccoli"), box("Vegetable/Corn"),
         box("Sent", "\\Sent"), box("Archive", "\\Archive"), box("Archive/2025"),
         box("Lists"), box("Lists/Junk", "\\Junk")]
SUBSCRIBED = {"INBOX", "Fruit/Banana", "Fruit/Peach", "Vegetable", "Vegetable/Broccoli"}


def request(text: str) -> Any:
    return parse_list(Args(tokenize([text.encode("utf-8")])), STATUS_ITEMS)


def listing(text: str) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    return [(e.name, e.attributes, e.childinfo)
            for e in extended_list(BOXES, SUBSCRIBED, request(text))]


HAS, NO = "\\HasChildren", "\\HasNoChildren"
SUB, NONE = "\\Subscribed", "\\NonExistent"

CASES = [
    # The example of RFC 5258 §5 (example 8), with \HasChildren/\HasNoChildren always given.
    ('(SUBSCRIBED) "" "*"',
     [("INBOX", (NO, SUB), ()), ("Fruit/Banana", (NO, SUB), ()), ("Fruit/Peach", (NONE, SUB), ()),
      ("Vegetable", (HAS, SUB), ()), ("Vegetable/Broccoli", (NO, SUB), ())]),
    ('(SUBSCRIBED RECURSIVEMATCH) "" "%"',
     [("INBOX", (NO, SUB), ()), ("Fruit", (HAS,), ("SUBSCRIBED",)),
      ("Vegetable", (HAS, SUB), ("SUBSCRIBED",))]),
    ('(SUBSCRIBED RECURSIVEMATCH) "" "*"',  # every subscribed name is reached: no CHILDINFO
     [("INBOX", (NO, SUB), ()), ("Fruit/Banana", (NO, SUB), ()), ("Fruit/Peach", (NONE, SUB), ()),
      ("Vegetable", (HAS, SUB), ()), ("Vegetable/Broccoli", (NO, SUB), ())]),
    ('(SUBSCRIBED) "" "%"',  # without RECURSIVEMATCH, Fruit is not subscribed: not listed
     [("INBOX", (NO, SUB), ()), ("Vegetable", (HAS, SUB), ())]),
    ('(SUBSCRIBED REMOTE) "Fruit/" "%"',
     [("Fruit/Banana", (NO, SUB), ()), ("Fruit/Peach", (NONE, SUB), ())]),
    ('(SPECIAL-USE) "" "*"',  # RFC 6154 §3
     [("Archive", (HAS, "\\Archive"), ()), ("Lists/Junk", (NO, "\\Junk"), ()),
      ("Sent", (NO, "\\Sent"), ())]),
    ('(SPECIAL-USE RECURSIVEMATCH) "" "%"',
     [("Archive", (HAS, "\\Archive"), ()), ("Lists", (HAS,), ("SPECIAL-USE",)),
      ("Sent", (NO, "\\Sent"), ())]),
    ('() "" ("Tofu" "Vegetable/%" "Tofu") RETURN (SUBSCRIBED CHILDREN)',  # several patterns
     [("Tofu", (NO,), ()), ("Vegetable/Broccoli", (NO, SUB), ()), ("Vegetable/Corn", (NO,), ())]),
    ('"" "%" RETURN (SPECIAL-USE)',
     [("INBOX", (NO,), ()), ("Archive", (HAS, "\\Archive"), ()), ("Fruit", (HAS,), ()),
      ("Lists", (HAS,), ()), ("Sent", (NO, "\\Sent"), ()), ("Tofu", (NO,), ()),
      ("Vegetable", (HAS,), ())]),
    ('"" "inbox" RETURN ()', [("INBOX", (NO,), ())]),
]


class SelectionTests(unittest.TestCase):
    def test_table(self) -> None:
        for text, expected in CASES:
            self.assertEqual(listing(text), expected, text)

    def test_parsing(self) -> None:
        parsed = request('(SUBSCRIBED) "" ("a" "b") RETURN (CHILDREN STATUS (MESSAGES SIZE))')
        self.assertEqual(parsed.selection, {"SUBSCRIBED"})
        self.assertEqual(parsed.returns, {"SUBSCRIBED", "CHILDREN", "STATUS"})
        self.assertEqual(parsed.status_items, ("MESSAGES", "SIZE"))
        self.assertEqual(parsed.patterns, ("a", "b"))
        self.assertTrue(parsed.extended)
        self.assertFalse(request('"" "*"').extended)
        refused = [
            ('(RECURSIVEMATCH) "" "*"', "RECURSIVEMATCH needs another selection option"),
            ('(REMOTE RECURSIVEMATCH) "" "*"', "RECURSIVEMATCH needs another selection option"),
            ('(BOGUS) "" "*"', "Unsupported LIST selection option BOGUS"),
            ('"" "*" RETURN (BOGUS)', "Unsupported LIST return option BOGUS"),
            ('"" "*" RETURN (STATUS)', "Expected STATUS (items)"),
            ('"" "*" RETURN (STATUS (FOO))', "STATUS items must be among"),
            ('"" "*" RETURN (STATUS ())', "STATUS items must be among"),
            ('"" () ', "Expected at least one mailbox pattern"),
            ('"" "*" RETURNS ()', "Expected RETURN"),
        ]
        for text, error in refused:
            with self.assertRaises(ImapError, msg=text) as caught:
                request(text)
            self.assertEqual(caught.exception.status, "BAD", text)
            self.assertIn(error, caught.exception.text, text)

    def test_entry_without_mailbox_is_not_selectable(self) -> None:
        entries = {e.name: e for e in extended_list(BOXES, SUBSCRIBED,
                                                    request('(SUBSCRIBED) "" "*"'))}
        self.assertFalse(entries["Fruit/Peach"].selectable)
        self.assertTrue(entries["Fruit/Banana"].selectable)
        self.assertIsInstance(entries["INBOX"], ListEntry)


class ListExtendedClientTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_list_status_and_selection_through_imaplib(self) -> Any:
        raws = [message(f"m{i}", "x" * (50 * i) + "\r\n") for i in range(1, 4)]
        for i, raw in enumerate(raws):
            yield self.deliver(raw, flags=("\\Seen",) if i == 0 else ())
        yield self.listen()

        def scenario(client: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            out["caps"] = client.capability()[1][0].split()
            for name in ("Fruit/Apple", "Fruit/Banana", "Vegetable/Broccoli", "Tofu"):
                assert client.create(name)[0] == "OK"
            for name in ("Fruit", "Fruit/Apple", "Tofu", "Vegetable"):
                client.unsubscribe(name)  # whether CREATE subscribed them or not
            for name in ("INBOX", "Fruit/Banana", "Vegetable/Broccoli"):
                assert client.subscribe(name)[0] == "OK"
            assert client.append("Fruit/Banana", None, None, raws[0])[0] == "OK"
            typ, data = client._simple_command(
                "LIST", '(SUBSCRIBED RECURSIVEMATCH) ""', '"%" RETURN (STATUS (MESSAGES UNSEEN '
                'SIZE))')
            out["recursive"] = (typ, client.untagged_responses.pop("LIST", []),
                                client.untagged_responses.pop("STATUS", []))
            typ, data = client._simple_command(
                "LIST", '""', '("INBOX" "Fruit/*") RETURN (SUBSCRIBED STATUS (MESSAGES SIZE))')
            out["patterns"] = (typ, client.untagged_responses.pop("LIST", []),
                               client.untagged_responses.pop("STATUS", []))
            typ, data = client._simple_command("LIST", '(SPECIAL-USE) ""', '"*"')
            out["special"] = (typ, client.untagged_responses.pop("LIST", []))
            try:
                client._simple_command("LIST", '(RECURSIVEMATCH) ""', '"*"')
            except client.error as exc:
                out["bad"] = str(exc)
            return out

        def run() -> Any:
            client = self.imaplib_client()
            try:
                return scenario(client)
            finally:
                client.logout()

        out = yield self.in_thread(run)
        self.assertIn(b"LIST-EXTENDED", out["caps"])
        self.assertIn(b"LIST-STATUS", out["caps"])
        typ, lists, statuses = out["recursive"]
        self.assertEqual(typ, "OK")
        parsed = [parse_response([line]) for line in lists]
        by_name = {name_of(p): p for p in parsed}
        self.assertIn("INBOX", by_name, (lists, statuses))
        self.assertEqual(by_name["INBOX"][0], (b"\\HasNoChildren", b"\\Subscribed"))
        self.assertEqual(by_name["Fruit"][0], (b"\\HasChildren",))
        self.assertEqual(by_name["Fruit"][3:], ((b"CHILDINFO", (b"SUBSCRIBED",)),))
        self.assertEqual(by_name["Vegetable"][3:], ((b"CHILDINFO", (b"SUBSCRIBED",)),))
        self.assertNotIn("Tofu", by_name)
        # RFC 5819: a STATUS for each selectable mailbox listed, right after its LIST.
        inbox_size = sum(len(r) for r in raws)
        names = [line.split(b" (")[0] for line in statuses]
        self.assertEqual(names, [parse_line_name(line) for line in lists
                                 if b"\\NonExistent" not in line])
        self.assertIn(b'"INBOX" (MESSAGES 3 UNSEEN 2 SIZE %d)' % inbox_size, statuses)
        self.assertIn(b'"Fruit" (MESSAGES 0 UNSEEN 0 SIZE 0)', statuses)
        typ, lists, statuses = out["patterns"]
        self.assertEqual([name_of(parse_response([line])) for line in lists],
                         ["INBOX", "Fruit/Apple", "Fruit/Banana"])
        self.assertIn(b"\\Subscribed", lists[2])
        self.assertNotIn(b"\\Subscribed", lists[1])
        self.assertEqual(statuses, [b'"INBOX" (MESSAGES 3 SIZE %d)' % inbox_size,
                                    b'"Fruit/Apple" (MESSAGES 0 SIZE 0)',
                                    b'"Fruit/Banana" (MESSAGES 1 SIZE %d)' % len(raws[0])])
        typ, lists = out["special"]
        self.assertEqual(sorted(name_of(parse_response([line])) for line in lists),
                         ["Archive", "Drafts", "Sent", "Spam", "Trash"])
        self.assertIn("BAD", out["bad"])
        self.assertIn("RECURSIVEMATCH needs another selection option", out["bad"])

    @defer.inlineCallbacks
    def test_imapclient_folders_and_special_use_still_work(self) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.imapclient_client)
        self.addCleanup(self.in_thread, client.logout)
        yield self.in_thread(client.create_folder, "Projekte/Entwürfe")
        folders = yield self.in_thread(client.list_folders)
        names = {name: flags for flags, _, name in folders}
        self.assertEqual(names["Projekte/Entwürfe"], (b"\\HasNoChildren",))
        from imapclient.imapclient import SENT
        self.assertEqual((yield self.in_thread(client.find_special_folder, SENT)), "Sent")


def name_of(parsed: Any) -> str:
    name = parsed[2]
    return name.decode("ascii") if isinstance(name, bytes) else name


def parse_line_name(line: bytes) -> bytes:
    return line.rsplit(b' "/" ', 1)[1].split(b" (")[0]
