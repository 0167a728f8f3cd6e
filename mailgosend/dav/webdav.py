# -*- test-case-name: tests.test_dav_core -*-
"""The generic WebDAV core (RFC 4918, RFC 5689 extended MKCOL, RFC 5397
current-user-principal, RFC 6578 sync-collection, RFC 4331 quota).

It knows resources (root, home/principal, collection, object), properties and methods; what
calendars and address books add (their properties, validation, REPORTs) comes from a
``Flavour`` (caldav.py, carddav.py).  Each method returns a ``Reply``; resource.py writes it.

Implementation notes:

1. A 207 is written as text (xmlutil.Multistatus), the members' properties by
   ``ObjectProps`` from the plain columns: PROPFIND Depth 1 and sync-collection over
   thousands of members read no object data and build no element tree.
2. sync-collection honours DAV:limit (RFC 6578 §3.7): the oldest changes first, a 507 for
   the collection and a token naming the state after the last one given (§3.6).  A token
   may carry a second number, ``assured`` (store/dav.py ``Changes``), so a client paging
   through its first sync is not sent back to the start by an older sync floor.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence
from urllib.parse import quote, unquote, urlsplit

from mailgosend.dav import xmlutil as X
from mailgosend.dav.paths import Mount, Target
from mailgosend.dav.xmlutil import CS, DAV, q
from mailgosend.mail.dav import ObjectFacts, UserDav
from mailgosend.store import dav as store

__all__ = ["Reply", "Context", "Flavour", "handle", "MAX_OBJECT_SIZE", "COMPLIANCE"]

# RFC 4918 §10.1 classes, RFC 4791 §5.1, RFC 6352 §6.1, RFC 5689 §3.
COMPLIANCE = "1, 3, extended-mkcol, calendar-access, addressbook"
ALLOW = ("OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, REPORT, MKCOL, MKCALENDAR, "
         "MOVE, COPY")
MAX_OBJECT_SIZE = 10 * 1024 * 1024
SYNC_PREFIX = "http://mailgosend.invalid/sync/"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.~@-]+\Z")
XML_TYPE = b"application/xml; charset=utf-8"

# Properties a client may not set (RFC 4918 §16 cannot-modify-protected-property).
PROTECTED = {q(DAV, n) for n in ("resourcetype", "getetag", "getcontenttype",
                                 "getcontentlength", "sync-token", "current-user-principal",
                                 "principal-URL", "owner", "supported-report-set",
                                 "current-user-privilege-set", "quota-used-bytes",
                                 "quota-available-bytes", "getlastmodified")} | {
    q(CS, "getctag"), q(X.CALDAV, "supported-calendar-component-set"),
    q(X.CALDAV, "supported-calendar-data"), q(X.CALDAV, "max-resource-size"),
    q(X.CALDAV, "calendar-home-set"), q(X.CARDDAV, "supported-address-data"),
    q(X.CARDDAV, "max-resource-size"), q(X.CARDDAV, "addressbook-home-set")}
# Set once, when a collection is made (RFC 4791 §5.2.3), never through PROPPATCH.
AT_CREATION = {q(DAV, "resourcetype"), q(X.CALDAV, "supported-calendar-component-set")}


@dataclass
class Reply:
    """``chunks``: a body in parts (a large 207), written one after the other."""

    code: int
    body: bytes = b""
    headers: dict[bytes, bytes] = field(default_factory=dict)
    content_type: Optional[bytes] = None
    chunks: Optional[list[bytes]] = None


def xml_reply(code: int, root: ET.Element) -> Reply:
    return Reply(code, X.serialize(root), content_type=XML_TYPE)


def multistatus_reply(ms: X.Multistatus) -> Reply:
    return Reply(207, content_type=XML_TYPE, chunks=ms.chunks())


def precondition(code: int, namespace: str, condition: str, description: str = "") -> Reply:
    return Reply(code, X.error_body(namespace, condition, description), content_type=XML_TYPE)


def text_reply(code: int, message: str) -> Reply:
    return Reply(code, message.encode() + b"\n", content_type=b"text/plain; charset=utf-8")


class Flavour(Protocol):
    """What CalDAV or CardDAV adds to the core for one kind of collection."""

    kind: str
    resource_type: str                 # Clark name: C:calendar / CR:addressbook
    content_type: bytes

    def collection_props(self, ctx: "Context", collection: store.Collection
                         ) -> dict[str, ET.Element]: ...

    def validate(self, data: bytes, collection: store.Collection) -> ObjectFacts:
        """Raises an error with ``condition`` (and ``namespace``) when invalid."""

    async def report(self, ctx: "Context", collection: Optional[store.Collection],
                     root: ET.Element) -> Optional[Reply]: ...


@dataclass
class Context:
    """One authenticated request."""

    dav: UserDav
    mount: Mount
    flavours: dict[str, Flavour]
    path: str                       # the raw request path (as the client sent it)
    workers: Any                    # runs parsing off the reactor thread
    headers: dict[str, str]
    default_domain: str
    quota: Optional[tuple[int, int]] = None

    def dav_owns(self, target: Target) -> bool:
        """The target is under this user's own homes (another user's: refused)."""
        return target.user is not None and user_segment_matches(target.user, self.email,
                                                                self.default_domain)

    @property
    def email(self) -> str:
        return self.dav.user.email

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())

    def href_child(self, name: str) -> str:
        base = self.path if self.path.endswith("/") else self.path + "/"
        return base + quote(name, safe="@")

    def object_href(self, collection_href: str, name: str) -> str:
        if _PLAIN_NAME.match(name):   # most names need no quoting: spare quote() per member
            return collection_href + name
        return collection_href + quote(name, safe="@")

    def collection_href(self, kind: str, name: str) -> str:
        return self.mount.home(kind, self.email) + quote(name, safe="@") + "/"


def el_href(tag: str, href: str) -> ET.Element:
    return X.el(tag, children=[X.el(q(DAV, "href"), href)])


def sync_token(collection: store.Collection, modseq: Optional[int] = None,
               assured: Optional[int] = None) -> str:
    """``<prefix><collection id>/<modseq>``, with ``/<assured>`` after a truncated answer
    (store.Changes: the token stays valid while no tombstone above it is pruned)."""
    modseq = collection.modseq if modseq is None else modseq
    tail = f"/{assured}" if assured is not None and assured != modseq else ""
    return f"{SYNC_PREFIX}{collection.id}/{modseq}{tail}"


def parse_sync_token(text: str, collection: store.Collection
                     ) -> tuple[Optional[int], Optional[int]]:
    """(modseq, assured) of a token of this collection ((None, None) for the initial sync);
    SyncTokenTooOld for any other token."""
    text = text.strip()
    if not text:
        return None, None
    if text.startswith(SYNC_PREFIX):
        parts = text[len(SYNC_PREFIX):].split("/")
        if 2 <= len(parts) <= 3 and parts[0] == str(collection.id) and \
                all(p.isdigit() and len(p) < 19 for p in parts[1:]):
            return int(parts[1]), int(parts[2]) if len(parts) == 3 else None
    raise store.SyncTokenTooOld(text)


def read_limit(root: ET.Element, namespace: str) -> Optional[int]:
    """``<limit><nresults>N</nresults></limit>`` (RFC 5323 §5.17, used by RFC 6578 §3.7 and
    RFC 6352 §8.6.1): N, None without a limit; BadXML when N is not a positive number."""
    node = root.find(q(namespace, "limit"))
    if node is None:
        return None
    text = (node.findtext(q(namespace, "nresults")) or "").strip()
    if not text.isdigit() or not 0 < int(text) < 1_000_000_000:
        raise X.BadXML("limit/nresults must be a positive whole number")
    return int(text)


def truncated_response(ms: X.Multistatus, href: str) -> None:
    """RFC 6578 §3.6, RFC 6352 §8.6.1: more matched than the limit allowed."""
    ms.response(href, status=507, error="<D:number-of-matches-within-limits />")


def privileges() -> ET.Element:
    node = X.el(q(DAV, "current-user-privilege-set"))
    for name in ("read", "write", "write-properties", "write-content", "bind", "unbind",
                 "read-current-user-privilege-set", "all"):
        X.sub(X.sub(node, q(DAV, "privilege")), q(DAV, name))
    return node


def report_set(names: list[tuple[str, str]]) -> ET.Element:
    node = X.el(q(DAV, "supported-report-set"))
    for namespace, name in names:
        X.sub(X.sub(X.sub(node, q(DAV, "supported-report")), q(DAV, "report")),
              q(namespace, name))
    return node


async def quota_props(ctx: Context) -> dict[str, ET.Element]:
    """RFC 4331: mail and DAV share the account's quota (read once per request)."""
    if ctx.quota is None:
        ctx.quota = await ctx.dav.quota()
    used, limit = ctx.quota
    props = {q(DAV, "quota-used-bytes"): X.el(q(DAV, "quota-used-bytes"), str(used))}
    if limit:
        props[q(DAV, "quota-available-bytes")] = X.el(q(DAV, "quota-available-bytes"),
                                                      str(max(limit - used, 0)))
    return props


