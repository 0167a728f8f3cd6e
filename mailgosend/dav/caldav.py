# -*- test-case-name: tests.test_dav_caldav -*-
"""What CalDAV (RFC 4791) adds to the WebDAV core: calendar properties (with Apple's colour
and order, and CalendarServer's getctag in the core), MKCALENDAR's component set, and the
REPORTs calendar-query (the whole filter tree of §9.7, calfilter.py; time-range over
expanded recurrences), calendar-multiget and free-busy-query."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Optional

from mailgosend.dav import calfilter, ical
from mailgosend.dav import webdav as core
from mailgosend.dav import xmlutil as X
from mailgosend.dav.xmlutil import CALDAV, DAV, q
from mailgosend.mail.dav import ObjectFacts
from mailgosend.store import dav as store

__all__ = ["CalDAV"]

DATA = q(CALDAV, "calendar-data")


def _range(node: Optional[ET.Element]) -> tuple[Any, Any]:
    if node is None:
        return None, None
    start, end = node.get("start"), node.get("end")
    return (ical.parse_utc(start) if start else None, ical.parse_utc(end) if end else None)


# Objects tested per worker call: one thread hop per batch, and the reactor runs between.
_BATCH = 200


class CalDAV:
    kind = "calendar"
    resource_type = q(CALDAV, "calendar")
    content_type = b"text/calendar; charset=utf-8"

    def collection_props(self, ctx: core.Context, collection: store.Collection
                         ) -> dict[str, ET.Element]:
        comps = X.el(q(CALDAV, "supported-calendar-component-set"))
        for name in collection.components:
            ET.SubElement(comps, q(CALDAV, "comp"), {"name": name})
        data = X.el(q(CALDAV, "supported-calendar-data"))
        ET.SubElement(data, q(CALDAV, "calendar-data"),
                      {"content-type": "text/calendar", "version": "2.0"})
        return {
            q(CALDAV, "supported-calendar-component-set"): comps,
            q(CALDAV, "supported-calendar-data"): data,
            q(CALDAV, "max-resource-size"): X.el(q(CALDAV, "max-resource-size"),
                                                 str(core.MAX_OBJECT_SIZE)),
            q(DAV, "supported-report-set"): core.report_set([
                (CALDAV, "calendar-multiget"), (CALDAV, "calendar-query"),
                (CALDAV, "free-busy-query"), (DAV, "sync-collection")]),
        }

    def validate(self, data: bytes, collection: store.Collection) -> ObjectFacts:
        return ical.validate(data, collection.components)

    def components_from(self, changes: list[tuple[str, ET.Element]]) -> Any:
        """MKCALENDAR/MKCOL's supported-calendar-component-set, else all three."""
        for _, prop in changes:
            if prop.tag == q(CALDAV, "supported-calendar-component-set"):
                names = tuple(c.get("name", "").upper() for c in prop)
                if not names or any(n not in ical.COMPONENTS for n in names):
                    return core.precondition(403, CALDAV, "supported-calendar-component",
                                             "choose among VEVENT, VTODO and VJOURNAL")
                return names
        return ical.COMPONENTS

    async def report(self, ctx: core.Context, collection: store.Collection,
                     root: ET.Element) -> Optional[core.Reply]:
        if root.tag == q(CALDAV, "calendar-multiget"):
            return await core.multiget(ctx, collection, root, DATA)
        if root.tag == q(CALDAV, "calendar-query"):
            return await self._query(ctx, collection, root)
        if root.tag == q(CALDAV, "free-busy-query"):
            return await self._freebusy(ctx, collection, root)
        return None

    async def _query(self, ctx: core.Context, collection: store.Collection,
                     root: ET.Element) -> core.Reply:
        """RFC 4791 §7.8: the objects matching the filter tree (calfilter.py).  The store
        pre-filters by component type and by the stored span of the outer time-range; the
        rest is tested in the worker threads, a batch per call."""
        try:
            top = calfilter.parse_filter(root.find(q(CALDAV, "filter")))
        except calfilter.InvalidFilter as error:
            return core.precondition(403, CALDAV, error.condition, str(error))
        start, end = calfilter.outer_range(top)
        items = await ctx.dav.items_in_span(collection, start, end,
                                            calfilter.components(top))
        matched = []
        for at in range(0, len(items), _BATCH):
            batch = items[at:at + _BATCH]
            verdicts = await ctx.workers.run(
                ical.matches_all, [(item.data or b"", item.component) for item in batch],
                top)
            matched += [item for item, keep in zip(batch, verdicts) if keep]
        del items
        expand = root.find(f"{q(DAV, 'prop')}/{DATA}/{q(CALDAV, 'expand')}")
        if expand is not None:
            try:
                low, high = _range(expand)
            except ValueError:
                low = high = None
            if low is None or high is None:
                return core.precondition(403, CALDAV, "valid-filter",
                                         "expand needs UTC start and end")
            matched = [item._replace(data=await ctx.workers.run(
                ical.expand, item.data, item.component, low, high)) for item in matched]
        return core.items_reply(ctx, collection, matched, core.wanted_props(root), DATA)

    async def _freebusy(self, ctx: core.Context, collection: store.Collection,
                        root: ET.Element) -> core.Reply:
        """RFC 4791 §7.10: a VFREEBUSY of the calendar's busy time in the range."""
        try:
            start, end = _range(root.find(q(CALDAV, "time-range")))
        except ValueError:
            start = end = None
        if start is None or end is None:
            return core.text_reply(400, "free-busy-query needs a time-range with start and "
                                        "end.")
        periods = []
        for item in await ctx.dav.items_in_span(collection, start, end, ("VEVENT",)):
            assert item.data is not None
            periods += await ctx.workers.run(ical.busy_periods, item.data, start, end)
        body = ical.freebusy_calendar(periods, start, end, ctx.dav.service.now())
        return core.Reply(200, body, content_type=self.content_type)
