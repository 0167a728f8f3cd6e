# -*- test-case-name: tests.test_webmail_calendar -*-
"""Calendar events as the webmail sees them (issue #15 item 7): the fields a person edits,
turned into iCalendar (RFC 5545) and back, occurrences of a range, and invitations
(RFC 5546 iTIP ``METHOD:REQUEST``) made into calendar objects.

Pure functions over bytes, run in the worker threads (mail/dav.py ``UserDav`` calls them):
parsing and recurrence expansion cost milliseconds each.  Editing an existing object changes
only the properties the form shows and keeps every other one (alarms, attendees, X-
properties of other clients), so a CalDAV client loses nothing when the webmail edits.

The stored time span follows the same rule as dav/ical.py ``validate`` (the time-range
pre-filter of both front ends reads it); tests.test_webmail_calendar checks they agree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Mapping, Optional, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events

from mailgosend.mail.icaltime import component_span, utc

__all__ = ["InvalidField", "Repeat", "EventFields", "Facts", "Invitation", "parse_fields",
           "new_event", "edit_series", "edit_occurrence", "delete_occurrence",
           "occurrences", "occurrences_of_all", "facts", "invitation", "sequence_of", "parse_when",
           "recurrence_text", "FREQS"]

PRODID = "-//mailgosend//Webmail Calendar//EN"
FREQS = ("daily", "weekly", "monthly", "yearly")
MAX_TITLE = 1000
MAX_TEXT = 32_000
MAX_COUNT = 1000
# Occurrences of one object in one answer (a daily rule over a year view is 366).
MAX_OCCURRENCES = 3000
# Properties the form owns; everything else of an event is kept on edit.
_FORM_PROPS = ("SUMMARY", "DTSTART", "DTEND", "DURATION", "LOCATION", "DESCRIPTION")

When = Union[date, datetime]


class InvalidField(ValueError):
    """Bad input: ``field`` names the JSON field (``repeat.until``) the message is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Repeat:
    freq: str                      # one of FREQS
    until: Optional[date] = None   # the last day an occurrence may start (inclusive)
    count: Optional[int] = None


@dataclass(frozen=True)
class EventFields:
    """What the webmail's form edits.  ``repeat`` None with ``keep_repeat``: leave the
    object's own rule (a rule the form cannot show, such as BYDAY=MO,WE) as it is."""

    title: str
    start: When
    end: When
    all_day: bool
    location: str = ""
    description: str = ""
    repeat: Optional[Repeat] = None
    keep_repeat: bool = False


@dataclass(frozen=True)
class Facts:
    """What the store keeps plain for one object (mail/dav.py ObjectFacts)."""

    uid: str
    component: str
    starts_at: Optional[datetime]
    ends_at: Optional[datetime]


@dataclass(frozen=True)
class Invitation:
    """A ``text/calendar`` part of a message, made into a calendar object."""

    uid: str
    method: str
    sequence: int
    title: str
    start: str            # ISO (a date for all-day events)
    data: bytes           # the VCALENDAR to store: no METHOD (RFC 4791 §4.1)


# --- input ---------------------------------------------------------------------------------
def _text(body: Mapping[str, Any], name: str, limit: int, required: bool = False) -> str:
    value = body.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidField(name, "must be text")
    value = value.strip() if name == "title" else value
    if required and not value:
        raise InvalidField(name, "must not be empty")
    if len(value) > limit:
        raise InvalidField(name, f"must be at most {limit} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise InvalidField(name, "must not hold control characters")
    return value


def _zone(body: Mapping[str, Any]) -> Any:
    name = body.get("timeZone") or "UTC"
    if not isinstance(name, str) or len(name) > 64:
        raise InvalidField("timeZone", "must be an IANA time zone name such as Europe/Paris")
    if name.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidField("timeZone", f"{name!r} is not a known time zone") from None


def parse_when(value: Any, field: str, *, all_day: bool, zone: Any = timezone.utc) -> When:
    """``YYYY-MM-DD`` for all-day events; else an ISO date-time, with an offset (``Z``) or
    as wall-clock time in ``zone``."""
    if not isinstance(value, str) or not value:
        raise InvalidField(field, "is needed")
    if all_day:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            raise InvalidField(field, "must be a date like 2027-01-31") from None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")
                                        if value.endswith("Z") else value)
    except ValueError:
        raise InvalidField(field, "must be a date and time like 2027-01-31T09:30") from None
    if len(value) <= 10:
        raise InvalidField(field, "must be a date and time like 2027-01-31T09:30")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if not 1900 <= moment.year <= 2200:
        raise InvalidField(field, "must be between the years 1900 and 2200")
    return moment.replace(microsecond=0)


