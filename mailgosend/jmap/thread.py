# -*- test-case-name: tests.test_jmap_state -*-
"""Thread/get and Thread/changes (RFC 8621 §3).

A Thread is the Emails sharing a ``thread_id``, assigned at delivery by the rule of RFC 8621
§3 over keyed hashes of Message-IDs and base subjects (store/threads.py).  Its ``emailIds``
are sorted by receivedAt (§3.1), oldest first.  Its state is the account state (state.py).
"""

from __future__ import annotations

from typing import Any

from mailgosend.jmap.errors import MethodError
from mailgosend.jmap.ids import format_id, parse_id
from mailgosend.jmap.methods import MAIL, Call, Method, account_of
from mailgosend.jmap.standard import changes_response, get_ids, get_properties
from mailgosend.jmap.state import format_state
from mailgosend.mail.changes import Position

__all__ = ["METHODS"]

PROPERTIES = ("id", "emailIds")


async def thread_get(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """RFC 8621 §3.1; ``ids`` is required in practice (null would list every thread; we
    answer it, as RFC 8620 §5.1 allows, with all of them)."""
    account = account_of(call, args)
    ids = get_ids(call, args)
    properties = get_properties(args, PROPERTIES)
    state = await call.mail.mail_state()  # first: what is read next is at least this new
    wanted = {i: parse_id("T", i) for i in ids} if ids is not None else None
    numbers = ([n for n in wanted.values() if n is not None] if wanted is not None
               else await _all_threads(call))
    threads: dict[int, list[str]] = {}
    for row in await call.mail.thread_emails(numbers):
        threads.setdefault(row.thread_id, []).append(format_id("M", row.email_id))
    found = []
    for thread_id in (dict.fromkeys(numbers)):
        if thread_id in threads:
            item = {"id": format_id("T", thread_id),
                    "emailIds": list(dict.fromkeys(threads[thread_id]))}
            found.append({k: v for k, v in item.items() if k in properties})
    not_found = [] if wanted is None else [
        i for i, n in wanted.items() if n is None or n not in threads]
    return {"accountId": account, "state": format_state(Position(state.modseq)),
            "list": found, "notFound": not_found}


async def _all_threads(call: Call) -> list[int]:
    """Every thread id, when there are at most maxObjectsInGet (RFC 8620 §5.1)."""
    limit = call.limits.max_objects_in_get
    found: list[int] = await call.mail.thread_ids(limit + 1)
    if len(found) > limit:
        raise MethodError("requestTooLarge", f"ids: null would return more than {limit} "
                          "threads; name them")
    return found


async def thread_changes(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """RFC 8621 §3.2: Threads whose emailIds changed (an Email joined or left)."""
    response, _ = await changes_response(call, args, "T", lambda mail: mail.thread_changes)
    return response


METHODS: dict[str, Method] = {
    "Thread/get": Method(MAIL, thread_get),
    "Thread/changes": Method(MAIL, thread_changes),
}
