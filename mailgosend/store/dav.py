# -*- test-case-name: tests.test_dav_store -*-
"""CalDAV/CardDAV storage: collections, objects and tombstones (issue #15).

Plain functions over a Connection, run by the runner like the rest of store/.  Everything
here sees only sealed bytes: the service (mail/dav.py) seals and opens with the user's key.

Sync (RFC 6578).  Each collection has a change counter ``modseq``; every write bumps it and
stamps the written object (or the tombstone of a removed one) with the new value, so the
changes since token N are the objects and tombstones with modseq > N.  The counter lives in
the database, so tokens survive restarts.  ``prune_tombstones`` forgets old removals and
raises ``sync_floor``: a token below the floor gets the valid-sync-token error (§3.2) and
the client starts a full sync.

Quota: an object's plaintext size counts toward the user's used_bytes, reserved by the same
rule as mail (store/quota.py through messages' reservation).

Lock order, as in mailboxes.py/messages.py: users row, then the collection row, then objects.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Optional, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from mailgosend.db.schema import dav_collections, dav_objects, dav_tombstones, users
from mailgosend.store.messages import QuotaExceeded, _reserve_quota

__all__ = ["Collection", "CollectionExists", "CollectionNotFound", "DavError",
           "DavObject", "ObjectNotFound", "PreconditionFailed", "QuotaExceeded",
           "SyncTokenTooOld", "UidConflict", "Changes", "ObjectWrite",
           "changes_since", "collections_state", "create_collection", "delete_collection",
           "delete_object", "get_collection", "get_objects", "list_collections", "list_objects",
           "object_by_uid", "objects_in_span", "prune_tombstones", "bound_tombstones",
           "put_object", "set_props", "TOMBSTONE_KEEP"]

_IN_BATCH = 500
# Removals remembered per collection for sync-collection; older ones are forgotten (and
# tokens from before them answered with valid-sync-token, so the client syncs afresh).
TOMBSTONE_KEEP = 10_000
# One delete in this many (at random, so no pattern of writes can dodge it) checks the bound.
_BOUND_EVERY = 256


class DavError(Exception):
    """A DAV request the store refuses; the front end maps each subclass to a status."""


class CollectionNotFound(DavError):
    pass


class CollectionExists(DavError):
    pass


class ObjectNotFound(DavError):
    pass


class PreconditionFailed(DavError):
    """If-Match / If-None-Match did not hold (RFC 9110 §13.1): 412."""


class UidConflict(DavError):
    """Another resource of the collection has this UID (RFC 4791 §5.3.2.1 no-uid-conflict,
    RFC 6352 §6.3.2.1); ``name`` is that resource's href segment."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the UID is already used by {name}")
        self.name = name


class SyncTokenTooOld(DavError):
    """RFC 6578 §3.2 valid-sync-token: unknown, foreign or pruned token."""


@dataclass(frozen=True)
class Collection:
    id: int
    user_id: int
    kind: str
    name: str
    components: tuple[str, ...]
    props: bytes = field(repr=False)   # sealed
    modseq: int
    sync_floor: int


class DavObject(NamedTuple):
    """One object's row (a tuple: a PROPFIND or sync over thousands makes one each)."""

    collection_id: int
    name: str
    uid: str
    etag: str
    component: str
    size: int
    modseq: int
    data: Optional[bytes] = None   # sealed, when asked for


@dataclass(frozen=True)
class ObjectWrite:
    """What a PUT stores: sealed data plus the plain facts queries need."""

    name: str
    uid: str
    component: str
    size: int
    sealed: bytes = field(repr=False)
    starts_at: Optional[datetime] = None
    ends_at: Optional[datetime] = None


@dataclass(frozen=True)
class Changes:
    """What a sync-collection answers: ``modseq`` is the state the new token names;
    ``truncated`` when a limit left later changes out (RFC 6578 §3.6); ``assured`` (at
    least ``modseq``): every removal the client has not been told of has a higher modseq
    (so the token stays valid until tombstones above it are pruned)."""

    modseq: int
    changed: list[DavObject]
    removed: list[str]
    truncated: bool = False
    assured: int = 0


def _collection(row: Any) -> Collection:
    comps = tuple(c for c in row.components.split(",") if c)
    return Collection(row.id, row.user_id, row.kind, row.name, comps, row.props,
                      int(row.modseq), int(row.sync_floor))