def _repeat(value: Any, start: When) -> Optional[Repeat]:
    if value is None or value == "" or value == {}:
        return None
    if not isinstance(value, Mapping):
        raise InvalidField("repeat", "must be an object with freq, and until or count")
    freq = value.get("freq")
    if freq in (None, "", "none"):
        return None
    if freq not in FREQS:
        raise InvalidField("repeat.freq", "must be one of " + ", ".join(FREQS))
    until_text, count = value.get("until"), value.get("count")
    if until_text not in (None, "") and count not in (None, ""):
        raise InvalidField("repeat.count", "give an end date or a count, not both "
                                           "(RFC 5545 §3.3.10)")
    until = None
    if until_text not in (None, ""):
        until = parse_when(until_text, "repeat.until", all_day=True)
        first = start.date() if isinstance(start, datetime) else start
        if until < first:
            raise InvalidField("repeat.until", "must not be before the start")
    number = None
    if count not in (None, ""):
        if isinstance(count, bool) or not isinstance(count, (int, str)):
            raise InvalidField("repeat.count", "must be a whole number")
        try:
            number = int(count)
        except ValueError:
            raise InvalidField("repeat.count", "must be a whole number") from None
        if not 1 <= number <= MAX_COUNT:
            raise InvalidField("repeat.count", f"must be between 1 and {MAX_COUNT}")
    return Repeat(freq, until, number)


def parse_fields(body: Mapping[str, Any]) -> EventFields:
    """The form's JSON, checked; InvalidField names the first bad field.  ``end`` is
    exclusive, as in iCalendar: an all-day event on one day ends the next day."""
    if not isinstance(body, Mapping):
        raise InvalidField("body", "must be a JSON object")
    title = _text(body, "title", MAX_TITLE, required=True)
    all_day = body.get("allDay", False)
    if not isinstance(all_day, bool):
        raise InvalidField("allDay", "must be true or false")
    zone = _zone(body)
    start = parse_when(body.get("start"), "start", all_day=all_day, zone=zone)
    if body.get("end") in (None, ""):
        end: When = start + (timedelta(days=1) if all_day else timedelta(hours=1))
    else:
        end = parse_when(body.get("end"), "end", all_day=all_day, zone=zone)
    if end <= start:  # type: ignore[operator]
        raise InvalidField("end", "must be after the start")
    if end - start > timedelta(days=3660):  # type: ignore[operator]
        raise InvalidField("end", "must be within ten years of the start")
    return EventFields(title=title, start=start, end=end, all_day=all_day,
                       location=_text(body, "location", MAX_TITLE),
                       description=_text(body, "description", MAX_TEXT),
                       repeat=_repeat(body.get("repeat"), start),
                       keep_repeat="repeat" not in body)


# --- iCalendar -----------------------------------------------------------------------------


def _parse(data: bytes) -> Any:
    try:
        calendar = icalendar.Calendar.from_ical(data.decode("utf-8"))
    except Exception as error:   # icalendar raises ValueError and others on bad input
        raise InvalidField("data", f"not valid iCalendar: {error}") from None
    if not isinstance(calendar, icalendar.Calendar):
        raise InvalidField("data", "not a VCALENDAR")
    return calendar


