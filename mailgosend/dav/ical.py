# -*- test-case-name: tests.test_dav_caldav -*-
"""iCalendar objects for CalDAV (RFC 4791): validation of what is PUT, the stored time span,
the precise time-range test over recurrences, and free-busy.

Parsing runs in the worker threads (the caller's job).  A calendar object resource holds
one VCALENDAR whose components (other than VTIMEZONE) share one UID and one type
(RFC 4791 §4.1); recurrences are expanded with ``recurring-ical-events``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Optional, Sequence

import icalendar
import recurring_ical_events

from mailgosend.dav import calfilter, quicktime

from mailgosend.mail.dav import ObjectFacts
from mailgosend.mail.icaltime import component_span, utc

__all__ = ["COMPONENTS", "InvalidCalendar", "validate", "in_range", "busy_periods",
           "parse_utc", "freebusy_calendar", "calendar_in_range", "occurrences_between",
           "occurrence_end", "expand", "matches_filter"]

COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")
# Occurrences one object may produce for one query: a FREQ=SECONDLY rule over a year would
# otherwise keep a worker busy for minutes (the rest are left out of expand and free-busy).
MAX_OCCURRENCES = 3000


class InvalidCalendar(ValueError):
    """``condition`` is the RFC 4791 §5.3.2.1 precondition element's name."""

    def __init__(self, message: str, condition: str = "valid-calendar-data") -> None:
        super().__init__(message)
        self.condition = condition




def parse_utc(text: str) -> datetime:
    """An RFC 4791 §9.9 time-range bound (UTC date-time, 20060104T000000Z)."""
    return datetime.strptime(text.strip(), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)




def validate(data: bytes, allowed: Sequence[str]) -> ObjectFacts:
    """The UID, component and span of a calendar object; InvalidCalendar (with the
    precondition to report) when it is not one a calendar may hold."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidCalendar("the calendar object is not UTF-8") from None
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except Exception as error:   # icalendar raises ValueError and others on bad input
        raise InvalidCalendar(f"not valid iCalendar: {error}") from None
    if not isinstance(calendar, icalendar.Calendar) or calendar.name != "VCALENDAR":
        raise InvalidCalendar("the object is not a VCALENDAR")
    parts = [c for c in calendar.subcomponents if c.name != "VTIMEZONE"]
    if not parts:
        raise InvalidCalendar("the calendar object has no VEVENT, VTODO or VJOURNAL",
                              "valid-calendar-object-resource")
    kinds = {c.name for c in parts}
    uids = {str(c.get("UID", "")) for c in parts}
    if len(kinds) != 1 or len(uids) != 1:
        raise InvalidCalendar("one calendar object holds one component type and one UID "
                              "(RFC 4791 §4.1)", "valid-calendar-object-resource")
    kind = kinds.pop()
    uid = uids.pop()
    if kind not in COMPONENTS:
        raise InvalidCalendar(f"{kind} is not a calendar component this server stores",
                              "supported-calendar-component")
    if kind not in allowed:
        raise InvalidCalendar(f"this calendar does not take {kind}",
                              "supported-calendar-component")
    if not uid or len(uid) > 255:
        raise InvalidCalendar("the component needs a UID of at most 255 characters",
                              "valid-calendar-object-resource")
    starts: list[Optional[datetime]] = []
    ends: list[Optional[datetime]] = []
    try:
        for part in parts:
            start, end = component_span(part)
            starts.append(start)
            ends.append(end)
    except Exception as error:
        raise InvalidCalendar(f"bad date in the calendar object: {error}") from None
    unbounded_start = any(s is None for s in starts)
    unbounded_end = any(e is None for e in ends)
    return ObjectFacts(uid=uid, component=kind,
                       starts_at=None if unbounded_start else min(s for s in starts if s),
                       ends_at=None if unbounded_end else max(e for e in ends if e))


def _occurrences(calendar: Any, component: str, start: datetime, end: datetime
                 ) -> Iterator[Any]:
    """The occurrences overlapping [start, end) (RFC 4791 §9.9), in order, at most
    MAX_OCCURRENCES."""
    query = recurring_ical_events.of(calendar, components=[component])
    for count, occurrence in enumerate(query.after(start)):
        if count >= MAX_OCCURRENCES:
            return
        begin = utc(occurrence.decoded("DTSTART")) if "DTSTART" in occurrence else None
        if begin is not None and begin >= end:
            return
        yield occurrence


def in_range(data: bytes, component: str, start: Optional[datetime],
             end: Optional[datetime]) -> bool:
    """RFC 4791 §9.9: does some occurrence of the object's ``component`` overlap the range
    (recurrences expanded)?"""
    quick = quicktime.overlaps(data, component, start, end)
    if quick is not None:
        return quick
    return calendar_in_range(icalendar.Calendar.from_ical(data.decode("utf-8")), component,
                             start, end)


def occurrences_between(calendar: Any, component: str, start: Optional[datetime],
                        end: Optional[datetime]) -> Iterator[Any]:
    """The occurrences of ``component`` overlapping [start, end) (open bounds allowed)."""
    low = start or datetime(1900, 1, 1, tzinfo=timezone.utc)
    high = end or datetime(2200, 1, 1, tzinfo=timezone.utc)
    return _occurrences(calendar, component, low, high)


def occurrence_end(occurrence: Any) -> Optional[datetime]:
    """Where one occurrence ends (DTEND, DUE, DTSTART + DURATION, or its start)."""
    for name in ("DTEND", "DUE"):
        if name in occurrence:
            return utc(occurrence.decoded(name))
    start = utc(occurrence.decoded("DTSTART")) if "DTSTART" in occurrence else None
    if start is not None and "DURATION" in occurrence:
        return start + occurrence.decoded("DURATION")
    return start


def calendar_in_range(calendar: Any, component: str, start: Optional[datetime],
                      end: Optional[datetime]) -> bool:
    """``in_range`` over a calendar already parsed."""
    low = start or datetime(1900, 1, 1, tzinfo=timezone.utc)
    high = end or datetime(2200, 1, 1, tzinfo=timezone.utc)
    for _ in _occurrences(calendar, component, low, high):
        return True
    if component == "VTODO":   # §9.9: a VTODO without DTSTART, DUE or DURATION matches
        return any(c.name == "VTODO" and not any(p in c for p in ("DTSTART", "DUE",
                                                                  "COMPLETED", "CREATED"))
                   for c in calendar.subcomponents)
    return False


def busy_periods(data: bytes, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """RFC 4791 §7.10: the busy time of the object's events in [start, end)."""
    calendar = icalendar.Calendar.from_ical(data.decode("utf-8"))
    periods = []
    for event in _occurrences(calendar, "VEVENT", start, end):
        if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
            continue
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            continue
        begin = utc(event.decoded("DTSTART"))
        finish = utc(event.decoded("DTEND")) if "DTEND" in event else None
        if begin is None:
            continue
        if finish is None:
            finish = begin + (event.decoded("DURATION") if "DURATION" in event
                              else timedelta(days=1))
        periods.append((max(begin, start), min(finish, end)))
    return periods


