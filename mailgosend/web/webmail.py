# -*- test-case-name: tests.test_webmail_body -*-
"""The webmail on the web port (issue 13), mounted at ``/mail``:

  GET  /mail                         the page: ES modules in static/js/webmail/ talking to
                                     the JMAP endpoint (jmap/) with the session cookie
  GET  /mail/body/<emailId>          the message body as its own sanitised document
                                     (web/webmail_body.py) for a sandboxed iframe;
                                     ?text=1 the plain-text alternative, ?part=<partId> one
                                     part, ?remote=1 remote images/fonts for this response
  GET  /mail/info/<emailId>          JSON: how many remote URLs the body has, its sender and
                                     whether that sender's remote content is always shown
  GET  /mail/source/<emailId>        the raw message as text/plain (nosniff, sandbox CSP)
  GET  /mail/quote/<emailId>         JSON {html}: the body cleaned for quoting in a reply
                                     (web/webmail_quote.py)
  POST /mail/remote-senders          always show remote content from a sender (CSRF-checked)
  POST /mail/snooze                  snooze messages (form: emailId..., until: ISO 8601 with
                                     an offset) until then (mail/snooze.py; CSRF-checked)
  POST /mail/unsnooze                bring snoozed messages back now (form: emailId...)
  GET  /mail/snoozed                 JSON: the user's snoozed messages and their times

Everything else the page does (folders, lists, flags, threads, attachments by blob
download, push, and writing: static/js/webmail/compose.js saves drafts with Email/set,
uploads attachments to the upload URL and sends with EmailSubmission/set) is JMAP: one API
for the page and every other client.  An email id of
another user (or none) is a 404, never a hint that it exists.
"""

from __future__ import annotations

import json
from datetime import datetime
from email.utils import getaddresses
from typing import Any, Optional

from klein import Klein
from twisted.internet import defer
from werkzeug.exceptions import HTTPException, NotFound

from mailgosend.jmap.auth import account_id_of
from mailgosend.jmap.ids import format_id, parse_id
from mailgosend.jmap.session import API_PATH
from mailgosend.mail.snooze import SnoozeError, SnoozeResult
from mailgosend.web.account import AccountPages
from mailgosend.web.forms import changes_state, form_args, form_field, signed_in
from mailgosend.web.headers import DEFAULT_CSP
from mailgosend.web.replies import see_other
from mailgosend.web.request import WebRequest
from mailgosend.web.sessions import Session
from mailgosend.web.webmail_body import body_csp, render_body
from mailgosend.web.webmail_quote import quote_html

__all__ = ["WebmailPages", "PAGE_CSP"]

# The page's own CSP: the default one plus frames of our own (the message bodies).
PAGE_CSP = DEFAULT_CSP + "; frame-src 'self'"
SOURCE_CSP = b"sandbox; default-src 'none'; frame-ancestors 'self'"


def _sender(info: Any) -> str:
    """The address of the From: field (lower-cased), or ''."""
    value = getattr(info.envelope, "from_", None) if info.envelope is not None else None
    if not value:
        return ""
    found = [addr for _name, addr in getaddresses([value]) if "@" in addr]
    return found[0].strip().lower() if found else ""


