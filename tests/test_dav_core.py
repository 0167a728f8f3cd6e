"""The WebDAV core through raw requests: PROPFIND propname/allprop, PROPPATCH (protected
properties refused all-or-nothing), MKCOL/MKCALENDAR, HEAD, MOVE and COPY of objects
(Overwrite, UID moving with the object), DELETE of a collection giving its octets back to the
quota, RFC 4331 quota properties, calendar-query with prop-filters, recurrences and todos,
and a sync token made too old by pruning."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from tests.support.dav import DavServerTestCase

HOME = "/caldav/alice@example.com/"
CAL = HOME + "calendar/"


def event(uid: str, start: str = "20270101T100000Z", extra: str = "",
          summary: str = "Meeting") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:{start}\r\n"
            f"DURATION:PT1H\r\nSUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n")


def calendar_query(component: str, inner: str) -> str:
    return ('<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
            f'<C:comp-filter name="{component}">{inner}</C:comp-filter></C:comp-filter>'
            '</C:filter></C:calendar-query>')


class CoreTests(DavServerTestCase):
    @defer.inlineCallbacks
    def test_propname_allprop_and_proppatch(self) -> Any:
        names = yield self.dav("PROPFIND", CAL, '<propfind xmlns="DAV:"><propname/></propfind>',
                               Depth="0")
        self.assertEqual(names.status_code, 207)
        self.assertIn("<D:sync-token />", names.text)
        everything = yield self.dav("PROPFIND", CAL, "", Depth="0")
        self.assertIn("<D:displayname>Calendar</D:displayname>", everything.text)
        refused = yield self.dav(
            "PROPPATCH", CAL, '<propertyupdate xmlns="DAV:"><set><prop><displayname>New'
            '</displayname><getetag>"x"</getetag></prop></set></propertyupdate>')
        self.assertEqual(refused.status_code, 207)
        self.assertIn("HTTP/1.1 403", refused.text)
        self.assertIn("HTTP/1.1 424", refused.text)
        unchanged = yield self.dav("PROPFIND", CAL, "", Depth="0")
        self.assertIn("<D:displayname>Calendar</D:displayname>", unchanged.text)
        done = yield self.dav(
            "PROPPATCH", CAL, '<propertyupdate xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:'
            'caldav"><set><prop><displayname>Home</displayname><C:calendar-description>Mine'
            '</C:calendar-description></prop></set><remove><prop><displayname/></prop>'
            '</remove><set><prop><displayname>Home 2</displayname></prop></set>'
            '</propertyupdate>')
        self.assertNotIn("403", done.text)
        after = yield self.dav("PROPFIND", CAL, "", Depth="0")
        self.assertIn("<D:displayname>Home 2</D:displayname>", after.text)
        self.assertIn("Mine</C:calendar-description>", after.text)

    @defer.inlineCallbacks
    def test_mkcol_variants(self) -> Any:
        plain = yield self.dav("MKCOL", HOME + "plain/")
        self.assertEqual(plain.status_code, 403)       # not a calendar: refused
        book_here = yield self.dav(
            "MKCOL", HOME + "book/", '<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:'
            'ns:carddav"><D:set><D:prop><D:resourcetype><D:collection/><C:addressbook/>'
            '</D:resourcetype></D:prop></D:set></D:mkcol>')
        self.assertEqual(book_here.status_code, 403)
        made = yield self.dav(
            "MKCOL", HOME + "tasks/", '<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:'
            'ns:caldav"><D:set><D:prop><D:resourcetype><D:collection/><C:calendar/>'
            '</D:resourcetype><C:supported-calendar-component-set><C:comp name="VTODO"/>'
            '</C:supported-calendar-component-set></D:prop></D:set></D:mkcol>')
        self.assertEqual(made.status_code, 201)
        listed = yield self.dav("PROPFIND", HOME + "tasks/", "", Depth="0")
        self.assertIn('<C:comp name="VTODO" />', listed.text)
        self.assertNotIn('<C:comp name="VEVENT" />', listed.text)
        again = yield self.dav("MKCALENDAR", HOME + "tasks/")
        self.assertEqual(again.status_code, 405)
        protected = yield self.dav(
            "MKCALENDAR", HOME + "sneaky/", '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:'
            'params:xml:ns:caldav"><D:set><D:prop><D:displayname>S</D:displayname>'
            '<D:sync-token>x</D:sync-token></D:prop></D:set></C:mkcalendar>')
        self.assertEqual(protected.status_code, 403)
        self.assertIn("cannot-modify-protected-property", protected.text)
        missing = yield self.dav("PROPFIND", HOME + "sneaky/", "", Depth="0")
        self.assertEqual(missing.status_code, 404)

    @defer.inlineCallbacks
    def test_move_copy_head_delete_and_quota(self) -> Any:
        run_sync(self.server.engine, accounts.set_quota, "alice@example.com", 100_000,
                 write=True)
        yield self.dav("MKCALENDAR", HOME + "other/")
        body = event("m1")
        put = yield self.dav("PUT", CAL + "m1.ics", body)
        self.assertEqual(put.status_code, 201)
        head = yield self.dav("HEAD", CAL + "m1.ics")
        self.assertEqual((head.status_code, head.content), (200, b""))
        self.assertEqual(head.headers["ETag"], put.headers["ETag"])
        moved = yield self.dav("MOVE", CAL + "m1.ics", Destination=self.web_base + CAL +
                               "renamed.ics")
        self.assertEqual(moved.status_code, 201)
        copied = yield self.dav("COPY", CAL + "renamed.ics",
                                Destination=HOME + "other/copy.ics")
        self.assertEqual(copied.status_code, 201)
        clash = yield self.dav("PUT", CAL + "third.ics", body)
        self.assertEqual(clash.status_code, 403)       # the UID lives at renamed.ics
        blocked = yield self.dav("COPY", CAL + "renamed.ics",
                                 Destination=HOME + "other/copy.ics", Overwrite="F")
        self.assertEqual(blocked.status_code, 412)
        for path, status in ((CAL + "m1.ics", 404), (CAL + "renamed.ics", 200),
                             (HOME + "other/copy.ics", 200)):
            got = yield self.dav("GET", path)
            self.assertEqual(got.status_code, status, path)
        quota = yield self.dav("PROPFIND", CAL, '<propfind xmlns="DAV:"><prop>'
                               '<quota-used-bytes/><quota-available-bytes/></prop></propfind>',
                               Depth="0")
        size = len(body.encode())
        self.assertIn(f"<D:quota-used-bytes>{2 * size}<", quota.text)
        self.assertIn(f"<D:quota-available-bytes>{100_000 - 2 * size}<", quota.text)
        gone = yield self.dav("DELETE", HOME + "other/")
        self.assertEqual(gone.status_code, 204)
        quota = yield self.dav("PROPFIND", CAL, '<propfind xmlns="DAV:"><prop>'
                               '<quota-used-bytes/></prop></propfind>', Depth="0")
        self.assertIn(f"<D:quota-used-bytes>{size}<", quota.text)

    @defer.inlineCallbacks
    def test_calendar_queries(self) -> Any:
        cases = {
            "single.ics": event("single", "20270115T100000Z", summary="Dentist"),
            "weekly.ics": event("weekly", "20260105T080000Z", "RRULE:FREQ=WEEKLY;COUNT=60\r\n"),
            "ended.ics": event("ended", "20260105T080000Z", "RRULE:FREQ=DAILY;COUNT=3\r\n"),
            "allday.ics": event("allday", "20270120", summary="Holiday").replace(
                "DTSTART:20270120", "DTSTART;VALUE=DATE:20270120").replace(
                "DURATION:PT1H", "DURATION:P1D"),
        }
        for name, body in cases.items():
            answer = yield self.dav("PUT", CAL + name, body)
            self.assertEqual(answer.status_code, 201, answer.text)
        todo = event("todo").replace("VEVENT", "VTODO").replace(
            "DTSTART:20270101T100000Z\r\nDURATION:PT1H\r\n", "")
        yield self.dav("PUT", CAL + "todo.ics", todo)
        january = calendar_query("VEVENT", '<C:time-range start="20270101T000000Z" '
                                 'end="20270201T000000Z"/>')
        found = yield self.dav("REPORT", CAL, january, Depth="1")
        for name in ("single.ics", "weekly.ics", "allday.ics"):
            self.assertIn(name, found.text)
        self.assertNotIn("ended.ics", found.text)
        self.assertNotIn("todo.ics", found.text)
        by_text = calendar_query("VEVENT", '<C:prop-filter name="SUMMARY"><C:text-match>'
                                 'dentist</C:text-match></C:prop-filter>')
        found = yield self.dav("REPORT", CAL, by_text, Depth="1")
        self.assertIn("single.ics", found.text)
        self.assertNotIn("weekly.ics", found.text)
        todos = calendar_query("VTODO", '<C:time-range start="20270101T000000Z" '
                               'end="20270201T000000Z"/>')
        found = yield self.dav("REPORT", CAL, todos, Depth="1")
        self.assertIn("todo.ics", found.text)
        self.assertNotIn("single.ics", found.text)
        expanded = calendar_query("VEVENT", '<C:time-range start="20270101T000000Z" '
                                  'end="20270115T000000Z"/>').replace(
            "<D:getetag/>", '<D:getetag/><C:calendar-data><C:expand start="20270101T000000Z" '
            'end="20270115T000000Z"/></C:calendar-data>')
        found = yield self.dav("REPORT", CAL, expanded, Depth="1")
        self.assertEqual(found.status_code, 207)
        # the weekly event (Mondays 08:00Z from 2026-01-05): 4 and 11 January 2027
        self.assertIn("RECURRENCE-ID:20270104T080000Z", found.text)
        self.assertIn("RECURRENCE-ID:20270111T080000Z", found.text)
        self.assertNotIn("RRULE", found.text)
        # a rule that would make 2.6 million occurrences in the month: capped, answered
        yield self.dav("PUT", CAL + "storm.ics", event("storm", "20270101T000000Z",
                                                       "RRULE:FREQ=SECONDLY\r\n"))
        storm = calendar_query("VEVENT", '<C:time-range start="20270101T000000Z" '
                               'end="20270201T000000Z"/>').replace(
            "<D:getetag/>", '<D:getetag/><C:calendar-data><C:expand start="20270101T000000Z" '
            'end="20270201T000000Z"/></C:calendar-data>')
        found = yield self.dav("REPORT", CAL, storm, Depth="1")
        self.assertEqual(found.status_code, 207)
        self.assertEqual(found.text.count("UID:storm"), 3000)
        busy = yield self.dav("REPORT", CAL, '<C:free-busy-query xmlns:C="urn:ietf:params:xml:'
                              'ns:caldav"><C:time-range start="20270101T000000Z" '
                              'end="20270201T000000Z"/></C:free-busy-query>')
        self.assertEqual(busy.status_code, 200)
        bad = yield self.dav("REPORT", CAL, calendar_query(
            "VEVENT", '<C:time-range start="January"/>'), Depth="1")
        self.assertEqual(bad.status_code, 403)
        self.assertIn("valid-filter", bad.text)

    @defer.inlineCallbacks
    def test_pruned_sync_token_is_too_old(self) -> Any:
        sync = ('<sync-collection xmlns="DAV:"><sync-token>{}</sync-token><sync-level>1'
                '</sync-level><prop><getetag/></prop></sync-collection>')
        first = yield self.dav("REPORT", CAL, sync.format(""))
        token = first.text.split("<D:sync-token>")[1].split("<")[0]
        yield self.dav("PUT", CAL + "a.ics", event("a"))
        yield self.dav("DELETE", CAL + "a.ics")
        answer = yield self.dav("REPORT", CAL, sync.format(token))
        self.assertEqual(answer.status_code, 207)
        self.assertIn("HTTP/1.1 404", answer.text)
        latest = answer.text.split("<D:sync-token>")[1].split("<")[0]
        service = self.server.root.components["dav"]
        dav = yield service.open_account("alice@example.com")
        calendar = yield defer.ensureDeferred(dav.collection("calendar", "calendar"))
        yield dav.prune_tombstones(calendar, int(latest.rsplit("/", 1)[1]))
        answer = yield self.dav("REPORT", CAL, sync.format(token))
        self.assertEqual(answer.status_code, 403)
        self.assertIn("valid-sync-token", answer.text)
        answer = yield self.dav("REPORT", CAL, sync.format(latest))
        self.assertEqual(answer.status_code, 207)
