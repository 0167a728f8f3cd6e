# -*- test-case-name: tests.test_jmap_identity -*-
"""Identity/get, Identity/changes, Identity/set (RFC 8621 §6).

The user's own address and the aliases that deliver to them are identities of their own
(``mayDelete`` false); others can be added for addresses the user may send as (a
``+tag`` sub-address), else ``forbiddenFrom``.  The name defaults to the account's display
name (settings page) until set here; replyTo, bcc and the signatures are sealed with the
user's key (mail/accountdata.py).
"""

from __future__ import annotations

from typing import Any, Optional

from mailgosend.admin import AccountAdmin, BadInput
from mailgosend.jmap.errors import (MethodError, SetError, invalid_arguments,
                                    invalid_properties)
from mailgosend.jmap.ids import format_id, parse_id
from mailgosend.jmap.methods import (SUBMISSION, Call, Method, account_of, argument,
                                     resolve_id)
from mailgosend.jmap.standard import get_ids, get_properties
from mailgosend.jmap.state import data_state, identity_state
from mailgosend.mail.accountdata import IDENTITIES, Identity

__all__ = ["METHODS", "identity_json", "parse_state"]

PROPERTIES = ("id", "name", "email", "replyTo", "bcc", "textSignature", "htmlSignature",
              "mayDelete")
_SETTABLE = ("name", "replyTo", "bcc", "textSignature", "htmlSignature")
MAX_SIGNATURE = 64 * 1024


def identity_json(identity: Identity) -> dict[str, Any]:
    s = identity.settings
    return {"id": format_id("I", identity.id), "name": identity.name, "email": identity.email,
            "replyTo": s.get("replyTo"), "bcc": s.get("bcc"),
            "textSignature": s.get("textSignature", ""),
            "htmlSignature": s.get("htmlSignature", ""), "mayDelete": identity.may_delete}


def parse_state(name: str, value: Any) -> int:
    """A state string of ours (a number) or cannotCalculateChanges."""
    if not isinstance(value, str):
        raise invalid_arguments(name, "must be a state string")
    if not value.isdigit():
        raise MethodError("cannotCalculateChanges", f"{name}: not a state this server gave")
    return int(value)