def _master(calendar: Any) -> Any:
    events = [c for c in calendar.walk("VEVENT")]
    for event in events:
        if "RECURRENCE-ID" not in event:
            return event
    if events:
        return events[0]
    raise InvalidField("id", "this calendar object holds no event")


def _rrule(repeat: Repeat, start: When) -> dict[str, Any]:
    rule: dict[str, Any] = {"FREQ": repeat.freq.upper()}
    if repeat.count is not None:
        rule["COUNT"] = repeat.count
    if repeat.until is not None:
        if isinstance(start, datetime):
            # RFC 5545 §3.3.10: UNTIL is UTC when DTSTART has a time zone; the last
            # moment of that day in the event's zone.
            last = datetime.combine(repeat.until, time(23, 59, 59), start.tzinfo)
            rule["UNTIL"] = last.astimezone(timezone.utc)
        else:
            rule["UNTIL"] = repeat.until
    return rule


def _apply(event: Any, fields: EventFields, now: datetime, *, series: bool) -> None:
    for name in _FORM_PROPS:
        event.pop(name, None)
    event.add("SUMMARY", fields.title)
    event.add("DTSTART", fields.start)
    event.add("DTEND", fields.end)
    if fields.location:
        event.add("LOCATION", fields.location)
    if fields.description:
        event.add("DESCRIPTION", fields.description)
    if series and not fields.keep_repeat:
        event.pop("RRULE", None)
        if fields.repeat is not None:
            event.add("RRULE", _rrule(fields.repeat, fields.start))
    for name in ("DTSTAMP", "LAST-MODIFIED"):
        event.pop(name, None)
        event.add(name, now)


def _bump_sequence(event: Any) -> None:
    current = sequence_of(event)
    event.pop("SEQUENCE", None)
    event.add("SEQUENCE", current + 1)


def sequence_of(event: Any) -> int:
    try:
        return int(event.get("SEQUENCE", 0))
    except (TypeError, ValueError):
        return 0


def _finish(calendar: Any) -> bytes:
    try:
        calendar.add_missing_timezones()
    except Exception:   # a zone icalendar cannot describe: clients fall back on TZID
        pass
    return bytes(calendar.to_ical())


def new_event(fields: EventFields, now: datetime, uid: Optional[str] = None) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    event = icalendar.Event()
    event.add("UID", uid or str(uuid.uuid4()))
    event.add("CREATED", now)
    event.add("SEQUENCE", 0)
    _apply(event, fields, now, series=True)
    calendar.add_component(event)
    return _finish(calendar)


def _rule_text(rule: Any) -> Optional[bytes]:
    if isinstance(rule, list):
        rule = rule[0] if rule else None
    return bytes(rule.to_ical()) if rule is not None else None


def _local_date(value: When, zone: Any) -> date:
    if isinstance(value, datetime):
        return (value.astimezone(zone) if value.tzinfo is not None and zone is not None
                else value).date()
    return value


def _anchored(fields: EventFields, master: Any, occurrence: When) -> EventFields:
    """The form edited the whole series from one ``occurrence`` (its original start): the
    times given are that occurrence's new ones, so the series' first start moves by the
    same number of days, at the new time of day (wall clock, right across summer time)."""
    if "DTSTART" not in master:
        return fields
    first = master.decoded("DTSTART")
    zone = fields.start.tzinfo if isinstance(fields.start, datetime) else None
    days = _local_date(fields.start, zone) - _local_date(occurrence, zone)
    day = _local_date(first, zone) + days
    start: When = (datetime.combine(day, fields.start.timetz())
                   if isinstance(fields.start, datetime) else day)
    end = start + (fields.end - fields.start)  # type: ignore[operator]
    return replace(fields, start=start, end=end)