def principal_props(ctx: Context) -> dict[str, ET.Element]:
    principal = ctx.mount.principal(ctx.email)
    cal_home = ctx.mount.home("calendar", ctx.email)
    card_home = ctx.mount.home("addressbook", ctx.email)
    address_set = X.el(q(X.CALDAV, "calendar-user-address-set"),
                       children=[X.el(q(DAV, "href"), f"mailto:{ctx.email}"),
                                 X.el(q(DAV, "href"), principal)])
    return {
        q(DAV, "current-user-principal"): el_href(q(DAV, "current-user-principal"), principal),
        q(DAV, "principal-URL"): el_href(q(DAV, "principal-URL"), principal),
        q(DAV, "principal-collection-set"): el_href(q(DAV, "principal-collection-set"),
                                                    ctx.mount.prefix("calendar")),
        q(DAV, "owner"): el_href(q(DAV, "owner"), principal),
        q(X.CALDAV, "calendar-home-set"): el_href(q(X.CALDAV, "calendar-home-set"), cal_home),
        q(X.CARDDAV, "addressbook-home-set"): el_href(q(X.CARDDAV, "addressbook-home-set"),
                                                      card_home),
        q(X.CALDAV, "calendar-user-address-set"): address_set,
        q(DAV, "displayname"): X.el(q(DAV, "displayname"), ctx.email),
    }


