"""ESEARCH (RFC 4731) and SEARCHRES (RFC 5182): the pure helpers by tables, then the wire
with imaplib and IMAPClient against a real listener."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.imap.errors import ImapError
from mailgosend.imap.esearch import (ResultOptions, bind_saved, esearch_line, parse_return,
                                     saved_part)
from mailgosend.imap.search import parse_search
from mailgosend.imap.seqset import SequenceSet
from mailgosend.imap.tokens import Args, Atom
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import IMAPFixture, message


def options(*names: str) -> ResultOptions:
    return ResultOptions(frozenset(names))


class PureTests(unittest.TestCase):
    def test_parse_return(self) -> None:
        cases = [
            ([Atom("ALL")], frozenset()),
            ([Atom("RETURN"), [], Atom("ALL")], frozenset({"ALL"})),
            ([Atom("return"), [Atom("min"), Atom("COUNT")], Atom("ALL")],
             frozenset({"MIN", "COUNT"})),
            ([Atom("RETURN"), [Atom("SAVE")], Atom("ALL")], frozenset({"SAVE"})),
        ]
        for tokens, expected in cases:
            args = Args(tokens)
            self.assertEqual(parse_return(args).names, expected, tokens)
            self.assertEqual(args.rest(), [Atom("ALL")])

    def test_parse_return_refuses_unknown_options(self) -> None:
        for tokens in ([Atom("RETURN"), [Atom("PARTIAL")]], [Atom("RETURN"), Atom("MIN")],
                       [Atom("RETURN")]):
            with self.assertRaises(ImapError) as caught:
                parse_return(Args(tokens))
            self.assertEqual(caught.exception.status, "BAD")

    def test_esearch_line(self) -> None:
        found = [2, 10, 11, 12, 47]
        cases = [
            (options("ALL"), False, found, b'ESEARCH (TAG "a") ALL 2,10:12,47'),
            (options("MIN", "MAX", "COUNT"), True, found,
             b'ESEARCH (TAG "a") UID MIN 2 MAX 47 COUNT 5'),
            (options("MIN", "MAX", "ALL", "COUNT"), False, [],
             b'ESEARCH (TAG "a") COUNT 0'),  # RFC 4731 §3.1: no MIN/MAX/ALL for no match
            (options("MIN"), False, [], b'ESEARCH (TAG "a")'),
        ]
        for opts, uid, numbers, expected in cases:
            self.assertEqual(esearch_line(b"a", uid, numbers, opts), expected)

    def test_esearch_modseq_covers_what_is_returned(self) -> None:
        modseqs = {1: 50, 5: 7, 9: 20}

        def highest(numbers: Any) -> int:
            return max(modseqs[n] for n in numbers)

        self.assertTrue(esearch_line(b"a", True, [1, 5, 9], options("MIN", "MAX"), highest)
                        .endswith(b" MODSEQ 50"))
        self.assertTrue(esearch_line(b"a", True, [1, 5, 9], options("MAX"), highest)
                        .endswith(b" MAX 9 MODSEQ 20"))
        self.assertTrue(esearch_line(b"a", True, [1, 5, 9], options("COUNT"), highest)
                        .endswith(b" COUNT 3 MODSEQ 50"))

    def test_saved_part(self) -> None:
        found = [3, 4, 8]
        cases = [
            (options("SAVE"), [3, 4, 8]),
            (options("SAVE", "MIN"), [3]),
            (options("SAVE", "MAX"), [8]),
            (options("SAVE", "MIN", "MAX"), [3, 8]),
            (options("SAVE", "MIN", "COUNT"), [3, 4, 8]),  # RFC 5182 §2.4
            (options("SAVE", "ALL", "MAX"), [3, 4, 8]),
        ]
        for opts, expected in cases:
            self.assertEqual(saved_part(found, opts), expected, opts)
        self.assertEqual(saved_part([], options("SAVE", "MIN")), [])

    def test_dollar_parses_as_saved_set(self) -> None:
        self.assertTrue(SequenceSet.parse("$").saved)
        for text in ("$,1", "1:$", "$$"):
            self.assertRaises(ImapError, SequenceSet.parse, text)

    def test_bind_saved_fills_sequence_numbers_and_uids(self) -> None:
        tree = parse_search([Atom("OR"), Atom("$"), [Atom("NOT"), Atom("UID"), Atom("$")]])
        bind_saved(tree, saved_uids=[7, 30, 12], uids=[5, 7, 12, 20])  # 30 was expunged
        seq = tree[1][0][1][1]
        uid = tree[1][0][2][1][0][1][1]
        self.assertEqual(seq.ranges, [(2, 2), (3, 3)])
        self.assertEqual(uid.ranges, [(7, 7), (12, 12)])


class ESearchWireTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def connect(self) -> Any:
        for n in range(6):
            yield self.deliver(message(f"m{n}", body="apple\r\n" if n % 2 else "pear\r\n"),
                               flags=("\\Seen",) if n < 3 else ())
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        return client

    def command(self, client: Any, *args: str) -> Any:
        """Thread side: a tagged command; (status, tag, untagged ESEARCH lines)."""
        tag = client._new_tag()
        client.send(tag + b" " + " ".join(args).encode() + b"\r\n")
        typ, data = client._command_complete(args[0].split()[0], tag)
        return typ, tag, client.untagged_responses.pop("ESEARCH", [])

    @defer.inlineCallbacks
    def test_capabilities_advertised(self) -> Any:
        client = yield self.connect()
        self.assertIn("ESEARCH", client.capabilities)
        self.assertIn("SEARCHRES", client.capabilities)

    @defer.inlineCallbacks
    def test_search_return_min_max_count_all(self) -> Any:
        client = yield self.connect()
        typ, tag, lines = yield self.in_thread(self.command, client,
                                               "SEARCH RETURN (MIN MAX COUNT) BODY apple")
        self.assertEqual(typ, "OK")
        self.assertEqual(lines, [b'(TAG "' + tag + b'") MIN 2 MAX 6 COUNT 3'])
        typ, tag, lines = yield self.in_thread(self.command, client, "UID SEARCH RETURN () UNSEEN")
        self.assertEqual(lines, [b'(TAG "' + tag + b'") UID ALL 4:6'])
        typ, tag, lines = yield self.in_thread(self.command, client,
                                               "SEARCH RETURN (MIN COUNT) SUBJECT nothing-like-it")
        self.assertEqual(lines, [b'(TAG "' + tag + b'") COUNT 0'])

    @defer.inlineCallbacks
    def test_save_then_dollar_in_fetch_store_search_and_copy(self) -> Any:
        client = yield self.connect()
        typ, tag, lines = yield self.in_thread(self.command, client,
                                               "UID SEARCH RETURN (SAVE) BODY apple")
        self.assertEqual((typ, lines), ("OK", []))  # RFC 5182: SAVE alone answers nothing
        typ, data = yield self.in_thread(client.fetch, "$", "(UID)")
        self.assertEqual(data, [b"2 (UID 2)", b"4 (UID 4)", b"6 (UID 6)"])
        typ, data = yield self.in_thread(client.search, None, "$", "UNSEEN")
        self.assertEqual(data, [b"4 6"])
        typ, data = yield self.in_thread(client.uid, "SEARCH", "NOT", "UID", "$")
        self.assertEqual(data, [b"1 3 5"])
        typ, _ = yield self.in_thread(client.store, "$", "+FLAGS.SILENT", "(\\Flagged)")
        self.assertEqual(typ, "OK")
        self.assertEqual([r.uid for r in self.rows("INBOX") if "\\Flagged" in r.flags], [2, 4, 6])
        typ, _ = yield self.in_thread(client.uid, "COPY", "$", "Archive")
        self.assertEqual(typ, "OK")
        self.assertEqual(len(self.rows("Archive")), 3)

    @defer.inlineCallbacks
    def test_saved_result_loses_expunged_messages_and_resets_on_select(self) -> Any:
        client = yield self.connect()
        yield self.in_thread(self.command, client, "SEARCH RETURN (SAVE MIN MAX) ALL")
        typ, data = yield self.in_thread(client.fetch, "$", "(UID)")
        self.assertEqual(data, [b"1 (UID 1)", b"6 (UID 6)"])
        yield self.in_thread(client.store, "1", "+FLAGS.SILENT", "(\\Deleted)")
        yield self.in_thread(client.expunge)
        typ, data = yield self.in_thread(client.fetch, "$", "(UID)")
        self.assertEqual(data, [b"5 (UID 6)"])
        yield self.in_thread(client.select, "INBOX")
        typ, data = yield self.in_thread(client.fetch, "$", "(UID)")
        self.assertEqual((typ, data), ("OK", [None]))

    @defer.inlineCallbacks
    def test_failed_save_empties_the_saved_result(self) -> Any:
        client = yield self.connect()
        yield self.in_thread(self.command, client, "SEARCH RETURN (SAVE) ALL")
        typ, _, _ = yield self.in_thread(self.command, client,
                                         "SEARCH RETURN (SAVE) CHARSET KOI8-R ALL")
        self.assertEqual(typ, "NO")
        typ, data = yield self.in_thread(client.uid, "SEARCH", "UID", "$")
        self.assertEqual(data, [b""])

    @defer.inlineCallbacks
    def test_esearch_with_modseq(self) -> Any:
        client = yield self.connect()
        yield self.in_thread(client.store, "3", "+FLAGS", "(\\Flagged)")
        top = self.mailbox("INBOX").highestmodseq
        typ, tag, lines = yield self.in_thread(self.command, client,
                                               "SEARCH RETURN (COUNT) MODSEQ 1")
        self.assertEqual(lines, [b'(TAG "' + tag + b'") COUNT 6 MODSEQ %d' % top])

    @defer.inlineCallbacks
    def test_imapclient_reads_esearch_of_uid_search(self) -> Any:
        for n in range(3):
            yield self.deliver(message(f"c{n}"))
        yield self.listen()
        client = yield self.in_thread(self.imapclient_client)
        self.addCleanup(self.in_thread, client.logout)
        yield self.in_thread(client.select_folder, "INBOX")
        caps = yield self.in_thread(client.capabilities)
        self.assertIn(b"ESEARCH", caps)
        found = yield self.in_thread(client.search, ["ALL"])
        self.assertEqual(found, [1, 2, 3])
        response = yield self.in_thread(client._raw_command_untagged, b"SEARCH",
                                        [b"RETURN", b"(SAVE", b"MAX)", b"ALL"], "ESEARCH",
                                        uid=True)
        self.assertIn(b"MAX 3", response[0] if isinstance(response, list) else response)
        saved = yield self.in_thread(client.search, ["UID", "$"])
        self.assertEqual(saved, [3])
