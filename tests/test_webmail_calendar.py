"""The webmail's calendar (issue #15 item 7): the JSON endpoints under /mail/api/calendar
(create, edit, delete, recurring events expanded over a range, one occurrence as an
exception, bad input naming the field, another user's ids a 404), the same data as CalDAV
both ways (the ``caldav`` library sees a change at its next sync; an event PUT over CalDAV
is in the page's answer), invitations imported from a delivered message, and the page in
Chromium: month, week and day views, the form, and "Add to calendar" in the reader."""

from __future__ import annotations

import json
import re
import smtplib
from datetime import date, datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any, Optional

import caldav
import icalendar
from twisted.internet import defer, threads
from twisted.trial import unittest

from mailgosend.dav import ical
from mailgosend.db.runner import run_sync
from mailgosend.mail import calendar as cal
from mailgosend.store import accounts
from tests.support.dav import PASSWORD, DavServerTestCase
from tests.support.web import WebClient
from tests.test_webmail_browser import WebmailBrowserTestCase, expect

ALICE = "alice@example.com"
BOB = "bob@example.com"
API = "/mail/api/calendar"

INVITE = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Elsewhere//Meetings//EN
METHOD:REQUEST
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20261201T000000Z
SEQUENCE:{sequence}
DTSTART:20270115T140000Z
DTEND:20270115T150000Z
SUMMARY:{summary}
ORGANIZER:mailto:carol@elsewhere.example
ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:alice@example.com
END:VEVENT
END:VCALENDAR
"""


def invitation_message(summary: str, uid: str = "plan-1@elsewhere.example",
                       sequence: int = 0, to: str = ALICE) -> EmailMessage:
    """An invitation as calendar programs send it: text and text/calendar alternatives."""
    message = EmailMessage()
    message["From"] = "Carol <carol@elsewhere.example>"
    message["To"] = to
    message["Subject"] = f"Invitation: {summary}"
    message.set_content(f"You are invited to {summary}.")
    message.add_alternative(INVITE.format(uid=uid, sequence=sequence, summary=summary)
                            .replace("\n", "\r\n"), subtype="calendar",
                            params={"method": "REQUEST"})
    return message


class CalendarApi:
    """A signed-in browser-like client of the calendar endpoints."""

    def __init__(self, web: WebClient, csrf: str) -> None:
        self.web = web
        self.csrf = csrf

    def call(self, method: str, path: str, body: Any = None, *, csrf: bool = True,
             raw: Optional[bytes] = None) -> Any:
        headers = {"Origin": self.web.base}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        data = raw if raw is not None else (json.dumps(body).encode()
                                            if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        return threads.deferToThread(self.web.http.request, method, self.web.base + path,
                                     data=data, headers=headers, timeout=30,
                                     allow_redirects=False)

    def events(self, start: str, end: str) -> Any:
        d = self.call("GET", f"{API}/events?start={start}&end={end}")
        return d.addCallback(lambda r: r.json()["events"])


class CalendarTestCase(DavServerTestCase):
    users = (ALICE, BOB)
    # The endpoint tests make more changes a minute than a person would.
    settings = {"WEB_RATE_PER_MIN": "2000"}

    @defer.inlineCallbacks
    def signed_in(self, email: str = ALICE) -> Any:
        web = self.client()
        reply = yield web.sign_in(email, PASSWORD)
        self.assertEqual(reply.status_code, 303)
        page = yield web.get("/mail/calendar")
        self.assertEqual(page.status_code, 200)
        policy = page.headers["Content-Security-Policy"]
        self.assertIn("style-src 'self'", policy)
        self.assertNotIn("unsafe-inline", policy)
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        return CalendarApi(web, token)

    def caldav_calendar(self, user: str = ALICE, name: str = "Calendar") -> Any:
        """Thread: the user's calendar through the caldav library (discovery from /)."""
        client = caldav.DAVClient(url=self.web_base + "/", username=user, password=PASSWORD)
        self.addCleanup(client.close)
        return next(c for c in client.principal().calendars() if c.get_display_name() == name)

    @defer.inlineCallbacks
    def deliver(self, email: str, raw: bytes) -> Any:
        mail = self.server.root.components["mail"]
        user = yield mail.open_account(email)
        inbox = yield user.get_mailbox("INBOX")
        delivered = yield user.append(inbox.id, raw, [], None)
        return f"M{delivered.email_id}"