def edit_series(data: bytes, fields: EventFields, now: datetime,
                anchor: Optional[str] = None) -> bytes:
    """The whole event changed: the master's form properties; the rest kept.  With
    ``anchor`` (a recurrence id), the form showed that occurrence (see ``_anchored``).
    When the start or the rule changes, the exceptions (EXDATE, overridden occurrences)
    refer to occurrences that no longer exist and are dropped."""
    calendar = _parse(data)
    master = _master(calendar)
    old_start = master.decoded("DTSTART") if "DTSTART" in master else None
    old_rule = master.get("RRULE")
    if anchor is not None and ("RRULE" in master or "RDATE" in master):
        fields = _anchored(fields, master, _recurrence_value(anchor, master))
    _apply(master, fields, now, series=True)
    _bump_sequence(master)
    moved = utc(old_start) != utc(fields.start) or type(old_start) is not type(fields.start)
    if moved or (not fields.keep_repeat and _rule_text(master.get("RRULE")) !=
                 _rule_text(old_rule)):
        master.pop("EXDATE", None)
        master.pop("RDATE", None)
        calendar.subcomponents[:] = [c for c in calendar.subcomponents
                                     if not (c.name == "VEVENT" and "RECURRENCE-ID" in c)]
    return _finish(calendar)


def recurrence_text(value: When) -> str:
    """A recurrence id as the webmail names it: ``20270110`` or ``20270110T090000Z``."""
    if isinstance(value, datetime):
        return utc(value).strftime("%Y%m%dT%H%M%SZ")  # type: ignore[union-attr]
    return value.strftime("%Y%m%d")


def _recurrence_value(text: Any, master: Any) -> When:
    """``text`` (recurrence_text) as a value like the master's DTSTART (same zone)."""
    if not isinstance(text, str):
        raise InvalidField("recurrenceId", "is needed")
    start = master.decoded("DTSTART") if "DTSTART" in master else None
    try:
        if len(text) == 8:
            value: When = datetime.strptime(text, "%Y%m%d").date()
        else:
            value = datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidField("recurrenceId", "is not an occurrence of this event") from None
    if isinstance(start, datetime) and isinstance(value, datetime):
        if start.tzinfo is None:
            return value.replace(tzinfo=None)
        return value.astimezone(start.tzinfo)
    if isinstance(start, datetime) != isinstance(value, datetime):
        raise InvalidField("recurrenceId", "is not an occurrence of this event")
    return value


def _is_occurrence(calendar: Any, value: When) -> bool:
    moment = utc(value)
    assert moment is not None
    query = recurring_ical_events.of(calendar, components=["VEVENT"])
    for occurrence in query.between(moment - timedelta(days=2), moment + timedelta(days=2)):
        rid = occurrence.get("RECURRENCE-ID")
        seen = occurrence.decoded("RECURRENCE-ID") if rid is not None else \
            occurrence.decoded("DTSTART")
        if utc(seen) == moment:
            return True
    return False


def _same(a: Any, b: When) -> bool:
    return utc(a) == utc(b) and isinstance(a, datetime) == isinstance(b, datetime)


def edit_occurrence(data: bytes, recurrence_id: str, fields: EventFields, now: datetime
                    ) -> bytes:
    """One occurrence changed: an overriding VEVENT with its RECURRENCE-ID (RFC 5545
    §3.8.4.4), made from the master's properties when there is none yet."""
    calendar = _parse(data)
    master = _master(calendar)
    if "RRULE" not in master and "RDATE" not in master:
        raise InvalidField("scope", "this event does not repeat: edit the whole event")
    value = _recurrence_value(recurrence_id, master)
    override = next((c for c in calendar.walk("VEVENT") if "RECURRENCE-ID" in c and
                     _same(c.decoded("RECURRENCE-ID"), value)), None)
    if override is None:
        if not _is_occurrence(calendar, value):
            raise InvalidField("recurrenceId", "is not an occurrence of this event")
        override = icalendar.Event()
        for name, prop in master.property_items(recursive=False):
            if name in ("BEGIN", "END", "RRULE", "RDATE", "EXDATE", "VEVENT"):
                continue
            override.add(name, prop, encode=False)
        override.add("RECURRENCE-ID", value)
        for sub in master.subcomponents:   # alarms go with the occurrence
            override.add_component(sub)
        calendar.add_component(override)
    _apply(override, fields, now, series=False)
    _bump_sequence(override)
    return _finish(calendar)


