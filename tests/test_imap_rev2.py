"""IMAP4rev2 (RFC 9051) beside IMAP4rev1: the rules of rev2.py as tables, then the wire with a
line-level client (every byte the server sends is checked) and imaplib, which speaks rev1 but
sends ENABLE and raw commands.  Sessions that do not enable IMAP4rev2 keep rev1 behaviour."""

from __future__ import annotations

import unicodedata
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.imap.errors import ImapError
from mailgosend.imap.rev2 import (check_net_unicode, oldname_item, reject_removed_keys,
                                  status_items)
from mailgosend.imap.search import parse_search
from mailgosend.imap.tokens import Atom
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import ALICE, PASSWORD, IMAPFixture, RawClient, message

REV1_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UNSEEN", "SIZE")


class RulesTests(unittest.TestCase):
    def test_status_items(self) -> None:
        self.assertEqual(status_items(REV1_ITEMS, rev2=False), REV1_ITEMS)
        self.assertEqual(status_items(REV1_ITEMS, rev2=True),
                         ("MESSAGES", "UIDNEXT", "UNSEEN", "SIZE", "DELETED"))

    def test_removed_search_keys(self) -> None:
        refused = [["NEW"], ["old"], ["RECENT"], ["NOT", "NEW"], ["OR", "SEEN", "RECENT"],
                   [["SEEN", ["NEW"]]]]
        allowed = [["ALL"], ["SEEN", "UNSEEN"], ["SUBJECT", "new"], ["OR", "DRAFT", "DELETED"],
                   ["KEYWORD", "NEW"]]

        def tokens(words: list[Any]) -> list[Any]:
            return [tokens(w) if isinstance(w, list) else Atom(w) for w in words]

        for words in refused:
            with self.assertRaises(ImapError, msg=words) as caught:
                reject_removed_keys(parse_search(tokens(words)))
            self.assertEqual(caught.exception.status, "BAD")
        for words in allowed:
            reject_removed_keys(parse_search(tokens(words)))

    def test_oldname_item(self) -> None:
        cases = [("INBOX", "INBOX", b""), ("Archiv/", "Archiv", b""), ("Archiv", "Archiv", b""),
                 ("inbox", "INBOX", b' ("OLDNAME" ("inbox"))'),
                 ("Inbox/Entwürfe", "INBOX/Entwürfe",
                  ' ("OLDNAME" ("Inbox/Entwürfe"))'.encode())]
        for supplied, name, expected in cases:
            self.assertEqual(oldname_item(supplied, name), expected, supplied)

    def test_net_unicode_names(self) -> None:
        for name in ("INBOX", "Entwürfe", "日本語/メール", "Tom & Jerry"):
            check_net_unicode(name)
        for name in (unicodedata.normalize("NFD", "Entwürfe"), "a\tb", "a\x7fb"):
            with self.assertRaises(ImapError, msg=name) as caught:
                check_net_unicode(name)
            self.assertEqual((caught.exception.status, caught.exception.code), ("NO", "CANNOT"))


def _untagged(lines: list[bytes]) -> list[bytes]:
    return [line.rstrip(b"\r\n") for line in lines if line.startswith(b"* ")]