class EndpointTests(CalendarTestCase):
    @defer.inlineCallbacks
    def test_create_edit_delete_seen_by_a_caldav_client_at_its_next_sync(self) -> Any:
        api = yield self.signed_in()
        calendars = (yield api.call("GET", f"{API}/calendars")).json()["calendars"]
        self.assertEqual(calendars, [{"id": "calendar", "name": "Calendar", "color": None,
                                      "default": True}])

        def first_sync() -> tuple[Any, str]:
            calendar = self.caldav_calendar()
            return calendar, calendar.get_objects_by_sync_token(disable_fallback=True).sync_token

        calendar, token = yield threads.deferToThread(first_sync)
        made = yield api.call("POST", f"{API}/events", {
            "title": "Dentist", "start": "2027-01-12T09:00", "end": "2027-01-12T09:45",
            "timeZone": "Europe/Paris", "location": "Rue de Rivoli",
            "description": "Bring the card"})
        self.assertEqual(made.status_code, 201, made.text)
        ident = made.json()["id"]
        found = yield api.events("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")
        self.assertEqual([(e["title"], e["start"], e["end"], e["allDay"], e["location"],
                           e["recurrenceId"], e["eventId"]) for e in found],
                         [("Dentist", "2027-01-12T08:00:00+00:00", "2027-01-12T08:45:00+00:00",
                           False, "Rue de Rivoli", None, ident)])

        def client_sync(token: str) -> tuple[list[str], list[str], str]:
            changed = calendar.get_objects_by_sync_token(sync_token=token,
                                                         disable_fallback=True, load_objects=True)
            summaries = [str(o.icalendar_component["SUMMARY"]) for o in changed if o.data]
            return (summaries, [str(u) for u in changed.deleted_urls], changed.sync_token)

        summaries, deleted, token = yield threads.deferToThread(client_sync, token)
        self.assertEqual((summaries, deleted), (["Dentist"], []))

        # The client adds an alarm and a property of its own; the webmail's edit keeps both.
        def client_edit() -> None:
            event = calendar.event_by_uid(str(found[0]["uid"]))
            text = event.data.replace(
                "END:VEVENT", "X-OTHER-CLIENT:keep me\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\n"
                "DESCRIPTION:Soon\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT")
            event.data = text
            event.save()

        yield threads.deferToThread(client_edit)
        stale = yield api.call("PUT", f"{API}/events/{ident}", {
            "title": "Dentist (moved)", "start": "2027-01-13T10:00", "end": "2027-01-13T11:00",
            "timeZone": "Europe/Paris", "etag": found[0]["etag"]})
        self.assertEqual((stale.status_code, stale.json()["field"]), (412, "etag"))
        fresh = yield api.events("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")
        edited = yield api.call("PUT", f"{API}/events/{ident}", {
            "title": "Dentist (moved)", "start": "2027-01-13T10:00", "end": "2027-01-13T11:00",
            "timeZone": "Europe/Paris", "location": "Rue de Rivoli", "etag": fresh[0]["etag"]})
        self.assertEqual(edited.status_code, 200, edited.text)

        def client_reads(token: str) -> tuple[Any, str]:
            changed = calendar.get_objects_by_sync_token(sync_token=token,
                                                         disable_fallback=True, load_objects=True)
            objects = [o for o in changed if o.data]
            self.assertEqual(len(objects), 1)
            return icalendar.Calendar.from_ical(objects[0].data), changed.sync_token

        seen, token = yield threads.deferToThread(client_reads, token)
        event = next(iter(seen.walk("VEVENT")))
        self.assertEqual(str(event["SUMMARY"]), "Dentist (moved)")
        self.assertEqual(event.decoded("DTSTART"),
                         datetime(2027, 1, 13, 9, 0, tzinfo=timezone.utc))
        self.assertEqual(str(event["DTSTART"].params["TZID"]), "Europe/Paris")
        self.assertEqual(str(event["X-OTHER-CLIENT"]), "keep me")
        self.assertEqual([c.name for c in event.subcomponents], ["VALARM"])
        self.assertNotIn("DESCRIPTION", event)     # the form cleared it
        self.assertGreaterEqual(int(event["SEQUENCE"]), 1)
        self.assertEqual(len(list(seen.walk("VTIMEZONE"))), 1)

        gone = yield api.call("DELETE", f"{API}/events/{ident}")
        self.assertEqual(gone.status_code, 200, gone.text)
        summaries, deleted, _ = yield threads.deferToThread(client_sync, token)
        self.assertEqual(len(deleted), 1)
        self.assertEqual((yield api.events("2027-01-01", "2027-02-01")), [])
        again = yield api.call("DELETE", f"{API}/events/{ident}")
        self.assertEqual(again.status_code, 404)
        # Stored encrypted, like a client's PUT.
        self.assertNotIn(b"Dentist", self.table_bytes())

    @defer.inlineCallbacks
    def test_recurring_events_expanded_with_occurrence_exceptions(self) -> Any:
        api = yield self.signed_in()
        made = yield api.call("POST", f"{API}/events", {
            "title": "Standup", "start": "2027-01-04T10:00:00Z", "end": "2027-01-04T10:15:00Z",
            "repeat": {"freq": "weekly", "count": 5}})
        self.assertEqual(made.status_code, 201, made.text)
        ident = made.json()["id"]
        yearly = yield api.call("POST", f"{API}/events", {
            "title": "Anniversary", "allDay": True, "start": "2026-01-20",
            "repeat": {"freq": "yearly", "until": "2030-12-31"}})
        self.assertEqual(yearly.status_code, 201, yearly.text)
        january = yield api.events("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")
        self.assertEqual([(e["title"], e["start"][:10], e["recurrenceId"]) for e in january], [
            ("Standup", "2027-01-04", "20270104T100000Z"),
            ("Standup", "2027-01-11", "20270111T100000Z"),
            ("Standup", "2027-01-18", "20270118T100000Z"),
            ("Anniversary", "2027-01-20", "20270120"),
            ("Standup", "2027-01-25", "20270125T100000Z")])
        self.assertEqual(january[0]["repeat"], {"freq": "weekly", "until": None, "count": 5,
                                                "custom": False})
        anniversary = january[3]
        self.assertEqual((anniversary["allDay"], anniversary["end"]), (True, "2027-01-21"))
        february = yield api.events("2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z")
        self.assertEqual([e["start"][:10] for e in february], ["2027-02-01"])
        # One occurrence moved and renamed; another deleted; the series keeps the rest.
        moved = yield api.call("PUT", f"{API}/events/{ident}", {
            "scope": "occurrence", "recurrenceId": "20270111T100000Z", "title": "Demo day",
            "start": "2027-01-12T15:00:00Z", "end": "2027-01-12T16:00:00Z"})
        self.assertEqual(moved.status_code, 200, moved.text)
        removed = yield api.call("DELETE", f"{API}/events/{ident}?recurrenceId=20270118T100000Z")
        self.assertEqual(removed.status_code, 200, removed.text)
        bad = yield api.call("DELETE", f"{API}/events/{ident}?recurrenceId=20270119T100000Z")
        self.assertEqual((bad.status_code, bad.json()["field"]), (400, "recurrenceId"))
        january = yield api.events("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")
        standups = [(e["title"], e["start"], e["recurrenceId"]) for e in january
                    if e["eventId"] == ident]
        self.assertEqual(standups, [
            ("Standup", "2027-01-04T10:00:00+00:00", "20270104T100000Z"),
            ("Demo day", "2027-01-12T15:00:00+00:00", "20270111T100000Z"),
            ("Standup", "2027-01-25T10:00:00+00:00", "20270125T100000Z")])
        # The whole series edited from its last occurrence: the form showed that one's
        # times; the same times and rule keep the exceptions.
        renamed = yield api.call("PUT", f"{API}/events/{ident}", {
            "title": "Sync", "start": "2027-01-25T10:00:00Z", "end": "2027-01-25T10:15:00Z",
            "recurrenceId": "20270125T100000Z", "repeat": {"freq": "weekly", "count": 5}})
        self.assertEqual(renamed.status_code, 200, renamed.text)
        january = yield api.events("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")
        self.assertEqual([(e["title"], e["start"]) for e in january if e["eventId"] == ident],
                         [("Sync", "2027-01-04T10:00:00+00:00"),
                          ("Demo day", "2027-01-12T15:00:00+00:00"),
                          ("Sync", "2027-01-25T10:00:00+00:00")])
        # An hour later from that occurrence: the whole series moves; the exceptions,
        # made for the old times, go.
        later = yield api.call("PUT", f"{API}/events/{ident}", {
            "title": "Sync", "start": "2027-01-25T11:00:00Z", "end": "2027-01-25T11:15:00Z",
            "recurrenceId": "20270125T100000Z"})
        self.assertEqual(later.status_code, 200, later.text)
        january = yield api.events("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")
        self.assertEqual([e["start"] for e in january if e["eventId"] == ident],
                         [f"2027-01-{day}T11:00:00+00:00" for day in ("04", "11", "18", "25")])
        # The whole series: a new rule (daily until the 6th).
        series = yield api.call("PUT", f"{API}/events/{ident}", {
            "title": "Standup", "start": "2027-01-04T09:00:00Z", "end": "2027-01-04T09:15:00Z",
            "repeat": {"freq": "daily", "until": "2027-01-06"}})
        self.assertEqual(series.status_code, 200, series.text)
        january = yield api.events("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")
        self.assertEqual([e["start"] for e in january if e["eventId"] == ident],
                         ["2027-01-04T09:00:00+00:00", "2027-01-05T09:00:00+00:00",
                          "2027-01-06T09:00:00+00:00"])
        # A rule the form cannot show is kept when "repeat" is left out.
        daily = january[0]
        whole = yield api.call("DELETE", f"{API}/events/{ident}")
        self.assertEqual(whole.status_code, 200)
        self.assertEqual([e for e in (yield api.events("2027-01-01", "2027-02-01"))
                          if e["eventId"] == daily["eventId"]], [])

    @defer.inlineCallbacks
    def test_an_event_put_over_caldav_is_in_the_page_answer(self) -> Any:
        api = yield self.signed_in()

        def client_puts() -> None:
            calendar = self.caldav_calendar()
            calendar.save_event(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
                "UID:gym@client\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20270105T180000Z\r\n"
                "DTEND:20270105T190000Z\r\nSUMMARY:Gym\r\n"
                "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=TU\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")

        yield threads.deferToThread(client_puts)
        found = yield api.events("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")
        self.assertEqual([(e["title"], e["start"][:10]) for e in found],
                         [("Gym", "2027-01-05"), ("Gym", "2027-01-19")])
        self.assertTrue(found[0]["repeat"]["custom"])
        # Edited in the page without "repeat": the client's rule stays.
        edited = yield api.call("PUT", f"{API}/events/{found[0]['eventId']}", {
            "title": "Gym (legs)", "start": "2027-01-05T18:00:00Z",
            "end": "2027-01-05T19:30:00Z"})
        self.assertEqual(edited.status_code, 200, edited.text)
        found = yield api.events("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")
        self.assertEqual([(e["title"], e["start"][:10], e["end"][11:16]) for e in found],
                         [("Gym (legs)", "2027-01-05", "19:30"),
                          ("Gym (legs)", "2027-01-19", "19:30")])

    @defer.inlineCallbacks
    def test_bad_input_names_the_field_and_changes_nothing(self) -> Any:
        api = yield self.signed_in()
        good = {"title": "Ok", "start": "2027-01-04T10:00:00Z", "end": "2027-01-04T11:00:00Z"}
        cases = [
            ({**good, "title": "  "}, "title"),
            ({**good, "title": 5}, "title"),
            ({**good, "start": "tomorrow"}, "start"),
            ({**good, "start": None}, "start"),
            ({**good, "end": "2027-01-04T09:00:00Z"}, "end"),
            ({**good, "allDay": "yes"}, "allDay"),
            ({**good, "allDay": True, "start": "2027-13-01"}, "start"),
            ({**good, "timeZone": "Mars/Olympus"}, "timeZone"),
            ({**good, "repeat": {"freq": "hourly"}}, "repeat.freq"),
            ({**good, "repeat": {"freq": "daily", "count": 0}}, "repeat.count"),
            ({**good, "repeat": {"freq": "daily", "count": 2, "until": "2027-02-01"}},
             "repeat.count"),
            ({**good, "repeat": {"freq": "daily", "until": "2026-01-01"}}, "repeat.until"),
            ({**good, "repeat": "weekly"}, "repeat"),
            ({**good, "description": "x" * 40000}, "description"),
            ({**good, "calendarId": "no-such-calendar"}, "calendarId"),
        ]
        for body, field in cases:
            reply = yield api.call("POST", f"{API}/events", body)
            self.assertIn(reply.status_code, (400, 404), (body, reply.text))
            self.assertEqual(reply.json()["field"], field, (body, reply.text))
            self.assertIn(field.split(".")[-1], reply.json()["error"])
        reply = yield api.call("POST", f"{API}/events", raw=b"{not json")
        self.assertEqual((reply.status_code, reply.json()["field"]), (400, "body"))
        for query, field in (("end=2027-02-01", "start"), ("start=2027-01-01", "end"),
                             ("start=2027-01-01&end=2026-01-01", "end"),
                             ("start=2027-01-01&end=2029-01-01", "end"),
                             ("start=soon&end=2027-02-01", "start")):
            reply = yield api.call("GET", f"{API}/events?{query}")
            self.assertEqual((reply.status_code, reply.json()["field"]), (400, field), query)
        # No CSRF token, or another site's Origin: refused, nothing made.
        reply = yield api.call("POST", f"{API}/events", good, csrf=False)
        self.assertEqual((reply.status_code, reply.json()["field"]), (403, "csrf"))
        # Signed out: 401 for reads and writes.
        anonymous = CalendarApi(self.client(), api.csrf)
        for method, path in (("GET", f"{API}/calendars"), ("POST", f"{API}/events")):
            reply = yield anonymous.call(method, path, good)
            self.assertEqual(reply.status_code, 401)
        page = yield anonymous.web.get("/mail/calendar")
        self.assertEqual((page.status_code, page.headers["Location"]), (303, "/login"))
        self.assertEqual((yield api.events("2026-12-01", "2027-03-01")), [])

    @defer.inlineCallbacks
    def test_another_users_calendars_events_and_messages_are_not_found(self) -> Any:
        alice = yield self.signed_in(ALICE)
        made = yield alice.call("POST", f"{API}/events", {
            "title": "Private", "start": "2027-01-04T10:00:00Z",
            "repeat": {"freq": "daily", "count": 3}})
        ident = made.json()["id"]

        def alice_makes_a_calendar() -> None:
            client = caldav.DAVClient(url=self.web_base + "/", username=ALICE,
                                      password=PASSWORD)
            self.addCleanup(client.close)
            client.principal().make_calendar(name="Work", cal_id="work")

        yield threads.deferToThread(alice_makes_a_calendar)
        calendars = (yield alice.call("GET", f"{API}/calendars")).json()["calendars"]
        self.assertEqual([c["id"] for c in calendars], ["calendar", "work"])
        message = invitation_message("Board meeting").as_bytes()
        email_id = yield self.deliver(ALICE, message)
        bob = yield self.signed_in(BOB)
        body = {"title": "Mine now", "start": "2027-01-04T10:00:00Z"}
        for method, path, sent in (
                ("PUT", f"{API}/events/{ident}", body),
                ("PUT", f"{API}/events/{ident}", {**body, "scope": "occurrence",
                                                  "recurrenceId": "20270105T100000Z"}),
                ("DELETE", f"{API}/events/{ident}", None),
                ("DELETE", f"{API}/events/{ident}?recurrenceId=20270105T100000Z", None),
                ("POST", f"{API}/events", {**body, "calendarId": "work"}),
                ("GET", f"{API}/invitations/{email_id}", None),
                ("POST", f"{API}/import", {"emailId": email_id, "partId": "2"}),
                ("PUT", f"{API}/events/not-an-id", body)):
            reply = yield bob.call(method, path, sent)
            self.assertEqual(reply.status_code, 404, (method, path, reply.text))
            self.assertNotIn("Private", reply.text)
        self.assertEqual((yield bob.events("2027-01-01", "2027-02-01")), [])
        mine = yield alice.events("2027-01-01", "2027-02-01")
        self.assertEqual([e["title"] for e in mine], ["Private"] * 3)

    @defer.inlineCallbacks
    def test_invitation_imported_then_updated_by_a_newer_sequence(self) -> Any:
        api = yield self.signed_in()
        plain = EmailMessage()
        plain["From"], plain["To"], plain["Subject"] = "carol@elsewhere.example", ALICE, "Hi"
        plain.set_content("No meeting here.")
        plain_id = yield self.deliver(ALICE, plain.as_bytes())
        reply = yield api.call("GET", f"{API}/invitations/{plain_id}")
        self.assertEqual((reply.status_code, reply.json()), (200, {"invitations": []}))
        first = yield self.deliver(ALICE, invitation_message("Board meeting").as_bytes())
        found = (yield api.call("GET", f"{API}/invitations/{first}")).json()["invitations"]
        self.assertEqual([(i["partId"], i["title"], i["state"], i["method"]) for i in found],
                         [("2", "Board meeting", "new", "REQUEST")])
        added = yield api.call("POST", f"{API}/import", {"emailId": first, "partId": "2"})
        self.assertEqual(added.json()["status"], "added", added.text)
        again = yield api.call("POST", f"{API}/import", {"emailId": first, "partId": "2"})
        self.assertEqual(again.json()["status"], "unchanged")
        update = yield self.deliver(ALICE, invitation_message("Board meeting (room 4)",
                                                              sequence=2).as_bytes())
        state = (yield api.call("GET", f"{API}/invitations/{update}")).json()["invitations"]
        self.assertEqual(state[0]["state"], "updated")
        updated = yield api.call("POST", f"{API}/import", {"emailId": update, "partId": "2"})
        self.assertEqual((updated.json()["status"], updated.json()["eventId"]),
                         ("updated", added.json()["eventId"]))
        old = yield api.call("POST", f"{API}/import", {"emailId": first, "partId": "2"})
        self.assertEqual(old.json()["status"], "unchanged")   # older SEQUENCE: no change
        events = yield api.events("2027-01-01", "2027-02-01")
        self.assertEqual([e["title"] for e in events], ["Board meeting (room 4)"])
        for body, field in (({"emailId": first, "partId": "1"}, "partId"),
                            ({"emailId": first}, "partId"),
                            ({"emailId": "M999999", "partId": "2"}, "emailId")):
            reply = yield api.call("POST", f"{API}/import", body)
            self.assertEqual(reply.json()["field"], field, reply.text)

        def stored() -> Any:
            return self.caldav_calendar().event_by_uid("plan-1@elsewhere.example").data

        data = yield threads.deferToThread(stored)
        self.assertNotIn("METHOD", data)       # RFC 4791 §4.1: no METHOD in a stored object
        self.assertIn("ORGANIZER", data)