def delete_occurrence(data: bytes, recurrence_id: str, now: datetime) -> bytes:
    """One occurrence removed: an EXDATE on the master, its override (if any) gone."""
    calendar = _parse(data)
    master = _master(calendar)
    if "RRULE" not in master and "RDATE" not in master:
        raise InvalidField("recurrenceId", "this event does not repeat: delete the event")
    value = _recurrence_value(recurrence_id, master)
    if not _is_occurrence(calendar, value):
        raise InvalidField("recurrenceId", "is not an occurrence of this event")
    calendar.subcomponents[:] = [c for c in calendar.subcomponents if not (
        c.name == "VEVENT" and "RECURRENCE-ID" in c and
        _same(c.decoded("RECURRENCE-ID"), value))]
    master.add("EXDATE", value)
    for name in ("DTSTAMP", "LAST-MODIFIED"):
        master.pop(name, None)
        master.add(name, now)
    _bump_sequence(master)
    return _finish(calendar)


# --- reading -------------------------------------------------------------------------------
def _iso(value: When) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat()          # floating: the viewer's wall clock
        return utc(value).isoformat()        # type: ignore[union-attr]
    return value.isoformat()


def _repeat_of(master: Any) -> Optional[dict[str, Any]]:
    rule = master.get("RRULE")
    if rule is None:
        return None
    if isinstance(rule, list):
        rule = rule[0]
    freq = str((rule.get("FREQ") or [""])[0]).lower()
    out: dict[str, Any] = {"freq": freq if freq in FREQS else None, "until": None,
                           "count": None}
    if rule.get("COUNT"):
        out["count"] = int(rule["COUNT"][0])
    if rule.get("UNTIL"):
        until = rule["UNTIL"][0]
        start = master.decoded("DTSTART") if "DTSTART" in master else None
        if isinstance(until, datetime) and isinstance(start, datetime) and start.tzinfo:
            until = until.astimezone(start.tzinfo)
        out["until"] = (until.date() if isinstance(until, datetime) else until).isoformat()
    # The form shows FREQ with UNTIL or COUNT; anything else (INTERVAL, BYDAY...) is kept
    # as it is unless the person picks another rule.
    out["custom"] = out["freq"] is None or bool(set(rule) - {"FREQ", "UNTIL", "COUNT"})
    return out


def _times(event: Any) -> tuple[When, When]:
    """DTSTART and the end (DTEND, DURATION, or RFC 5545 §3.6.1's default)."""
    begin = event.decoded("DTSTART")
    if "DTEND" in event:
        return begin, event.decoded("DTEND")
    if "DURATION" in event:
        return begin, begin + event.decoded("DURATION")
    return begin, begin + (timedelta(0) if isinstance(begin, datetime) else timedelta(days=1))


def _overlaps(event: Any, start: datetime, end: datetime) -> bool:
    """Does a plain event meet [start, end)?  Dates and floating times are the viewer's
    wall clock: widened by the widest zone offsets (the page draws only its own days)."""
    begin, finish = _times(event)
    low, high = utc(begin), utc(finish)
    assert low is not None and high is not None
    if not isinstance(begin, datetime) or begin.tzinfo is None:
        low, high = low - timedelta(hours=14), high + timedelta(hours=14)
    return low < end and (high > start or (high == low and low >= start))


