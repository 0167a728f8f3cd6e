# -*- test-case-name: tests.test_webmail_contacts -*-
"""The webmail's contacts (issue #15 item 7) on the web port, beside web/webmail.py:

  GET    /mail/contacts                      the contacts page (templates/mail/contacts.html,
                                             static/js/webmail/contacts-page.js)
  GET    /mail/api/contacts                  JSON: the address books (default first) and
                                             every contact of them
  POST   /mail/api/contacts                  create (JSON fields; ?book=<name>, default book)
  GET    /mail/api/contacts/<id>             one contact
  PUT    /mail/api/contacts/<id>             edit (JSON fields; "etag": only if unchanged)
  DELETE /mail/api/contacts/<id>             delete
  GET|PUT|DELETE /mail/api/contacts/<id>/photo   the photo (PUT: the image bytes)
  GET    /mail/api/contacts/<id>/vcf         one contact as a .vcf
  GET    /mail/api/contacts.vcf              every contact as one .vcf
  POST   /mail/api/contacts/import           a .vcf (one or many cards) as the body
  GET    /mail/api/suggest?q=                compose autocomplete: address-book matches
                                             first, then addresses used before
                                             (mail/recentaddresses.py)

The data is the CardDAV data (mail/contacts.py over mail/dav.py): what the page changes a
DAV client sees at its next sync, and the reverse.  The session cookie authenticates; every
write needs our Origin and the session's CSRF token in ``X-CSRF-Token`` (web/forms.py's
rule).  Errors are JSON ``{"error": text, "field": name}``; an id that is not one of the
user's contacts is a 404, never a hint that it exists.  Names, addresses and card contents
are never logged.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Awaitable, Callable, Optional

from klein import Klein
from twisted.internet import defer
from werkzeug.exceptions import HTTPException

from mailgosend.mail.contactcards import MAX_PHOTO
from mailgosend.mail.contacts import (ContactError, ContactNotFound, ContactsService,
                                      UserContacts, fold)
from mailgosend.mail.recentaddresses import RecentAddresses
from mailgosend.store import dav as store
from mailgosend.web.account import AccountPages
from mailgosend.web.forms import change_allowed
from mailgosend.web.replies import see_other
from mailgosend.web.request import WebRequest
from mailgosend.web.sessions import Session

__all__ = ["WebmailContacts", "PREFIXES"]

#: the paths this module answers (web/site.py sends them here, the rest of /mail elsewhere)
PREFIXES = (b"/mail/contacts", b"/mail/api/contacts", b"/mail/api/suggest")
#: bodies that may pass the form limit (web/request.py): photos and .vcf imports
UPLOAD_PREFIXES = (b"/mail/api/contacts",)
MAX_JSON = 256 * 1024
MAX_IMPORT = 20 * 1024 * 1024
SUGGESTIONS = 8


class ApiError(Exception):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


Handler = Callable[..., Awaitable[Any]]


def api(*, write: bool) -> Callable[[Handler], Callable[..., Any]]:
    """A JSON route: the signed-in user's contacts, the CSRF rule on writes, and every
    refusal as a JSON error naming its field."""
    def wrap(handler: Handler) -> Callable[..., Any]:
        @functools.wraps(handler)
        def route(self: "WebmailContacts", request: WebRequest, **kwargs: Any) -> Any:
            return defer.Deferred.fromCoroutine(self._serve(request, write, handler, kwargs))
        return route
    return wrap


class WebmailContacts:
    app = Klein()

    def __init__(self, *, pages: AccountPages, contacts: ContactsService, mail: Any) -> None:
        self._pages = pages
        self.sessions = pages.sessions
        self.contacts = contacts
        self._mail = mail           # MailService: the addresses used before
        self.recent = RecentAddresses()

    def resource(self) -> Any:
        return self.app.resource()

    async def _signed_in(self, request: WebRequest) -> Optional[Session]:
        session = await self.sessions.load(request)
        if session is None or not session.signed_in:
            return None
        return session  # type: ignore[no-any-return]

    async def _serve(self, request: WebRequest, write: bool, handler: Handler,
                     kwargs: dict[str, Any]) -> bytes:
        request.setHeader(b"Cache-Control", b"no-store")
        try:
            session = await self._signed_in(request)
            if session is None:
                raise ApiError(401, "session", "sign in first")
            if write and not change_allowed(self.sessions, request, session):
                raise ApiError(403, "csrf", "this request did not come from the page; "
                                            "reload it and try again")
            user = await self.contacts.open_account(session.email)
            result = await handler(self, request, user, session, **kwargs)
        except ApiError as error:
            return self._error(request, error.status, error.field, error.message)
        except ContactError as error:
            return self._error(request, 400, error.field, error.message)
        except ContactNotFound:
            return self._error(request, 404, "id", "no such contact")
        except store.PreconditionFailed:
            return self._error(request, 412, "etag", "the contact was changed elsewhere "
                                                     "since it was opened; reload it")
        except store.QuotaExceeded:
            return self._error(request, 507, "quota", "your storage is full")
        except store.UidConflict:
            return self._error(request, 409, "uid", "a contact with this UID is already "
                                                    "in the address book")
        if isinstance(result, bytes):
            return result
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(result).encode()

    @staticmethod
    def _error(request: WebRequest, status: int, field: str, message: str) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps({"error": f"{field}: {message}", "field": field,
                           "message": message}).encode()

    @staticmethod
    def _body(request: WebRequest, limit: int, field: str) -> bytes:
        data: bytes = request.content.read() if request.content is not None else b""
        if len(data) > limit:
            raise ApiError(413, field, f"at most {limit // 1024} KB")
        return data

    def _json(self, request: WebRequest) -> Any:
        data = self._body(request, MAX_JSON, "contact")
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "contact", "the body is not JSON") from None

    @staticmethod
    def _arg(request: WebRequest, name: str) -> str:
        args: dict[bytes, list[bytes]] = request.args or {}
        values = args.get(name.encode(), [])
        return values[0].decode("utf-8", "replace") if values else ""

    # --- the page -------------------------------------------------------------------------
    @app.route("/mail/contacts", methods=["GET", "HEAD"])
    @defer.inlineCallbacks
    def page(self, request: WebRequest) -> Any:
        session = yield defer.Deferred.fromCoroutine(self._signed_in(request))
        if session is None:
            return see_other(request, "/login")
        return self._pages.render(request, "mail/contacts.html", session, title="Contacts")

    # --- contacts -------------------------------------------------------------------------
    @app.route("/mail/api/contacts", methods=["GET"])
    @api(write=False)
    async def list_contacts(self, request: WebRequest, user: UserContacts,
                            session: Session) -> Any:
        books = await user.books()
        entries = await user.entries()
        return {"books": [{"name": b.name, "displayName": user.display_name(b),
                           "default": i == 0} for i, b in enumerate(books)],
                "contacts": [e.as_json() for e in entries]}

    @app.route("/mail/api/contacts", methods=["POST"])
    @api(write=True)
    async def create(self, request: WebRequest, user: UserContacts, session: Session) -> Any:
        entry = await user.create(self._json(request), self._arg(request, "book") or None)
        request.setResponseCode(201)
        return entry.as_json()

    @app.route("/mail/api/contacts/<contact_id>", methods=["GET"])
    @api(write=False)
    async def get(self, request: WebRequest, user: UserContacts, session: Session,
                  contact_id: str) -> Any:
        return (await user.get(contact_id)).as_json()

    @app.route("/mail/api/contacts/<contact_id>", methods=["PUT"])
    @api(write=True)
    async def update(self, request: WebRequest, user: UserContacts, session: Session,
                     contact_id: str) -> Any:
        fields = self._json(request)
        etag = fields.get("etag") if isinstance(fields, dict) else None
        if etag is not None and not isinstance(etag, str):
            raise ApiError(400, "etag", "must be text")
        return (await user.update(contact_id, fields, etag)).as_json()

    @app.route("/mail/api/contacts/<contact_id>", methods=["DELETE"])
    @api(write=True)
    async def delete(self, request: WebRequest, user: UserContacts, session: Session,
                     contact_id: str) -> Any:
        await user.delete(contact_id, self._arg(request, "etag") or None)
        return {"deleted": contact_id}

    # --- photos ---------------------------------------------------------------------------
    @app.route("/mail/api/contacts/<contact_id>/photo", methods=["GET"])
    @api(write=False)
    async def photo(self, request: WebRequest, user: UserContacts, session: Session,
                    contact_id: str) -> Any:
        data, media = await user.photo(contact_id)
        request.setHeader(b"Content-Type", media.encode())
        request.setHeader(b"Content-Security-Policy", b"default-src 'none'; sandbox")
        # The page asks with ?v=<etag>: a changed photo has a new URL.
        request.setHeader(b"Cache-Control", b"private, max-age=86400")
        return data

    @app.route("/mail/api/contacts/<contact_id>/photo", methods=["PUT"])
    @api(write=True)
    async def set_photo(self, request: WebRequest, user: UserContacts, session: Session,
                        contact_id: str) -> Any:
        data = self._body(request, MAX_PHOTO, "photo")
        if not data:
            raise ApiError(400, "photo", "an image is needed")
        return (await user.set_photo(contact_id, data)).as_json()

    @app.route("/mail/api/contacts/<contact_id>/photo", methods=["DELETE"])
    @api(write=True)
    async def remove_photo(self, request: WebRequest, user: UserContacts, session: Session,
                           contact_id: str) -> Any:
        return (await user.set_photo(contact_id, None)).as_json()

    # --- .vcf -----------------------------------------------------------------------------
    @staticmethod
    def _vcf(request: WebRequest, data: bytes, filename: str) -> bytes:
        request.setHeader(b"Content-Type", b"text/vcard; charset=utf-8")
        request.setHeader(b"Content-Disposition",
                          f'attachment; filename="{filename}"'.encode())
        return data

    @app.route("/mail/api/contacts.vcf", methods=["GET"])
    @api(write=False)
    async def export_all(self, request: WebRequest, user: UserContacts,
                         session: Session) -> Any:
        return self._vcf(request, await user.vcard(), "contacts.vcf")

    @app.route("/mail/api/contacts/<contact_id>/vcf", methods=["GET"])
    @api(write=False)
    async def export_one(self, request: WebRequest, user: UserContacts, session: Session,
                         contact_id: str) -> Any:
        return self._vcf(request, await user.vcard(contact_id), "contact.vcf")

    @app.route("/mail/api/contacts/import", methods=["POST"])
    @api(write=True)
    async def import_vcf(self, request: WebRequest, user: UserContacts,
                         session: Session) -> Any:
        data = self._body(request, MAX_IMPORT, "file")
        if not data.strip():
            raise ApiError(400, "file", "the file is empty")
        return await user.import_vcf(data, self._arg(request, "book") or None)

    # --- compose autocomplete ---------------------------------------------------------------
    @app.route("/mail/api/suggest", methods=["GET"])
    @api(write=False)
    async def suggest(self, request: WebRequest, user: UserContacts,
                      session: Session) -> Any:
        query = self._arg(request, "q").strip()
        if len(query) > 200:
            raise ApiError(400, "q", "at most 200 characters")
        wanted = fold(query)
        out: list[dict[str, str]] = []
        listed: set[str] = set()
        if not wanted:
            return {"suggestions": out}
        for entry in await user.matches(query, SUGGESTIONS):
            emails = [e["value"] for e in entry.contact.emails]
            # the address that matched first, then the contact's others
            emails.sort(key=lambda a: wanted not in fold(a))
            for address in emails:
                if address.lower() not in listed and len(out) < SUGGESTIONS:
                    listed.add(address.lower())
                    out.append({"name": entry.contact.name, "email": address,
                                "source": "contacts"})
        if len(out) < SUGGESTIONS and self._mail is not None:
            mail = await self._mail.open_account(session.email)
            for name, address in await self.recent.addresses(mail):
                if len(out) >= SUGGESTIONS:
                    break
                if address.lower() in listed or wanted not in fold(f"{name} {address}"):
                    continue
                listed.add(address.lower())
                out.append({"name": name, "email": address, "source": "recent"})
        return {"suggestions": out}

    @app.handle_errors(HTTPException)  # type: ignore[arg-type]
    def http_error(self, request: WebRequest, failure: Any) -> Any:
        return self._pages.http_error(request, failure)