class QuotaTests(CalendarTestCase):
    @defer.inlineCallbacks
    def test_events_count_in_the_quota_and_a_full_account_refuses_with_507(self) -> Any:
        def used() -> int:
            return int(run_sync(self.server.engine, accounts.get_user, ALICE,
                                write=False).used_bytes)

        api = yield self.signed_in()
        before = used()
        made = yield api.call("POST", f"{API}/events", {
            "title": "Counted", "start": "2027-01-04T10:00:00Z",
            "description": "x" * 5000})
        self.assertEqual(made.status_code, 201, made.text)
        grown = used() - before
        self.assertGreater(grown, 5000)
        run_sync(self.server.engine, accounts.set_quota, ALICE, used() + 1000, write=True)
        refused = yield api.call("POST", f"{API}/events", {
            "title": "Too big", "start": "2027-01-05T10:00:00Z", "description": "y" * 5000})
        self.assertEqual((refused.status_code, refused.json()["field"]), (507, "quota"))
        self.assertEqual([e["title"] for e in (yield api.events("2027-01-01", "2027-02-01"))],
                         ["Counted"])
        gone = yield api.call("DELETE", f"{API}/events/{made.json()['id']}")
        self.assertEqual(gone.status_code, 200)
        self.assertEqual(used(), before)


