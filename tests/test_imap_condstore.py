"""CONDSTORE (RFC 7162 §3.1) with imaplib and IMAPClient: MODSEQ, HIGHESTMODSEQ, CHANGEDSINCE,
UNCHANGEDSINCE with MODIFIED, SEARCH MODSEQ, STATUS HIGHESTMODSEQ, ENABLE."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import IMAPFixture, message


def modseqs(data: list[Any]) -> dict[int, int]:
    """UID -> MODSEQ from imaplib FETCH data, whatever the item order."""
    found = {}
    for line in (d if isinstance(d, bytes) else d[0] for d in data if d):
        uid, modseq = re.search(rb"UID (\d+)", line), re.search(rb"MODSEQ \((\d+)\)", line)
        if uid and modseq:
            found[int(uid.group(1))] = int(modseq.group(1))
    return found


class CondstoreImaplibTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def connect(self) -> Any:
        for n in range(3):
            yield self.deliver(message(f"m{n}"))
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        return client

    @defer.inlineCallbacks
    def test_select_condstore_reports_highestmodseq_and_fetch_modseq(self) -> Any:
        client = yield self.connect()
        typ, _ = yield self.in_thread(client._simple_command, "SELECT", "INBOX", "(CONDSTORE)")
        self.assertEqual(typ, "OK")
        client.state = "SELECTED"  # imaplib only tracks its own select()
        box = self.mailbox("INBOX")
        self.assertEqual(client.untagged_responses["HIGHESTMODSEQ"], [b"%d" % box.highestmodseq])
        typ, data = yield self.in_thread(client.uid, "FETCH", "1:*", "(MODSEQ)")
        self.assertEqual(modseqs(data), {r.uid: r.modseq for r in self.rows("INBOX")})

    @defer.inlineCallbacks
    def test_changedsince_returns_only_what_changed(self) -> Any:
        client = yield self.connect()
        yield self.in_thread(client.select, "INBOX")
        before = self.mailbox("INBOX").highestmodseq
        yield self.in_thread(client.store, "2", "+FLAGS", "(\\Flagged)")
        typ, data = yield self.in_thread(client.uid, "FETCH", "1:*", "(FLAGS)",
                                         "(CHANGEDSINCE %d)" % before)
        self.assertEqual(len(data), 1)
        self.assertIn(b"FLAGS (\\Flagged \\Recent)", data[0])  # first SELECT: \Recent
        self.assertEqual(list(modseqs(data)), [2])
        self.assertGreater(modseqs(data)[2], before)

    @defer.inlineCallbacks
    def test_unchangedsince_stores_or_reports_modified(self) -> Any:
        client = yield self.connect()
        yield self.in_thread(client.select, "INBOX")
        old = self.mailbox("INBOX").highestmodseq
        yield self.in_thread(client.store, "1", "+FLAGS", "(\\Seen)")  # now newer than old
        typ, data = yield self.in_thread(client.store, "1:2", "(UNCHANGEDSINCE %d) +FLAGS" % old,
                                         "(\\Answered)")
        self.assertEqual(typ, "OK")
        self.assertEqual(len(data), 1)
        self.assertRegex(data[0], rb"^2 \(FLAGS \(\\Answered \\Recent\) MODSEQ \(\d+\)\)$")
        tagged = client.untagged_responses.pop("MODIFIED", None)
        self.assertEqual(tagged, [b"1"])
        self.assertEqual([r.flags for r in self.rows("INBOX")][:2], [("\\Seen",), ("\\Answered",)])
        newest = self.mailbox("INBOX").highestmodseq
        typ, data = yield self.in_thread(client.uid, "STORE", "3",
                                         "(UNCHANGEDSINCE %d) +FLAGS.SILENT" % newest, "(\\Seen)")
        self.assertRegex(data[0], rb"^3 \(UID 3 MODSEQ \(\d+\)\)$")

    @defer.inlineCallbacks
    def test_search_modseq_and_status_highestmodseq(self) -> Any:
        client = yield self.connect()
        yield self.in_thread(client.select, "INBOX")
        rows = self.rows("INBOX")
        typ, data = yield self.in_thread(client.uid, "SEARCH", "MODSEQ", str(rows[1].modseq))
        self.assertEqual(data, [b"2 3 (MODSEQ %d)" % rows[2].modseq])
        typ, data = yield self.in_thread(client.search, None, 'MODSEQ "/flags/\\\\draft" all',
                                         str(rows[2].modseq + 100))
        self.assertEqual(data, [b""])
        typ, data = yield self.in_thread(client.status, "INBOX", "(HIGHESTMODSEQ)")
        self.assertEqual(data, [b'"INBOX" (HIGHESTMODSEQ %d)' % self.mailbox("INBOX").highestmodseq])

    @defer.inlineCallbacks
    def test_after_enable_unsolicited_fetches_carry_modseq(self) -> Any:
        client = yield self.connect()
        other = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, other.shutdown)
        typ, data = yield self.in_thread(client.enable, "CONDSTORE")
        self.assertEqual(client.untagged_responses.pop("ENABLED"), [b"CONDSTORE"])
        yield self.in_thread(client.select, "INBOX")
        yield self.in_thread(other.select, "INBOX")
        yield self.in_thread(other.store, "3", "+FLAGS", "(\\Flagged)")
        yield self.in_thread(client.noop)
        self.assertRegex(client.untagged_responses.pop("FETCH")[0],
                         rb"^3 \(FLAGS \(\\Flagged \\Recent\) UID 3 MODSEQ \(\d+\)\)$")


class CondstoreIMAPClientTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_condstore_with_imapclient(self) -> Any:
        for n in range(2):
            yield self.deliver(message(f"m{n}"))
        yield self.listen()
        client = yield self.in_thread(self.imapclient_client)
        self.addCleanup(self.in_thread, client.shutdown)
        self.assertTrue((yield self.in_thread(client.has_capability, "CONDSTORE")))
        info = yield self.in_thread(client.select_folder, "INBOX")
        start = info[b"HIGHESTMODSEQ"]
        self.assertEqual(start, self.mailbox("INBOX").highestmodseq)
        yield self.in_thread(client.add_flags, [2], [b"\\Seen"])
        changed = yield self.in_thread(client.fetch, [1, 2], ["FLAGS"],
                                       modifiers=[f"CHANGEDSINCE {start}"])
        self.assertEqual(list(changed), [2])
        self.assertGreater(changed[2][b"MODSEQ"][0], start)
        found = yield self.in_thread(client.search, ["MODSEQ", start + 1])
        self.assertEqual(list(found), [2])
        self.assertEqual(found.modseq, changed[2][b"MODSEQ"][0])
        status = yield self.in_thread(client.folder_status, "INBOX", ["HIGHESTMODSEQ"])
        self.assertEqual(status[b"HIGHESTMODSEQ"], self.mailbox("INBOX").highestmodseq)