_META = (dav_objects.c.collection_id, dav_objects.c.name, dav_objects.c.uid,
         dav_objects.c.etag, dav_objects.c.component, dav_objects.c.size,
         dav_objects.c.modseq)


def _object(row: Any, with_data: bool = False) -> DavObject:
    """A row of ``_META`` (and the data when ``with_data``) as a DavObject."""
    return DavObject(*row) if with_data else DavObject(*row[:7])


def list_collections(conn: Connection, user_id: int, kind: str) -> list[Collection]:
    rows = conn.execute(select(dav_collections).where(
        dav_collections.c.user_id == user_id, dav_collections.c.kind == kind)
        .order_by(dav_collections.c.id))
    return [_collection(row) for row in rows]


def get_collection(conn: Connection, user_id: int, kind: str, name: str) -> Collection:
    row = conn.execute(select(dav_collections).where(
        dav_collections.c.user_id == user_id, dav_collections.c.kind == kind,
        dav_collections.c.name == name)).first()
    if row is None:
        raise CollectionNotFound(name)
    return _collection(row)


def create_collection(conn: Connection, user_id: int, kind: str, name: str,
                      components: Sequence[str], props: bytes, now: datetime) -> Collection:
    exists = conn.execute(select(dav_collections.c.id).where(
        dav_collections.c.user_id == user_id, dav_collections.c.kind == kind,
        dav_collections.c.name == name)).first()
    if exists is not None:
        raise CollectionExists(name)
    conn.execute(dav_collections.insert().values(
        user_id=user_id, kind=kind, name=name, components=",".join(components), props=props,
        modseq=1, sync_floor=0, created_at=now))
    return get_collection(conn, user_id, kind, name)


def set_props(conn: Connection, collection_id: int, props: bytes) -> None:
    """New sealed properties (PROPPATCH); a property change is no member change, so the
    sync token stays (getctag changes through modseq only for members)."""
    conn.execute(update(dav_collections).where(dav_collections.c.id == collection_id)
                 .values(props=props))


def _release(conn: Connection, user_id: int, freed: int) -> None:
    if freed:
        floor = func.max if conn.dialect.name == "sqlite" else func.greatest
        conn.execute(update(users).where(users.c.id == user_id)
                     .values(used_bytes=floor(users.c.used_bytes - freed, 0)))


def delete_collection(conn: Connection, collection: Collection) -> None:
    freed: Any = conn.execute(select(func.coalesce(func.sum(dav_objects.c.size), 0)).where(
        dav_objects.c.collection_id == collection.id)).scalar_one()
    conn.execute(dav_collections.delete().where(dav_collections.c.id == collection.id))
    _release(conn, collection.user_id, int(freed))


def _bump(conn: Connection, collection_id: int) -> int:
    row = conn.execute(update(dav_collections).where(dav_collections.c.id == collection_id)
                       .values(modseq=dav_collections.c.modseq + 1)
                       .returning(dav_collections.c.modseq)).first()
    if row is None:
        raise CollectionNotFound(str(collection_id))
    return int(row.modseq)


def list_objects(conn: Connection, collection_id: int,
                 names: Optional[Sequence[str]] = None) -> list[DavObject]:
    """Members without their data: all, or the named ones."""
    query = select(*_META).where(dav_objects.c.collection_id == collection_id)
    if names is None:
        rows = conn.execute(query.order_by(dav_objects.c.name)).all()
        return [_object(row) for row in rows]
    found = []
    wanted = list(dict.fromkeys(names))
    for i in range(0, len(wanted), _IN_BATCH):
        found += [_object(row) for row in conn.execute(
            query.where(dav_objects.c.name.in_(wanted[i:i + _IN_BATCH])))]
    return found


def get_objects(conn: Connection, collection_id: int,
                names: Optional[Sequence[str]] = None) -> list[DavObject]:
    """Objects with their sealed data: the named ones, or all of the collection."""
    query = select(*_META, dav_objects.c.data).where(
        dav_objects.c.collection_id == collection_id)
    if names is None:
        rows = conn.execute(query.order_by(dav_objects.c.name)).all()
        return [_object(row, True) for row in rows]
    found = []
    wanted = list(dict.fromkeys(names))
    for i in range(0, len(wanted), _IN_BATCH):
        found += [_object(row, True) for row in conn.execute(
            query.where(dav_objects.c.name.in_(wanted[i:i + _IN_BATCH])))]
    return found