async def home_props(ctx: Context, kind: str) -> dict[str, ET.Element]:
    rtype = X.el(q(DAV, "resourcetype"),
                 children=[X.el(q(DAV, "collection")), X.el(q(DAV, "principal"))])
    props = principal_props(ctx)
    props.update({q(DAV, "resourcetype"): rtype,
                  q(DAV, "current-user-privilege-set"): privileges(),
                  q(DAV, "supported-report-set"): report_set([])})
    props.update(await quota_props(ctx))
    return props


def root_props(ctx: Context) -> dict[str, ET.Element]:
    principal = ctx.mount.principal(ctx.email)
    return {
        q(DAV, "resourcetype"): X.el(q(DAV, "resourcetype"), children=[X.el(q(DAV,
                                                                              "collection"))]),
        q(DAV, "current-user-principal"): el_href(q(DAV, "current-user-principal"), principal),
        q(DAV, "principal-URL"): el_href(q(DAV, "principal-URL"), principal),
        q(X.CALDAV, "calendar-home-set"): el_href(q(X.CALDAV, "calendar-home-set"),
                                                  ctx.mount.home("calendar", ctx.email)),
        q(X.CARDDAV, "addressbook-home-set"): el_href(q(X.CARDDAV, "addressbook-home-set"),
                                                      ctx.mount.home("addressbook",
                                                                     ctx.email)),
    }


async def collection_props(ctx: Context, collection: store.Collection
                           ) -> dict[str, ET.Element]:
    flavour = ctx.flavours[collection.kind]
    props: dict[str, ET.Element] = {}
    for clark, text in ctx.dav.props(collection).items():
        try:
            props[clark] = ET.fromstring(text)
        except ET.ParseError:
            continue
    props.update({
        q(DAV, "resourcetype"): X.el(q(DAV, "resourcetype"),
                                     children=[X.el(q(DAV, "collection")),
                                               X.el(flavour.resource_type)]),
        q(DAV, "sync-token"): X.el(q(DAV, "sync-token"), sync_token(collection)),
        q(CS, "getctag"): X.el(q(CS, "getctag"), sync_token(collection)),
        q(DAV, "current-user-privilege-set"): privileges(),
        q(DAV, "owner"): el_href(q(DAV, "owner"), ctx.mount.principal(ctx.email)),
        q(DAV, "current-user-principal"): el_href(q(DAV, "current-user-principal"),
                                                  ctx.mount.principal(ctx.email)),
    })
    props.update(flavour.collection_props(ctx, collection))
    props.update(await quota_props(ctx))
    return props


