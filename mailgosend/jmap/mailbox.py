# -*- test-case-name: tests.test_jmap_mailbox -*-
"""Mailbox/get, /changes, /query, /queryChanges and /set (RFC 8621 §2).

A JMAP Mailbox is one of the user's IMAP mailboxes: ``name`` is the last level of its
hierarchical name ("/" delimited), ``parentId`` the mailbox one level up, ``role`` its
special use (RFC 6154 via store/mailboxes.py ROLES; INBOX is "inbox"), ``isSubscribed``
whether its name is in the IMAP subscriptions.  The counts come from plain columns, nothing
is decrypted (store/emails.py ``mailbox_tallies``): unread means neither ``$seen`` nor
``$draft`` (IMAP \\Seen, \\Draft), threads from ``thread_id``.  ``myRights`` are the owner's:
everything, except that INBOX can be neither renamed nor deleted (IMAP's RENAME INBOX moves
its messages away, which is not what a JMAP rename means).

Writes go through UserMail (create, rename, delete, subscription, sort order), so IMAP and
the change feed see them; the state is the account state (state.py).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Optional

from mailgosend.jmap.errors import MethodError, SetError, invalid_arguments
from mailgosend.jmap.ids import format_id, parse_id
from mailgosend.jmap.methods import MAIL, Call, Method, account_of, argument, resolve_id
from mailgosend.jmap.standard import changes_response, get_ids, get_properties
from mailgosend.jmap.state import (account_state, check_if_in_state, format_state,
                                   max_changes, since_position)
from mailgosend.mail.changes import MailboxTally, MailboxView, Position
from mailgosend.store.mailboxes import (ROLES, Mailbox, MailboxError, MailboxNotFound,
                                        SpecialUseInUse)

__all__ = ["METHODS"]

DELIMITER = "/"
INBOX = "INBOX"
PROPERTIES = ("id", "name", "parentId", "role", "sortOrder", "totalEmails", "unreadEmails",
              "totalThreads", "unreadThreads", "myRights", "isSubscribed")
COUNTS = ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]
SERVER_SET = ("id", *COUNTS, "myRights")
RIGHTS = ("mayReadItems", "mayAddItems", "mayRemoveItems", "maySetSeen", "maySetKeywords",
          "mayCreateChild", "mayRename", "mayDelete", "maySubmit")


# --- the view ---------------------------------------------------------------------------------


class Tree:
    """The mailboxes of one view by id and by name, with parent and children links."""

    def __init__(self, view: MailboxView) -> None:
        self.view = view
        self.by_id = {box.id: box for box in view.mailboxes}
        self.by_name = {box.name: box for box in view.mailboxes}

    def parent(self, box: Mailbox) -> Optional[Mailbox]:
        head, sep, _ = box.name.rpartition(DELIMITER)
        return self.by_name.get(head) if sep else None

    def children(self, box: Mailbox) -> list[Mailbox]:
        prefix = box.name + DELIMITER
        return [b for b in self.view.mailboxes
                if b.name.startswith(prefix) and DELIMITER not in b.name[len(prefix):]]

    def depth(self, box: Mailbox) -> int:
        return box.name.count(DELIMITER)

    def describe(self, box: Mailbox) -> dict[str, Any]:
        """The Mailbox object (RFC 8621 §2)."""
        parent = self.parent(box)
        tally = self.view.tallies.get(box.id, MailboxTally())
        rights = {right: True for right in RIGHTS}
        if box.name == INBOX:
            rights["mayRename"] = rights["mayDelete"] = False
        return {
            "id": format_id("B", box.id),
            "name": box.name.rpartition(DELIMITER)[2],
            "parentId": None if parent is None else format_id("B", parent.id),
            "role": box.role,
            "sortOrder": box.sort_order,
            "totalEmails": tally.total_emails,
            "unreadEmails": tally.unread_emails,
            "totalThreads": tally.total_threads,
            "unreadThreads": tally.unread_threads,
            "myRights": rights,
            "isSubscribed": box.name in self.view.subscribed,
        }


async def _tree(call: Call) -> Tree:
    return Tree(await call.mail.mailbox_view())


def _state(tree: Tree) -> str:
    return format_state(Position(tree.view.state.modseq))


# --- Mailbox/get, Mailbox/changes ------------------------------------------------------------


async def mailbox_get(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """RFC 8621 §2.1 (RFC 8620 §5.1)."""
    account = account_of(call, args)
    ids = get_ids(call, args)
    properties = get_properties(args, PROPERTIES)
    tree = await _tree(call)
    found, not_found = [], []
    wanted = ([format_id("B", box.id) for box in tree.view.mailboxes] if ids is None else ids)
    for jmap_id in wanted:
        number = parse_id("B", jmap_id)
        box = tree.by_id.get(number) if number is not None else None
        if box is None:
            not_found.append(jmap_id)
            continue
        described = tree.describe(box)
        found.append({name: described[name] for name in properties})
    return {"accountId": account, "state": _state(tree), "list": found,
            "notFound": not_found}


async def mailbox_changes(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """RFC 8621 §2.2: ``updatedProperties`` names the counts when only counts changed."""
    response, changes = await changes_response(call, args, "B",
                                               lambda mail: mail.mailbox_changes)
    only_counts = changes.counts_only and bool(changes.updated)
    response["updatedProperties"] = list(COUNTS) if only_counts else None
    return response


# --- Mailbox/query, Mailbox/queryChanges -----------------------------------------------------

_FILTERS = {"parentId", "name", "role", "hasAnyRole", "isSubscribed"}
_SORTS = {"name", "sortOrder"}


def _condition(tree: Tree, condition: Any, path: str) -> Callable[[Mailbox], bool]:
    """A FilterCondition or FilterOperator (RFC 8620 §5.5) as a predicate."""
    if not isinstance(condition, dict):
        raise invalid_arguments("filter", f"{path} must be an object")
    if "operator" in condition:
        operator, conditions = condition.get("operator"), condition.get("conditions")
        if operator not in ("AND", "OR", "NOT") or not isinstance(conditions, list) or set(
                condition) - {"operator", "conditions"}:
            raise invalid_arguments("filter", f"{path}: bad FilterOperator")
        parts = [_condition(tree, c, f"{path}/conditions/{i}") for i, c in enumerate(conditions)]
        if operator == "AND":
            return lambda box: all(t(box) for t in parts)
        if operator == "OR":
            return lambda box: any(t(box) for t in parts)
        return lambda box: not any(t(box) for t in parts)
    unknown = set(condition) - _FILTERS
    if unknown:
        raise MethodError("unsupportedFilter", f"{path}: unknown filter {sorted(unknown)}")
    tests: list[Callable[[Mailbox], bool]] = []
    if "parentId" in condition:
        parent = condition["parentId"]
        if parent is not None and not isinstance(parent, str):
            raise invalid_arguments("filter", f"{path}/parentId must be an id or null")
        target = None if parent is None else parse_id("B", parent)

        def parent_is(box: Mailbox) -> bool:
            found = tree.parent(box)
            return (found is None) if parent is None else (
                found is not None and found.id == target)
        tests.append(parent_is)
    if "name" in condition:
        text = condition["name"]
        if not isinstance(text, str):
            raise invalid_arguments("filter", f"{path}/name must be a string")
        needle = text.casefold()
        tests.append(lambda box: needle in box.name.rpartition(DELIMITER)[2].casefold())
    if "role" in condition:
        role = condition["role"]
        if role is not None and not isinstance(role, str):
            raise invalid_arguments("filter", f"{path}/role must be a string or null")
        tests.append(lambda box: box.role == role)
    for flag in ("hasAnyRole", "isSubscribed"):
        if flag in condition and not isinstance(condition[flag], bool):
            raise invalid_arguments("filter", f"{path}/{flag} must be a boolean")
    if "hasAnyRole" in condition:
        has_role = condition["hasAnyRole"]
        tests.append(lambda box: (box.role is not None) == has_role)
    if "isSubscribed" in condition:
        subscribed = condition["isSubscribed"]
        tests.append(lambda box: (box.name in tree.view.subscribed) == subscribed)
    return lambda box: all(t(box) for t in tests)


def _sort_key(tree: Tree, sort: list[dict[str, Any]]) -> Callable[[Mailbox], Any]:
    keys: list[tuple[str, bool]] = []
    for i, comparator in enumerate(sort):
        if not isinstance(comparator, dict) or not isinstance(comparator.get("property"), str):
            raise invalid_arguments("sort", f"sort/{i} must be a Comparator object")
        prop = comparator["property"]
        if prop not in _SORTS:
            raise MethodError("unsupportedSort", f"sort/{i}: cannot sort by {prop!r}")
        ascending = comparator.get("isAscending", True)
        if not isinstance(ascending, bool):
            raise invalid_arguments("sort", f"sort/{i}/isAscending must be a boolean")
        keys.append((prop, ascending))

    class Key:
        def __init__(self, box: Mailbox) -> None:
            self.box = box

        def values(self) -> list[tuple[Any, bool]]:
            name = self.box.name.rpartition(DELIMITER)[2].casefold()
            return [(name if p == "name" else self.box.sort_order, a) for p, a in keys]

        def __lt__(self, other: "Key") -> bool:
            for (mine, ascending), (theirs, _) in zip(self.values(), other.values()):
                if mine != theirs:
                    return (mine < theirs) if ascending else (mine > theirs)
            return self.box.id < other.box.id  # a stable, total order

    return Key


def _query_ids(call: Call, tree: Tree, args: dict[str, Any]) -> list[int]:
    """The whole result of a Mailbox/query, in order (RFC 8621 §2.3)."""
    raw_filter = argument(args, "filter", dict, None)
    raw_sort = argument(args, "sort", list, None) or []
    as_tree = argument(args, "sortAsTree", bool, False)
    filter_tree = argument(args, "filterAsTree", bool, False)
    if raw_filter is not None and "parentId" in raw_filter and isinstance(
            raw_filter["parentId"], str):
        raw_filter = {**raw_filter, "parentId": resolve_id(call, raw_filter["parentId"])
                      or raw_filter["parentId"]}
    matches = _condition(tree, raw_filter, "filter") if raw_filter is not None else (
        lambda box: True)
    key = _sort_key(tree, raw_sort)

    def included(box: Mailbox) -> bool:
        if not matches(box):
            return False
        if filter_tree:  # RFC 8621 §2.3: every ancestor must match too
            parent = tree.parent(box)
            return parent is None or included(parent)
        return True

    boxes = [box for box in tree.view.mailboxes if included(box)]
    if not as_tree:
        return [box.id for box in sorted(boxes, key=key)]
    # sortAsTree: parents before children, siblings in sort order (a depth-first walk).
    chosen = {box.id for box in boxes}
    ordered: list[int] = []

    def walk(level: list[Mailbox]) -> None:
        for box in sorted(level, key=key):
            if box.id in chosen:
                ordered.append(box.id)
            walk(tree.children(box))

    walk([box for box in tree.view.mailboxes if tree.parent(box) is None])
    return ordered


def _window(ids: list[str], args: dict[str, Any]) -> tuple[list[str], int]:
    """position / anchor / anchorOffset / limit (RFC 8620 §5.5)."""
    position = argument(args, "position", int, 0)
    anchor = argument(args, "anchor", str, None)
    limit = argument(args, "limit", int, None)
    if limit is not None and limit < 0:
        raise invalid_arguments("limit", "must not be negative")
    if anchor is not None:
        if anchor not in ids:
            raise MethodError("anchorNotFound", "anchor: not in the results")
        offset = argument(args, "anchorOffset", int, 0)
        start = max(0, ids.index(anchor) + offset)
    else:
        start = position if position >= 0 else max(0, len(ids) + position)
    end = len(ids) if limit is None else start + limit
    return ids[start:end], min(start, len(ids))


async def mailbox_query(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """RFC 8621 §2.3 (RFC 8620 §5.5)."""
    account = account_of(call, args)
    tree = await _tree(call)
    ids = [format_id("B", n) for n in _query_ids(call, tree, args)]
    window, position = _window(ids, args)
    response: dict[str, Any] = {"accountId": account, "queryState": _state(tree),
                                "canCalculateChanges": True, "position": position,
                                "ids": window}
    if argument(args, "calculateTotal", bool, False):
        response["total"] = len(ids)
    return response  # no "limit": we never cap one (RFC 8620 §5.5)


async def mailbox_query_changes(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """RFC 8620 §5.6: every mailbox changed since the old query state is reported removed,
    and added again at its index if it is in the results now; unchanged ones keep their
    relative order (the sort keys are their own properties), so the client's splice is
    exact.  With sortAsTree or filterAsTree a change also moves its descendants."""
    account = account_of(call, args)
    limit = max_changes(args)
    since, current = await since_position(call, args, "sinceQueryState")
    changes = await call.mail.mailbox_changes(since, current, None)
    tree = await _tree(call)
    changed = set(changes.created) | set(changes.destroyed) | (
        set() if changes.counts_only else set(changes.updated))
    if argument(args, "sortAsTree", bool, False) or argument(args, "filterAsTree", bool, False):
        for number in list(changed):
            box = tree.by_id.get(number)
            if box is not None:
                changed.update(b.id for b in tree.view.mailboxes
                               if b.name.startswith(box.name + DELIMITER))
    ordered = _query_ids(call, tree, args)
    added = [{"id": format_id("B", n), "index": i} for i, n in enumerate(ordered)
             if n in changed]
    removed = [format_id("B", n) for n in sorted(changed)]
    if limit is not None and len(added) + len(removed) > limit:
        raise MethodError("tooManyChanges", "more changes than maxChanges")
    response: dict[str, Any] = {"accountId": account, "oldQueryState": args["sinceQueryState"],
                                "newQueryState": _state(tree), "removed": removed,
                                "added": added}
    if argument(args, "calculateTotal", bool, False):
        response["total"] = len(ordered)
    return response


# --- Mailbox/set --------------------------------------------------------------------------------

def _invalid(properties: list[str], why: str) -> SetError:
    return SetError("invalidProperties", why, properties=properties)


def _set_error(exc: MailboxError, prop: str = "name") -> SetError:
    if isinstance(exc, MailboxNotFound):
        return SetError("notFound", str(exc))
    return _invalid([prop], str(exc))


def _check_level(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise _invalid(["name"], "name must be a non-empty string")
    if DELIMITER in name:
        raise _invalid(["name"], f"name must not contain {DELIMITER!r} (use parentId)")
    return name


def _parent(call: Call, tree: Tree, value: Any) -> Optional[Mailbox]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(["parentId"], "parentId must be an id or null")
    number = parse_id("B", resolve_id(call, value) or "")
    box = tree.by_id.get(number) if number is not None else None
    if box is None:
        raise _invalid(["parentId"], "parentId: no such mailbox")
    return box


def _server_set(obj: dict[str, Any], current: Optional[dict[str, Any]]) -> None:
    """Server-set properties may only be sent unchanged (RFC 8620 §5.3)."""
    bad = [p for p in SERVER_SET if p in obj and (current is None or obj[p] != current[p])]
    if bad:
        raise _invalid(bad, "server-set properties cannot be set")


async def _create(call: Call, tree: Tree, obj: Any) -> Mailbox:
    if not isinstance(obj, dict):
        raise _invalid([], "a Mailbox object is needed")
    unknown = [p for p in obj if p not in PROPERTIES]
    if unknown:
        raise _invalid(unknown, "unknown properties")
    _server_set(obj, None)
    level = _check_level(obj.get("name"))
    parent = _parent(call, tree, obj.get("parentId"))
    role = obj.get("role")
    special_use = None
    if role is not None:
        if role not in ROLES or ROLES[role] is None:
            raise _invalid(["role"], f"role must be one of "
                           f"{', '.join(r for r, a in ROLES.items() if a)} or null")
        special_use = ROLES[role]
    subscribed = obj.get("isSubscribed", False)
    if not isinstance(subscribed, bool):
        raise _invalid(["isSubscribed"], "isSubscribed must be a boolean")
    sort_order = obj.get("sortOrder", 0)
    if not isinstance(sort_order, int) or isinstance(sort_order, bool) or not (
            0 <= sort_order < 2**31):
        raise _invalid(["sortOrder"], "sortOrder must be an unsigned integer")
    name = level if parent is None else parent.name + DELIMITER + level
    if name in tree.by_name or name.upper() == INBOX:
        raise _invalid(["name"], "a mailbox with this name already exists here")
    try:
        box: Mailbox = await call.mail.create_mailbox(name, special_use)
    except SpecialUseInUse as exc:
        raise _invalid(["role"], str(exc))
    except MailboxError as exc:
        raise _set_error(exc)
    if subscribed:
        await call.mail.set_subscription(box.name, True)
    if sort_order:
        box = await call.mail.set_sort_order(box.id, sort_order)
    return box


async def _update(call: Call, tree: Tree, number: int, patch: Any) -> None:
    box = tree.by_id.get(number)
    if box is None:
        raise SetError("notFound", "no such mailbox")
    if not isinstance(patch, dict):
        raise _invalid([], "a patch object is needed")
    bad = [p for p in patch if p not in PROPERTIES]
    if bad:
        raise _invalid(bad, "unknown properties (or a patch path into one)")
    current = tree.describe(box)
    _server_set(patch, current)
    if "role" in patch and patch["role"] != current["role"]:
        raise _invalid(["role"], "roles are fixed (special-use folders): role cannot change")
    name = box.name
    if "name" in patch or "parentId" in patch:
        level = _check_level(patch.get("name", current["name"]))
        parent = _parent(call, tree, patch.get("parentId", current["parentId"]))
        if parent is not None and (parent.id == box.id or
                                   parent.name.startswith(box.name + DELIMITER)):
            raise _invalid(["parentId"], "a mailbox cannot be moved inside itself")
        name = level if parent is None else parent.name + DELIMITER + level
        if name != box.name:
            if box.name == INBOX:
                raise SetError("forbidden", "INBOX cannot be renamed or moved")
            if name in tree.by_name or name.upper() == INBOX:
                raise _invalid(["name"], "a mailbox with this name already exists here")
            try:
                await call.mail.rename_mailbox(box.name, name)
            except MailboxError as exc:
                raise _set_error(exc)
    if "isSubscribed" in patch:
        if not isinstance(patch["isSubscribed"], bool):
            raise _invalid(["isSubscribed"], "isSubscribed must be a boolean")
        if patch["isSubscribed"] != current["isSubscribed"]:
            await call.mail.set_subscription(name, patch["isSubscribed"])
    if "sortOrder" in patch and patch["sortOrder"] != current["sortOrder"]:
        value = patch["sortOrder"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
            raise _invalid(["sortOrder"], "sortOrder must be an unsigned integer")
        await call.mail.set_sort_order(box.id, value)


async def _destroy(call: Call, tree: Tree, number: int, remove_emails: bool) -> None:
    box = tree.by_id.get(number)
    if box is None:
        raise SetError("notFound", "no such mailbox")
    if box.name == INBOX:
        raise SetError("forbidden", "INBOX cannot be destroyed")
    if tree.children(box):
        raise SetError("mailboxHasChild", "the mailbox has child mailboxes; destroy them first")
    if tree.view.tallies.get(box.id, MailboxTally()).total_emails and not remove_emails:
        raise SetError("mailboxHasEmail", "the mailbox has emails "
                       "(onDestroyRemoveEmails: true destroys them with it)")
    try:
        await call.mail.delete_mailbox(box.name)
    except MailboxError as exc:
        raise _set_error(exc)


async def _each(response: dict[str, Any], done: str, refused: str, jmap_id: str,
                number: Optional[int], operation: Callable[[int], Awaitable[None]]) -> bool:
    """One update or destroy of a /set: its outcome in the response; True when done."""
    try:
        if number is None:
            raise SetError("notFound", "no such mailbox")
        await operation(number)
    except SetError as exc:
        response[refused][jmap_id] = exc.response()
        return False
    if done == "updated":
        response[done][jmap_id] = None
    else:
        response[done].append(jmap_id)
    return True


async def mailbox_set(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """RFC 8621 §2.5 (RFC 8620 §5.3): creates, then updates, then destroys (children
    before parents), each refused on its own with a SetError."""
    account = account_of(call, args)
    creates = argument(args, "create", dict, None) or {}
    updates = argument(args, "update", dict, None) or {}
    destroys = argument(args, "destroy", list, None) or []
    remove_emails = argument(args, "onDestroyRemoveEmails", bool, False)
    if len(creates) + len(updates) + len(destroys) > call.limits.max_objects_in_set:
        raise MethodError("requestTooLarge",
                          f"more than {call.limits.max_objects_in_set} objects to set")
    if not all(isinstance(i, str) for i in destroys):
        raise invalid_arguments("destroy", "must be a list of ids")
    old_state = await check_if_in_state(call, args)
    response: dict[str, Any] = {"accountId": account, "oldState": old_state,
                                "created": {}, "updated": {}, "destroyed": [],
                                "notCreated": {}, "notUpdated": {}, "notDestroyed": {}}
    tree = await _tree(call)
    for creation_id, obj in creates.items():
        try:
            box = await _create(call, tree, obj)
        except SetError as exc:
            response["notCreated"][creation_id] = exc.response()
            continue
        tree = await _tree(call)
        call.created[creation_id] = format_id("B", box.id)
        described = tree.describe(tree.by_id[box.id])
        response["created"][creation_id] = {p: described[p] for p in (*SERVER_SET,)}
    for jmap_id, patch in updates.items():
        number = parse_id("B", resolve_id(call, jmap_id) or "")

        def update(n: int, patch: Any = patch) -> Awaitable[None]:
            return _update(call, tree, n, patch)
        if await _each(response, "updated", "notUpdated", jmap_id, number, update):
            tree = await _tree(call)
    wanted = [(jmap_id, parse_id("B", resolve_id(call, jmap_id) or "")) for jmap_id in destroys]

    def deepest_first(item: tuple[str, Optional[int]]) -> int:
        box = tree.by_id.get(item[1]) if item[1] is not None else None
        return -tree.depth(box) if box is not None else 0

    for jmap_id, number in sorted(wanted, key=deepest_first):
        if await _each(response, "destroyed", "notDestroyed", jmap_id, number,
                       lambda n: _destroy(call, tree, n, remove_emails)):
            tree = await _tree(call)
    response["newState"] = await account_state(call.mail)
    for key in ("created", "updated", "notCreated", "notUpdated", "notDestroyed"):
        if not response[key]:
            response[key] = None
    return response


METHODS: dict[str, Method] = {
    "Mailbox/get": Method(MAIL, mailbox_get),
    "Mailbox/changes": Method(MAIL, mailbox_changes),
    "Mailbox/query": Method(MAIL, mailbox_query),
    "Mailbox/queryChanges": Method(MAIL, mailbox_query_changes),
    "Mailbox/set": Method(MAIL, mailbox_set),
}
