"""Times of iCalendar components in UTC, and the span a stored object covers: one rule for
the CalDAV front end (dav/ical.py, what a PUT stores) and the webmail calendar
(mail/calendar.py, what a form stores), so both keep the same plain time columns that
``time-range`` queries and the month view pre-filter on."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Optional

__all__ = ["MARGIN", "utc", "component_span"]

# Floating times and all-day dates belong to the viewer's zone: widen the stored span by
# the widest UTC offsets so the pre-filter never misses one; the precise test follows.
MARGIN = timedelta(hours=26)


def utc(value: Any) -> Optional[datetime]:
    """A DATE or DATE-TIME value in UTC (floating times read as UTC); None otherwise."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, time(0), timezone.utc)
    return None


def component_span(component: Any) -> tuple[Optional[datetime], Optional[datetime]]:
    """The UTC span a component covers, widened by MARGIN; (None, None) for unbounded and
    (start, None) for a recurring one (RFC 4791 §9.9 reads the rest through occurrences)."""
    if "RRULE" in component or "RDATE" in component:
        start = utc(component.decoded("DTSTART")) if "DTSTART" in component else None
        return (start - MARGIN if start is not None else None), None
    if "DTSTART" not in component:
        return None, None
    start = utc(component.decoded("DTSTART"))
    end = None
    for name in ("DTEND", "DUE"):
        if name in component:
            end = utc(component.decoded(name))
    if end is None and "DURATION" in component:
        end = start + component.decoded("DURATION") if start is not None else None
    if end is None and start is not None:
        raw = component.decoded("DTSTART")
        end = start + (timedelta(days=1) if not isinstance(raw, datetime) else timedelta(0))
    if start is None or end is None:
        return None, None
    return start - MARGIN, max(end, start) + MARGIN