def data_tag(collection: store.Collection) -> str:
    """The property that carries an object's text (RFC 4791 §9.6, RFC 6352 §10.4)."""
    return q(X.CALDAV, "calendar-data") if collection.kind == "calendar" else \
        q(X.CARDDAV, "address-data")


_RESOURCETYPE, _GETETAG, _CONTENTTYPE, _LENGTH, _PRINCIPAL = (
    q(DAV, "resourcetype"), q(DAV, "getetag"), q(DAV, "getcontenttype"),
    q(DAV, "getcontentlength"), q(DAV, "current-user-principal"))


class ObjectProps:
    """The live properties of one collection's objects, as text: what is the same for
    every member is written once per request, the rest per member only when asked for
    (PROPFIND depth 1 and sync-collection answer for thousands)."""

    def __init__(self, ctx: Context, collection: store.Collection) -> None:
        flavour = ctx.flavours[collection.kind]
        principal = X.escape(ctx.mount.principal(ctx.email))
        self._static = {
            _RESOURCETYPE: "<D:resourcetype />",
            _CONTENTTYPE: (f"<D:getcontenttype>{X.escape(flavour.content_type.decode())}"
                           "</D:getcontenttype>"),
            _PRINCIPAL: (f"<D:current-user-principal><D:href>{principal}</D:href>"
                         "</D:current-user-principal>")}
        self._data_tag = data_tag(collection)
        self._data_name = X.qname(self._data_tag)[0]

    def one(self, item: Any, name: str) -> Optional[str]:
        """One property's element as text; None when the object has no such property."""
        if name == _GETETAG:
            return f'<D:getetag>"{X.escape(item.etag)}"</D:getetag>'
        if name == _LENGTH:
            return f"<D:getcontentlength>{item.size}</D:getcontentlength>"
        if name == self._data_tag:
            if item.data is None:
                return None
            return (f"<{self._data_name}>{X.escape(item.data.decode('utf-8'))}"
                    f"</{self._data_name}>")
        return self._static.get(name)

    def all(self, item: Any) -> dict[str, str]:
        found = {}
        for name in (_RESOURCETYPE, _GETETAG, _CONTENTTYPE, _LENGTH, _PRINCIPAL,
                     self._data_tag):
            text = self.one(item, name)
            if text is not None:
                found[name] = text
        return found

    def add(self, ms: X.Multistatus, href: str, item: Any, mode: str,
            wanted: Sequence[str]) -> None:
        """One member's DAV:response."""
        if mode != "prop":
            add_response(ms, href, self.all(item), mode, wanted)
            return
        found, missing = [], []
        for name in wanted:
            text = self.one(item, name)
            if text is None:
                missing.append(name)
            else:
                found.append(text)
        ms.response(href, found, missing)


# Properties returned for allprop (RFC 4918 §9.1): the cheap live ones and every dead one.
ALLPROP_SKIP = {q(DAV, "current-user-privilege-set"), q(DAV, "supported-report-set"),
                q(DAV, "quota-used-bytes"), q(DAV, "quota-available-bytes")}


def propfind_request(root: Optional[ET.Element]) -> tuple[str, list[str]]:
    """("allprop" | "propname" | "prop", wanted Clark names)."""
    if root is None:
        return "allprop", []
    if root.tag != q(DAV, "propfind"):
        raise X.BadXML("the body of PROPFIND must be a DAV:propfind element")
    for child in root:
        if child.tag == q(DAV, "propname"):
            return "propname", []
        if child.tag == q(DAV, "allprop"):
            return "allprop", []
        if child.tag == q(DAV, "prop"):
            return "prop", [p.tag for p in child]
    return "allprop", []


def add_response(ms: X.Multistatus, href: str, props: dict[str, Any], mode: str,
                 wanted: Sequence[str]) -> None:
    """One DAV:response; ``props``: Clark name -> element (or its text)."""
    if mode == "propname":
        ms.response(href, [X.empty(name) for name in props])
    elif mode == "allprop":
        ms.response(href, [p for n, p in props.items() if n not in ALLPROP_SKIP])
    else:
        ms.response(href, [props[n] for n in wanted if n in props],
                    [n for n in wanted if n not in props])


# --- the methods ---------------------------------------------------------------------------