def freebusy_calendar(periods: list[tuple[datetime, datetime]], start: datetime,
                      end: datetime, now: datetime) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("PRODID", "-//mailgosend//CalDAV//EN")
    calendar.add("VERSION", "2.0")
    busy = icalendar.FreeBusy()
    busy.add("DTSTAMP", now)
    busy.add("DTSTART", start)
    busy.add("DTEND", end)
    for begin, finish in sorted(periods):
        busy.add("FREEBUSY", (begin, finish))
    calendar.add_component(busy)
    return bytes(calendar.to_ical())


def matches_filter(data: bytes, component: str, top: calfilter.CompFilter,
                   simple: Any = False) -> bool:
    """RFC 4791 §9.7: does the object (holding ``component``s) match a calendar-query
    filter tree (calfilter.py)?  The filter's simple form (one component type, perhaps in a
    time range: what clients send to fill a month view) is answered without a full parse
    when the object is simple enough (quicktime.py).  ``simple``: the filter's
    ``calfilter.simple_range``, when the caller has it already."""
    if simple is False:
        simple = calfilter.simple_range(top)
    if simple is not None and simple[0] in COMPONENTS:
        name, start, end = simple
        if name != component:   # RFC 4791 §4.1: one component type per object
            return False
        if start is None and end is None:
            return True
        quick = quicktime.overlaps(data, name, start, end)
        if quick is not None:
            return quick
    return calfilter.matches(icalendar.Calendar.from_ical(data.decode("utf-8")), top)


def matches_all(items: Sequence[tuple[bytes, str]], top: calfilter.CompFilter) -> list[bool]:
    """``matches_filter`` for many (data, component) in one call: one worker-thread hop
    per batch, not one per object."""
    simple = calfilter.simple_range(top)
    return [_safely(data, component, top, simple) for data, component in items]


def _safely(data: bytes, component: str, top: calfilter.CompFilter, simple: Any) -> bool:
    """One object the recurrence or parsing libraries choke on (stored before a stricter
    validation, or a rule they cannot expand) does not match, rather than failing the
    whole REPORT."""
    try:
        return matches_filter(data, component, top, simple)
    except Exception:   # icalendar / recurring-ical-events raise many kinds
        return False


def expand(data: bytes, component: str, start: datetime, end: datetime) -> bytes:
    """RFC 4791 §9.6.5: the object's occurrences in [start, end) as separate components
    with RECURRENCE-ID, times in UTC, no VTIMEZONE."""
    calendar = icalendar.Calendar.from_ical(data.decode("utf-8"))
    out = icalendar.Calendar()
    for name in ("VERSION", "PRODID"):
        if name in calendar:
            out.add(name, calendar[name])
    recurring = any("RRULE" in c or "RDATE" in c for c in calendar.subcomponents)
    for occurrence in _occurrences(calendar, component, start, end):
        for name in ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID"):
            if name in occurrence:
                value = occurrence.decoded(name)
                del occurrence[name]
                if not recurring and name == "RECURRENCE-ID":
                    continue
                occurrence.add(name, utc(value) if isinstance(value, datetime) else value)
        for name in ("RRULE", "RDATE", "EXDATE"):
            occurrence.pop(name, None)
        out.add_component(occurrence)
    return bytes(out.to_ical())
