"""A large calendar and address book sync completely, and an incremental sync after a few
changes returns only those (Baikal #1390: large calendars syncing only partly).  The objects
are stored through the DAV service (as a client's PUTs would be, without HTTP per object);
the syncs are real sync-collection REPORTs."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer

from mailgosend.mail.dav import ObjectFacts
from tests.support.dav import DavServerTestCase

EVENTS = 2000
CONTACTS = 1000
SYNC = ('<sync-collection xmlns="DAV:"><sync-token>{}</sync-token><sync-level>1</sync-level>'
        '<prop><getetag/></prop></sync-collection>')


def event(n: int) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:e{n}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20270101T100000Z\r\n"
            f"SUMMARY:Event {n}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode()


def card(n: int) -> bytes:
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c{n}\r\nFN:Person {n}\r\nEND:VCARD\r\n".encode()


class ScaleTests(DavServerTestCase):
    @defer.inlineCallbacks
    def fill(self, kind: str, count: int, make: Any, component: str) -> Any:
        service = self.server.root.components["dav"]
        dav = yield service.open_account("alice@example.com")
        (collection,) = yield defer.ensureDeferred(dav.collections(kind))
        for n in range(count):
            yield defer.ensureDeferred(dav.put(collection, f"{n}.obj", make(n),
                                               ObjectFacts(f"{component[0]}{n}", component)))
        return dav, collection

    @defer.inlineCallbacks
    def sync(self, path: str, token: str = "") -> Any:
        answer = yield self.dav("REPORT", path, SYNC.format(token), Depth="1")
        self.assertEqual(answer.status_code, 207)
        hrefs = re.findall(r"<D:href>([^<]+)</D:href>", answer.text)
        gone = answer.text.count("HTTP/1.1 404")
        new_token = re.search(r"<D:sync-token>([^<]+)<", answer.text).group(1)  # type: ignore
        return hrefs, gone, new_token

    @defer.inlineCallbacks
    def test_full_then_incremental(self) -> Any:
        for kind, count, make, component, path in (
                ("calendar", EVENTS, event, "VEVENT", "/caldav/alice@example.com/calendar/"),
                ("addressbook", CONTACTS, card, "VCARD",
                 "/carddav/alice@example.com/contacts/")):
            dav, collection = yield self.fill(kind, count, make, component)
            hrefs, gone, token = yield self.sync(path)
            self.assertEqual((len(set(hrefs)), gone), (count, 0))
            # 10 changes: 6 modified, 2 new, 2 deleted
            collection = yield defer.ensureDeferred(dav.collection(kind, collection.name))
            for n in range(6):
                yield defer.ensureDeferred(dav.put(collection, f"{n}.obj", make(n),
                                                   ObjectFacts(f"{component[0]}{n}",
                                                               component)))
            for n in (count, count + 1):
                yield defer.ensureDeferred(dav.put(collection, f"{n}.obj", make(n),
                                                   ObjectFacts(f"{component[0]}{n}",
                                                               component)))
            for n in (10, 11):
                yield dav.delete(collection, f"{n}.obj")
            hrefs, gone, _ = yield self.sync(path, token)
            names = sorted(h.rsplit("/", 1)[1] for h in hrefs)
            expected = sorted([f"{n}.obj" for n in (*range(6), count, count + 1, 10, 11)])
            self.assertEqual((names, gone), (expected, 2))