def objects_in_span(conn: Connection, collection_id: int, start: Optional[datetime],
                    end: Optional[datetime], components: Sequence[str] = ()
                    ) -> list[DavObject]:
    """Candidates for a time-range filter (RFC 4791 §9.9): objects whose stored span
    overlaps [start, end); NULL bounds are unbounded.  The caller checks each precisely
    (recurrences) after opening it."""
    query = select(*_META, dav_objects.c.data).where(
        dav_objects.c.collection_id == collection_id)
    if components:
        query = query.where(dav_objects.c.component.in_(list(components)))
    if end is not None:
        query = query.where((dav_objects.c.starts_at.is_(None)) |
                            (dav_objects.c.starts_at < end))
    if start is not None:
        query = query.where((dav_objects.c.ends_at.is_(None)) |
                            (dav_objects.c.ends_at > start))
    rows = conn.execute(query.order_by(dav_objects.c.name)).all()
    return [_object(row, True) for row in rows]


def _current(conn: Connection, collection_id: int, name: str) -> Any:
    return conn.execute(select(dav_objects.c.id, dav_objects.c.etag, dav_objects.c.size,
                               dav_objects.c.uid)
                        .where(dav_objects.c.collection_id == collection_id,
                               dav_objects.c.name == name)).first()


def check_preconditions(current: Any, if_match: Optional[str],
                        if_none_match: Optional[str]) -> None:
    """RFC 9110 §13.1.1/§13.1.2 with the ETags of one resource (``current``: None when
    it does not exist).  Values are the header text: ``*`` or comma-separated ETags."""
    def tags(header: str) -> set[str]:
        return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}

    if if_match is not None:
        if current is None or (if_match.strip() != "*" and
                               f'"{current.etag}"' not in tags(if_match)):
            raise PreconditionFailed("If-Match")
    if if_none_match is not None and current is not None:
        if if_none_match.strip() == "*" or f'"{current.etag}"' in tags(if_none_match):
            raise PreconditionFailed("If-None-Match")


def put_object(conn: Connection, collection: Collection, item: ObjectWrite, etag: str,
               now: datetime, *, if_match: Optional[str] = None,
               if_none_match: Optional[str] = None) -> bool:
    """Create or replace one object; True when created.  Checks first (preconditions, UID
    clash, quota), then writes, so a refusal changes nothing."""
    conn.execute(select(users.c.id).where(users.c.id == collection.user_id)
                 .with_for_update(key_share=True)).first()
    current = _current(conn, collection.id, item.name)
    check_preconditions(current, if_match, if_none_match)
    clash = conn.execute(select(dav_objects.c.name).where(
        dav_objects.c.collection_id == collection.id, dav_objects.c.uid == item.uid,
        dav_objects.c.name != item.name)).first()
    if clash is not None:
        raise UidConflict(clash.name)
    old_size = int(current.size) if current is not None else 0
    if item.size > old_size:
        _reserve_quota(conn, collection.user_id, item.size - old_size)
    else:
        _release(conn, collection.user_id, old_size - item.size)
    modseq = _bump(conn, collection.id)
    values = dict(uid=item.uid, etag=etag, component=item.component, size=item.size,
                  starts_at=item.starts_at, ends_at=item.ends_at, modseq=modseq,
                  data=item.sealed)
    if current is None:
        conn.execute(dav_objects.insert().values(collection_id=collection.id,
                                                 user_id=collection.user_id, name=item.name,
                                                 created_at=now, **values))
        conn.execute(dav_tombstones.delete().where(
            dav_tombstones.c.collection_id == collection.id,
            dav_tombstones.c.name == item.name))
        return True
    conn.execute(update(dav_objects).where(dav_objects.c.id == current.id).values(**values))
    return False


def delete_object(conn: Connection, collection: Collection, name: str, *,
                  if_match: Optional[str] = None) -> None:
    current = _current(conn, collection.id, name)
    if current is None:
        raise ObjectNotFound(name)
    check_preconditions(current, if_match, None)
    modseq = _bump(conn, collection.id)
    conn.execute(dav_objects.delete().where(dav_objects.c.id == current.id))
    conn.execute(dav_tombstones.delete().where(dav_tombstones.c.collection_id == collection.id,
                                               dav_tombstones.c.name == name))
    conn.execute(dav_tombstones.insert().values(collection_id=collection.id, name=name,
                                                modseq=modseq))
    _release(conn, collection.user_id, int(current.size))
    if random.randrange(_BOUND_EVERY) == 0:
        bound_tombstones(conn, collection.id)


