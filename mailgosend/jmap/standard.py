# -*- test-case-name: tests.test_jmap_state -*-
"""The parts of the standard methods (RFC 8620 §5.1 /get, §5.2 /changes) that every data
type of this package answers the same way: the ``ids`` and ``properties`` arguments, and the
/changes response built from a ``Changes`` (mail/changes.py) and the state strings of
state.py."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping, Optional

from mailgosend.jmap.errors import MethodError, invalid_arguments
from mailgosend.jmap.ids import format_id
from mailgosend.jmap.methods import Call, account_of, argument
from mailgosend.jmap.state import format_state, max_changes, since_position
from mailgosend.mail.changes import Changes, Position

__all__ = ["changes_response", "get_ids", "get_properties"]


def get_ids(call: Call, args: Mapping[str, Any]) -> Optional[list[str]]:
    """The ``ids`` of a /get: a list of strings, or null for all; more than
    maxObjectsInGet is ``requestTooLarge`` (RFC 8620 §5.1)."""
    ids = argument(args, "ids", list, None)
    if ids is None:
        return None
    if not all(isinstance(i, str) for i in ids):
        raise invalid_arguments("ids", "must be a list of id strings")
    if len(ids) > call.limits.max_objects_in_get:
        raise MethodError("requestTooLarge",
                          f"ids: more than {call.limits.max_objects_in_get} ids")
    return list(dict.fromkeys(ids))


def get_properties(args: Mapping[str, Any], known: tuple[str, ...]) -> tuple[str, ...]:
    """The ``properties`` of a /get (null: all ``known``); ``id`` is always returned;
    an unknown property is ``invalidArguments`` naming it."""
    wanted = argument(args, "properties", list, None)
    if wanted is None:
        return known
    unknown = [p for p in wanted if not isinstance(p, str) or p not in known]
    if unknown:
        raise invalid_arguments("properties", f"unknown properties: {unknown!r}")
    return tuple(dict.fromkeys(["id", *wanted]))


Fetch = Callable[[Position, int, Optional[int]], Awaitable[Changes]]


async def changes_response(call: Call, args: Mapping[str, Any], prefix: str,
                           fetch: Callable[[Any], Fetch]) -> tuple[dict[str, Any], Changes]:
    """A /changes answer (RFC 8620 §5.2): ``fetch(mail)`` is the UserMail method that reads
    the changes after a position; ids get their JMAP ``prefix``."""
    account = account_of(call, args)
    limit = max_changes(args)
    since, current = await since_position(call, args)
    changes = await fetch(call.mail)(since, current, limit)
    return {
        "accountId": account,
        "oldState": args["sinceState"],
        "newState": format_state(changes.new_state),
        "hasMoreChanges": changes.has_more,
        "created": [format_id(prefix, i) for i in changes.created],
        "updated": [format_id(prefix, i) for i in changes.updated],
        "destroyed": [format_id(prefix, i) for i in changes.destroyed],
    }, changes