class CalendarModuleTests(unittest.TestCase):
    """mail/calendar.py keeps the stored span by the same rule as dav/ical.py."""

    def test_facts_agree_with_the_caldav_validation(self) -> None:
        now = datetime(2026, 12, 1, tzinfo=timezone.utc)
        samples = [
            cal.new_event(cal.parse_fields({"title": "a", "start": "2027-01-04T10:00",
                                            "timeZone": "America/New_York"}), now),
            cal.new_event(cal.parse_fields({"title": "b", "allDay": True,
                                            "start": "2027-01-04", "end": "2027-01-07"}), now),
            cal.new_event(cal.parse_fields({"title": "c", "start": "2027-01-04T10:00:00Z",
                                            "repeat": {"freq": "monthly", "count": 3}}), now),
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:d\r\n"
            b"DTSTAMP:20261201T000000Z\r\nDTSTART:20270104T100000\r\nDURATION:PT2H\r\n"
            b"END:VEVENT\r\nEND:VCALENDAR\r\n",
        ]
        for data in samples:
            mine = cal.facts(data)
            theirs = ical.validate(data, ("VEVENT",))
            self.assertEqual((mine.uid, mine.component, mine.starts_at, mine.ends_at),
                             (theirs.uid, theirs.component, theirs.starts_at, theirs.ends_at))

    def test_until_is_utc_and_inclusive_of_its_day(self) -> None:
        fields = cal.parse_fields({"title": "t", "start": "2027-01-04T23:30",
                                   "timeZone": "Europe/Paris",
                                   "repeat": {"freq": "daily", "until": "2027-01-06"}})
        data = cal.new_event(fields, datetime(2026, 12, 1, tzinfo=timezone.utc))
        found = cal.occurrences(data, datetime(2027, 1, 1, tzinfo=timezone.utc),
                                datetime(2027, 2, 1, tzinfo=timezone.utc))
        self.assertEqual([o["start"] for o in found], ["2027-01-04T22:30:00+00:00",
                                                       "2027-01-05T22:30:00+00:00",
                                                       "2027-01-06T22:30:00+00:00"])
        self.assertIn(b"UNTIL=20270106T225959Z", data)
        self.assertEqual(found[0]["repeat"]["until"], "2027-01-06")
        self.assertEqual(found[0]["timeZone"], "Europe/Paris")