async def _collection(ctx: Context, target: Target) -> store.Collection:
    assert target.kind is not None and target.collection is not None
    return await ctx.dav.collection(target.kind, target.collection)


async def propfind(ctx: Context, target: Target, body: bytes) -> Reply:
    mode, wanted = propfind_request(X.parse(body))
    depth = (ctx.header("depth") or "infinity").strip().lower()
    if depth not in ("0", "1"):
        # RFC 4918 §9.1: infinity may be refused.
        return precondition(403, DAV, "propfind-finite-depth",
                            "Depth infinity is not supported; use 0 or 1")
    ms = X.Multistatus()
    if target.level == "root":
        add_response(ms, ctx.path, root_props(ctx), mode, wanted)
        return multistatus_reply(ms)
    assert target.kind is not None
    if target.level == "home":
        add_response(ms, ctx.path, await home_props(ctx, target.kind), mode, wanted)
        if depth == "1":
            for collection in await ctx.dav.collections(target.kind):
                add_response(ms, ctx.href_child(collection.name) + "/",
                             await collection_props(ctx, collection), mode, wanted)
        return multistatus_reply(ms)
    collection = await _collection(ctx, target)
    objects = ObjectProps(ctx, collection)
    if target.level == "collection":
        base = ctx.path if ctx.path.endswith("/") else ctx.path + "/"
        add_response(ms, base, await collection_props(ctx, collection), mode, wanted)
        if depth == "1":
            # members without their data: only the plain columns are read
            for item in await ctx.dav.list_items(collection):
                objects.add(ms, ctx.object_href(base, item.name), item, mode, wanted)
        return multistatus_reply(ms)
    items = await ctx.dav.list_items(collection, [target.name or ""])
    if not items:
        return text_reply(404, "No such object.")
    objects.add(ms, ctx.path, items[0], mode, wanted)
    return multistatus_reply(ms)


def _prop_updates(root: Optional[ET.Element]) -> list[tuple[str, ET.Element]]:
    """(set|remove, property element) in document order (RFC 4918 §9.2)."""
    if root is None:
        return []
    changes = []
    for action in root:
        if action.tag not in (q(DAV, "set"), q(DAV, "remove")):
            continue
        verb = "set" if action.tag == q(DAV, "set") else "remove"
        for prop in action.findall(q(DAV, "prop")):
            changes += [(verb, p) for p in prop]
    return changes


def _apply(props: dict[str, str], changes: list[tuple[str, ET.Element]]
           ) -> tuple[dict[str, str], list[str]]:
    """The new dead properties, and the protected ones a client tried to change."""
    refused = [p.tag for _, p in changes if p.tag in PROTECTED]
    updated = dict(props)
    for verb, prop in changes:
        if prop.tag in PROTECTED:
            continue
        if verb == "set":
            updated[prop.tag] = ET.tostring(prop, encoding="unicode")
        else:
            updated.pop(prop.tag, None)
    return updated, refused


async def proppatch(ctx: Context, target: Target, body: bytes) -> Reply:
    root = X.parse(body)
    if root is None or root.tag != q(DAV, "propertyupdate"):
        return text_reply(400, "PROPPATCH needs a DAV:propertyupdate body.")
    if target.level != "collection":
        return text_reply(403, "Only collection properties can be changed here.")
    collection = await _collection(ctx, target)
    changes = _prop_updates(root)
    updated, refused = _apply(ctx.dav.props(collection), changes)
    ms = X.Multistatus()
    names = [p.tag for _, p in changes]
    if refused:   # RFC 4918 §9.2: all or nothing
        ms.response(ctx.path, others=[(403, [n for n in names if n in refused]),
                                      (424, [n for n in names if n not in refused])])
        return multistatus_reply(ms)
    await ctx.dav.set_props(collection, updated)
    ms.response(ctx.path, [X.empty(n) for n in names])
    return multistatus_reply(ms)


