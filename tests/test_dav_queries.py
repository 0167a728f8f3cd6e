"""REPORTs through raw requests where RFC 4791/6578/6352 go beyond the simple cases:
calendar-query filters nested below the component (alarms, properties, parameters,
is-not-defined), DAV:limit in sync-collection (at most N, a 507 for the collection and a
token that continues) and in addressbook-query, and the change feed hearing of a PUT made
with the ``caldav`` library."""

from __future__ import annotations

import re
from typing import Any

import caldav
from twisted.internet import defer, threads
from twisted.trial import unittest

from mailgosend.events import ChangeBatch, DavChanged
from mailgosend.jmap.state import type_states
from tests.support.dav import PASSWORD, DavServerTestCase

CAL = "/caldav/alice@example.com/calendar/"
BOOK = "/carddav/alice@example.com/contacts/"
SYNC = ('<sync-collection xmlns="DAV:"><sync-token>{}</sync-token><sync-level>1</sync-level>'
        '<prop><getetag/></prop>{}</sync-collection>')
LIMIT = "<limit><nresults>{}</nresults></limit>"


def event(uid: str, start: str, extra: str = "", summary: str = "Meeting",
          inner: str = "") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:{start}\r\n"
            f"DURATION:PT1H\r\nSUMMARY:{summary}\r\n{extra}{inner}END:VEVENT\r\n"
            "END:VCALENDAR\r\n")


ALARM = ("BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Soon\r\nTRIGGER:-PT15M\r\n"
         "END:VALARM\r\n")
EVENTS = {
    # an alarm 15 minutes before 10:00 on 10 January
    "alarmed.ics": event("alarmed", "20270110T100000Z", inner=ALARM),
    # the same without an alarm
    "quiet.ics": event("quiet", "20270110T100000Z"),
    # weekly from 4 January with an alarm: in the week of 18 January too
    "weekly.ics": event("weekly", "20270104T090000Z", "RRULE:FREQ=WEEKLY;COUNT=10\r\n",
                        inner=ALARM),
    # an attendee who has not answered
    "invite.ics": event("invite", "20270112T100000Z",
                        "ATTENDEE;PARTSTAT=NEEDS-ACTION;CN=Bob:mailto:bob@example.com\r\n"
                        "ORGANIZER:mailto:carol@example.com\r\n", summary="Review"),
    "accepted.ics": event("accepted", "20270113T100000Z",
                          "ATTENDEE;PARTSTAT=ACCEPTED;CN=Bob:mailto:bob@example.com\r\n",
                          summary="Review"),
}


def calendar_query(inner: str) -> str:
    return ('<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
            f'{inner}</C:comp-filter></C:filter></C:calendar-query>')


def names(text: str) -> list[str]:
    return sorted(re.findall(r"/([a-z0-9-]+\.(?:ics|vcf))</D:href>", text))


class NestedCalendarQueryTests(DavServerTestCase):
    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        yield super().setUp()
        for name, body in EVENTS.items():
            answer = yield self.dav("PUT", CAL + name, body, Content_Type="text/calendar")
            self.assertEqual(answer.status_code, 201, answer.text)

    @defer.inlineCallbacks
    def found(self, inner: str) -> Any:
        answer = yield self.dav("REPORT", CAL, calendar_query(inner), Depth="1")
        self.assertEqual(answer.status_code, 207, answer.text)
        return names(answer.text)

    @defer.inlineCallbacks
    def test_nested_filters(self) -> Any:
        cases = [
            # VEVENT > VALARM defined
            ('<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"/></C:comp-filter>',
             ["alarmed.ics", "weekly.ics"]),
            # VEVENT > VALARM not defined
            ('<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"><C:is-not-defined/>'
             '</C:comp-filter></C:comp-filter>', ["accepted.ics", "invite.ics", "quiet.ics"]),
            # alarms that go off between 09:40 and 09:50 on 10 January (09:45 is one)
            ('<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"><C:time-range '
             'start="20270110T094000Z" end="20270110T095000Z"/></C:comp-filter>'
             '</C:comp-filter>', ["alarmed.ics"]),
            # the weekly event's alarm on 18 January (08:45)
            ('<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"><C:time-range '
             'start="20270118T000000Z" end="20270119T000000Z"/></C:comp-filter>'
             '</C:comp-filter>', ["weekly.ics"]),
            # VEVENT with a time-range and a prop-filter text-match together
            ('<C:comp-filter name="VEVENT"><C:time-range start="20270111T000000Z" '
             'end="20270114T000000Z"/><C:prop-filter name="SUMMARY"><C:text-match>review'
             '</C:text-match></C:prop-filter></C:comp-filter>',
             ["accepted.ics", "invite.ics"]),
            # param-filter: attendees who have not answered (RFC 4791 §7.8.9's example)
            ('<C:comp-filter name="VEVENT"><C:prop-filter name="ATTENDEE"><C:text-match '
             'collation="i;ascii-casemap">mailto:bob@example.com</C:text-match>'
             '<C:param-filter name="PARTSTAT"><C:text-match collation="i;ascii-casemap">'
             'NEEDS-ACTION</C:text-match></C:param-filter></C:prop-filter></C:comp-filter>',
             ["invite.ics"]),
            # param-filter is-not-defined: attendees without a ROLE parameter
            ('<C:comp-filter name="VEVENT"><C:prop-filter name="ATTENDEE"><C:param-filter '
             'name="ROLE"><C:is-not-defined/></C:param-filter></C:prop-filter>'
             '</C:comp-filter>', ["accepted.ics", "invite.ics"]),
            # prop-filter is-not-defined under the component
            ('<C:comp-filter name="VEVENT"><C:prop-filter name="ORGANIZER"><C:is-not-defined/>'
             '</C:prop-filter><C:time-range start="20270112T000000Z" '
             'end="20270114T000000Z"/></C:comp-filter>', ["accepted.ics"]),
            # negated text-match
            ('<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match '
             'negate-condition="yes">Meeting</C:text-match></C:prop-filter></C:comp-filter>',
             ["accepted.ics", "invite.ics"]),
            # no VTODO at all: every object matches "VTODO is not defined"
            ('<C:comp-filter name="VTODO"><C:is-not-defined/></C:comp-filter>',
             sorted(EVENTS)),
        ]
        for inner, expected in cases:
            got = yield self.found(inner)
            self.assertEqual(got, expected, inner)

    @defer.inlineCallbacks
    def test_unknown_collation_refused(self) -> Any:
        answer = yield self.dav("REPORT", CAL, calendar_query(
            '<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match '
            'collation="i;klingon">x</C:text-match></C:prop-filter></C:comp-filter>'),
            Depth="1")
        self.assertEqual(answer.status_code, 403)
        self.assertIn("supported-collation", answer.text)


