"""Bad input to the DAV server: each gets the right status (with the RFC precondition
element where one exists) and changes nothing: malformed XML, XML with entities (billion
laughs), invalid iCalendar and vCard, an over-size object, a UID used twice, a component
the calendar does not take, If-Match/If-None-Match mismatches, a sync token that is
foreign or too old, Depth: infinity."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from tests.support.dav import DavServerTestCase

CAL = "/caldav/alice@example.com/calendar/"
BOOK = "/carddav/alice@example.com/contacts/"
EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
         "DTSTAMP:20261201T000000Z\r\nDTSTART:20270101T100000Z\r\nDTEND:20270101T110000Z\r\n"
         "SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<propfind xmlns="DAV:"><prop><displayname>&lol9;</displayname></prop></propfind>"""
PROPPATCH_LAUGHS = BILLION_LAUGHS.replace(
    "<propfind xmlns=\"DAV:\"><prop><displayname>&lol9;</displayname></prop></propfind>",
    "<propertyupdate xmlns=\"DAV:\"><set><prop><displayname>&lol9;</displayname></prop></set>"
    "</propertyupdate>")


class BadInputTests(DavServerTestCase):
    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        yield super().setUp()
        answer = yield self.dav("PUT", CAL + "one.ics", EVENT.format(uid="one", summary="Kept"),
                                Content_Type="text/calendar")
        self.assertEqual(answer.status_code, 201)
        self.etag = answer.headers["ETag"]

    @defer.inlineCallbacks
    def state(self) -> Any:
        """What a client would see: every member with its ETag, and the calendar's name."""
        answer = yield self.dav("PROPFIND", CAL, '<propfind xmlns="DAV:"><prop><getetag/>'
                                '<displayname/></prop></propfind>', Depth="1")
        data = yield self.dav("GET", CAL + "one.ics")
        return answer.text, data.text

    @defer.inlineCallbacks
    def assertUnchanged(self, before: Any) -> Any:
        after = yield self.state()
        self.assertEqual(after, before)

    @defer.inlineCallbacks
    def test_malformed_xml_and_entities(self) -> Any:
        before = yield self.state()
        for method, body in (("PROPFIND", "<propfind xmlns='DAV:'><prop>"),
                             ("PROPFIND", BILLION_LAUGHS), ("PROPPATCH", PROPPATCH_LAUGHS),
                             ("REPORT", "<not xml"), ("PROPPATCH", "<a><b></a>")):
            answer = yield self.dav(method, CAL, body, Depth="0")
            self.assertEqual(answer.status_code, 400, f"{method}: {answer.text}")
        answer = yield self.dav("PROPFIND", CAL, BILLION_LAUGHS, Depth="0")
        self.assertIn("DTDs and entities are not accepted", answer.text)
        yield self.assertUnchanged(before)

    @defer.inlineCallbacks
    def test_invalid_objects(self) -> Any:
        before = yield self.state()
        cases = [
            (CAL + "bad.ics", "BEGIN:VCALENDAR\r\nthis is not\r\n", "valid-calendar-data"),
            (CAL + "two.ics", EVENT.format(uid="one", summary="Clash"), "no-uid-conflict"),
            (CAL + "multi.ics", EVENT.format(uid="a", summary="x").replace(
                "END:VCALENDAR", "BEGIN:VEVENT\r\nUID:b\r\nDTSTAMP:20261201T000000Z\r\n"
                "DTSTART:20270101T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR"),
             "valid-calendar-object-resource"),
            (BOOK + "bad.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nEND:VCARD\r\n",
             "valid-address-data"),
            (BOOK + "bad2.vcf", "not a vcard at all", "valid-address-data"),
            (BOOK + "v2.vcf", "BEGIN:VCARD\r\nVERSION:2.1\r\nFN:x\r\nUID:x\r\nEND:VCARD\r\n",
             "supported-address-data"),
        ]
        for path, body, condition in cases:
            answer = yield self.dav("PUT", path, body, Content_Type="text/calendar")
            self.assertEqual(answer.status_code, 403, f"{path}: {answer.text}")
            self.assertIn(condition, answer.text)
        # a calendar for events only refuses a todo (RFC 4791 §5.3.2.1)
        made = yield self.dav("MKCALENDAR", "/caldav/alice@example.com/events/",
                              '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:'
                              'caldav"><D:set><D:prop><C:supported-calendar-component-set>'
                              '<C:comp name="VEVENT"/></C:supported-calendar-component-set>'
                              '</D:prop></D:set></C:mkcalendar>')
        self.assertEqual(made.status_code, 201)
        todo = EVENT.format(uid="t", summary="t").replace("VEVENT", "VTODO")
        answer = yield self.dav("PUT", "/caldav/alice@example.com/events/t.ics", todo)
        self.assertEqual(answer.status_code, 403)
        self.assertIn("supported-calendar-component", answer.text)
        for path in ("bad.ics", "two.ics", "multi.ics"):
            gone = yield self.dav("GET", CAL + path)
            self.assertEqual(gone.status_code, 404)
        listed = yield self.dav("PROPFIND", BOOK, "", Depth="1")
        self.assertNotIn(".vcf", listed.text)
        yield self.assertUnchanged(before)

    @defer.inlineCallbacks
    def test_oversize_object(self) -> Any:
        before = yield self.state()
        summary = "x" * (20 * 1024 * 1024)
        for base in (self.web_base, self.dav_base):
            path = CAL if base == self.web_base else "/dav/calendars/alice@example.com/calendar/"
            answer = yield self.dav("PUT", path + "big.ics",
                                    EVENT.format(uid="big", summary=summary), base=base)
            self.assertEqual(answer.status_code, 413, answer.text[:200])
        yield self.assertUnchanged(before)
        used = yield self.dav("PROPFIND", CAL, '<propfind xmlns="DAV:"><prop>'
                              '<quota-used-bytes/></prop></propfind>', Depth="0")
        self.assertIn(f"<D:quota-used-bytes>{len(EVENT.format(uid='one', summary='Kept'))}<",
                      used.text)

    @defer.inlineCallbacks
    def test_conditional_requests(self) -> Any:
        before = yield self.state()
        changed = EVENT.format(uid="one", summary="Changed")
        answer = yield self.dav("PUT", CAL + "one.ics", changed, If_Match='"not-the-etag"')
        self.assertEqual(answer.status_code, 412)
        answer = yield self.dav("PUT", CAL + "one.ics", changed, If_None_Match="*")
        self.assertEqual(answer.status_code, 412)
        answer = yield self.dav("DELETE", CAL + "one.ics", If_Match='"not-the-etag"')
        self.assertEqual(answer.status_code, 412)
        yield self.assertUnchanged(before)
        answer = yield self.dav("PUT", CAL + "one.ics", changed, If_Match=self.etag)
        self.assertEqual(answer.status_code, 204)
        self.assertNotEqual(answer.headers["ETag"], self.etag)
        data = yield self.dav("GET", CAL + "one.ics")
        self.assertIn("SUMMARY:Changed", data.text)
        self.assertEqual(data.headers["ETag"], answer.headers["ETag"])

    @defer.inlineCallbacks
    def test_sync_tokens_foreign_or_too_old_and_depth_infinity(self) -> Any:
        for token in ("http://mailgosend.invalid/sync/999/1", "garbage",
                      "http://mailgosend.invalid/sync/1/999999"):
            answer = yield self.dav("REPORT", CAL,
                                    '<sync-collection xmlns="DAV:"><sync-token>'
                                    f'{token}</sync-token><sync-level>1</sync-level>'
                                    '<prop><getetag/></prop></sync-collection>')
            self.assertEqual(answer.status_code, 403, token)
            self.assertIn("valid-sync-token", answer.text)
        answer = yield self.dav("PROPFIND", CAL, "", Depth="infinity")
        self.assertEqual(answer.status_code, 403)
        self.assertIn("propfind-finite-depth", answer.text)