def bound_tombstones(conn: Connection, collection_id: int, keep: Optional[int] = None) -> None:
    """Keep the newest ``keep`` (TOMBSTONE_KEEP) removals of a collection; prune the rest."""
    keep = TOMBSTONE_KEEP if keep is None else keep
    row = conn.execute(select(dav_tombstones.c.modseq)
                       .where(dav_tombstones.c.collection_id == collection_id)
                       .order_by(dav_tombstones.c.modseq.desc())
                       .offset(keep).limit(1)).first()
    if row is not None:
        prune_tombstones(conn, collection_id, int(row.modseq))


def changes_since(conn: Connection, collection_id: int, modseq: Optional[int],
                  assured: Optional[int] = None, limit: Optional[int] = None) -> Changes:
    """RFC 6578 §3.3: members changed and removed after ``modseq`` (None: the initial sync,
    every member and no removals), at most ``limit`` of them, oldest change first
    (§3.6: the token of a truncated answer names the state after the last one given).
    ``assured``: what the token said about the removals it has seen (``Changes``)."""
    row = conn.execute(select(dav_collections.c.modseq, dav_collections.c.sync_floor)
                       .where(dav_collections.c.id == collection_id)).first()
    if row is None:
        raise CollectionNotFound(str(collection_id))
    current = int(row.modseq)
    if modseq is not None and (max(modseq, assured or 0) < int(row.sync_floor)
                               or max(modseq, assured or 0) > current):
        raise SyncTokenTooOld(str(modseq))
    if modseq is None and limit is None:
        return Changes(current, list_objects(conn, collection_id), [], False, current)
    since = modseq or 0
    query = select(*_META).where(dav_objects.c.collection_id == collection_id,
                                 dav_objects.c.modseq > since).order_by(dav_objects.c.modseq)
    gone = select(dav_tombstones.c.name, dav_tombstones.c.modseq).where(
        dav_tombstones.c.collection_id == collection_id, dav_tombstones.c.modseq > since
    ).order_by(dav_tombstones.c.modseq)
    if limit is not None:
        query, gone = query.limit(limit + 1), gone.limit(limit + 1)
    changed = [_object(r) for r in conn.execute(query).all()]
    removed = [] if modseq is None else [(r.name, int(r.modseq)) for r in conn.execute(gone)]
    if limit is None or len(changed) + len(removed) <= limit:
        return Changes(current, changed, [name for name, _ in removed], False, current)
    # the first ``limit`` changes in modseq order (each write has its own modseq)
    merged = sorted([(o.modseq, 0, i) for i, o in enumerate(changed)] +
                    [(m, 1, i) for i, (_, m) in enumerate(removed)])[:limit]
    upto = merged[-1][0] if merged else since
    return Changes(upto, [changed[i] for _, kind, i in merged if kind == 0],
                   [removed[i][0] for _, kind, i in merged if kind == 1], True,
                   max(upto, current if modseq is None else (assured or since)))


def collections_state(conn: Connection, user_id: int, kind: str) -> str:
    """A state string for all of a user's collections of ``kind`` (JMAP push, DavChanged):
    their count, highest id and the sum of their change counters.  Any write moves the sum
    up; a collection made raises the highest id, one deleted lowers the count, so no
    change returns to an earlier string."""
    row = conn.execute(select(func.count(), func.coalesce(func.max(dav_collections.c.id), 0),
                              func.coalesce(func.sum(dav_collections.c.modseq), 0))
                       .where(dav_collections.c.user_id == user_id,
                              dav_collections.c.kind == kind)).one()
    return f"{int(row[0])}.{int(row[1])}.{int(row[2])}"


def prune_tombstones(conn: Connection, collection_id: int, below: int) -> int:
    """Forget removals at or below ``below``; tokens older than that become too old."""
    conn.execute(dav_tombstones.delete().where(dav_tombstones.c.collection_id == collection_id,
                                               dav_tombstones.c.modseq <= below))
    conn.execute(update(dav_collections).where(dav_collections.c.id == collection_id,
                                               dav_collections.c.sync_floor < below)
                 .values(sync_floor=below))
    return below


def object_by_uid(conn: Connection, collection_id: int, uid: str) -> Optional[DavObject]:
    """The member with this UID, with its sealed data, or None (a collection holds one
    object per UID: put_object's no-uid-conflict rule)."""
    row = conn.execute(select(*_META, dav_objects.c.data).where(
        dav_objects.c.collection_id == collection_id, dav_objects.c.uid == uid)).first()
    return _object(row, True) if row is not None else None