async def mkcol(ctx: Context, target: Target, body: bytes, calendar: bool) -> Reply:
    """MKCOL extended (RFC 5689) and MKCALENDAR (RFC 4791 §5.3.1)."""
    root = X.parse(body)
    if target.level != "collection":
        return text_reply(403, "Collections are made directly in your calendar or "
                               "address-book home.")
    assert target.kind is not None and target.collection is not None
    wanted_kind = "calendar" if calendar else None
    changes = _prop_updates(root)
    for _, prop in changes:
        if prop.tag == q(DAV, "resourcetype"):
            types = {child.tag for child in prop}
            if q(X.CALDAV, "calendar") in types:
                wanted_kind = "calendar"
            elif q(X.CARDDAV, "addressbook") in types:
                wanted_kind = "addressbook"
            else:
                return precondition(403, DAV, "valid-resourcetype",
                                    "only calendars and address books can be made")
    if wanted_kind is None and target.kind == "addressbook":
        wanted_kind = "addressbook"
    if wanted_kind != target.kind:
        return precondition(403, DAV, "valid-resourcetype",
                            f"make {target.kind} collections under this home")
    if len(target.collection) > 100:
        return text_reply(400, "The collection name is longer than 100 characters.")
    flavour = ctx.flavours[target.kind]
    props, refused = _apply({}, [(v, p) for v, p in changes if p.tag not in AT_CREATION])
    if refused:   # RFC 5689 §3.3: all or nothing, like PROPPATCH
        return precondition(403, DAV, "cannot-modify-protected-property",
                            f"{refused[0]} cannot be set")
    components = flavour_components(flavour, changes)
    if isinstance(components, Reply):
        return components
    try:
        await ctx.dav.create_collection(target.kind, target.collection, components, props)
    except store.CollectionExists:
        return text_reply(405, "That collection already exists.")   # RFC 4918 §9.3.1
    return Reply(201, headers={b"Cache-Control": b"no-store"})


def flavour_components(flavour: Any, changes: list[tuple[str, ET.Element]]) -> Any:
    chooser = getattr(flavour, "components_from", None)
    return chooser(changes) if chooser is not None else ()


def _conditional(ctx: Context) -> dict[str, Optional[str]]:
    return {"if_match": ctx.header("if-match"), "if_none_match": ctx.header("if-none-match")}


async def get(ctx: Context, target: Target, head: bool) -> Reply:
    if target.level != "object":
        return text_reply(405 if target.level != "root" else 404,
                          "This is a DAV collection: use a CalDAV or CardDAV client.")
    collection = await _collection(ctx, target)
    items = await ctx.dav.items(collection, [target.name or ""])
    if not items:
        return text_reply(404, "No such object.")
    item = items[0]
    reply = Reply(200, b"" if head else (item.data or b""),
                  headers={b"ETag": f'"{item.etag}"'.encode()},
                  content_type=ctx.flavours[collection.kind].content_type)
    if head:
        reply.headers[b"Content-Length"] = str(item.size).encode()
    return reply


async def store_object(ctx: Context, collection: store.Collection, name: str, data: bytes,
                       **conditions: Optional[str]) -> Reply:
    """Validate and store one object; the replies every error maps to (RFC 4791 §5.3.2.1,
    RFC 6352 §6.3.2.1)."""
    flavour = ctx.flavours[collection.kind]
    namespace = X.CALDAV if collection.kind == "calendar" else X.CARDDAV
    if len(data) > MAX_OBJECT_SIZE:
        return precondition(413, namespace, "max-resource-size",
                            f"objects are limited to {MAX_OBJECT_SIZE} bytes")
    try:
        facts = await ctx.workers.run(flavour.validate, data, collection)
    except ValueError as error:
        condition = getattr(error, "condition", None)
        if condition is None:
            raise
        return precondition(403, namespace, condition, str(error))
    try:
        etag, created = await ctx.dav.put(collection, name, data, facts, **conditions)
    except store.PreconditionFailed as error:
        return text_reply(412, f"The {error} precondition failed: the object changed.")
    except store.UidConflict as error:
        root = ET.Element(q(DAV, "error"))
        conflict = X.sub(root, q(namespace, "no-uid-conflict"))
        X.sub(conflict, q(DAV, "href"),
              ctx.object_href(ctx.collection_href(collection.kind, collection.name),
                              error.name))
        return Reply(403, X.serialize(root), content_type=XML_TYPE)
    except store.QuotaExceeded:
        return precondition(507, DAV, "quota-not-exceeded", "your storage is full")
    return Reply(201 if created else 204, headers={b"ETag": f'"{etag}"'.encode()})


async def put(ctx: Context, target: Target, body: bytes) -> Reply:
    if target.level != "object" or not target.name:
        return text_reply(405, "PUT stores objects inside a calendar or address book.")
    if len(target.name) > 255:
        return text_reply(400, "The object name is longer than 255 characters.")
    collection = await _collection(ctx, target)
    return await store_object(ctx, collection, target.name, body, **_conditional(ctx))