# --- the page in Chromium -------------------------------------------------------------------
TEAM_LUNCH = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
              "UID:lunch@client\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20270114T110000Z\r\n"
              "DTEND:20270114T120000Z\r\nSUMMARY:Team lunch\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
STANDUP = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
           "UID:standup@client\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20270104T080000Z\r\n"
           "DTEND:20270104T081500Z\r\nSUMMARY:Standup\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n"
           "END:VEVENT\r\nEND:VCALENDAR\r\n")
WAIT_MS = 10000


class CalendarBrowserTests(WebmailBrowserTestCase):
    def caldav_calendar(self) -> Any:
        client = caldav.DAVClient(url=self.web_base + "/", username=ALICE, password=PASSWORD)
        self.addCleanup(client.close)
        return client.principal().calendars()[0]

    def open_calendar(self, browser: Any, errors: list[str]) -> Any:
        """The webmail in a Paris browser, then the calendar by the header's link."""
        context = browser.new_context(timezone_id="Europe/Paris", locale="en-GB")
        # Every CSP violation the page reports, beside the console messages ``watch`` sees.
        context.add_init_script("window.cspViolations = []; document.addEventListener("
                                "'securitypolicyviolation', (e) => window.cspViolations.push("
                                "e.violatedDirective + ' ' + e.blockedURI));")
        page = self.open_mail(context, errors)
        page.get_by_role("link", name="Calendar").click()
        expect(page.get_by_role("heading", name="Calendar")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("html[data-ready='1']")).to_have_count(1, timeout=WAIT_MS)
        return page

    @defer.inlineCallbacks
    def test_views_and_an_event_made_edited_and_deleted_by_the_form(self) -> Any:
        def scenario(browser: Any, errors: list[str]) -> None:
            calendar = self.caldav_calendar()
            calendar.save_event(TEAM_LUNCH)      # PUT over CalDAV: shown in the page
            calendar.save_event(STANDUP)
            page = self.open_calendar(browser, errors)
            page.goto(self.web_base + "/mail/calendar?date=2027-01-14")
            grid = page.get_by_role("main", name="Calendar")
            expect(grid.get_by_text("January 2027")).to_be_visible(timeout=WAIT_MS)
            expect(grid.get_by_role("button", name=re.compile("Team lunch"))).to_be_visible(
                timeout=WAIT_MS)
            expect(grid.get_by_role("button", name=re.compile("Standup"))).to_have_count(
                4, timeout=WAIT_MS)
            # Week (10-16 January): the lunch and one standup; day (the 14th): the lunch.
            page.get_by_role("button", name="Week", exact=True).click()
            expect(grid.get_by_role("button", name=re.compile("Standup"))).to_have_count(
                1, timeout=WAIT_MS)
            lunch = grid.get_by_role("button", name=re.compile("Team lunch"))
            expect(lunch).to_be_visible()
            expect(lunch).to_contain_text("12:00")    # 11:00 UTC in Paris
            page.get_by_role("button", name="Day", exact=True).click()
            expect(grid.get_by_role("button", name=re.compile("Standup"))).to_have_count(
                0, timeout=WAIT_MS)
            expect(lunch).to_be_visible()
            # A phone: nothing wider than the screen; the day view still usable.
            page.set_viewport_size({"width": 375, "height": 700})
            expect(lunch).to_be_visible()
            self.assertLessEqual(page.evaluate("document.documentElement.scrollWidth"), 375)
            self.assertLessEqual(page.evaluate(
                "document.getElementById('calendar').scrollWidth"), 375)
            page.set_viewport_size({"width": 1280, "height": 800})

            # A new event by the form.
            page.get_by_role("button", name="New event").click()
            dialog = page.get_by_role("dialog", name="New event")
            expect(dialog).to_be_visible()
            dialog.get_by_role("textbox", name="Title").fill("Budget review")
            dialog.get_by_label("Starts").fill("2027-01-14T15:00")
            dialog.get_by_label("Ends").fill("2027-01-14T14:00")
            dialog.get_by_role("button", name="Save").click()
            # Refused by the server: the alert names the field, which gets the focus.
            expect(dialog.get_by_role("alert")).to_have_text("end: must be after the start",
                                                             timeout=WAIT_MS)
            expect(dialog.get_by_label("Ends")).to_be_focused()
            dialog.get_by_label("Ends").fill("2027-01-14T16:30")
            dialog.get_by_role("textbox", name="Location").fill("Room 4")
            dialog.get_by_role("button", name="Save").click()
            expect(dialog).to_be_hidden(timeout=WAIT_MS)
            review = grid.get_by_role("button", name=re.compile("Budget review"))
            expect(review).to_be_visible(timeout=WAIT_MS)
            expect(review).to_contain_text("15:00")
            stored = icalendar.Calendar.from_ical(calendar.event_by_uid(
                self.uid_of(calendar, "Budget review")).data)
            event = next(iter(stored.walk("VEVENT")))
            self.assertEqual(event.decoded("DTSTART").astimezone(timezone.utc),
                             datetime(2027, 1, 14, 14, 0, tzinfo=timezone.utc))
            self.assertEqual(str(event["DTSTART"].params["TZID"]), "Europe/Paris")
            self.assertEqual(str(event["LOCATION"]), "Room 4")

            # Edited: the form opens with its values.
            review.click()
            dialog = page.get_by_role("dialog", name="Edit event")
            expect(dialog.get_by_role("textbox", name="Title")).to_have_value("Budget review")
            expect(dialog.get_by_label("Starts")).to_have_value("2027-01-14T15:00")
            dialog.get_by_role("textbox", name="Title").fill("Budget review (final)")
            dialog.get_by_label("Repeat").select_option(label="Weekly")
            dialog.get_by_role("spinbutton", name="Times").fill("2")
            dialog.get_by_role("button", name="Save").click()
            expect(dialog).to_be_hidden(timeout=WAIT_MS)
            final = grid.get_by_role("button", name=re.compile(r"Budget review \(final\)"))
            expect(final).to_be_visible(timeout=WAIT_MS)
            page.get_by_role("button", name="Week", exact=True).click()
            page.get_by_role("button", name="Next week").click()
            expect(final).to_have_count(1, timeout=WAIT_MS)     # the second occurrence
            # Only that occurrence deleted; then the whole series.
            final.click()
            dialog = page.get_by_role("dialog", name="Edit event")
            dialog.get_by_role("radio", name="Only this occurrence").check()
            dialog.get_by_role("button", name="Delete").click()
            expect(dialog).to_be_hidden(timeout=WAIT_MS)
            expect(final).to_have_count(0, timeout=WAIT_MS)
            page.get_by_role("button", name="Previous week").click()
            expect(final).to_have_count(1, timeout=WAIT_MS)
            final.click()
            dialog = page.get_by_role("dialog", name="Edit event")
            dialog.get_by_role("button", name="Delete").click()
            expect(final).to_have_count(0, timeout=WAIT_MS)
            expect(grid.get_by_role("button", name=re.compile("Team lunch"))).to_be_visible()
            self.assertEqual(sorted(str(e.icalendar_component["SUMMARY"])
                                    for e in calendar.events()), ["Standup", "Team lunch"])
            # EventCalendar styles through the CSSOM: style-src 'self' holds.
            self.assertEqual(page.evaluate("window.cspViolations"), [])

        yield self.in_browser(scenario)

    @staticmethod
    def uid_of(calendar: Any, summary: str) -> str:
        return next(str(e.icalendar_component["UID"]) for e in calendar.events()
                    if str(e.icalendar_component["SUMMARY"]) == summary)

    @defer.inlineCallbacks
    def test_invitation_added_to_the_calendar_with_one_click(self) -> Any:
        smtp_port = self.server.ports["SMTP"]

        def scenario(browser: Any, errors: list[str]) -> None:
            page = self.open_mail(browser, errors)
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
                smtp.send_message(invitation_message("Board meeting"))
            row = page.get_by_role("option", name=re.compile("Carol, Invitation: Board "
                                                             "meeting"))
            expect(row).to_be_visible(timeout=WAIT_MS)
            row.click()
            bar = page.get_by_role("region", name="Invitation")
            expect(bar).to_contain_text("Board meeting", timeout=WAIT_MS)
            bar.get_by_role("button", name="Add to calendar").click()
            expect(bar.get_by_role("status")).to_have_text("Added to your calendar.",
                                                            timeout=WAIT_MS)
            expect(bar.get_by_role("button", name="Add to calendar")).to_be_hidden()
            event = self.caldav_calendar().event_by_uid("plan-1@elsewhere.example")
            self.assertEqual(str(event.icalendar_component["SUMMARY"]), "Board meeting")
            # Opened again: it says so instead of offering the button.
            page.reload()
            expect(page.locator("html[data-ready='1']")).to_have_count(1, timeout=WAIT_MS)
            page.get_by_role("option", name=re.compile("Invitation: Board meeting")).click()
            expect(page.get_by_role("region", name="Invitation")).to_contain_text(
                "This event is in your calendar.", timeout=WAIT_MS)

        yield self.in_browser(scenario)