class LimitTests(DavServerTestCase):
    @defer.inlineCallbacks
    def sync(self, token: str = "", limit: str = "") -> Any:
        answer = yield self.dav("REPORT", CAL, SYNC.format(token, limit), Depth="1")
        self.assertEqual(answer.status_code, 207, answer.text)
        members = [n for n in names(answer.text)]
        gone = re.findall(r"/([a-z0-9-]+\.ics)</D:href><D:status>HTTP/1.1 404",
                          answer.text)
        truncated = bool(re.search(r"calendar/</D:href><D:status>HTTP/1.1 507 Insufficient "
                                   r"Storage</D:status><D:error><D:number-of-matches-"
                                   r"within-limits", answer.text))
        token = re.search(r"<D:sync-token>([^<]+)<", answer.text).group(1)  # type: ignore
        return members, gone, truncated, token

    @defer.inlineCallbacks
    def test_sync_collection_limit_pages_through_changes(self) -> Any:
        for n in range(7):
            yield self.dav("PUT", CAL + f"e{n}.ics", event(f"e{n}", "20270110T100000Z"))
        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            members, gone, truncated, token = yield self.sync(token, LIMIT.format(3))
            self.assertLessEqual(len(members), 3)
            seen += members
            pages += 1
            if not truncated:
                break
        self.assertEqual((sorted(seen), pages), (sorted(f"e{n}.ics" for n in range(7)), 3))
        # changes after the full sync, paged again: 2 changed, 2 removed, 1 new
        for n in (1, 2):
            yield self.dav("PUT", CAL + f"e{n}.ics", event(f"e{n}", "20270111T100000Z"))
        for n in (3, 4):
            yield self.dav("DELETE", CAL + f"e{n}.ics")
        yield self.dav("PUT", CAL + "e9.ics", event("e9", "20270110T100000Z"))
        first = yield self.sync(token, LIMIT.format(2))
        self.assertEqual(first[:3], (["e1.ics", "e2.ics"], [], True))
        second = yield self.sync(first[3], LIMIT.format(2))
        self.assertEqual(second[:3], (["e3.ics", "e4.ics"], ["e3.ics", "e4.ics"], True))
        third = yield self.sync(second[3], LIMIT.format(2))
        self.assertEqual(third[:3], (["e9.ics"], [], False))
        last = yield self.sync(third[3])
        self.assertEqual(last[:3], ([], [], False))
        bad = yield self.dav("REPORT", CAL, SYNC.format("", LIMIT.format("many")), Depth="1")
        self.assertEqual(bad.status_code, 400)

    @defer.inlineCallbacks
    def test_paged_first_sync_survives_an_older_sync_floor(self) -> Any:
        """Members older than the sync floor (tombstones pruned before the client came):
        a first sync paged by DAV:limit still continues, because its token says what the
        client has been told of (RFC 6578 §3.6)."""
        for n in range(5):
            yield self.dav("PUT", CAL + f"p{n}.ics", event(f"p{n}", "20270110T100000Z"))
        yield self.dav("DELETE", CAL + "p4.ics")
        service = self.server.root.components["dav"]
        dav = yield service.open_account("alice@example.com")
        calendar = yield defer.ensureDeferred(dav.collection("calendar", "calendar"))
        yield dav.prune_tombstones(calendar, calendar.modseq)
        members, _, truncated, token = yield self.sync("", LIMIT.format(2))
        self.assertEqual((members, truncated), (["p0.ics", "p1.ics"], True))
        self.assertRegex(token, r"/sync/\d+/\d+/\d+$")   # collection, position, assured
        rest = yield self.sync(token, LIMIT.format(5))
        self.assertEqual(rest[:3], (["p2.ics", "p3.ics"], [], False))
        # the same position without what the token vouched for: too old
        bare = token.rsplit("/", 1)[0]
        answer = yield self.dav("REPORT", CAL, SYNC.format(bare, ""), Depth="1")
        self.assertEqual(answer.status_code, 403)
        self.assertIn("valid-sync-token", answer.text)
        forged = yield self.dav("REPORT", CAL, SYNC.format(bare + "/99999", ""), Depth="1")
        self.assertEqual(forged.status_code, 403)

    @defer.inlineCallbacks
    def test_addressbook_query_limit_says_507(self) -> Any:
        for n in range(4):
            card = (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c{n}\r\nFN:Person {n}\r\n"
                    f"EMAIL:p{n}@example.org\r\nEND:VCARD\r\n")
            yield self.dav("PUT", BOOK + f"c{n}.vcf", card, Content_Type="text/vcard")
        query = ('<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
                 '<D:prop><D:getetag/></D:prop><C:filter><C:prop-filter name="EMAIL">'
                 '<C:text-match>example.org</C:text-match></C:prop-filter></C:filter>{}'
                 '</C:addressbook-query>')
        limited = yield self.dav("REPORT", BOOK, query.format(
            "<C:limit><C:nresults>2</C:nresults></C:limit>"), Depth="1")
        self.assertEqual(limited.status_code, 207)
        self.assertEqual(len(names(limited.text)), 2)
        self.assertRegex(limited.text, r"contacts/</D:href><D:status>HTTP/1.1 507 "
                                       r"Insufficient Storage</D:status><D:error>"
                                       r"<D:number-of-matches-within-limits")
        enough = yield self.dav("REPORT", BOOK, query.format(
            "<C:limit><C:nresults>4</C:nresults></C:limit>"), Depth="1")
        self.assertEqual(len(names(enough.text)), 4)
        self.assertNotIn("507", enough.text)


