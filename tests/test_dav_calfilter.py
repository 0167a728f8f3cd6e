"""calendar-query's filter tree and time tests as plain functions: the quick time-range
test (dav/quicktime.py) answers as the full parser does, or declines; nested filters over
parsed objects (dav/calfilter.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import icalendar
from twisted.trial import unittest

from mailgosend.dav import calfilter, ical, quicktime


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)  # type: ignore[misc]


def cal(body: str, component: str = "VEVENT") -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
            f"BEGIN:{component}\r\nUID:x\r\nDTSTAMP:20261201T000000Z\r\n{body}"
            f"END:{component}\r\nEND:VCALENDAR\r\n").encode()


SIMPLE = {
    "hour": cal("DTSTART:20270110T100000Z\r\nDTEND:20270110T110000Z\r\n"),
    "duration": cal("DTSTART:20270110T100000Z\r\nDURATION:PT90M\r\n"),
    "instant": cal("DTSTART:20270110T100000Z\r\n"),
    "zero": cal("DTSTART:20270110T100000Z\r\nDURATION:PT0S\r\n"),
    "weekly": cal("DTSTART:20270104T090000Z\r\nDURATION:PT1H\r\n"
                  "RRULE:FREQ=WEEKLY;COUNT=5\r\n"),
    "until": cal("DTSTART:20270104T090000Z\r\nDURATION:PT1H\r\n"
                 "RRULE:FREQ=DAILY;UNTIL=20270108T090000Z\r\n"),
    "monthly": cal("DTSTART:20260131T090000Z\r\nDTEND:20260131T100000Z\r\n"
                   "RRULE:FREQ=MONTHLY\r\n"),
    "folded": cal("DTSTART:20270110T1\r\n 00000Z\r\nDURATION:P1D\r\n"),
    "alarm": cal("DTSTART:20270110T100000Z\r\nDURATION:PT1H\r\nBEGIN:VALARM\r\n"
                 "ACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nDESCRIPTION:x\r\nEND:VALARM\r\n"),
}
DECLINED = {
    "zoned": cal("DTSTART;TZID=Europe/Paris:20270110T100000\r\nDURATION:PT1H\r\n"),
    "floating": cal("DTSTART:20270110T100000\r\nDURATION:PT1H\r\n"),
    "allday": cal("DTSTART;VALUE=DATE:20270110\r\n"),
    "exdate": cal("DTSTART:20270104T090000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY\r\n"
                  "EXDATE:20270105T090000Z\r\n"),
    "hourly": cal("DTSTART:20270104T090000Z\r\nRRULE:FREQ=HOURLY\r\n"),
    "offrule": cal("DTSTART:20270105T090000Z\r\nDURATION:PT1H\r\n"
                   "RRULE:FREQ=WEEKLY;BYDAY=MO\r\n"),   # a Tuesday start
    "todo": cal("DTSTART:20270110T100000Z\r\n", "VTODO"),
}
RANGES = [(utc(2027, 1, 10, 10), utc(2027, 1, 10, 11)), (utc(2027, 1, 10, 11), None),
          (None, utc(2027, 1, 10, 10)), (utc(2027, 1, 10, 9, 30), utc(2027, 1, 10, 10)),
          (utc(2027, 1, 10, 10, 30), utc(2027, 1, 10, 10, 31)),
          (utc(2027, 1, 18), utc(2027, 1, 19)), (utc(2027, 2, 1), utc(2027, 3, 1)),
          (utc(2027, 1, 6), utc(2027, 1, 7)), (utc(2028, 2, 28), utc(2028, 3, 2)),
          (utc(2026, 1, 1), utc(2026, 1, 31, 9, 30)), (utc(2027, 1, 9), utc(2027, 1, 10))]


class QuickTimeTests(unittest.TestCase):
    def test_quick_answers_match_the_full_parser(self) -> None:
        for name, data in SIMPLE.items():
            calendar = icalendar.Calendar.from_ical(data.decode())
            for start, end in RANGES:
                quick = quicktime.overlaps(data, "VEVENT", start, end)
                self.assertIsNotNone(quick, name)
                self.assertEqual(quick, ical.calendar_in_range(calendar, "VEVENT", start, end),
                                 (name, start, end))

    def test_declines_what_it_cannot_judge(self) -> None:
        for name, data in DECLINED.items():
            kind = "VTODO" if name == "todo" else "VEVENT"
            self.assertIsNone(quicktime.overlaps(data, kind, utc(2027, 1, 1), None), name)


def tree(inner: str) -> calfilter.CompFilter:
    return calfilter.parse_filter(ET.fromstring(
        '<C:filter xmlns:C="urn:ietf:params:xml:ns:caldav"><C:comp-filter name="VCALENDAR">'
        f'{inner}</C:comp-filter></C:filter>'))


class FilterTests(unittest.TestCase):
    def test_simple_range_only_for_the_plain_shape(self) -> None:
        self.assertEqual(calfilter.simple_range(tree(
            '<C:comp-filter name="VEVENT"><C:time-range start="20270101T000000Z"/>'
            '</C:comp-filter>')), ("VEVENT", utc(2027, 1, 1), None))
        for inner in ('<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"/>'
                      '</C:comp-filter>',
                      '<C:comp-filter name="VEVENT"><C:is-not-defined/></C:comp-filter>',
                      '<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"/>'
                      '</C:comp-filter>'):
            self.assertIsNone(calfilter.simple_range(tree(inner)), inner)

    def test_bad_filters(self) -> None:
        for inner, condition in (
                ('<C:comp-filter name="VEVENT"><C:time-range start="soon"/></C:comp-filter>',
                 "valid-filter"),
                ('<C:comp-filter name="VEVENT"><C:time-range/></C:comp-filter>',
                 "valid-filter"),
                ('<C:comp-filter name="VEVENT"><C:prop-filter name="X"><C:text-match '
                 'collation="i;nope">a</C:text-match></C:prop-filter></C:comp-filter>',
                 "supported-collation")):
            with self.assertRaises(calfilter.InvalidFilter) as raised:
                tree(inner)
            self.assertEqual(raised.exception.condition, condition)
        with self.assertRaises(calfilter.InvalidFilter):
            calfilter.parse_filter(ET.fromstring(
                '<C:filter xmlns:C="urn:ietf:params:xml:ns:caldav"><C:comp-filter '
                'name="VEVENT"/></C:filter>'))

    def test_nested_matches(self) -> None:
        data = SIMPLE["alarm"]
        cases = [
            ('<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"><C:time-range '
             'start="20270110T095000Z" end="20270110T100000Z"/></C:comp-filter>'
             '</C:comp-filter>', True),
            ('<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"><C:time-range '
             'start="20270110T100000Z" end="20270110T110000Z"/></C:comp-filter>'
             '</C:comp-filter>', False),
            ('<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"><C:prop-filter '
             'name="ACTION"><C:text-match>display</C:text-match></C:prop-filter>'
             '</C:comp-filter></C:comp-filter>', True),
            ('<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"><C:prop-filter '
             'name="ACTION"><C:text-match collation="i;octet">display</C:text-match>'
             '</C:prop-filter></C:comp-filter></C:comp-filter>', False),
            ('<C:prop-filter name="PRODID"><C:text-match>-//t//</C:text-match>'
             '</C:prop-filter>', True),
            ('<C:comp-filter name="VEVENT"><C:prop-filter name="DTSTAMP"><C:time-range '
             'start="20261201T000000Z" end="20261202T000000Z"/></C:prop-filter>'
             '</C:comp-filter>', True),
            ('<C:comp-filter name="VTODO"/>', False),
        ]
        for inner, expected in cases:
            self.assertEqual(ical.matches_filter(data, "VEVENT", tree(inner)), expected, inner)

    def test_an_object_that_cannot_be_read_does_not_match(self) -> None:
        top = tree('<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"/>'
                   '</C:comp-filter>')
        self.assertEqual(ical.matches_all([(b"not a calendar", "VEVENT"),
                                           (cal("SUMMARY:x\r\nDTSTART:20270101T000000Z\r\n"),
                                            "VEVENT")], top), [False, True])