async def delete(ctx: Context, target: Target) -> Reply:
    if target.level == "collection":
        collection = await _collection(ctx, target)
        await ctx.dav.delete_collection(collection)
        return Reply(204)
    if target.level != "object":
        return text_reply(403, "This resource cannot be deleted.")
    collection = await _collection(ctx, target)
    try:
        await ctx.dav.delete(collection, target.name or "", if_match=ctx.header("if-match"))
    except store.ObjectNotFound:
        return text_reply(404, "No such object.")
    except store.PreconditionFailed:
        return text_reply(412, "The If-Match precondition failed: the object changed.")
    return Reply(204)


async def move_or_copy(ctx: Context, target: Target, move: bool) -> Reply:
    """MOVE and COPY of objects (RFC 4918 §9.8, §9.9) within the user's collections of the
    same kind; the destination is validated like a PUT."""
    if target.level != "object":
        return text_reply(403, "Only objects can be moved or copied.")
    destination = ctx.header("destination")
    if not destination:
        return text_reply(400, "The Destination header is missing.")
    dest = ctx.mount.target(urlsplit(destination).path)
    if dest is None or dest.level != "object" or dest.kind != target.kind or \
            not ctx.dav_owns(dest):
        return text_reply(403, "The destination must be an object in one of your "
                               "collections of the same kind.")
    source = await _collection(ctx, target)
    items = await ctx.dav.items(source, [target.name or ""])
    if not items:
        return text_reply(404, "No such object.")
    try:
        dest_collection = await _collection(ctx, dest)
    except store.CollectionNotFound:
        return text_reply(409, "The destination collection does not exist.")
    if dest_collection.id == source.id and dest.name == target.name:
        return text_reply(403, "Source and destination are the same.")
    overwrite = (ctx.header("overwrite") or "T").strip().upper() != "F"
    conditions = {"if_none_match": None if overwrite else "*", "if_match": None}
    data = items[0].data or b""
    if move and dest_collection.id == source.id:
        # the UID moves with the object: free it first so the clash check does not see it
        await ctx.dav.delete(source, target.name or "")
        reply = await store_object(ctx, dest_collection, dest.name or "", data, **conditions)
        if reply.code not in (201, 204):
            await store_object(ctx, source, target.name or "", data)
        return reply
    reply = await store_object(ctx, dest_collection, dest.name or "", data, **conditions)
    if reply.code in (201, 204) and move:
        await ctx.dav.delete(source, target.name or "")
    return reply


async def sync_collection(ctx: Context, collection: store.Collection, root: ET.Element
                          ) -> Reply:
    """RFC 6578 §3.2: members changed and removed since the token; with DAV:limit (§3.7)
    at most that many, oldest change first, then a 507 for the collection and a token
    from which the client continues (§3.6)."""
    token_el = root.find(q(DAV, "sync-token"))
    level = (root.findtext(q(DAV, "sync-level")) or "1").strip()
    if level not in ("1",):
        return precondition(403, DAV, "sync-traversal-supported",
                            "only sync-level 1 is supported")
    prop = root.find(q(DAV, "prop"))
    wanted = [p.tag for p in prop] if prop is not None else []
    limit = read_limit(root, DAV)
    try:
        since, assured = parse_sync_token(
            token_el.text or "" if token_el is not None else "", collection)
        found = await ctx.dav.sync_changes(collection, since, assured, limit)
    except store.SyncTokenTooOld:
        return precondition(403, DAV, "valid-sync-token",
                            "the sync token is unknown or too old: sync again from scratch")
    base = ctx.collection_href(collection.kind, collection.name) \
        if not ctx.path.endswith("/") else ctx.path
    ms = X.Multistatus()
    objects = ObjectProps(ctx, collection)
    changed = found.changed
    if data_tag(collection) in wanted:
        opened = {i.name: i for i in await ctx.dav.items(collection, [i.name for i in changed])}
        changed = [opened.get(i.name, i) for i in changed]
    for item in changed:
        objects.add(ms, ctx.object_href(base, item.name), item, "prop", wanted)
    del changed, found.changed[:]
    for name in found.removed:
        ms.response(ctx.object_href(base, name), status=404)
    if found.truncated:
        truncated_response(ms, base)
    ms.element(X.el(q(DAV, "sync-token"), sync_token(collection, found.modseq,
                                                     found.assured)))
    return multistatus_reply(ms)


