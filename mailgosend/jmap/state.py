# -*- test-case-name: tests.test_jmap_state -*-
"""The account's state strings (RFC 8620 §1.2, §5.1, §5.2): the one place they are derived.

Every mail change of a user takes the next value of the user's change counter in its own
transaction (store/mailstate.py): MODSEQ of messages, HIGHESTMODSEQ of mailboxes, and the
mailboxes' own changes.  So one number is the state of Mailbox, Email and Thread at once:
``"s<counter>"``.  The session resource and push (push.py, which learns *which* types a
ChangeBatch touched from ``changed_types``) read it with ``account_state``; every /get,
/set and /changes of those types too.

A paged /changes (``maxChanges``) ends at an intermediate state ``"s<counter>.<last id>"``:
every object whose latest change is at or before (counter, id) has been returned
(store/emails.py ``Position``).  A state is exact across restarts and nodes (it is read
from the database, never from memory); ``cannotCalculateChanges`` is answered only for a
state below the pruning floor (history purged by maintenance), one that was never handed
out (above the counter), or one that is not ours at all.

Identity, EmailSubmission and VacationResponse keep counters of their own
(store/jmapdata.py): their state is that number (``data_state``), read by
``identity_state``, ``submission_state`` and ``vacation_state``, which their /get and /set
answer with.  ``STATE_READERS`` maps every data type to its reader; push (push.py) reads
the states of the types a change moved with ``type_states``.
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable, Iterable, Mapping, Optional

from mailgosend.jmap.errors import MethodError
from mailgosend.jmap.methods import Call, argument
from mailgosend.mail.changes import Position

__all__ = ["STATE_READERS", "account_state", "addressbook_state", "calendar_state",
           "check_if_in_state", "data_state", "format_state", "identity_state", "max_changes", "parse_state", "since_position",
           "submission_state", "type_states", "vacation_state"]

_STATE = re.compile(r"s(0|[1-9][0-9]{0,18})(?:\.([1-9][0-9]{0,18}))?\Z")


def format_state(position: Position) -> str:
    """``s42``, or ``s42.7`` for an intermediate state of a paged /changes."""
    if position.last_id is None:
        return f"s{position.modseq}"
    return f"s{position.modseq}.{position.last_id}"


def parse_state(value: object) -> Optional[Position]:
    """The position a state string names, or None when it is not one of ours."""
    if not isinstance(value, str):
        return None
    match = _STATE.match(value)
    if match is None:
        return None
    last = match.group(2)
    return Position(int(match.group(1)), int(last) if last else None)


async def account_state(mail: Any) -> str:
    """The state of the whole account of ``mail`` (a UserMail): its change counter now."""
    state = await mail.mail_state()
    return format_state(Position(state.modseq))


def data_state(counter: int) -> str:
    """The state string of Identity, EmailSubmission or VacationResponse: its counter."""
    return str(counter)


async def identity_state(mail: Any) -> str:
    return data_state(await mail.account_data.identity_state())


async def submission_state(mail: Any) -> str:
    return data_state(await mail.account_data.submission_state())


async def vacation_state(mail: Any) -> str:
    return data_state(await mail.account_data.vacation_state())


async def calendar_state(mail: Any) -> str:
    """Calendars and their events (the DAV data, mail/dav.py): one state for both."""
    return str(await mail.dav_state("calendar"))


async def addressbook_state(mail: Any) -> str:
    return str(await mail.dav_state("addressbook"))


StateReader = Callable[[Any], Awaitable[str]]

# Every data type whose state can change, and where its state comes from (RFC 8620 §7.1;
# EmailDelivery, RFC 8621 §1.5, moves with the account's mail).
STATE_READERS: dict[str, StateReader] = {
    "Email": account_state, "Mailbox": account_state, "Thread": account_state,
    "EmailDelivery": account_state, "Identity": identity_state,
    "EmailSubmission": submission_state, "VacationResponse": vacation_state,
    # the calendars and address books of CalDAV/CardDAV (names of RFC 9610 and JMAP
    # Calendars), so push tells webmail when a DAV client changed them
    "Calendar": calendar_state, "CalendarEvent": calendar_state,
    "AddressBook": addressbook_state, "ContactCard": addressbook_state}


async def type_states(mail: Any, types: Iterable[str]) -> dict[str, str]:
    """The current state of each of ``types`` (unknown names left out), each reader once."""
    read: dict[StateReader, str] = {}
    states = {}
    for name in sorted(types):
        reader = STATE_READERS.get(name)
        if reader is None:
            continue
        if reader not in read:
            read[reader] = await reader(mail)
        states[name] = read[reader]
    return states


async def since_position(call: Call, args: Mapping[str, Any], name: str = "sinceState"
                         ) -> tuple[Position, int]:
    """The ``sinceState`` argument of a /changes and the counter now (read first, so the
    changes read after it cover at least everything up to it).  ``cannotCalculateChanges``
    (RFC 8620 §5.2) for a state we cannot answer exactly: not ours, from the future, or
    below the pruning floor (its history was purged)."""
    value = argument(args, name, str)
    state = await call.mail.mail_state()
    since = parse_state(value)
    if since is None:
        raise MethodError("cannotCalculateChanges", f"{name}: not a state of this server")
    if since.modseq > state.modseq:
        raise MethodError("cannotCalculateChanges", f"{name}: not a state of this account")
    if since.modseq < state.pruned:
        raise MethodError("cannotCalculateChanges",
                          f"{name}: older than the change history kept; fetch again")
    return since, int(state.modseq)


async def check_if_in_state(call: Call, args: Mapping[str, Any]) -> str:
    """The state now, after checking a /set's ``ifInState`` against it (RFC 8620 §5.3:
    ``stateMismatch`` when they differ)."""
    current = await account_state(call.mail)
    wanted = argument(args, "ifInState", str, None)
    if wanted is not None and wanted != current:
        raise MethodError("stateMismatch", "ifInState: the state has changed since")
    return current


def max_changes(args: Mapping[str, Any]) -> Optional[int]:
    """The ``maxChanges`` argument: a positive integer or null (RFC 8620 §5.2)."""
    value = argument(args, "maxChanges", int, None)
    if value is not None and value < 1:
        raise MethodError("invalidArguments", "maxChanges: must be a positive integer",
                          arguments=["maxChanges"])
    return value  # type: ignore[no-any-return]
