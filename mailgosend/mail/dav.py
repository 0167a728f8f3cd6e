# -*- test-case-name: tests.test_dav_store -*-
"""Calendars and address books as the DAV front end sees them (issue #15).

``DavService`` is one per process (database runner, keyring, clock); ``for_user`` gives a
``UserDav`` whose methods are what a CalDAV/CardDAV server does with storage: collections,
objects, sync changes, quota.  It seals what it stores with the user's key (purpose "dav",
DESIGN.md §4): the iCalendar/vCard text bound to its collection and name, the collection's
properties bound to the collection, so a blob copied to another row fails to open.  The
front end (mailgosend/dav/) never sees the database or the keyring.

Objects are opened here, in the reactor thread: AES-GCM runs at GB/s, far below the cost of
the XML around them.

The webmail's calendar (web/webmail_calendar.py) edits events through the ``UserDav``
methods of the last section: the iCalendar is built and parsed by mail/calendar.py in the
worker threads, and stored by ``put`` like a client's PUT, so it is sealed, counted in the
quota and seen by every CalDAV client at its next sync.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, NamedTuple, Optional, Sequence, TypeVar

from defusedxml import ElementTree as SafeET
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from mailgosend.crypto import KeyRing
from mailgosend.events import ChangeBatch, DavChanged, Events
from mailgosend.mail import calendar as cal
from mailgosend.db.runner import DatabaseRunner
from mailgosend.store import accounts
from mailgosend.store import dav as store
from mailgosend.store.accounts import User

__all__ = ["DavService", "UserDav", "Item", "ObjectFacts", "DEFAULT_NAMES", "CalendarInfo",
           "CalendarError", "EventNotFound", "EventChanged", "OverQuota", "event_id",
           "parse_event_id", "SyncChanges"]

log = Logger()
_T = TypeVar("_T")

PURPOSE = "dav"
KINDS = ("calendar", "addressbook")
#: the collection each user gets on first use (macOS Contacts shows only one book).
DEFAULT_NAMES = {"calendar": "calendar", "addressbook": "contacts"}
_DEFAULT_DISPLAY = {"calendar": "Calendar", "addressbook": "Contacts"}
_DISPLAYNAME = "{DAV:}displayname"


@dataclass(frozen=True)
class ObjectFacts:
    """What the front end learned when it validated an object (dav/ical.py, dav/vcard.py)."""

    uid: str
    component: str
    starts_at: Optional[datetime] = None
    ends_at: Optional[datetime] = None


class Item(NamedTuple):
    """One object, opened: ``data`` is the iCalendar/vCard text (None when not read).  A
    tuple: a PROPFIND or sync over thousands makes one per member."""

    name: str
    uid: str
    etag: str
    component: str
    size: int
    modseq: int
    data: Optional[bytes] = None


# --- the webmail's calendar (issue #15 item 7): errors, ids ---------------------------
_APPLE_COLOR = "{http://apple.com/ns/ical/}calendar-color"
# An invitation larger than this is no meeting request a person adds with one click.
MAX_INVITATION = 1024 * 1024


class CalendarError(Exception):
    """A webmail calendar request refused; ``field`` names the JSON field concerned."""

    field = ""


class EventNotFound(CalendarError):
    """No such calendar or event of this user (another user's ids look the same)."""

    def __init__(self, field: str = "id") -> None:
        super().__init__(f"{field}: not found")
        self.field = field


class EventChanged(CalendarError):
    """The event changed since it was read (a CalDAV client wrote it): read it again."""

    field = "etag"


class OverQuota(CalendarError):
    field = "quota"


@dataclass(frozen=True)
class CalendarInfo:
    id: str            # the collection's name (its URL segment)
    name: str          # the display name
    color: Optional[str]
    default: bool

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "color": self.color,
                "default": self.default}