class ChangeFeedTests(DavServerTestCase):
    @defer.inlineCallbacks
    def test_caldav_put_publishes_a_dav_change(self) -> Any:
        heard: list[ChangeBatch] = []
        self.addCleanup(self.server.root.components["dav"].events.follow(heard.append))

        def scenario() -> None:
            client = caldav.DAVClient(url=self.web_base + "/", username="alice@example.com",
                                      password=PASSWORD)
            try:
                calendar = client.principal().calendars()[0]
                calendar.save_event(event("fed", "20270110T100000Z"))
            finally:
                client.close()

        mail = yield self.server.root.components["mail"].open_account("alice@example.com")
        before = yield defer.ensureDeferred(type_states(mail, ["Calendar", "ContactCard"]))
        yield threads.deferToThread(scenario)
        after = yield defer.ensureDeferred(type_states(mail, ["Calendar", "ContactCard"]))
        # JMAP push reads these states for the types the batch names (jmap/push.py)
        self.assertNotEqual(after["Calendar"], before["Calendar"])
        self.assertEqual(after["ContactCard"], before["ContactCard"])
        changes = [c for b in heard for c in b.changes if isinstance(c, DavChanged)]
        self.assertIn("object", [c.what for c in changes])
        self.assertEqual({c.kind for c in changes if c.what == "object"}, {"calendar"})
        user_ids = {b.user_id for b in heard if any(isinstance(c, DavChanged)
                                                   for c in b.changes)}
        self.assertEqual(len(user_ids), 1)


class FeedEncodingTests(unittest.TestCase):
    def test_dav_changes_cross_nodes_and_name_jmap_types(self) -> None:
        from mailgosend import pgnotify
        from mailgosend.jmap.push import changed_types

        batch = ChangeBatch(7, (DavChanged("calendar", 3), DavChanged("addressbook", 4)))
        (payload,) = pgnotify.encode("node1", batch)
        node, heard = pgnotify.decode(payload)  # type: ignore[misc]
        self.assertEqual((node, heard.user_id, heard.remote), ("node1", 7, True))
        self.assertEqual(set(heard.changes), {DavChanged("calendar", 3),
                                              DavChanged("addressbook", 4)})
        self.assertEqual(changed_types(heard), {"Calendar", "CalendarEvent", "AddressBook",
                                                "ContactCard"})
        self.assertEqual(batch.for_mailbox(3), ())   # IMAP sessions are not concerned