class OccurrenceRangeTests(unittest.TestCase):
    """A plain event is in a range when it overlaps it (RFC 4791 §9.9's rule), without
    the recurrence machinery; dates are the viewer's days, widened by zone offsets."""

    def test_plain_events_against_ranges(self) -> None:
        now = datetime(2026, 12, 1, tzinfo=timezone.utc)
        timed = cal.new_event(cal.parse_fields({"title": "t", "start": "2027-01-05T10:00Z",
                                                "end": "2027-01-05T11:00Z"}), now)
        day = cal.new_event(cal.parse_fields({"title": "d", "allDay": True,
                                              "start": "2027-01-05"}), now)

        def at(*parts: int) -> datetime:
            return datetime(*parts, tzinfo=timezone.utc)  # type: ignore[misc]
        cases = [
            (timed, at(2027, 1, 5, 11), at(2027, 1, 5, 12), False),   # ends as it starts
            (timed, at(2027, 1, 5, 9), at(2027, 1, 5, 10), False),    # starts at its end
            (timed, at(2027, 1, 5, 10, 30), at(2027, 1, 5, 12), True),
            (timed, at(2027, 1, 1), at(2027, 2, 1), True),
            (day, at(2027, 1, 5, 20), at(2027, 1, 6, 20), True),      # the day in UTC-10
            (day, at(2027, 1, 7), at(2027, 1, 8), False),
        ]
        for data, start, end, expected in cases:
            found = cal.occurrences(data, start, end)
            self.assertEqual(bool(found), expected, (data[-300:], start, end))
        self.assertEqual(cal.occurrences(day, at(2027, 1, 1), at(2027, 2, 1))[0]["end"],
                         date(2027, 1, 6).isoformat())
        self.assertEqual(cal.occurrences(timed, at(2027, 1, 1), at(2027, 2, 1))[0]["end"],
                         (at(2027, 1, 5, 10) + timedelta(hours=1)).isoformat())