class Rev2WireTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    """A line-level client: the exact responses of a rev2 session, and of a rev1 one."""

    def session(self, rev2: bool = True) -> RawClient:
        client = self.raw()
        client.command(b"l", b"LOGIN %s %s" % (ALICE.encode(), PASSWORD.encode()))
        if rev2:
            lines = client.command(b"e", b"ENABLE IMAP4rev2")
            assert _untagged(lines) == [b"* ENABLED IMAP4rev2"], lines
        return client

    @defer.inlineCallbacks
    def test_capability_lists_both_before_and_after_enable(self) -> Any:
        yield self.listen()

        def scenario() -> dict[str, Any]:
            client = self.raw()
            try:
                out = {"greeting": client.greeting,
                       "before": _untagged(client.command(b"a", b"CAPABILITY"))}
                client.command(b"l", b"LOGIN %s %s" % (ALICE.encode(), PASSWORD.encode()))
                out["enable"] = client.command(b"e", b"ENABLE IMAP4rev2 CONDSTORE")
                out["again"] = client.command(b"f", b"ENABLE IMAP4rev2")
                out["auth"] = _untagged(client.command(b"b", b"CAPABILITY"))
                return out
            finally:
                client.close()

        out = yield self.in_thread(scenario)
        self.assertIn(b" IMAP4rev1 IMAP4rev2 ", out["greeting"])
        self.assertIn(b" IMAP4rev2 ", out["before"][0])
        self.assertEqual(out["enable"], [b"* ENABLED CONDSTORE IMAP4rev2\r\n",
                                         b"e OK ENABLE completed\r\n"])
        # RFC 9051 §6.3.1: an ENABLED response names only what this command enabled.
        self.assertEqual(out["again"], [b"* ENABLED\r\n", b"f OK ENABLE completed\r\n"])
        self.assertIn(b" IMAP4rev2 ", out["auth"][0])

    @defer.inlineCallbacks
    def test_select_has_list_and_no_recent_or_unseen(self) -> Any:
        yield self.deliver(message("one"), flags=("\\Seen",))
        yield self.deliver(message("two"))
        yield self.listen()

        def scenario() -> dict[str, Any]:
            client = self.session()
            try:
                return {"select": client.command(b"s", b"SELECT inbox"),
                        "create": client.command(b"c", b"CREATE inbox/Alt"),
                        "plain": client.command(b"d", b"CREATE Projekte/"),
                        "rename": client.command(b"r", b"RENAME Inbox/Alt Inbox/Neu"),
                        "examine": client.command(b"x", b"EXAMINE Sent"),
                        "fetch": _untagged(client.command(b"x2", b"FETCH 1:* FLAGS")),
                        "unselect": client.command(b"u", b"UNSELECT")}
            finally:
                client.close()

        out = yield self.in_thread(scenario)
        box = self.mailbox("INBOX")
        self.assertEqual(out["select"], [
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
            b"* 2 EXISTS\r\n",
            b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]"
            b" Limited\r\n",
            b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % box.uidvalidity,
            b"* OK [UIDNEXT 3] Predicted next UID\r\n",
            b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % box.highestmodseq,
            # RFC 9051 §6.3.9.7 (and the §8 sample): the name as the client wrote it.
            b'* LIST (\\HasNoChildren) "/" "INBOX" ("OLDNAME" ("inbox"))\r\n',
            b"s OK [READ-WRITE] SELECT completed\r\n"])
        self.assertEqual(out["create"], [
            b'* LIST (\\HasNoChildren) "/" "INBOX/Alt" ("OLDNAME" ("inbox/Alt"))\r\n',
            b"c OK CREATE completed\r\n"])
        self.assertEqual(out["plain"], [b"d OK CREATE completed\r\n"])
        self.assertEqual(out["rename"], [
            b'* LIST (\\HasNoChildren) "/" "INBOX/Neu" ("OLDNAME" ("Inbox/Alt"))\r\n',
            b"r OK RENAME completed\r\n"])
        # Switching mailboxes closes the first one (RFC 9051 §6.3.2); EXAMINE lists too.
        self.assertEqual(out["examine"][0], b"* OK [CLOSED] Previous mailbox closed\r\n")
        self.assertIn(b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n', out["examine"])
        self.assertFalse([line for line in out["examine"] if b"RECENT" in line])
        self.assertEqual(out["fetch"], [])
        self.assertEqual(out["unselect"], [b"u OK UNSELECT completed\r\n"])

    @defer.inlineCallbacks
    def test_rev1_session_keeps_recent_and_unseen(self) -> Any:
        yield self.deliver(message("one"), flags=("\\Seen",))
        yield self.deliver(message("two"))
        yield self.listen()

        def scenario() -> dict[str, Any]:
            rev2 = self.session()
            try:  # a rev2 session first: it must not take \Recent away from rev1 ones
                rev2_lines = _untagged(rev2.command(b"s", b"SELECT INBOX"))
                rev2_fetch = _untagged(rev2.command(b"f", b"FETCH 1:* FLAGS"))
            finally:
                rev2.close()
            rev1 = self.session(rev2=False)
            try:
                return {"rev2": rev2_lines, "rev2 fetch": rev2_fetch,
                        "rev1": _untagged(rev1.command(b"s", b"SELECT INBOX")),
                        "rev1 fetch": _untagged(rev1.command(b"f", b"FETCH 1:* FLAGS")),
                        "rev1 search": _untagged(rev1.command(b"n", b"SEARCH RECENT")),
                        "rev1 status": rev1.command(b"t", b"STATUS INBOX (RECENT)")}
            finally:
                rev1.close()

        out = yield self.in_thread(scenario)
        self.assertFalse([line for line in out["rev2"] if b"RECENT" in line or b"UNSEEN" in line])
        self.assertEqual(out["rev2 fetch"], [b"* 1 FETCH (FLAGS (\\Seen))",
                                             b"* 2 FETCH (FLAGS ())"])
        self.assertIn(b"* 2 RECENT", out["rev1"])
        self.assertIn(b"* OK [UNSEEN 2] First unseen", out["rev1"])
        self.assertFalse([line for line in out["rev1"] if line.startswith(b"* LIST")])
        self.assertEqual(out["rev1 fetch"], [b"* 1 FETCH (FLAGS (\\Seen \\Recent))",
                                             b"* 2 FETCH (FLAGS (\\Recent))"])
        self.assertEqual(out["rev1 search"], [b"* SEARCH 1 2"])
        self.assertEqual(out["rev1 status"][-1], b"t OK STATUS completed\r\n")

    @defer.inlineCallbacks
    def test_search_answers_esearch(self) -> Any:
        yield self.deliver(message("one"), flags=("\\Seen",))
        yield self.deliver(message("two"))
        yield self.deliver(message("three"))
        yield self.listen()

        def scenario() -> dict[str, Any]:
            client = self.session()
            try:
                client.command(b"s", b"SELECT INBOX")
                return {name: client.command(tag, text) for name, tag, text in [
                    ("all", b"a1", b"SEARCH ALL"),
                    ("uid", b"a2", b"UID SEARCH UNSEEN"),
                    ("none", b"a3", b"SEARCH SUBJECT nowhere"),
                    ("charset", b"a4", b"SEARCH CHARSET UTF-8 SUBJECT two"),
                    ("return", b"a5", b"SEARCH RETURN (MIN COUNT) UNSEEN"),
                    ("save", b"a6", b"SEARCH RETURN (SAVE) SEEN"),
                    ("saved", b"a7", b"UID SEARCH $"),
                    ("new", b"b1", b"SEARCH NEW"),
                    ("old", b"b2", b"SEARCH NOT OLD"),
                    ("recent", b"b3", b"UID SEARCH OR RECENT SEEN")]}
            finally:
                client.close()

        out = yield self.in_thread(scenario)
        self.assertEqual(out["all"], [b'* ESEARCH (TAG "a1") ALL 1:3\r\n',
                                      b"a1 OK SEARCH completed\r\n"])
        self.assertEqual(out["uid"], [b'* ESEARCH (TAG "a2") UID ALL 2:3\r\n',
                                      b"a2 OK SEARCH completed\r\n"])
        # RFC 9051 §6.4.4: no match still gets an ESEARCH response, without ALL.
        self.assertEqual(out["none"], [b'* ESEARCH (TAG "a3")\r\n',
                                       b"a3 OK SEARCH completed\r\n"])
        self.assertEqual(out["charset"][0], b'* ESEARCH (TAG "a4") ALL 2\r\n')
        self.assertEqual(out["return"][0], b'* ESEARCH (TAG "a5") MIN 2 COUNT 2\r\n')
        self.assertEqual(out["save"], [b"a6 OK SEARCH completed\r\n"])
        self.assertEqual(out["saved"][0], b'* ESEARCH (TAG "a7") UID ALL 1\r\n')
        for name, tag in (("new", b"b1"), ("old", b"b2"), ("recent", b"b3")):
            self.assertEqual(len(out[name]), 1, out[name])
            self.assertTrue(out[name][0].startswith(tag + b" BAD "), out[name])

    @defer.inlineCallbacks
    def test_status_deleted_size_and_no_recent(self) -> Any:
        first = message("one")
        yield self.deliver(first, flags=("\\Deleted", "\\Seen"))
        yield self.deliver(message("two"), flags=("\\Deleted",))
        yield self.deliver(message("three"))
        yield self.listen()
        size = sum(row.size for row in self.rows("INBOX"))

        def scenario() -> dict[str, Any]:
            rev2, rev1 = self.session(), self.session(rev2=False)
            try:
                return {
                    "status": rev2.command(b"t", b"STATUS INBOX (MESSAGES DELETED SIZE UNSEEN)"),
                    "recent": rev2.command(b"r", b"STATUS INBOX (MESSAGES RECENT)"),
                    "list": rev2.command(b"l", b'LIST "" INBOX RETURN (STATUS (DELETED))'),
                    "list recent": rev2.command(b"m", b'LIST "" INBOX RETURN (STATUS (RECENT))'),
                    "rev1": rev1.command(b"t", b"STATUS INBOX (RECENT MESSAGES)"),
                    "rev1 deleted": rev1.command(b"u", b"STATUS INBOX (DELETED)")}
            finally:
                rev2.close()
                rev1.close()

        out = yield self.in_thread(scenario)
        self.assertEqual(out["status"], [
            b'* STATUS "INBOX" (MESSAGES 3 DELETED 2 SIZE %d UNSEEN 2)\r\n' % size,
            b"t OK STATUS completed\r\n"])
        self.assertEqual(len(out["recent"]), 1)
        self.assertTrue(out["recent"][0].startswith(b"r BAD "), out["recent"])
        self.assertEqual(out["list"], [b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n',
                                       b'* STATUS "INBOX" (DELETED 2)\r\n',
                                       b"l OK LIST completed\r\n"])
        self.assertTrue(out["list recent"][-1].startswith(b"m BAD "), out["list recent"])
        self.assertEqual(out["rev1"], [b'* STATUS "INBOX" (RECENT 3 MESSAGES 3)\r\n',
                                       b"t OK STATUS completed\r\n"])
        self.assertTrue(out["rev1 deleted"][0].startswith(b"u BAD "), out["rev1 deleted"])

    @defer.inlineCallbacks
    def test_mailbox_names_and_delete_with_children(self) -> Any:
        yield self.deliver(message("one"))
        yield self.listen()
        nfd = unicodedata.normalize("NFD", "Entwürfe").encode("utf-8")

        def scenario() -> dict[str, Any]:
            rev2, rev1 = self.session(), self.session(rev2=False)
            try:
                return {
                    "create": rev2.command(b"c1", 'CREATE "Entwürfe/Alt"'.encode("utf-8")),
                    "nfd": rev2.command(b"c2", b'CREATE "' + nfd + b'"'),
                    "rename nfd": rev2.command(b"c3", b'RENAME "Entw\xc3\xbcrfe/Alt" "'
                                               + nfd + b'2"'),
                    "list": rev2.command(b"l", b'LIST "" "Entw*"'),
                    "rev1 list": rev1.command(b"l", b'LIST "" "Entw*"'),
                    "select": rev2.command(b"s", b'SELECT "Entw\xc3\xbcrfe"'),
                    "delete": rev2.command(b"d", b'DELETE "Entw\xc3\xbcrfe"'),
                    "rev1 delete": rev1.command(b"d", b'DELETE "Entw&APw-rfe"'),
                    "inbox": rev2.command(b"i", b"SELECT INBOX"),
                    "copy": rev2.command(b"k", b'COPY 1 "Nirgends"'),
                }
            finally:
                rev2.close()
                rev1.close()

        out = yield self.in_thread(scenario)
        self.assertEqual(out["create"], [b"c1 OK CREATE completed\r\n"])
        self.assertTrue(out["nfd"][0].startswith(b"c2 NO [CANNOT] "), out["nfd"])
        self.assertTrue(out["rename nfd"][0].startswith(b"c3 NO [CANNOT] "), out["rename nfd"])
        self.assertEqual(out["list"], ['* LIST (\\HasChildren) "/" "Entwürfe"\r\n'.encode(),
                                       '* LIST (\\HasNoChildren) "/" "Entwürfe/Alt"\r\n'.encode(),
                                       b"l OK LIST completed\r\n"])
        self.assertEqual(out["rev1 list"][0], b'* LIST (\\HasChildren) "/" "Entw&APw-rfe"\r\n')
        self.assertIn('* LIST (\\HasChildren) "/" "Entwürfe"\r\n'.encode(), out["select"])
        # RFC 9051 §6.3.5: HASCHILDREN for rev2; rev1 sessions keep INUSE.
        self.assertTrue(out["delete"][0].startswith(b"d NO [HASCHILDREN] "), out["delete"])
        self.assertTrue(out["rev1 delete"][0].startswith(b"d NO [INUSE] "), out["rev1 delete"])
        # RFC 9051 §9 text: non-ASCII only after ENABLE IMAP4rev2 (RFC 3501's TEXT-CHAR before).
        self.assertIn("Entwürfe".encode(), out["delete"][0])
        self.assertTrue(out["rev1 delete"][0].isascii(), out["rev1 delete"])
        # RFC 9051 §6.4.7: no target mailbox is created; TRYCREATE says it could be.
        self.assertTrue(out["copy"][-1].startswith(b"k NO [TRYCREATE] "), out["copy"])

    @defer.inlineCallbacks
    def test_new_mail_while_selected(self) -> Any:
        yield self.deliver(message("one"))
        yield self.listen()

        def select() -> tuple[RawClient, RawClient]:
            rev2, rev1 = self.session(), self.session(rev2=False)
            rev2.command(b"s", b"SELECT INBOX")
            rev1.command(b"s", b"SELECT INBOX")
            return rev2, rev1

        rev2, rev1 = yield self.in_thread(select)
        try:
            yield self.deliver(message("two"))

            def noop() -> dict[str, Any]:
                out = {"rev2": rev2.command(b"n", b"NOOP"), "rev1": rev1.command(b"n", b"NOOP"),
                       "fetch": rev2.command(b"f", b"FETCH 2 FLAGS")}
                rev1.command(b"t", b"STORE 1 +FLAGS.SILENT (\\Flagged)")
                out["flags"] = rev2.command(b"o", b"NOOP")
                return out

            out = yield self.in_thread(noop)
        finally:
            rev2.close()
            rev1.close()
        self.assertEqual(out["rev2"], [b"* 2 EXISTS\r\n", b"n OK NOOP completed\r\n"])
        # \Recent goes to the rev1 session, which rev2 sessions no longer take it from.
        self.assertEqual(out["rev1"], [b"* 2 EXISTS\r\n", b"* 2 RECENT\r\n",
                                       b"n OK NOOP completed\r\n"])
        self.assertEqual(out["fetch"][0], b"* 2 FETCH (FLAGS ())\r\n")
        # RFC 9051 §7.5.2: an unsolicited FETCH carries the UID.
        uid = self.rows("INBOX")[0].uid
        self.assertEqual(out["flags"], [b"* 1 FETCH (FLAGS (\\Flagged) UID %d)\r\n" % uid,
                                        b"o OK NOOP completed\r\n"])


class Rev2ImaplibTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    """imaplib, a real client: it sends ENABLE and raw commands and parses what comes back."""

    @defer.inlineCallbacks
    def test_imaplib_session(self) -> Any:
        yield self.deliver(message("Grüße", "hallo\r\n"))
        yield self.deliver(message("Other"), flags=("\\Flagged",))
        yield self.listen()

        def scenario() -> dict[str, Any]:
            client = self.imaplib_client()
            out: dict[str, Any] = {}
            try:
                out["caps"] = client.capabilities
                out["enable"] = client._simple_command("ENABLE", "IMAP4rev2")
                out["enabled"] = client.untagged_responses.pop("ENABLED", None)
                client._encoding = "utf-8"  # rev2 names are UTF-8 (RFC 9051 §5.1)
                out["create"] = client.create('"Gesendete Objekte/Entwürfe"')
                out["select"] = client.select("INBOX")
                out["list"] = client.untagged_responses.pop("LIST", None)
                out["recent"] = client.untagged_responses.pop("RECENT", None)
                typ, data = client._simple_command("UID", "SEARCH", "FLAGGED")
                out["search"] = (typ, client.untagged_responses.pop("ESEARCH", None),
                                 client.untagged_responses.pop("SEARCH", None))
                out["fetch"] = client.fetch("1:*", "(FLAGS)")
                out["status"] = client.status('"Gesendete Objekte/Entwürfe"',
                                              "(MESSAGES DELETED)")
            finally:
                client.logout()
            return out

        out = yield self.in_thread(scenario)
        self.assertIn("IMAP4REV2", out["caps"])
        self.assertEqual(out["enable"][0], "OK")
        self.assertEqual(out["enabled"], [b"IMAP4rev2"])
        self.assertEqual(out["create"][0], "OK")
        self.assertEqual(out["select"], ("OK", [b"2"]))
        self.assertEqual(out["list"], [b'(\\HasNoChildren) "/" "INBOX"'])
        self.assertIsNone(out["recent"])
        uid = self.rows("INBOX")[1].uid
        self.assertEqual(out["search"], ("OK", [b'(TAG "%s") UID ALL %d' % (
            out["search"][1][0].split(b'"')[1], uid)], None))
        self.assertEqual(out["fetch"], ("OK", [b"1 (FLAGS ())", b"2 (FLAGS (\\Flagged))"]))
        self.assertEqual(out["status"][1],
                         ['"Gesendete Objekte/Entwürfe" (MESSAGES 0 DELETED 0)'.encode()])



class Rev2IMAPClientTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    """IMAPClient, a second real client: ENABLE IMAP4rev2, then its own SELECT, STATUS and
    FETCH parsers read the rev2 responses."""

    @defer.inlineCallbacks
    def test_imapclient_session(self) -> Any:
        yield self.deliver(message("one"), flags=("\\Deleted",))
        yield self.deliver(message("two"))
        yield self.listen()

        def scenario() -> dict[str, Any]:
            client = self.imapclient_client()
            client.use_uid = False  # sequence numbers: its UID SEARCH expects rev1 responses
            try:
                return {"caps": client.capabilities(),
                        "enabled": client.enable("IMAP4rev2"),
                        "status": client.folder_status("INBOX", ("MESSAGES", "DELETED")),
                        "select": client.select_folder("INBOX"),
                        "fetch": client.fetch([1, 2], ["FLAGS"]),
                        "search": client._imap._simple_command("SEARCH", "UNDELETED"),
                        "esearch": client._imap.untagged_responses.pop("ESEARCH", None)}
            finally:
                client.logout()

        out = yield self.in_thread(scenario)
        self.assertIn(b"IMAP4REV2", out["caps"])
        self.assertEqual(out["enabled"], [b"IMAP4rev2"])
        self.assertEqual(out["status"], {b"MESSAGES": 2, b"DELETED": 1})
        self.assertEqual(out["select"][b"EXISTS"], 2)
        self.assertEqual(out["select"][b"LIST"], [b'(\\HasNoChildren) "/" "INBOX"'])
        self.assertNotIn(b"RECENT", out["select"])
        self.assertEqual(out["fetch"], {1: {b"FLAGS": (b"\\Deleted",), b"SEQ": 1},
                                        2: {b"FLAGS": (), b"SEQ": 2}})
        self.assertEqual(out["search"][0], "OK")
        self.assertEqual(len(out["esearch"]), 1)
        self.assertTrue(out["esearch"][0].endswith(b'") ALL 2'), out["esearch"])