async def report(ctx: Context, target: Target, body: bytes) -> Reply:
    root = X.parse(body)
    if root is None:
        return text_reply(400, "REPORT needs a body.")
    if target.level not in ("collection", "object"):
        return precondition(403, DAV, "supported-report", "no reports on this resource")
    collection = await _collection(ctx, target)
    if root.tag == q(DAV, "sync-collection"):
        if target.level != "collection":
            return precondition(403, DAV, "supported-report", "sync a collection")
        return await sync_collection(ctx, collection, root)
    answer = await ctx.flavours[collection.kind].report(ctx, collection, root)
    if answer is None:
        return precondition(403, DAV, "supported-report", f"unsupported report {root.tag}")
    return answer


async def handle(ctx: Context, method: str, target: Target, body: bytes) -> Reply:
    try:
        if method == "PROPFIND":
            return await propfind(ctx, target, body)
        if target.level == "root":
            return text_reply(405, "Nothing to do here: this is the DAV root.")
        if method == "PROPPATCH":
            return await proppatch(ctx, target, body)
        if method in ("MKCOL", "MKCALENDAR"):
            if method == "MKCALENDAR" and target.kind != "calendar":
                return text_reply(403, "Calendars are made under the calendar home.")
            return await mkcol(ctx, target, body, method == "MKCALENDAR")
        if method in ("GET", "HEAD"):
            return await get(ctx, target, method == "HEAD")
        if method == "PUT":
            return await put(ctx, target, body)
        if method == "DELETE":
            return await delete(ctx, target)
        if method in ("MOVE", "COPY"):
            return await move_or_copy(ctx, target, method == "MOVE")
        if method == "REPORT":
            return await report(ctx, target, body)
    except store.CollectionNotFound:
        return text_reply(404, "No such collection.")
    except X.BadXML as error:
        return text_reply(400, str(error))
    return text_reply(405, f"{method} is not supported here.")


def user_segment_matches(segment: str, email: str, default_domain: str) -> bool:
    """``alice@example.com``, ``alice%40example.com`` (decoded already) and, in the default
    domain, ``alice`` name the same user."""
    name = unquote(segment).strip().lower()
    if "@" not in name:
        name = f"{name}@{default_domain}"
    return name == email.lower()


# --- what both flavours' REPORTs share -----------------------------------------------------

def wanted_props(root: ET.Element) -> list[str]:
    prop = root.find(q(DAV, "prop"))
    return [p.tag for p in prop] if prop is not None else [q(DAV, "getetag")]


def items_reply(ctx: Context, collection: store.Collection, items: list[Any],
                wanted: list[str], data_tag: str, missing: Sequence[str] = (),
                truncated: bool = False) -> Reply:
    """A 207 of objects with their requested properties, the data property included;
    ``truncated``: a limit left matches out (RFC 6352 §8.6.1)."""
    base = ctx.collection_href(collection.kind, collection.name)
    ms = X.Multistatus()
    objects = ObjectProps(ctx, collection)
    for item in items:
        objects.add(ms, ctx.object_href(base, item.name), item, "prop", wanted)
    for href in missing:
        ms.response(href, status=404)
    if truncated:
        truncated_response(ms, ctx.path if ctx.path.endswith("/") else ctx.path + "/")
    return multistatus_reply(ms)


async def multiget(ctx: Context, collection: store.Collection, root: ET.Element,
                   data_tag: str) -> Reply:
    """RFC 4791 §7.9 / RFC 6352 §8.7: the named objects; a foreign or unknown href is 404."""
    names: dict[str, str] = {}
    missing = []
    for node in root.findall(q(DAV, "href")):
        href = (node.text or "").strip()
        found = ctx.mount.target(urlsplit(href).path)
        if (found is not None and found.level == "object" and found.kind == collection.kind
                and found.collection == collection.name and ctx.dav_owns(found)
                and found.name):
            names[found.name] = href
        else:
            missing.append(href)
    items = await ctx.dav.items(collection, list(names)) if names else []
    present = {item.name for item in items}
    missing += [href for name, href in names.items() if name not in present]
    return items_reply(ctx, collection, items, wanted_props(root), data_tag, missing)
