# -*- test-case-name: tests.test_jmap_vacation -*-
"""VacationResponse/get and /set (RFC 8621 §8): the singleton "singleton".

Stored sealed with the user's key (mail/accountdata.py); applied to incoming mail by the
local-delivery path following RFC 3834 (mail/vacation.py).  Only ``update`` of the
singleton exists: creating or destroying it is ``singleton`` refused (§8).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from mailgosend.jmap.errors import MethodError, SetError, invalid_properties
from mailgosend.jmap.headers import parse_utc_date, utc_date
from mailgosend.jmap.methods import VACATION, Call, Method, account_of, argument
from mailgosend.jmap.standard import get_ids, get_properties
from mailgosend.jmap.state import data_state, vacation_state
from mailgosend.mail.accountdata import Vacation

__all__ = ["METHODS"]

SINGLETON = "singleton"
PROPERTIES = ("id", "isEnabled", "fromDate", "toDate", "subject", "textBody", "htmlBody")
MAX_TEXT = 64 * 1024


def _json(vacation: Vacation) -> dict[str, Any]:
    return {"id": SINGLETON, "isEnabled": vacation.is_enabled,
            "fromDate": utc_date(vacation.from_date) if vacation.from_date else None,
            "toDate": utc_date(vacation.to_date) if vacation.to_date else None,
            "subject": vacation.subject, "textBody": vacation.text_body,
            "htmlBody": vacation.html_body}


async def get_vacation(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    account_of(call, args)
    ids = get_ids(call, args)
    props = get_properties(args, PROPERTIES)
    state = await vacation_state(call.mail)  # read first: never newer than the data
    vacation = await call.mail.account_data.vacation()
    full = _json(vacation)
    wanted = [SINGLETON] if ids is None else ids
    found = [{p: full[p] for p in props} for i in wanted if i == SINGLETON][:1]
    return {"accountId": call.account_id, "state": state, "list": found,
            "notFound": [i for i in wanted if i != SINGLETON]}



def _date(prop: str, value: Any) -> Optional[datetime]:
    if value is None:
        return None
    try:
        return parse_utc_date(value)
    except ValueError:
        raise invalid_properties(prop, "must be null or a UTCDate like 2026-07-01T00:00:00Z") from None


def _apply(current: Vacation, patch: Any) -> Vacation:
    if not isinstance(patch, dict):
        raise invalid_properties("", "a patch object is required")
    new = Vacation(current.is_enabled, current.from_date, current.to_date, current.subject,
                   current.text_body, current.html_body)
    for prop, value in patch.items():
        if prop == "isEnabled":
            if not isinstance(value, bool):
                raise invalid_properties(prop, "must be true or false")
            new.is_enabled = value
        elif prop in ("fromDate", "toDate"):
            setattr(new, "from_date" if prop == "fromDate" else "to_date", _date(prop, value))
        elif prop in ("subject", "textBody", "htmlBody"):
            if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
                raise invalid_properties(prop, f"must be null or a string of at most {MAX_TEXT} "
                                     "characters")
            if prop == "subject" and value is not None and ("\r" in value or "\n" in value):
                raise invalid_properties(prop, "must be one line")
            setattr(new, {"subject": "subject", "textBody": "text_body",
                          "htmlBody": "html_body"}[prop], value)
        elif prop == "id":
            raise invalid_properties(prop, "is set by the server")
        else:
            raise invalid_properties(prop, "unknown property")
    if new.from_date and new.to_date and new.to_date <= new.from_date:
        raise invalid_properties("toDate", "must be after fromDate")
    return new


async def set_vacation(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    account_of(call, args)
    create = argument(args, "create", dict, None) or {}
    update = argument(args, "update", dict, None) or {}
    destroy = argument(args, "destroy", list, None) or []
    data = call.mail.account_data
    current = await data.vacation()
    old_state = data_state(current.state)
    wanted_state = argument(args, "ifInState", str, None)
    if wanted_state is not None and wanted_state != old_state:
        raise MethodError("stateMismatch", "ifInState: the VacationResponse state is "
                                           + old_state)
    response: dict[str, Any] = {"accountId": call.account_id, "oldState": old_state,
                                "created": None, "updated": None, "destroyed": None,
                                "notCreated": None, "notUpdated": None, "notDestroyed": None}
    if create:
        response["notCreated"] = {k: SetError("singleton", "the VacationResponse exists "
                                              "once; update \"singleton\"").response()
                                  for k in create}
    if destroy:
        response["notDestroyed"] = {k: SetError("singleton", "the VacationResponse cannot "
                                                "be destroyed").response() for k in destroy}
    updated: dict[str, Any] = {}
    not_updated: dict[str, Any] = {}
    for given, patch in update.items():
        if given != SINGLETON:
            not_updated[given] = SetError("notFound", "the only id is \"singleton\"").response()
            continue
        try:
            new = _apply(current, patch)
        except SetError as error:
            not_updated[given] = error.response()
            continue
        current.state = await data.put_vacation(new)
        updated[given] = None
    response["updated"] = updated or None
    response["notUpdated"] = not_updated or None
    response["newState"] = data_state(current.state)
    return response


METHODS = {"VacationResponse/get": Method(VACATION, get_vacation),
           "VacationResponse/set": Method(VACATION, set_vacation)}
