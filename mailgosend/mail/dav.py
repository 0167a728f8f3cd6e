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
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple, Optional, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from mailgosend.crypto import KeyRing
from mailgosend.events import ChangeBatch, DavChanged, Events
from mailgosend.db.runner import DatabaseRunner
from mailgosend.store import accounts
from mailgosend.store import dav as store
from mailgosend.store.accounts import User

__all__ = ["DavService", "UserDav", "Item", "ObjectFacts", "SyncChanges", "DEFAULT_NAMES"]

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
                 events: Optional[Events] = None) -> None:
        self.runner = runner
        self.keyring = keyring
        self.clock = clock
        self.events = events

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
