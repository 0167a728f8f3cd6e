# -*- test-case-name: tests.test_webmail_calendar -*-
"""The webmail's calendar (issue #15 item 7), beside the mail page under /mail:

  GET    /mail/calendar                          the page: month, week and day views drawn
                                                 by the vendored EventCalendar
                                                 (static/js/webmail/calendar.js)
  GET    /mail/api/calendar/calendars            the user's event calendars
  GET    /mail/api/calendar/events?start=&end=   occurrences in [start, end), recurring
                                                 events expanded here, each with its
                                                 recurrence id
  POST   /mail/api/calendar/events               create (JSON: title, start, end, allDay,
                                                 timeZone, location, description,
                                                 calendarId, repeat {freq, until|count})
  PUT    /mail/api/calendar/events/<id>          edit the whole event ("scope": "series";
                                                 with the "recurrenceId" of the occurrence
                                                 the form showed, its times move the
                                                 series by as much), or one occurrence
                                                 ("scope": "occurrence": an exception)
  DELETE /mail/api/calendar/events/<id>          delete it, or one occurrence
                                                 (?recurrenceId=)
  GET    /mail/api/calendar/invitations/<email>  the message's text/calendar invitations
  POST   /mail/api/calendar/import               {emailId, partId}: one into the calendar

A page of its own rather than a view inside /mail: the calendar needs the whole width (the
mail page is three panes), EventCalendar's 140 KB load only when a calendar is wanted, and
the URL can be bookmarked; the mail page's header links here and back.

The session cookie authenticates; writes need our Origin and the X-CSRF-Token header (the
webmail's rule, web/forms.py).  Answers are JSON; a refusal is {"error", "field"} naming the
JSON field at fault.  Every id is looked up among the signed-in user's own calendars, so
another user's id is a 404 like one that never existed.  Data goes through mail/dav.py
(``UserDav``), the same storage CalDAV uses: encrypted, counted in the quota, and seen by a
CalDAV client at its next sync.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any, Optional

from klein import Klein
from twisted.internet import defer
from werkzeug.exceptions import HTTPException

from mailgosend.jmap import parts as jparts
from mailgosend.jmap.ids import parse_id
from mailgosend.mail.calendar import InvalidField, parse_fields
from mailgosend.mail.dav import CalendarError, EventChanged, EventNotFound, OverQuota
from mailgosend.web.account import AccountPages
from mailgosend.web.forms import change_allowed
from mailgosend.web.replies import see_other
from mailgosend.web.request import WebRequest
from mailgosend.web.sessions import Session

__all__ = ["CalendarPages", "CALENDAR_TYPES"]

# The widest range one events request may ask for (a month view asks for six weeks).
MAX_RANGE = timedelta(days=400)
CALENDAR_TYPES = ("text/calendar", "application/ics")
_STATUS = {EventNotFound: 404, EventChanged: 412, OverQuota: 507}


class Refused(Exception):
    def __init__(self, code: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def _arg(request: WebRequest, name: str) -> Optional[str]:
    args: dict[bytes, list[bytes]] = request.args or {}
    values = args.get(name.encode())
    return values[0].decode("utf-8", "replace") if values else None


def _range_bound(text: Optional[str], field: str) -> datetime:
    """An ISO date or date-time (EventCalendar sends the view's bounds); naive = UTC."""
    if not text:
        raise Refused(400, f"{field}: is needed", field)
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z")
                                            else text)
    except ValueError:
        raise Refused(400, f"{field}: must be an ISO date or date-time", field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _calendar_parts(info: Any) -> list[Any]:
    return [part for part in jparts.leaves(info.root)
            if part.content_type.lower() in CALENDAR_TYPES]


def _part_bytes(info: Any, raw: bytes, part_id: str) -> bytes:
    """Worker thread: one text/calendar part, transfer-decoded; InvalidField otherwise."""
    part = jparts.find(info, part_id)
    if part is None or part.content_type.lower() not in CALENDAR_TYPES:
        raise InvalidField("partId", "this message has no calendar part of that id")
    data, _broken = jparts.decode(part, raw)
    return data


class CalendarPages:
    app = Klein()

    def __init__(self, *, pages: AccountPages, mail: Any, dav: Any) -> None:
        self._pages = pages
        self.sessions = pages.sessions
        self._mail = mail       # mail.MailService: the invitation's message
        self._dav = dav         # mail.dav.DavService: the calendars

    def resource(self) -> Any:
        return self.app.resource()

    def render(self, request: WebRequest, template: str, session: Optional[Session],
               **context: Any) -> bytes:
        return self._pages.render(request, template, session, **context)

    # --- plumbing -------------------------------------------------------------------
    async def _user(self, request: WebRequest, *, write: bool = False) -> Any:
        session = await self.sessions.load(request)
        if session is None or not session.signed_in:
            raise Refused(401, "sign in first")
        if write and not change_allowed(self.sessions, request, session):
            raise Refused(403, "csrf: this request did not come from the webmail page "
                               "(missing or stale X-CSRF-Token); reload it", "csrf")
        return await self._dav.open_account(session.email)

    @staticmethod
    def _body(request: WebRequest) -> Any:
        content = request.content
        if content is None:
            raise Refused(400, "body: must be a JSON object", "body")
        content.seek(0)
        raw = content.read()
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise Refused(400, "body: must be a JSON object", "body") from None
        if not isinstance(body, dict):
            raise Refused(400, "body: must be a JSON object", "body")
        return body

    def _json(self, request: WebRequest, handler: Any, code: int = 200) -> Any:
        """Run ``handler()`` (a coroutine function) and answer its value as JSON; the
        refusals it raises become {"error", "field"} with their status."""
        async def run() -> bytes:
            request.setHeader(b"Content-Type", b"application/json")
            request.setHeader(b"Cache-Control", b"no-store")
            try:
                value = await handler()
                request.setResponseCode(code)
                return json.dumps(value).encode()
            except Refused as refused:
                return self._error(request, refused.code, refused.message, refused.field)
            except InvalidField as invalid:
                return self._error(request, 400, str(invalid), invalid.field)
            except CalendarError as error:
                status = next((s for kind, s in _STATUS.items() if isinstance(error, kind)),
                              400)
                return self._error(request, status, str(error), error.field)
        return defer.Deferred.fromCoroutine(run())

    @staticmethod
    def _error(request: WebRequest, code: int, message: str, field: str) -> bytes:
        request.setResponseCode(code)
        return json.dumps({"error": message, "field": field or None}).encode()

    # --- the page -------------------------------------------------------------------
    @app.route("/mail/calendar", methods=["GET", "HEAD"])
    @defer.inlineCallbacks
    def page(self, request: WebRequest) -> Any:
        session = yield self.sessions.load(request)
        if session is None or not session.signed_in:
            return see_other(request, "/login")
        return self.render(request, "mail/calendar.html", session, title="Calendar")

    @app.route("/mail/calendar/", methods=["GET", "HEAD"])
    def page_slash(self, request: WebRequest) -> Any:
        return see_other(request, "/mail/calendar")

    # --- calendars and events -------------------------------------------------------
    @app.route("/mail/api/calendar/calendars", methods=["GET"])
    def calendars(self, request: WebRequest) -> Any:
        async def handler() -> Any:
            user = await self._user(request)
            return {"calendars": [c.to_json() for c in await user.calendar_list()]}
        return self._json(request, handler)

    @app.route("/mail/api/calendar/events", methods=["GET"])
    def events(self, request: WebRequest) -> Any:
        async def handler() -> Any:
            user = await self._user(request)
            start = _range_bound(_arg(request, "start"), "start")
            end = _range_bound(_arg(request, "end"), "end")
            if end <= start:
                raise Refused(400, "end: must be after the start", "end")
            if end - start > MAX_RANGE:
                raise Refused(400, f"end: at most {MAX_RANGE.days} days after the start",
                              "end")
            wanted = _arg(request, "calendar")
            found = await user.events_between(start, end)
            if wanted:
                found = [e for e in found if e["calendarId"] == wanted]
            return {"events": found}
        return self._json(request, handler)

    @app.route("/mail/api/calendar/events", methods=["POST"])
    def create(self, request: WebRequest) -> Any:
        async def handler() -> Any:
            user = await self._user(request, write=True)
            body = self._body(request)
            fields = parse_fields(body)
            calendar = body.get("calendarId")
            if calendar in (None, ""):
                calendar = next((c.id for c in await user.calendar_list() if c.default),
                                None)
            return await user.create_event(calendar, fields)
        return self._json(request, handler, 201)

    @app.route("/mail/api/calendar/events/<ident>", methods=["PUT", "POST"])
    def edit(self, request: WebRequest, ident: str) -> Any:
        async def handler() -> Any:
            user = await self._user(request, write=True)
            body = self._body(request)
            scope = body.get("scope", "series")
            if scope not in ("series", "occurrence"):
                raise Refused(400, "scope: must be series or occurrence", "scope")
            recurrence = body.get("recurrenceId")
            if recurrence is not None and not isinstance(recurrence, str):
                raise Refused(400, "recurrenceId: must be an occurrence's recurrenceId",
                              "recurrenceId")
            if scope == "occurrence" and not recurrence:
                raise Refused(400, "recurrenceId: is needed to edit one occurrence",
                              "recurrenceId")
            fields = parse_fields(body)
            calendar = body.get("calendarId") or None
            if calendar is not None and not isinstance(calendar, str):
                raise Refused(400, "calendarId: must be a calendar's id", "calendarId")
            etag = body.get("etag") if isinstance(body.get("etag"), str) else None
            if scope == "occurrence":    # one occurrence cannot move to another calendar
                return await user.update_event(ident, fields, recurrence_id=recurrence,
                                               etag=etag)
            return await user.update_event(ident, fields, calendar=calendar, etag=etag,
                                           anchor=recurrence or None)
        return self._json(request, handler)

    @app.route("/mail/api/calendar/events/<ident>", methods=["DELETE"])
    def delete(self, request: WebRequest, ident: str) -> Any:
        async def handler() -> Any:
            user = await self._user(request, write=True)
            await user.delete_event(ident, recurrence_id=_arg(request, "recurrenceId") or None,
                                    etag=_arg(request, "etag") or None)
            return {"deleted": ident}
        return self._json(request, handler)

    # --- invitations ----------------------------------------------------------------
    async def _record(self, request: WebRequest, email_id: Any, raw: bool = True
                      ) -> tuple[Any, Any]:
        """(UserMail, EmailRecord, with its bytes when ``raw``) of the signed-in user; 404
        otherwise."""
        number = parse_id("M", email_id) if isinstance(email_id, str) else None
        if number is None:
            raise EventNotFound("emailId")
        session = await self.sessions.load(request)
        assert session is not None
        mail = await self._mail.open_account(session.email)
        records = await mail.email_records([number], raw=raw)
        record = records.get(number)
        if record is None or (raw and record.raw is None):
            raise EventNotFound("emailId")
        return mail, record

    @app.route("/mail/api/calendar/invitations/<email_id>", methods=["GET"])
    def invitations(self, request: WebRequest, email_id: str) -> Any:
        async def handler() -> Any:
            user = await self._user(request)
            # Asked for every message opened: the structure first, the (decrypted) bytes
            # only when there is a calendar part to read.
            _mail, record = await self._record(request, email_id, raw=False)
            parts = _calendar_parts(record.info)
            if parts:
                _mail, record = await self._record(request, email_id)
            found = []
            for part in parts:
                data = await self._mail.workers.run(_part_bytes, record.info, record.raw,
                                                    part.number)
                try:
                    state = await user.invitation_state(data)
                except InvalidField:
                    continue        # a reply or a cancellation: nothing to add
                found.append({"partId": part.number, **state})
            return {"invitations": found}
        return self._json(request, handler)

    @app.route("/mail/api/calendar/import", methods=["POST"])
    def import_part(self, request: WebRequest) -> Any:
        async def handler() -> Any:
            user = await self._user(request, write=True)
            body = self._body(request)
            part_id = body.get("partId")
            if not isinstance(part_id, str) or not part_id:
                raise Refused(400, "partId: is needed", "partId")
            _mail, record = await self._record(request, body.get("emailId"))
            data = await self._mail.workers.run(_part_bytes, record.info, record.raw,
                                                part_id)
            return await user.import_invitation(data)
        return self._json(request, handler)

    @app.handle_errors(HTTPException)  # type: ignore[arg-type]
    def http_error(self, request: WebRequest, failure: Any) -> Any:
        return self._pages.http_error(request, failure)