def occurrences(data: bytes, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The object's events overlapping [start, end), recurrences expanded, each with its
    recurrence id (None for an event that does not repeat)."""
    calendar = _parse(data)
    events = list(calendar.walk("VEVENT"))
    if not events:
        return []
    master = _master(calendar)
    recurring = "RRULE" in master or "RDATE" in master or len(events) > 1
    repeat = _repeat_of(master)
    zone = master["DTSTART"].params.get("TZID") if "DTSTART" in master else None
    out = []
    if recurring:
        found: Any = recurring_ical_events.of(calendar, components=["VEVENT"]).between(
            start, end)
    else:   # one plain event (most of a calendar): no expansion machinery
        found = [master] if "DTSTART" in master and _overlaps(master, start, end) else []
    for count, event in enumerate(found):
        if count >= MAX_OCCURRENCES:
            break
        begin, finish = _times(event)
        rid = None
        if recurring:
            rid = recurrence_text(event.decoded("RECURRENCE-ID") if "RECURRENCE-ID" in event
                                  else begin)
        out.append({
            "uid": str(event.get("UID", "")),
            "recurrenceId": rid,
            "title": str(event.get("SUMMARY", "")),
            "start": _iso(begin), "end": _iso(finish),
            "allDay": not isinstance(begin, datetime),
            "location": str(event.get("LOCATION", "")),
            "description": str(event.get("DESCRIPTION", "")),
            "recurring": recurring,
            "repeat": repeat,
            "timeZone": str(zone) if zone else None,
        })
    return out


def occurrences_of_all(objects: list[bytes], start: datetime, end: datetime
                       ) -> list[Optional[list[dict[str, Any]]]]:
    """``occurrences`` of each object in one worker job (a month of a busy calendar is
    hundreds of objects); None for one that cannot be read, so it hides no other."""
    out: list[Optional[list[dict[str, Any]]]] = []
    for data in objects:
        try:
            out.append(occurrences(data, start, end))
        except Exception:   # icalendar and recurring-ical-events raise many kinds
            out.append(None)
    return out


def facts(data: bytes) -> Facts:
    """UID, component and the widened UTC span of a calendar object, by the rule of
    dav/ical.py ``validate``."""
    calendar = _parse(data)
    parts = [c for c in calendar.subcomponents if c.name != "VTIMEZONE"]
    uids = {str(c.get("UID", "")) for c in parts}
    kinds = {c.name for c in parts}
    if len(uids) != 1 or len(kinds) != 1 or not next(iter(uids)):
        raise InvalidField("data", "one calendar object holds one component with one UID")
    starts: list[Optional[datetime]] = []
    ends: list[Optional[datetime]] = []
    for part in parts:
        begin, finish = component_span(part)
        starts.append(begin)
        ends.append(finish)
    return Facts(uid=uids.pop(), component=kinds.pop(),
                 starts_at=None if any(s is None for s in starts) else
                 min(s for s in starts if s),
                 ends_at=None if any(e is None for e in ends) else max(e for e in ends if e))




# --- invitations ---------------------------------------------------------------------------
def invitation(data: bytes) -> Invitation:
    """A received ``text/calendar`` (RFC 5546 §3.2.2 REQUEST, or PUBLISH) as a calendar
    object: its VEVENTs and the VTIMEZONEs they use, without METHOD."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except Exception:
        raise InvalidField("partId", "this part is not valid iCalendar") from None
    method = str(calendar.get("METHOD", "PUBLISH")).upper()
    if method not in ("REQUEST", "PUBLISH"):
        raise InvalidField("partId", f"a {method} is no invitation to add")
    events = list(calendar.walk("VEVENT"))
    uids = {str(e.get("UID", "")) for e in events}
    if not events or len(uids) != 1 or not next(iter(uids)) or len(next(iter(uids))) > 255:
        raise InvalidField("partId", "the invitation needs one event with one UID")
    out = icalendar.Calendar()
    out.add("PRODID", str(calendar.get("PRODID", PRODID)))
    out.add("VERSION", "2.0")
    for component in calendar.subcomponents:
        if component.name in ("VTIMEZONE", "VEVENT"):
            out.add_component(component)
    master = _master(out)
    begin = master.decoded("DTSTART") if "DTSTART" in master else None
    return Invitation(uid=uids.pop(), method=method, sequence=sequence_of(master),
                      title=str(master.get("SUMMARY", "")),
                      start=_iso(begin) if begin is not None else "",
                      data=bytes(out.to_ical()))


def master_sequence(data: bytes) -> int:
    return sequence_of(_master(_parse(data)))
