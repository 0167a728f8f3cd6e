"""QRESYNC (RFC 7162 §3.2): the pure parts by tables, then ENABLE QRESYNC, SELECT (QRESYNC ...)
with VANISHED (EARLIER), VANISHED instead of EXPUNGE, UID FETCH (CHANGEDSINCE x VANISHED) and
the fall-back once expunged rows are purged, with imaplib and IMAPClient."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.imap.errors import ImapError
from mailgosend.imap.qresync import (fetch_modifiers, format_ranges, parse_qresync,
                                     select_params, vanished_ranges)
from mailgosend.imap.seqset import SequenceSet
from mailgosend.mail.sync import Vanished
from mailgosend.imap.tokens import Atom
from mailgosend.store import messages as ms
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import IMAPFixture, message


class PureTests(unittest.TestCase):
    def test_parse_qresync(self) -> None:
        p = parse_qresync([Atom("67890007"), Atom("20050715194045000")])
        self.assertEqual((p.uidvalidity, p.modseq, p.known_uids), (67890007, 20050715194045000,
                                                                   None))
        p = parse_qresync([Atom("1"), Atom("9"), Atom("41,43:211"),
                           [Atom("3,4:5"), Atom("43,45:46")]])
        self.assertEqual(p.known_uids.ranges, [(41, 41), (43, 211)])
        for bad in ([Atom("1")], [Atom("0"), Atom("9")], [Atom("1"), Atom("0")],
                    [Atom("1"), Atom("9"), Atom("$")], [Atom("1"), Atom("9"), Atom("1:*"),
                                                         [Atom("1")]],
                    [Atom("1"), Atom("9"), Atom("1"), [Atom("1"), Atom("1")], Atom("x")]):
            self.assertRaises(ImapError, parse_qresync, bad)

    def test_select_params(self) -> None:
        self.assertEqual(select_params([Atom("CONDSTORE")], False), (True, None))
        condstore, q = select_params([Atom("QRESYNC"), [Atom("5"), Atom("7")]], True)
        self.assertEqual((condstore, q.modseq), (False, 7))
        for params, enabled in (([Atom("QRESYNC"), [Atom("5"), Atom("7")]], False),
                                ([Atom("BOGUS")], True), ([Atom("QRESYNC")], True),
                                ([Atom("CONDSTORE"), Atom("CONDSTORE")], True)):
            with self.assertRaises(ImapError) as caught:
                select_params(params, enabled)
            self.assertEqual(caught.exception.status, "BAD")

    def test_fetch_modifiers(self) -> None:
        self.assertEqual(fetch_modifiers([Atom("CHANGEDSINCE"), Atom("12")], False, False),
                         (12, False))
        self.assertEqual(fetch_modifiers([Atom("CHANGEDSINCE"), Atom("12"), Atom("VANISHED")],
                                         True, True), (12, True))
        for tokens, uid, enabled in (([Atom("VANISHED")], True, True),
                                     ([Atom("CHANGEDSINCE"), Atom("1"), Atom("VANISHED")],
                                      False, True),
                                     ([Atom("CHANGEDSINCE"), Atom("1"), Atom("VANISHED")],
                                      True, False)):
            self.assertRaises(ImapError, fetch_modifiers, tokens, uid, enabled)

    def test_vanished_ranges(self) -> None:
        cases = [
            # (expunged since, rows present or None, UIDNEXT, known, live, expected)
            ([3, 5], None, 10, None, None, b"3,5"),
            ([3, 4, 5], None, 10, None, None, b"3:5"),
            ([3, 5], None, 10, "1:4", None, b"3"),
            ([], [1, 2, 6, 7], 10, None, None, b"3:5,8:9"),  # purged or moved: no trace
            ([6], [1, 2, 6, 7], 10, "2:7", None, b"3:6"),
            ([], [1, 2, 6, 7], 10, "7:*", None, b"8:9"),
            ([3, 5], None, 10, None, [1, 2, 5, 6], b"3"),  # still shown: announced later
            ([], None, 10, None, None, b""),
            ([], [4_000_000], 4_000_002, None, None, b"1:3999999,4000001"),
        ]
        for expunged, present, uidnext, known, live, expected in cases:
            ranges = vanished_ranges(Vanished(expunged, present), uidnext,
                                     SequenceSet.parse(known) if known else None, live)
            self.assertEqual(format_ranges(ranges), expected,
                             (expunged, present, uidnext, known, live))


def untagged(client: Any, name: str) -> list[bytes]:
    return client.untagged_responses.pop(name, [])


class QresyncWireTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def setup_mailbox(self) -> Any:
        for n in range(6):
            yield self.deliver(message(f"q{n}"))
        yield self.listen()

    @defer.inlineCallbacks
    def qresync_client(self) -> Any:
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        typ, data = yield self.in_thread(client._simple_command, "ENABLE", "QRESYNC")
        self.assertEqual(typ, "OK")
        self.assertEqual(untagged(client, "ENABLED"), [b"QRESYNC"])
        return client

    def select_qresync(self, client: Any, params: str, name: str = "INBOX") -> Any:
        typ, data = client._simple_command("SELECT", name, f"(QRESYNC ({params}))")
        client.state = "SELECTED"
        return typ, data

    def expunge_elsewhere(self, uids: str) -> Any:
        def run() -> None:
            other = self.imaplib_client()
            other.select("INBOX")
            other.uid("STORE", uids, "+FLAGS.SILENT", "(\\Deleted)")
            other.expunge()
            other.logout()
        return self.in_thread(run)

    @defer.inlineCallbacks
    def test_capability_and_enable(self) -> Any:
        yield self.setup_mailbox()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        self.assertIn("QRESYNC", client.capabilities)
        with self.assertRaises(Exception) as caught:  # RFC 7162 §3.2.5: ENABLE QRESYNC first
            yield self.in_thread(client._simple_command, "SELECT", "INBOX", "(QRESYNC (1 1))")
        self.assertIn("BAD", str(caught.exception))
        typ, _ = yield self.in_thread(client._simple_command, "ENABLE", "CONDSTORE", "QRESYNC")
        self.assertEqual(untagged(client, "ENABLED"), [b"CONDSTORE QRESYNC"])

    @defer.inlineCallbacks
    def test_select_qresync_reports_vanished_earlier_and_changed_flags(self) -> Any:
        yield self.setup_mailbox()
        box = self.mailbox("INBOX")
        since = box.highestmodseq
        yield self.expunge_elsewhere("3,5")
        def flag() -> None:
            other = self.imaplib_client()
            other.select("INBOX")
            other.uid("STORE", "2", "+FLAGS.SILENT", "(\\Flagged)")
            other.logout()
        yield self.in_thread(flag)
        client = yield self.qresync_client()
        typ, _ = yield self.in_thread(self.select_qresync, client,
                                      f"{box.uidvalidity} {since}")
        self.assertEqual(typ, "OK")
        self.assertEqual(untagged(client, "VANISHED"), [b"(EARLIER) 3,5"])
        fetched = untagged(client, "FETCH")
        self.assertEqual(len(fetched), 1)
        self.assertRegex(fetched[0], rb"^2 \(FLAGS \(\\Flagged\) UID 2 MODSEQ \(\d+\)\)$")
        self.assertEqual(untagged(client, "EXISTS"), [b"4"])
        # known UIDs limit both: only 3 of the vanished, and no FETCH for UID 2
        typ, _ = yield self.in_thread(self.select_qresync, client,
                                      f"{box.uidvalidity} {since} 3:4 (1:2 1,3)")
        self.assertEqual(untagged(client, "VANISHED"), [b"(EARLIER) 3"])
        self.assertEqual(untagged(client, "FETCH"), [])
        self.assertIn(b"[CLOSED] Previous mailbox closed", b" ".join(untagged(client, "OK")))

    @defer.inlineCallbacks
    def test_other_uidvalidity_gets_a_plain_select(self) -> Any:
        yield self.setup_mailbox()
        box = self.mailbox("INBOX")
        yield self.expunge_elsewhere("1")
        client = yield self.qresync_client()
        typ, _ = yield self.in_thread(self.select_qresync, client,
                                      f"{box.uidvalidity + 1} 1")
        self.assertEqual(typ, "OK")
        self.assertEqual(untagged(client, "VANISHED"), [])
        self.assertEqual(untagged(client, "FETCH"), [])

    @defer.inlineCallbacks
    def test_expunge_and_move_announce_vanished(self) -> Any:
        yield self.setup_mailbox()
        client = yield self.qresync_client()
        yield self.in_thread(client.select, "INBOX")
        yield self.in_thread(client.store, "2:3", "+FLAGS.SILENT", "(\\Deleted)")
        typ, data = yield self.in_thread(client.expunge)
        self.assertEqual(untagged(client, "VANISHED"), [b"2:3"])
        self.assertEqual(data, [None])  # no EXPUNGE responses
        typ, _ = yield self.in_thread(client._simple_command, "UID", "MOVE", "5", "Archive")
        self.assertEqual(typ, "OK")
        self.assertEqual(untagged(client, "VANISHED"), [b"5"])
        yield self.expunge_elsewhere("6")
        yield self.in_thread(client.noop)
        self.assertEqual(untagged(client, "VANISHED"), [b"6"])
        typ, data = yield self.in_thread(client.fetch, "1:*", "(UID)")
        self.assertEqual(data, [b"1 (UID 1)", b"2 (UID 4)"])

    @defer.inlineCallbacks
    def test_uid_fetch_changedsince_vanished(self) -> Any:
        yield self.setup_mailbox()
        since = self.mailbox("INBOX").highestmodseq
        client = yield self.qresync_client()
        yield self.in_thread(client.select, "INBOX")
        yield self.expunge_elsewhere("4")
        typ, data = yield self.in_thread(client.uid, "FETCH", "1:*", "(FLAGS)",
                                         f"(CHANGEDSINCE {since} VANISHED)")
        self.assertEqual(typ, "OK")
        # UID 4 is still in this session's view until the expunge is announced (here, at
        # the end of this UID command), so it is not VANISHED (EARLIER) but plain VANISHED
        self.assertEqual(untagged(client, "VANISHED"), [b"4"])
        yield self.expunge_elsewhere("2")
        yield self.in_thread(client.noop)
        untagged(client, "VANISHED")
        typ, data = yield self.in_thread(client.uid, "FETCH", "1:3", "(FLAGS)",
                                         f"(CHANGEDSINCE {since} VANISHED)")
        self.assertEqual(untagged(client, "VANISHED"), [b"(EARLIER) 2"])
        with self.assertRaises(Exception) as caught:  # VANISHED only with UID FETCH
            yield self.in_thread(client._simple_command, "FETCH", "1:*", "(FLAGS)",
                                 f"(CHANGEDSINCE {since} VANISHED)")
        self.assertIn("BAD", str(caught.exception))

    @defer.inlineCallbacks
    def test_purged_rows_fall_back_to_every_missing_known_uid(self) -> Any:
        yield self.setup_mailbox()
        box = self.mailbox("INBOX")
        since = box.highestmodseq
        yield self.expunge_elsewhere("2")
        future = datetime.now(timezone.utc) + timedelta(days=30)
        purged = run_sync(self.engine, ms.purge_expunged, before=future, write=True)
        self.assertEqual(purged, 1)  # the tombstone of UID 2 is gone
        client = yield self.qresync_client()
        typ, _ = yield self.in_thread(self.select_qresync, client,
                                      f"{box.uidvalidity} {since} 1:6")
        self.assertEqual(untagged(client, "VANISHED"), [b"(EARLIER) 2"])
        # a client more recent than the expunge is told too: nothing tells when 2 went
        later = self.mailbox("INBOX").highestmodseq
        typ, _ = yield self.in_thread(self.select_qresync, client, f"{box.uidvalidity} {later}")
        self.assertEqual(untagged(client, "VANISHED"), [b"(EARLIER) 2"])

    @defer.inlineCallbacks
    def test_imapclient_enable_and_fetch_vanished(self) -> Any:
        yield self.setup_mailbox()
        since = self.mailbox("INBOX").highestmodseq
        yield self.expunge_elsewhere("1,6")
        client = yield self.in_thread(self.imapclient_client)
        self.addCleanup(self.in_thread, client.logout)
        enabled = yield self.in_thread(client.enable, "QRESYNC")
        self.assertEqual(enabled, [b"QRESYNC"])
        yield self.in_thread(client.select_folder, "INBOX")
        yield self.in_thread(client.add_flags, [3], [b"\\Seen"])
        result = yield self.in_thread(client.fetch, [1, 2, 3, 4, 5, 6], ["FLAGS"],
                                      [f"CHANGEDSINCE {since}", "VANISHED"])
        self.assertEqual(list(result), [3])
        vanished = [r for r in client._imap.untagged_responses.get("VANISHED", [])]
        self.assertEqual(vanished, [b"(EARLIER) 1,6"])
        self.assertTrue(re.search(rb"MODSEQ", b"%r" % result[3]))