async def get_identities(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    account_of(call, args)
    ids = get_ids(call, args)
    props = get_properties(args, PROPERTIES)
    data = call.mail.account_data
    found = await data.identities()
    state = await identity_state(call.mail)
    by_id = {format_id("I", i.id): i for i in found}
    wanted = list(by_id) if ids is None else ids
    result, not_found = [], []
    for given in wanted:
        real = resolve_id(call, given) if isinstance(given, str) else None
        identity = by_id.get(real) if real else None
        if identity is None:
            not_found.append(given)
            continue
        full = identity_json(identity)
        result.append({p: full[p] for p in props})
    return {"accountId": call.account_id, "state": state, "list": result,
            "notFound": not_found}


async def identity_changes(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    account_of(call, args)
    since = parse_state("sinceState", args.get("sinceState"))
    max_changes = argument(args, "maxChanges", int, None)
    if max_changes is not None and max_changes < 1:
        raise invalid_arguments("maxChanges", "must be a positive integer")
    data = call.mail.account_data
    await data.identities()  # derived identities exist before the changes are read
    changes, state = await data.changes(IDENTITIES, since)
    if since > state:
        raise MethodError("cannotCalculateChanges", "sinceState: not a state this server gave")
    return {"accountId": call.account_id, "oldState": data_state(since),
            "newState": data_state(state),
            "hasMoreChanges": False,
            "created": [format_id("I", i) for i in changes.created],
            "updated": [format_id("I", i) for i in changes.updated],
            "destroyed": [format_id("I", i) for i in changes.destroyed]}



def _addresses(prop: str, value: Any) -> Optional[list[dict[str, Any]]]:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
            isinstance(a, dict) and isinstance(a.get("email"), str) and "@" in a["email"]
            and isinstance(a.get("name", None), (str, type(None))) and set(a) <= {"name", "email"}
            for a in value):
        raise invalid_properties(prop, "must be null or a list of {name, email}")
    return [{"name": a.get("name"), "email": a["email"]} for a in value]


def _settings(obj: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    settings = dict(current)
    for prop, value in obj.items():
        if prop == "name":
            if not isinstance(value, str):
                raise invalid_properties(prop, "must be a string")
            try:
                settings["name"] = AccountAdmin.clean_display_name(value)
            except BadInput as error:
                raise invalid_properties(prop, str(error)) from None
        elif prop in ("replyTo", "bcc"):
            settings[prop] = _addresses(prop, value)
        elif prop in ("textSignature", "htmlSignature"):
            if not isinstance(value, str) or len(value) > MAX_SIGNATURE:
                raise invalid_properties(prop, f"must be a string of at most {MAX_SIGNATURE} characters")
            settings[prop] = value
        elif prop in ("id", "mayDelete"):
            raise invalid_properties(prop, "is set by the server")
        elif prop == "email":
            raise invalid_properties(prop, "cannot be changed; create another identity")
        else:
            raise invalid_properties(prop, "unknown property")
    return settings


async def set_identities(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    account_of(call, args)
    create = argument(args, "create", dict, None) or {}
    update = argument(args, "update", dict, None) or {}
    destroy = argument(args, "destroy", list, None) or []
    if len(create) + len(update) + len(destroy) > call.limits.max_objects_in_set:
        raise MethodError("requestTooLarge", "too many objects")
    data = call.mail.account_data
    found = {i.id: i for i in await data.identities()}
    old_state = await identity_state(call.mail)
    wanted_state = argument(args, "ifInState", str, None)
    if wanted_state is not None and wanted_state != old_state:
        raise MethodError("stateMismatch", "ifInState: the Identity state is " + old_state)
    created: dict[str, Any] = {}
    not_created: dict[str, Any] = {}
    for creation_id, obj in create.items():
        try:
            if not isinstance(obj, dict):
                raise invalid_properties("", "an Identity object is required")
            address = obj.get("email")
            if not isinstance(address, str):
                raise invalid_properties("email", "is required")
            settings = _settings({k: v for k, v in obj.items() if k != "email"}, {})
            new_id = await data.add_identity(address, settings)
            if new_id is None:
                raise SetError("forbiddenFrom", f"email: {call.mail.user.email} may not send "
                                                f"as {address}")
        except SetError as error:
            not_created[creation_id] = error.response()
            continue
        created[creation_id] = {"id": format_id("I", new_id), "mayDelete": True,
                                "name": settings.get("name", "")}
        for prop in ("replyTo", "bcc"):
            created[creation_id].setdefault(prop, settings.get(prop))
        created[creation_id].setdefault("textSignature", settings.get("textSignature", ""))
        created[creation_id].setdefault("htmlSignature", settings.get("htmlSignature", ""))
        call.created[creation_id] = created[creation_id]["id"]
    updated: dict[str, Any] = {}
    not_updated: dict[str, Any] = {}
    for given, patch in update.items():
        real = resolve_id(call, given)
        number = parse_id("I", real) if real else None
        if number is None or number not in found:
            not_updated[given] = SetError("notFound", "no such identity").response()
            continue
        try:
            if not isinstance(patch, dict):
                raise invalid_properties("", "a patch object is required")
            current = await data.identity_settings(number) or {}
            await data.update_identity(number, _settings(patch, current))
        except SetError as error:
            not_updated[given] = error.response()
            continue
        updated[given] = None
    destroyed: list[str] = []
    not_destroyed: dict[str, Any] = {}
    for given in destroy:
        real = resolve_id(call, given) if isinstance(given, str) else None
        number = parse_id("I", real) if real else None
        identity = found.get(number) if number is not None else None
        if identity is None:
            not_destroyed[given] = SetError("notFound", "no such identity").response()
        elif not identity.may_delete:
            not_destroyed[given] = SetError(
                "forbidden", "the account's own address and its aliases stay").response()
        else:
            await data.destroy(IDENTITIES, number)
            destroyed.append(given)
    return {"accountId": call.account_id, "oldState": old_state,
            "newState": await identity_state(call.mail),
            "created": created or None, "updated": updated or None,
            "destroyed": destroyed or None, "notCreated": not_created or None,
            "notUpdated": not_updated or None, "notDestroyed": not_destroyed or None}


METHODS = {"Identity/get": Method(SUBMISSION, get_identities),
           "Identity/changes": Method(SUBMISSION, identity_changes),
           "Identity/set": Method(SUBMISSION, set_identities)}
