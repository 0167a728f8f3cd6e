"""CalDAV with a real client, the ``caldav`` library from PyPI: discovery from the server
URL alone, calendars, events, todos, recurring events found by time-range, sync tokens
(incremental, and still valid after a restart), free-busy, and what is stored encrypted."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import caldav
from twisted.internet import defer, threads

from tests.support.dav import PASSWORD, DavServerTestCase

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20261201T000000Z
DTSTART:{start}
DTEND:{end}
SUMMARY:{summary}
DESCRIPTION:Secret plans for {summary}
{extra}END:VEVENT
END:VCALENDAR
"""
TODO = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VTODO
UID:todo-1
DTSTAMP:20261201T000000Z
SUMMARY:Water the ferns
END:VTODO
END:VCALENDAR
"""


def event(uid: str, start: str, end: str, summary: str, extra: str = "") -> str:
    return EVENT.format(uid=uid, start=start, end=end, summary=summary, extra=extra)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)  # type: ignore[misc]


class CalDAVClientTests(DavServerTestCase):
    def client(self, base: str, user: str = "alice@example.com") -> Any:  # type: ignore[override]
        made = caldav.DAVClient(url=base, username=user, password=PASSWORD)
        self.addCleanup(made.close)
        return made

    @defer.inlineCallbacks
    def test_discovery_calendars_events_todos_recurrence(self) -> Any:
        def scenario() -> dict[str, Any]:
            client = self.client(self.web_base + "/")       # the server URL alone
            principal = client.principal()
            found: dict[str, Any] = {"principal": str(principal.url)}
            found["defaults"] = [c.get_display_name() for c in principal.calendars()]
            work = principal.make_calendar(name="Work", cal_id="work")
            work.save_event(event("e1", "20270110T090000Z", "20270110T100000Z", "Zanzibar"))
            work.save_event(event("e2", "20270320T090000Z", "20270320T100000Z", "Later"))
            work.save_event(event("weekly", "20261207T080000Z", "20261207T083000Z", "Standup",
                                  "RRULE:FREQ=WEEKLY\n"))
            work.save_todo(TODO)
            january = work.search(start=utc(2027, 1, 1), end=utc(2027, 2, 1), event=True)
            found["january"] = sorted(str(e.icalendar_component["UID"]) for e in january)
            found["todos"] = [str(t.icalendar_component["SUMMARY"]) for t in work.todos()]
            found["calendars"] = sorted(c.get_display_name() for c in principal.calendars())
            return found

        found = yield threads.deferToThread(scenario)
        self.assertEqual(found["principal"],
                         self.web_base + "/caldav/alice@example.com/")
        self.assertEqual(found["defaults"], ["Calendar"])
        # e1 in January and the weekly event expanded into it; e2 (March) not
        self.assertEqual(found["january"], ["e1", "weekly"])
        self.assertEqual(found["todos"], ["Water the ferns"])
        self.assertEqual(found["calendars"], ["Calendar", "Work"])
        for stored in (self.table_bytes(), self.database_file_bytes()):
            for secret in (b"Zanzibar", b"Secret plans", b"Water the ferns", b"Standup"):
                self.assertNotIn(secret, stored)
        self.assertNotIn(b"Work", self.table_bytes())

    @defer.inlineCallbacks
    def test_sync_tokens_incremental_and_across_restart(self) -> Any:
        def first() -> tuple[Any, str]:
            client = self.client(self.dav_base + "/dav/calendars/alice@example.com/")
            calendar = client.principal().calendars()[0]
            for n in range(5):
                calendar.save_event(event(f"s{n}", "20270110T090000Z", "20270110T100000Z",
                                          f"Item {n}"))
            full = calendar.get_objects_by_sync_token(disable_fallback=True)
            return calendar, full.sync_token

        calendar, token = yield threads.deferToThread(first)

        def changes(token: str) -> tuple[Any, Any, Any]:
            client = self.client(self.dav_base + "/dav/calendars/alice@example.com/")
            calendar = client.principal().calendars()[0]
            calendar.event_by_uid("s1").delete()
            calendar.save_event(event("s9", "20270110T090000Z", "20270110T100000Z", "New"))
            found = calendar.get_objects_by_sync_token(sync_token=token,
                                                       disable_fallback=True)
            return ([str(o.url).rsplit("/", 1)[1] for o in found],
                    sorted(str(u).rsplit("/", 1)[1] for u in found.deleted_urls),
                    found.sync_token)

        names, deleted, second = yield threads.deferToThread(changes, token)
        # the library lists the removed member among the objects too
        self.assertEqual((sorted(names), deleted), (["s1.ics", "s9.ics"], ["s1.ics"]))
        # A restart: the same database, a new process state; the old token still answers.
        yield self.server.stop()
        yield self.server.start()

        def after_restart() -> tuple[int, int, int]:
            client = self.client(self.dav_base + "/dav/calendars/alice@example.com/")
            calendar = client.principal().calendars()[0]
            again = calendar.get_objects_by_sync_token(sync_token=token,
                                                       disable_fallback=True)
            latest = calendar.get_objects_by_sync_token(sync_token=second,
                                                        disable_fallback=True)
            return len(list(again)), len(again.deleted_urls), len(list(latest))

        counts = yield threads.deferToThread(after_restart)
        self.assertEqual(counts, (2, 1, 0))

    @defer.inlineCallbacks
    def test_freebusy(self) -> Any:
        def scenario() -> bytes:
            client = self.client(self.web_base + "/caldav/alice@example.com/")
            calendar = client.principal().calendars()[0]
            calendar.save_event(event("f1", "20270110T090000Z", "20270110T100000Z", "Busy"))
            return calendar.freebusy_request(utc(2027, 1, 10), utc(2027, 1, 11)).data

        data = yield threads.deferToThread(scenario)
        self.assertIn("FREEBUSY;VALUE=PERIOD:20270110T090000Z/20270110T100000Z", str(data))