def event_id(calendar: str, name: str) -> str:
    """The webmail's id of one calendar object: opaque, URL-safe, meaningful only to its
    owner (collections are looked up among the signed-in user's own)."""
    raw = json.dumps([calendar, name], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def parse_event_id(text: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        calendar, name = json.loads(raw.decode())
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise EventNotFound() from None
    if not isinstance(calendar, str) or not isinstance(name, str):
        raise EventNotFound()
    return calendar, name


def _xml_text(text: Optional[str]) -> Optional[str]:
    if not text:
        return None
    try:
        found = SafeET.fromstring(text).text
    except Exception:   # stored by PROPPATCH from a hardened parse; never fatal here
        return None
    return found.strip() if found and found.strip() else None


def _etag_header(etag: Optional[str]) -> Optional[str]:
    return f'"{etag.strip(chr(34))}"' if etag else None


async def _run(service: DavService, fn: Callable[..., _T], *args: Any) -> _T:
    if service.workers is None:
        return fn(*args)
    return await service.workers.run(fn, *args)  # type: ignore[no-any-return]


def _default_name(found: Sequence[store.Collection]) -> Optional[str]:
    names = [c.name for c in found]
    if DEFAULT_NAMES["calendar"] in names:
        return DEFAULT_NAMES["calendar"]
    return names[0] if names else None


@dataclass(frozen=True)
class SyncChanges:
    """``store.Changes`` with the members as ``Item`` (no data)."""

    modseq: int
    changed: list[Item]
    removed: list[str]
    truncated: bool
    assured: int


class DavService:
    """``events``: the change feed (events.py); after each committed write a ``DavChanged``
    is published for the user, so webmail's push and the other nodes learn that a calendar
    or address book moved (DESIGN.md §11)."""

    def __init__(self, *, runner: DatabaseRunner, keyring: KeyRing, clock: IReactorTime,
                 events: Optional[Events] = None, workers: Any = None) -> None:
        self.runner = runner
        self.keyring = keyring
        self.clock = clock
        self.events = events
        # Parsing for the webmail's calendar runs there (None: inline, for small tests).
        self.workers = workers

    def publish(self, user: User, collection: store.Collection, what: str) -> None:
        if self.events is not None:
            self.events.publish(ChangeBatch(user.id, (
                DavChanged(collection.kind, collection.id, what),)))

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    def for_user(self, user: User) -> "UserDav":
        return UserDav(self, user)

    def open_account(self, email: str) -> "Deferred[UserDav]":
        d: Deferred[User] = self.runner.read(accounts.get_user, email)
        return d.addCallback(self.for_user)


class UserDav:
    """One user's calendars and address books."""

    def __init__(self, service: DavService, user: User) -> None:
        self.service = service
        self.user = user

    # --- sealing ---------------------------------------------------------------------------
    def _seal(self, data: bytes, context: str) -> bytes:
        return self.service.keyring.seal(data, purpose=PURPOSE, owner=self.user.uuid,
                                         context=context.encode())

    def _open(self, data: bytes, context: str) -> bytes:
        return self.service.keyring.open(data, purpose=PURPOSE, owner=self.user.uuid,
                                         context=context.encode())

    @staticmethod
    def _object_context(collection: store.Collection, name: str) -> str:
        return f"object\0{collection.id}\0{name}"

    @staticmethod
    def _props_context(kind: str, name: str) -> str:
        return f"collection\0{kind}\0{name}"

    def props(self, collection: store.Collection) -> dict[str, str]:
        """The collection's stored properties: Clark name -> the property's XML text."""
        opened = self._open(collection.props, self._props_context(collection.kind,
                                                                  collection.name))
        return dict(json.loads(opened.decode()))

    def _sealed_props(self, kind: str, name: str, props: dict[str, str]) -> bytes:
        return self._seal(json.dumps(props, sort_keys=True).encode(),
                          self._props_context(kind, name))

    # --- collections -----------------------------------------------------------------------
    async def collections(self, kind: str) -> list[store.Collection]:
        """The user's collections of ``kind``; the default one is made on first use."""
        runner = self.service.runner
        found = await runner.read(store.list_collections, self.user.id, kind)
        if found:
            return list(found)
        name = DEFAULT_NAMES[kind]
        display = f'<displayname xmlns="DAV:">{_DEFAULT_DISPLAY[kind]}</displayname>'
        components = ("VEVENT", "VTODO", "VJOURNAL") if kind == "calendar" else ()
        try:
            made = await runner.write(store.create_collection, self.user.id, kind, name,
                                      components, self._sealed_props(
                                          kind, name, {_DISPLAYNAME: display}),
                                      self.service.now())
        except store.CollectionExists:
            pass   # another request made it first
        else:
            self.service.publish(self.user, made, "collection")
        return list(await runner.read(store.list_collections, self.user.id, kind))

    async def collection(self, kind: str, name: str) -> store.Collection:
        """CollectionNotFound when missing (the default ones are made first)."""
        if name == DEFAULT_NAMES[kind]:
            await self.collections(kind)
        return await self.service.runner.read(store.get_collection, self.user.id, kind,
                                              name)  # type: ignore[no-any-return]

    async def create_collection(self, kind: str, name: str, components: Sequence[str],
                                props: dict[str, str]) -> store.Collection:
        """A new collection; the default one is made first, so "first use" means the first
        DAV request of that kind, whatever it is."""
        await self.collections(kind)
        made: store.Collection = await self.service.runner.write(
            store.create_collection, self.user.id, kind, name, tuple(components),
            self._sealed_props(kind, name, props), self.service.now())
        self.service.publish(self.user, made, "collection")
        return made

    async def set_props(self, collection: store.Collection, props: dict[str, str]) -> None:
        await self.service.runner.write(
            store.set_props, collection.id,
            self._sealed_props(collection.kind, collection.name, props))
        self.service.publish(self.user, collection, "collection")

    async def delete_collection(self, collection: store.Collection) -> None:
        await self.service.runner.write(store.delete_collection, collection)
        self.service.publish(self.user, collection, "collection")

    # --- objects ---------------------------------------------------------------------------
    def _item(self, collection: store.Collection, obj: store.DavObject) -> Item:
        data = (self._open(obj.data, self._object_context(collection, obj.name))
                if obj.data is not None else None)
        return Item(obj.name, obj.uid, obj.etag, obj.component, obj.size, obj.modseq, data)


    async def list_items(self, collection: store.Collection,
                         names: Optional[Sequence[str]] = None) -> list[Item]:
        """Members without data (PROPFIND): all, or the named ones."""
        found = await self.service.runner.read(store.list_objects, collection.id,
                                               None if names is None else list(names))
        return [self._item(collection, obj) for obj in found]

    async def items(self, collection: store.Collection,
                    names: Optional[Sequence[str]] = None) -> list[Item]:
        """Members with their data: the named ones (multiget), or all (queries)."""
        found = await self.service.runner.read(store.get_objects, collection.id,
                                               None if names is None else list(names))
        return [self._item(collection, obj) for obj in found]

    async def items_in_span(self, collection: store.Collection, start: Optional[datetime],
                            end: Optional[datetime], components: Sequence[str] = ()
                            ) -> list[Item]:
        found = await self.service.runner.read(store.objects_in_span, collection.id, start,
                                               end, tuple(components))
        return [self._item(collection, obj) for obj in found]

    async def put(self, collection: store.Collection, name: str, data: bytes,
                  facts: ObjectFacts, *, if_match: Optional[str] = None,
                  if_none_match: Optional[str] = None) -> tuple[str, bool]:
        """Store one object; (new ETag, created).  Store errors (PreconditionFailed,
        UidConflict, QuotaExceeded) change nothing."""
        item = store.ObjectWrite(name=name, uid=facts.uid, component=facts.component,
                                 size=len(data),
                                 sealed=self._seal(data, self._object_context(collection,
                                                                              name)),
                                 starts_at=facts.starts_at, ends_at=facts.ends_at)
        etag = secrets.token_hex(16)
        created = await self.service.runner.write(store.put_object, collection, item, etag,
                                                  self.service.now(), if_match=if_match,
                                                  if_none_match=if_none_match)
        self.service.publish(self.user, collection, "object")
        return etag, bool(created)

    async def put_many(self, collection: store.Collection,
                       objects: Sequence[tuple[str, bytes, ObjectFacts]]) -> list[str]:
        """Store many objects (an import) in one transaction, without preconditions: the
        new ETags, in order.  A refusal (UidConflict, QuotaExceeded) stores none of them."""
        writes = []
        for name, data, facts in objects:
            writes.append((store.ObjectWrite(
                name=name, uid=facts.uid, component=facts.component, size=len(data),
                sealed=self._seal(data, self._object_context(collection, name)),
                starts_at=facts.starts_at, ends_at=facts.ends_at), secrets.token_hex(16)))
        await self.service.runner.write(_put_all, collection, writes, self.service.now())
        self.service.publish(self.user, collection, "object")
        return [etag for _write, etag in writes]

    async def delete(self, collection: store.Collection, name: str, *,
                     if_match: Optional[str] = None) -> None:
        await self.service.runner.write(store.delete_object, collection, name,
                                        if_match=if_match)
        self.service.publish(self.user, collection, "object")

    # --- sync and quota --------------------------------------------------------------------
    async def changes_since(self, collection: store.Collection, modseq: Optional[int]
                            ) -> tuple[int, list[Item], list[str]]:
        """(new modseq, changed members without data, removed names) after ``modseq``."""
        found = await self.sync_changes(collection, modseq)
        return found.modseq, found.changed, found.removed

    async def sync_changes(self, collection: store.Collection, modseq: Optional[int],
                           assured: Optional[int] = None, limit: Optional[int] = None
                           ) -> SyncChanges:
        """RFC 6578: what changed after ``modseq``, at most ``limit`` changes
        (store.changes_since), members without data."""
        found = await self.service.runner.read(store.changes_since, collection.id, modseq,
                                               assured, limit)
        return SyncChanges(found.modseq, [self._item(collection, o) for o in found.changed],
                           list(found.removed), found.truncated, found.assured)

    def prune_tombstones(self, collection: store.Collection, below: int) -> "Deferred[int]":
        return self.service.runner.write(store.prune_tombstones, collection.id, below)

    async def quota(self) -> tuple[int, int]:
        """(used, limit; 0 = unlimited) in octets, mail and DAV together."""
        user = await self.service.runner.read(accounts.get_user, self.user.email)
        return int(user.used_bytes), int(user.quota_bytes)

    # --- the webmail's calendar (issue #15 item 7) ------------------------------------------
    async def _calendars(self) -> list[store.Collection]:
        return [c for c in await self.collections("calendar") if "VEVENT" in c.components]

    async def calendar_list(self) -> list[CalendarInfo]:
        """The user's event calendars (the default one made on first use), default first."""
        found = await self._calendars()
        default = _default_name(found)
        out = []
        for collection in found:
            props = self.props(collection)
            out.append(CalendarInfo(collection.name,
                                    _xml_text(props.get(_DISPLAYNAME)) or collection.name,
                                    _xml_text(props.get(_APPLE_COLOR)), collection.name == default))
        out.sort(key=lambda c: (not c.default, c.name.lower()))
        return out

    async def _calendar(self, name: Any, field: str = "calendarId") -> store.Collection:
        if not isinstance(name, str) or not name:
            raise EventNotFound(field)
        try:
            collection = await self.collection("calendar", name)
        except store.CollectionNotFound:
            raise EventNotFound(field) from None
        if "VEVENT" not in collection.components:
            raise EventNotFound(field)
        return collection

    async def _event(self, ident: str) -> tuple[store.Collection, Item]:
        calendar, name = parse_event_id(ident)
        collection = await self._calendar(calendar, "id")
        found = await self.items(collection, [name])
        if not found or found[0].component != "VEVENT" or found[0].data is None:
            raise EventNotFound()
        return collection, found[0]

    async def _store(self, collection: store.Collection, name: str, data: bytes, *,
                     if_match: Optional[str] = None, if_none_match: Optional[str] = None) -> str:
        facts = await _run(self.service, cal.facts, data)
        try:
            etag, _ = await self.put(collection, name, data,
                                     ObjectFacts(facts.uid, facts.component, facts.starts_at,
                                                 facts.ends_at),
                                     if_match=if_match, if_none_match=if_none_match)
        except store.QuotaExceeded:
            raise OverQuota("the mailbox is over its quota") from None
        except (store.PreconditionFailed, store.UidConflict):
            raise EventChanged("the event changed meanwhile; reload and try again") from None
        return etag

    async def events_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Every occurrence in [start, end) of every event calendar, recurrences expanded on
        the server (mail/calendar.py ``occurrences``), each with its event's id and ETag."""
        out: list[dict[str, Any]] = []
        for collection in await self._calendars():
            items = await self.items_in_span(collection, start, end, ("VEVENT",))
            expanded = await _run(self.service, cal.occurrences_of_all,
                                  [item.data or b"" for item in items], start, end)
            for item, found in zip(items, expanded):
                if found is None:
                    log.info("calendar: an event of user {user} could not be expanded",
                             user=self.user.id)
                    continue
                ident = event_id(collection.name, item.name)
                for occurrence in found:
                    occurrence.update(id=f"{ident}/{occurrence['recurrenceId'] or ''}",
                                      eventId=ident, calendarId=collection.name,
                                      etag=item.etag)
                    out.append(occurrence)
        out.sort(key=lambda o: (o["start"], o["title"]))
        return out

    async def create_event(self, calendar: Any, fields: cal.EventFields
                           ) -> dict[str, str]:
        collection = await self._calendar(calendar)
        data = await _run(self.service, cal.new_event, fields, self.service.now())
        name = f"{uuid.uuid4()}.ics"
        etag = await self._store(collection, name, data, if_none_match="*")
        return {"id": event_id(collection.name, name), "etag": etag}

    async def update_event(self, ident: str, fields: cal.EventFields, *,
                           recurrence_id: Optional[str] = None,
                           calendar: Optional[str] = None, etag: Optional[str] = None,
                           anchor: Optional[str] = None) -> dict[str, str]:
        """The whole event (``recurrence_id`` None; ``anchor``: the occurrence the form
        showed, mail/calendar.py ``edit_series``), or one occurrence as an exception.  The
        write is conditional on the ETag read (``etag``, else the one just read), so a
        client's change in between is never overwritten silently."""
        collection, item = await self._event(ident)
        assert item.data is not None
        now = self.service.now()
        if recurrence_id is not None:
            data = await _run(self.service, cal.edit_occurrence, item.data, recurrence_id,
                              fields, now)
        else:
            data = await _run(self.service, cal.edit_series, item.data, fields, now, anchor)
        condition = _etag_header(etag or item.etag)
        if calendar is not None and calendar != collection.name:
            target = await self._calendar(calendar)
            new_etag = await self._store(target, item.name, data, if_none_match="*")
            try:
                await self.delete(collection, item.name, if_match=condition)
            except (store.PreconditionFailed, store.ObjectNotFound):
                await self.delete(target, item.name)
                raise EventChanged("the event changed meanwhile; reload and try again") from None
            return {"id": event_id(target.name, item.name), "etag": new_etag}
        new_etag = await self._store(collection, item.name, data, if_match=condition)
        return {"id": ident, "etag": new_etag}

    async def delete_event(self, ident: str, *, recurrence_id: Optional[str] = None,
                           etag: Optional[str] = None) -> None:
        """The whole event, or one occurrence (an EXDATE)."""
        collection, item = await self._event(ident)
        assert item.data is not None
        condition = _etag_header(etag or item.etag)
        if recurrence_id is not None:
            data = await _run(self.service, cal.delete_occurrence, item.data, recurrence_id,
                              self.service.now())
            await self._store(collection, item.name, data, if_match=condition)
            return
        try:
            await self.delete(collection, item.name, if_match=condition)
        except store.PreconditionFailed:
            raise EventChanged("the event changed meanwhile; reload and try again") from None
        except store.ObjectNotFound:
            raise EventNotFound() from None

    async def _by_uid(self, uid: str) -> Optional[tuple[store.Collection, Item]]:
        for collection in await self._calendars():
            found = await self.service.runner.read(store.object_by_uid, collection.id, uid)
            if found is not None:
                return collection, self._item(collection, found)
        return None

    async def invitation_state(self, data: bytes) -> dict[str, Any]:
        """What an invitation part is and where it stands: "new", "added" (this version or a
        newer one is in a calendar) or "updated" (an older version is)."""
        if len(data) > MAX_INVITATION:
            raise cal.InvalidField("partId", "the invitation is too large")
        invite = await _run(self.service, cal.invitation, data)
        found = await self._by_uid(invite.uid)
        state = "new"
        ident = None
        if found is not None:
            collection, item = found
            assert item.data is not None
            current = await _run(self.service, cal.master_sequence, item.data)
            state = "updated" if invite.sequence > current else "added"
            ident = event_id(collection.name, item.name)
        return {"uid": invite.uid, "method": invite.method, "title": invite.title,
                "start": invite.start, "sequence": invite.sequence, "state": state,
                "eventId": ident}

    async def import_invitation(self, data: bytes) -> dict[str, Any]:
        """One click on "Add to calendar": the invitation's VEVENT into the default calendar,
        or over the event with its UID when the invitation's SEQUENCE is newer (RFC 5546
        §2.1.4); an older or equal one changes nothing ("unchanged")."""
        if len(data) > MAX_INVITATION:
            raise cal.InvalidField("partId", "the invitation is too large")
        invite = await _run(self.service, cal.invitation, data)
        found = await self._by_uid(invite.uid)
        if found is not None:
            collection, item = found
            assert item.data is not None
            current = await _run(self.service, cal.master_sequence, item.data)
            ident = event_id(collection.name, item.name)
            if invite.sequence <= current:
                return {"status": "unchanged", "eventId": ident, "etag": item.etag}
            etag = await self._store(collection, item.name, invite.data,
                                if_match=_etag_header(item.etag))
            return {"status": "updated", "eventId": ident, "etag": etag}
        calendars = await self._calendars()
        default = _default_name(calendars)
        if default is None:
            raise EventNotFound("calendarId")
        collection = next(c for c in calendars if c.name == default)
        name = f"{uuid.uuid4()}.ics"
        etag = await self._store(collection, name, invite.data, if_none_match="*")
        return {"status": "added", "eventId": event_id(collection.name, name), "etag": etag}

def _put_all(conn: Any, collection: store.Collection,
             writes: Sequence[tuple[store.ObjectWrite, str]], now: datetime) -> None:
    for item, etag in writes:
        store.put_object(conn, collection, item, etag, now)