class WebmailPages:
    app = Klein()

    # Feature modules of static/js/webmail/ the page loads (app.js ``installModules``):
    # writing, actions and search plug in here by name.  invites: "Add to calendar" for a
    # message's text/calendar invitation (web/webmail_calendar.py).
    modules: tuple[str, ...] = ("compose", "autocomplete", "actions", "search", "snooze",
                                "templates", "invites", "contacts-link")

    def __init__(self, *, pages: AccountPages, mail: Any) -> None:
        self._pages = pages
        self.sessions = pages.sessions
        self._mail = mail       # mail.MailService

    def resource(self) -> Any:
        return self.app.resource()

    def render(self, request: WebRequest, template: str, session: Optional[Session],
               **context: Any) -> bytes:
        return self._pages.render(request, template, session, **context)

    async def _signed_in(self, request: WebRequest) -> Optional[Session]:
        session = await self.sessions.load(request)
        if session is None or not session.signed_in:
            return None
        return session  # type: ignore[no-any-return]

    async def _record(self, request: WebRequest, email_id: str) -> tuple[Any, Any]:
        """(UserMail, EmailRecord with raw bytes) of the signed-in user, else NotFound."""
        session = await self._signed_in(request)
        number = parse_id("M", email_id)
        if session is None or number is None:
            raise NotFound()
        mail = await self._mail.open_account(session.email)
        records = await mail.email_records([number], raw=True)
        record = records.get(number)
        if record is None or record.raw is None:
            raise NotFound()
        return mail, record

    # --- the page -------------------------------------------------------------------
    @app.route("/mail", methods=["GET", "HEAD"])
    @defer.inlineCallbacks
    def page(self, request: WebRequest) -> Any:
        session = yield defer.Deferred.fromCoroutine(self._signed_in(request))
        if session is None:
            return see_other(request, "/login")
        # The account and inbox ids let the page send its first JMAP request (folders and
        # the inbox's first window) without waiting for the session resource first.
        mail = yield self._mail.open_account(session.email)
        inbox = yield mail.get_mailbox("INBOX")
        request.setHeader(b"Content-Security-Policy", PAGE_CSP.encode())
        return self.render(request, "mail/app.html", session, title="Mail",
                           modules=self.modules, account_id=account_id_of(mail.user),
                           inbox_id=format_id("B", inbox.id) if inbox is not None else "",
                           api_url=API_PATH)

    @app.route("/mail/", methods=["GET", "HEAD"])
    def page_slash(self, request: WebRequest) -> Any:
        return see_other(request, "/mail")

    # --- bodies ---------------------------------------------------------------------
    @app.route("/mail/body/<email_id>", methods=["GET", "HEAD"])
    def body(self, request: WebRequest, email_id: str) -> Any:
        return defer.Deferred.fromCoroutine(self._body(request, email_id))

    async def _body(self, request: WebRequest, email_id: str) -> bytes:
        mail, record = await self._record(request, email_id)
        args: dict[bytes, list[bytes]] = request.args or {}

        def flag(name: bytes) -> bool:
            return args.get(name, [b""])[0] == b"1"
        part = args.get(b"part", [b""])[0].decode("ascii", "replace") or None
        remote = flag(b"remote")
        if not remote:
            sender = _sender(record.info)
            remote = bool(sender) and await mail.remote_content_allowed(sender)
        rendered = await self._mail.workers.run(
            render_body, record.info, record.raw, remote=remote, prefer_text=flag(b"text"),
            part_id=part)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Content-Security-Policy", body_csp(remote=remote).encode())
        request.setHeader(b"X-Frame-Options", b"SAMEORIGIN")
        request.setHeader(b"Cache-Control", b"private, no-store")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        return rendered.document  # type: ignore[no-any-return]

    @app.route("/mail/info/<email_id>", methods=["GET"])
    def info(self, request: WebRequest, email_id: str) -> Any:
        return defer.Deferred.fromCoroutine(self._info(request, email_id))

    async def _info(self, request: WebRequest, email_id: str) -> bytes:
        mail, record = await self._record(request, email_id)
        rendered = await self._mail.workers.run(render_body, record.info, record.raw)
        sender = _sender(record.info)
        allowed = bool(sender) and await mail.remote_content_allowed(sender)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps({"remote": rendered.remote, "sender": sender,
                           "senderAllowed": allowed}).encode()

    @app.route("/mail/source/<email_id>", methods=["GET", "HEAD"])
    def source(self, request: WebRequest, email_id: str) -> Any:
        return defer.Deferred.fromCoroutine(self._source(request, email_id))

    async def _source(self, request: WebRequest, email_id: str) -> bytes:
        _mail, record = await self._record(request, email_id)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Content-Security-Policy", SOURCE_CSP)
        request.setHeader(b"X-Frame-Options", b"SAMEORIGIN")
        request.setHeader(b"Cache-Control", b"private, no-store")
        raw: bytes = record.raw
        return raw.decode("utf-8", "replace").encode("utf-8")

    @app.route("/mail/quote/<email_id>", methods=["GET"])
    def quote(self, request: WebRequest, email_id: str) -> Any:
        return defer.Deferred.fromCoroutine(self._quote(request, email_id))

    async def _quote(self, request: WebRequest, email_id: str) -> bytes:
        _mail, record = await self._record(request, email_id)
        cleaned = await self._mail.workers.run(quote_html, record.info, record.raw)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"private, no-store")
        return json.dumps({"html": cleaned}).encode()

    # --- remote content from a sender -----------------------------------------------
    @app.route("/mail/remote-senders", methods=["POST"])
    @changes_state
    @signed_in
    @defer.inlineCallbacks
    def allow_sender(self, request: WebRequest, session: Session) -> Any:
        sender = form_field(request, "sender").strip().lower()
        request.setHeader(b"Content-Type", b"application/json")
        if "@" not in sender or len(sender) > 320:
            request.setResponseCode(400)
            return json.dumps({"error": "sender: an email address is needed"}).encode()
        mail = yield self._mail.open_account(session.email)
        yield mail.allow_remote_content(sender)
        return json.dumps({"sender": sender, "senderAllowed": True}).encode()

    # --- snooze (mail/snooze.py) -----------------------------------------------------
    @app.route("/mail/snooze", methods=["POST"])
    @changes_state
    @signed_in
    def snooze(self, request: WebRequest, session: Session) -> Any:
        return defer.Deferred.fromCoroutine(self._snooze(request, session, True))

    @app.route("/mail/unsnooze", methods=["POST"])
    @changes_state
    @signed_in
    def unsnooze(self, request: WebRequest, session: Session) -> Any:
        return defer.Deferred.fromCoroutine(self._snooze(request, session, False))

    async def _snooze(self, request: WebRequest, session: Session, snooze: bool) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        try:
            ids = _email_ids(request)
            mail = await self._mail.open_account(session.email)
            if snooze:
                until = _until(form_field(request, "until"))
                result: SnoozeResult = await mail.snooze(ids, until)
            else:
                result = await mail.unsnooze(ids)
        except SnoozeError as error:
            request.setResponseCode(400)
            return json.dumps({"error": str(error)}).encode()
        answer: dict[str, Any] = {
            "done": [format_id("M", n) for n in result.done],
            "notFound": [format_id("M", n) for n in result.not_found]}
        if snooze:
            answer["until"] = until.isoformat()
            if result.mailbox is not None:
                answer["mailboxId"] = format_id("B", result.mailbox.id)
        return json.dumps(answer).encode()

    @app.route("/mail/snoozed", methods=["GET"])
    def snoozed(self, request: WebRequest) -> Any:
        return defer.Deferred.fromCoroutine(self._snoozed(request))

    async def _snoozed(self, request: WebRequest) -> bytes:
        session = await self._signed_in(request)
        if session is None:
            raise NotFound()
        mail = await self._mail.open_account(session.email)
        found = await mail.snoozed()
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps({"snoozed": [{"emailId": format_id("M", s.email_id),
                                        "until": s.wake_at.isoformat()}
                                       for s in found]}).encode()

    @app.handle_errors(HTTPException)  # type: ignore[arg-type]
    def http_error(self, request: WebRequest, failure: Any) -> Any:
        return self._pages.http_error(request, failure)


def _email_ids(request: WebRequest) -> list[int]:
    """The form's ``emailId`` values (JMAP Email ids); SnoozeError names a bad one."""
    ids = []
    for raw in form_args(request).get(b"emailId", []):
        number = parse_id("M", raw.decode("utf-8", "replace"))
        if number is None:
            raise SnoozeError("emailId: not an email id")
        ids.append(number)
    return ids


def _until(text: str) -> datetime:
    """An RFC 3339 date-time with its offset ("Z" too); SnoozeError names the field."""
    try:
        until = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SnoozeError("until: a date-time like 2026-12-06T08:00:00+01:00 is needed")
    if until.tzinfo is None:
        raise SnoozeError("until: the date-time needs its offset from UTC")
    return until
