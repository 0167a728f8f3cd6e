# -*- test-case-name: tests.test_dav_calfilter -*-
"""calendar-query filters (RFC 4791 §9.7): the XML read into a tree of plain filters, and
the tree tested against one calendar object.

Supported: comp-filter nested to any depth (VCALENDAR > VEVENT > VALARM ...), each with
is-not-defined, time-range (§9.9, over expanded recurrences for the components under
VCALENDAR, over trigger times for VALARM), prop-filters and further comp-filters;
prop-filter with is-not-defined, time-range (date-time properties), text-match and
param-filters; param-filter with is-not-defined or text-match.  Collations i;ascii-casemap
(the default, §7.5.1) and i;octet; any other is refused (supported-collation).

Not supported: the ``test`` attribute of RFC 4791's successors (every filter is allof, as
RFC 4791 has it); a component filter's time-range combined per instance with its
prop-filters (an object matches when some occurrence is in range and some instance of
the component matches the prop-filters).

``simple_range`` tells the caller when a filter is only "components of one type in a time
range" (what clients send to fill a month view), which the store answers from the plain
time facts stored beside each object (mail/dav.py, ``ObjectFacts``) without parsing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from mailgosend.dav.xmlutil import CALDAV, q
from mailgosend.mail.icaltime import utc

__all__ = ["CompFilter", "PropFilter", "ParamFilter", "TextMatch", "InvalidFilter",
           "parse_filter", "matches", "simple_range", "COLLATIONS"]

COLLATIONS = ("i;ascii-casemap", "i;octet", "i;unicode-casemap")
Range = tuple[Optional[datetime], Optional[datetime]]


class InvalidFilter(ValueError):
    """``condition``: the CALDAV precondition to report (valid-filter, supported-collation)."""

    def __init__(self, message: str, condition: str = "valid-filter") -> None:
        super().__init__(message)
        self.condition = condition


@dataclass(frozen=True)
class TextMatch:
    text: str
    collation: str = "i;ascii-casemap"
    negate: bool = False
    match_type: str = "contains"   # RFC 4791 knows substring only; CardDAV's types accepted


@dataclass(frozen=True)
class ParamFilter:
    name: str
    not_defined: bool = False
    text: Optional[TextMatch] = None


@dataclass(frozen=True)
class PropFilter:
    name: str
    not_defined: bool = False
    time_range: Optional[Range] = None
    text: Optional[TextMatch] = None
    params: tuple[ParamFilter, ...] = ()


@dataclass(frozen=True)
class CompFilter:
    name: str
    not_defined: bool = False
    time_range: Optional[Range] = None
    props: tuple[PropFilter, ...] = ()
    comps: tuple["CompFilter", ...] = ()


# --- reading the XML ---------------------------------------------------------------------

def parseutc(text: str) -> datetime:
    """An RFC 4791 §9.9 bound: a UTC date-time such as 20060104T000000Z."""
    return datetime.strptime(text.strip(), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def _time_range(node: Optional[ET.Element]) -> Optional[Range]:
    if node is None:
        return None
    start, end = node.get("start"), node.get("end")
    if not start and not end:   # §9.9: at least one of them
        raise InvalidFilter("a time-range needs start or end")
    try:
        return (parseutc(start) if start else None, parseutc(end) if end else None)
    except ValueError:
        raise InvalidFilter("time-range bounds are UTC date-times like "
                            "20260101T000000Z") from None


def _text_match(node: Optional[ET.Element]) -> Optional[TextMatch]:
    if node is None:
        return None
    collation = node.get("collation", "i;ascii-casemap")
    if collation not in COLLATIONS:
        raise InvalidFilter(f"the collation {collation} is not supported",
                            "supported-collation")
    return TextMatch(node.text or "", collation, node.get("negate-condition") == "yes",
                     node.get("match-type", "contains"))


def _name(node: ET.Element) -> str:
    name = node.get("name", "").strip().upper()
    if not name:
        raise InvalidFilter(f"{node.tag.split('}')[-1]} needs a name")
    return name


def _param(node: ET.Element) -> ParamFilter:
    return ParamFilter(_name(node), node.find(q(CALDAV, "is-not-defined")) is not None,
                       _text_match(node.find(q(CALDAV, "text-match"))))


def _prop(node: ET.Element) -> PropFilter:
    return PropFilter(_name(node), node.find(q(CALDAV, "is-not-defined")) is not None,
                      _time_range(node.find(q(CALDAV, "time-range"))),
                      _text_match(node.find(q(CALDAV, "text-match"))),
                      tuple(_param(p) for p in node.findall(q(CALDAV, "param-filter"))))


def _comp(node: ET.Element) -> CompFilter:
    return CompFilter(_name(node), node.find(q(CALDAV, "is-not-defined")) is not None,
                      _time_range(node.find(q(CALDAV, "time-range"))),
                      tuple(_prop(p) for p in node.findall(q(CALDAV, "prop-filter"))),
                      tuple(_comp(c) for c in node.findall(q(CALDAV, "comp-filter"))))


def parse_filter(node: Optional[ET.Element]) -> CompFilter:
    """The CALDAV:filter element's tree; InvalidFilter when it does not start with
    comp-filter VCALENDAR (§9.7) or a part is malformed."""
    top = node.find(q(CALDAV, "comp-filter")) if node is not None else None
    if top is None or top.get("name", "").upper() != "VCALENDAR":
        raise InvalidFilter("the filter must start with comp-filter VCALENDAR")
    found = _comp(top)
    if found.not_defined or found.time_range is not None:
        raise InvalidFilter("comp-filter VCALENDAR takes no is-not-defined or time-range")
    return found


def simple_range(top: CompFilter) -> Optional[tuple[str, Optional[datetime],
                                                    Optional[datetime]]]:
    """(component, start, end) when the filter is VCALENDAR > one component with at most
    a time-range and nothing else; None otherwise."""
    if top.props or len(top.comps) != 1:
        return None
    (inner,) = top.comps
    if inner.not_defined or inner.props or inner.comps:
        return None
    start, end = inner.time_range if inner.time_range is not None else (None, None)
    return inner.name, start, end


def components(top: CompFilter) -> tuple[str, ...]:
    """The component types an object must hold to match (for the store's pre-filter): the
    one named by a single positive comp-filter under VCALENDAR, else any."""
    wanted = [c for c in top.comps if not c.not_defined]
    return (wanted[0].name,) if len(wanted) == 1 else ()


def outer_range(top: CompFilter) -> Range:
    """The time-range of the single component filter under VCALENDAR (the store's
    pre-filter), or unbounded."""
    wanted = [c for c in top.comps if not c.not_defined]
    if len(wanted) == 1 and wanted[0].time_range is not None:
        return wanted[0].time_range
    return None, None


# --- testing an object -------------------------------------------------------------------

def _text_ok(value: str, match: TextMatch) -> bool:
    from mailgosend.dav.vcard import text_match   # one text-match rule for both

    collation = "i;octet" if match.collation == "i;octet" else "i;unicode-casemap"
    return text_match(value, match.text, match.match_type, collation) != match.negate


def _value_text(value: Any) -> str:
    if isinstance(value, str):   # vText, vCalAddress, vUri: the unescaped text
        return str(value)
    to_ical = getattr(value, "to_ical", None)
    if to_ical is not None:
        raw = to_ical()
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return str(value)


def _instances(component: Any, name: str) -> list[Any]:
    value = component.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _param_ok(prop: Any, wanted: ParamFilter) -> bool:
    params = getattr(prop, "params", {}) or {}
    value = params.get(wanted.name)
    if wanted.not_defined:
        return value is None
    if value is None:
        return False
    if wanted.text is None:
        return True
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(_text_ok(str(v), wanted.text) for v in values)


def _in(moment: Optional[datetime], span: Range) -> bool:
    start, end = span
    return moment is not None and (start is None or moment >= start) and \
        (end is None or moment < end)


def _prop_ok(component: Any, wanted: PropFilter) -> bool:
    found = _instances(component, wanted.name)
    if wanted.not_defined:
        return not found
    for prop in found:
        if wanted.time_range is not None and \
                not _in(utc(getattr(prop, "dt", None)), wanted.time_range):
            continue
        if wanted.text is not None and not _text_ok(_value_text(prop), wanted.text):
            continue
        if all(_param_ok(prop, p) for p in wanted.params):
            return True
    return False


class _Object:
    """One parsed calendar object and what its time tests have computed so far."""

    def __init__(self, calendar: Any) -> None:
        self.calendar = calendar
        self._ranges: dict[tuple[str, Range], bool] = {}

    def overlaps(self, name: str, span: Range) -> bool:
        """Some occurrence of the object's ``name`` components overlaps ``span``."""
        key = (name, span)
        if key not in self._ranges:
            from mailgosend.dav import ical

            self._ranges[key] = ical.calendar_in_range(self.calendar, name, *span)
        return self._ranges[key]

    def alarm_in_range(self, parent: Any, alarm: Any, span: Range) -> bool:
        """RFC 4791 §9.9 for VALARM: a trigger time (repetitions included) in the range,
        for every occurrence of the parent near the range."""
        from mailgosend.dav import ical

        if "TRIGGER" not in alarm:
            return False
        trigger = alarm.decoded("TRIGGER")
        repeat = int(alarm.get("REPEAT", 0) or 0)
        step = alarm.decoded("DURATION") if "DURATION" in alarm and repeat else timedelta(0)
        offsets = [step * n for n in range(min(repeat, 1000) + 1)]
        if isinstance(trigger, datetime):   # absolute (VALUE=DATE-TIME)
            base = utc(trigger)
            return base is not None and any(_in(base + o, span) for o in offsets)
        if not isinstance(trigger, timedelta):
            return False
        related_end = str(alarm["TRIGGER"].params.get("RELATED", "START")).upper() == "END"
        start, end = span
        reach = abs(trigger) + offsets[-1] + timedelta(days=366)
        low = (start - reach) if start is not None else None
        high = (end + reach) if end is not None else None
        for occurrence in ical.occurrences_between(self.calendar, parent.name, low, high):
            anchor = ical.occurrence_end(occurrence) if related_end else \
                utc(occurrence.decoded("DTSTART")) if "DTSTART" in occurrence else None
            if anchor is None:
                continue
            if any(_in(anchor + trigger + o, span) for o in offsets):
                return True
        return False


def _comp_ok(obj: _Object, component: Any, wanted: CompFilter, parent: Any,
             top_level: bool) -> bool:
    if wanted.time_range is not None:
        if top_level:
            if not obj.overlaps(component.name, wanted.time_range):
                return False
        elif component.name == "VALARM":
            if not obj.alarm_in_range(parent, component, wanted.time_range):
                return False
        else:
            start = utc(component.decoded("DTSTART")) if "DTSTART" in component else None
            if not _in(start, wanted.time_range):
                return False
    if not all(_prop_ok(component, p) for p in wanted.props):
        return False
    for child in wanted.comps:
        kids = [k for k in component.subcomponents if k.name == child.name]
        if child.not_defined:
            if kids:
                return False
            continue
        if not any(_comp_ok(obj, kid, child, component, component.name == "VCALENDAR")
                   for kid in kids):
            return False
    return True


def matches(calendar: Any, top: CompFilter) -> bool:
    """Does the parsed VCALENDAR match the filter tree (RFC 4791 §9.7)?"""
    if getattr(calendar, "name", None) != "VCALENDAR":
        return False
    return _comp_ok(_Object(calendar), calendar, top, None, False)
