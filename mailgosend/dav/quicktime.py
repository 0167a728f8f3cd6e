# -*- test-case-name: tests.test_dav_calfilter -*-
"""The RFC 4791 §9.9 time-range test for simple calendar objects, without icalendar.

Parsing a small event with ``icalendar`` costs milliseconds; a month view over a large
calendar tests hundreds of them.  Most objects clients store are simple: one VEVENT with
a UTC DTSTART, a UTC DTEND or a DURATION, perhaps an RRULE and alarms.  For those this
module reads the few content lines it needs (RFC 5545 §3.1, unfolded) and answers with
``dateutil.rrule`` (which ``recurring-ical-events`` builds on) for the recurrence.  For
anything else (time zones, floating or all-day times, RDATE/EXDATE, overridden instances,
sub-daily rules, several components, parameters it does not know) it answers None and the
caller parses the object fully (ical.py); tests check both give the same answers.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Optional

from dateutil import rrule  # type: ignore[import-untyped]

__all__ = ["overlaps"]

_UTC = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z\Z")
_DURATION = re.compile(r"\+?P(?:(\d+)W|(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?)\Z")
# Lines that make an object not simple (the full parser handles them).
_COMPLEX = frozenset(("RDATE", "EXDATE", "EXRULE", "RECURRENCE-ID"))
_FAST_FREQ = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY")


def _utc(value: str) -> Optional[datetime]:
    found = _UTC.match(value)
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in found.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        return None


def _duration(value: str) -> Optional[timedelta]:
    found = _DURATION.match(value)
    if found is None or value in ("P", "+P") or value.endswith("T"):
        return None
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in found.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


# The content lines this module looks at (RFC 5545 §3.1: names are case-insensitive); the
# regular expression skips the others (SUMMARY, DESCRIPTION, ...) without a Python loop.
_LINES = re.compile(r"^(BEGIN|END|DTSTART|DTEND|DURATION|RRULE|RDATE|EXDATE|EXRULE|"
                    r"RECURRENCE-ID)([;:][^\n]*)$", re.MULTILINE | re.IGNORECASE)


def _facts(data: bytes, component: str) -> Optional[dict[str, str]]:
    """The top-level properties of the object's one ``component`` (name -> value), when
    the object is one such component (alarms allowed) whose properties carry no
    parameters this module cannot judge; else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if "\n " in text or "\n\t" in text:
        text = text.replace("\n ", "").replace("\n\t", "")
    depth = 0
    seen = 0
    facts: dict[str, str] = {}
    for found in _LINES.finditer(text):
        name = found.group(1).upper()
        rest = found.group(2)
        if name in ("BEGIN", "END"):
            if rest[0] != ":":
                return None
            if name == "END":
                depth -= 1
                continue
            depth += 1
            kind = rest[1:].strip().upper()
            if depth == 1 and kind != "VCALENDAR":
                return None
            if depth == 2:
                if kind != component or seen:
                    return None
                seen += 1
            if depth == 3 and kind != "VALARM":
                return None
            if depth > 3:
                return None
            continue
        if depth != 2:
            continue
        if name in _COMPLEX:
            return None
        params, _, value = rest.partition(":")
        if params and params.upper() not in (";VALUE=DATE-TIME", ";VALUE=DURATION",
                                             ";VALUE=RECUR"):
            return None   # TZID, VALUE=DATE, ...: the full parser's job
        if name in facts:
            return None
        facts[name] = value.strip()
    return facts if seen == 1 and depth == 0 else None


def overlaps(data: bytes, component: str, start: Optional[datetime],
             end: Optional[datetime]) -> Optional[bool]:
    """Does some occurrence of the object's VEVENT overlap [start, end) (RFC 4791 §9.9)?
    None when the object is not simple enough to say without a full parse."""
    if component != "VEVENT":   # VTODO's §9.9 table has more cases: the full parser
        return None
    facts = _facts(data, component)
    if facts is None or "DTSTART" not in facts:
        return None
    first = _utc(facts["DTSTART"])
    if first is None:
        return None
    if "DTEND" in facts:
        if "DURATION" in facts:
            return None
        finish = _utc(facts["DTEND"])
        if finish is None or finish < first:
            return None
        length = finish - first
    elif "DURATION" in facts:
        found = _duration(facts["DURATION"])
        if found is None:
            return None
        length = found
    else:
        length = timedelta(0)
    # §9.9: a positive length overlaps when it starts before the end and ends after the
    # start; an instant when it lies in [start, end).
    if "RRULE" not in facts:
        begin = first
    else:
        rule_text = facts["RRULE"]
        freq = re.search(r"FREQ=([A-Z]+)", rule_text.upper())
        if freq is None or freq.group(1) not in _FAST_FREQ:
            return None
        try:
            rule = rrule.rrulestr(rule_text, dtstart=first)
        except (ValueError, TypeError):
            return None
        if not isinstance(rule, rrule.rrule):
            return None
        try:
            # RFC 5545 §3.8.5.3: DTSTART is the first instance even when the rule's BY*
            # parts would not produce it; dateutil leaves it out, so leave such a rule
            # to the full parser.
            if rule.after(first, inc=True) != first:
                return None
            if start is None:
                found = next(iter(rule), None)
            elif length > timedelta(0):
                found = rule.after(start - length, inc=False)
            else:
                found = rule.after(start, inc=True)
        except (ValueError, TypeError):   # e.g. an UNTIL dateutil cannot compare
            return None
        if found is None:
            return False
        begin = found
    if length > timedelta(0):
        return (start is None or begin + length > start) and (end is None or begin < end)
    return (start is None or begin >= start) and (end is None or begin < end)
