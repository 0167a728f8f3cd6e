# -*- test-case-name: tests.test_jmap_email_set -*-
"""Email/set (RFC 8621 §4.6), Email/copy (§4.7) and Email/import (§4.8).

- update: ``keywords`` (whole, or patched as ``keywords/$seen``) become IMAP flags in one
  STORE-like change (``\\Deleted`` is not a keyword and is kept); ``mailboxIds`` moves the
  message (``UserMail.copy(move=True)``, IMAP MOVE).  Our store keeps one mailbox per stored
  copy, so ``maxMailboxesPerEmail`` is 1 and a second mailbox is ``tooManyMailboxes``.
- create: the JSON is built into MIME (compose.py) and filed through the one local
  delivery path (``UserMail.append``), so IMAP sees the same bytes at once.
- destroy: ``\\Deleted`` and an expunge of exactly those messages, one of each per mailbox.
- import: an uploaded (or stored) blob filed as it is.

Every object is checked before anything is changed; an object refused gets a SetError
naming the property and the others go on (RFC 8620 §5.3).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional

from mailgosend.jmap import compose
from mailgosend.jmap.blobread import read_blobs
from mailgosend.jmap.email_get import email_state
from mailgosend.jmap.headers import parse_utc_date
from mailgosend.jmap.errors import (MethodError, SetError, invalid_arguments,
                                    invalid_properties)
from mailgosend.jmap.ids import format_id, message_blob_id, parse_id
from mailgosend.jmap.keywords import keywords_to_flags, valid_keyword
from mailgosend.jmap.methods import (MAIL, Call, Method, account_of, argument, resolve_id)
from mailgosend.mail.emails import EmailRecord
from mailgosend.store.mailboxes import Mailbox
from mailgosend.store.messages import QuotaExceeded

__all__ = ["METHODS", "MAX_MAILBOXES_PER_EMAIL"]

MAX_MAILBOXES_PER_EMAIL = 1  # as the session advertises it (jmap/session.py, RFC 8621 §1.3.1)
_DELETED = "\\Deleted"



def _check_limits(call: Call, create: dict[str, Any], update: dict[str, Any],
                  destroy: list[Any]) -> None:
    total = len(create) + len(update) + len(destroy)
    if total > call.limits.max_objects_in_set:
        raise MethodError("requestTooLarge", f"{total} objects: more than "
                                             f"{call.limits.max_objects_in_set}")


async def _check_state(call: Call, args: dict[str, Any]) -> str:
    state = await email_state(call)
    wanted = argument(args, "ifInState", str, None)
    if wanted is not None and wanted != state:
        raise MethodError("stateMismatch", "ifInState: the Email state is " + state)
    return state


async def _mailboxes(call: Call) -> dict[str, Mailbox]:
    boxes, _ = await call.mail.mailboxes_and_subscriptions()
    return {format_id("B", box.id): box for box in boxes}


def _mailbox_ids(call: Call, value: Any, boxes: dict[str, Mailbox], prop: str = "mailboxIds"
                 ) -> Mailbox:
    """The one mailbox of a ``mailboxIds`` value (RFC 8621 §4.1.1: at least one)."""
    if not isinstance(value, dict) or not all(v is True for v in value.values()):
        raise invalid_properties(prop, "must be an object of mailbox ids to true")
    if not value:
        raise invalid_properties(prop, "an email must be in at least one mailbox")
    if len(value) > MAX_MAILBOXES_PER_EMAIL:
        raise SetError("tooManyMailboxes", f"{prop}: an email is in exactly one mailbox "
                                           "here (maxMailboxesPerEmail is 1)")
    [given] = value
    real = resolve_id(call, given)
    box = boxes.get(real) if real is not None else None
    if box is None:
        raise invalid_properties(prop, f"no mailbox {given!r}")
    return box


def _keywords(value: Any, prop: str = "keywords") -> set[str]:
    if not isinstance(value, dict) or not all(v is True for v in value.values()):
        raise invalid_properties(prop, "must be an object of keywords to true")
    for keyword in value:
        if not valid_keyword(keyword):
            raise invalid_properties(prop, f"{keyword!r} is not a valid keyword")
    return {k.lower() for k in value}


# A flag change: ("replace", flags) for a whole ``keywords``; ("add", flags) and
# ("remove", flags) for ``keywords/...`` paths, so two clients' patches of different
# keywords (the page's "Mark as read" and "Flag" at once) never undo each other.
FlagChange = tuple[Literal["add", "remove", "replace"], tuple[str, ...]]


def _apply_patch(call: Call, record: EmailRecord, patch: Any, boxes: dict[str, Mailbox]
                 ) -> tuple[list[FlagChange], Optional[Mailbox]]:
    """The IMAP flag changes (none: unchanged) and target mailbox (None: stays)."""
    if not isinstance(patch, dict):
        raise invalid_properties("", "a patch must be an object")
    current_flags = list(record.row.flags)
    keywords: Optional[set[str]] = None
    added: dict[str, None] = {}
    removed: dict[str, None] = {}
    mailbox_ids: Optional[dict[str, bool]] = None
    for path, value in patch.items():
        if path == "keywords":
            keywords = _keywords(value)
        elif path.startswith("keywords/"):
            keyword = path[len("keywords/"):]
            if not valid_keyword(keyword):
                raise invalid_properties(path, f"{keyword!r} is not a valid keyword")
            if value is True:
                added[keyword.lower()] = None
                removed.pop(keyword.lower(), None)
            elif value is None:
                removed[keyword.lower()] = None
                added.pop(keyword.lower(), None)
            else:
                raise invalid_properties(path, "must be true or null")
        elif path == "mailboxIds":
            if not isinstance(value, dict):
                raise invalid_properties(path, "must be an object of mailbox ids to true")
            mailbox_ids = dict(value)
        elif path.startswith("mailboxIds/"):
            if mailbox_ids is None:
                mailbox_ids = {format_id("B", record.row.mailbox_id): True}
            box_id = path[len("mailboxIds/"):]
            real = resolve_id(call, box_id) or box_id
            if value is True:
                mailbox_ids[real] = True
            elif value is None:
                mailbox_ids.pop(real, None)
            else:
                raise invalid_properties(path, "must be true or null")
        else:
            prop = path.split("/", 1)[0]
            raise invalid_properties(prop, "cannot be changed (only keywords and mailboxIds)")
    if "keywords" in patch and any(p.startswith("keywords/") for p in patch) or (
            "mailboxIds" in patch and any(p.startswith("mailboxIds/") for p in patch)):
        raise invalid_properties("keywords" if "keywords" in patch else "mailboxIds",
                       "a property and a path inside it in one patch (RFC 8620 §5.3)")
    flag_changes: list[FlagChange] = []
    if keywords is not None:
        flags = keywords_to_flags(sorted(keywords))
        if _DELETED in current_flags:
            flags.append(_DELETED)
        if {f.lower() for f in flags} != {f.lower() for f in current_flags}:
            flag_changes.append(("replace", tuple(flags)))
    if added:
        flag_changes.append(("add", tuple(keywords_to_flags(sorted(added)))))
    if removed:
        flag_changes.append(("remove", tuple(keywords_to_flags(sorted(removed)))))
    target = None
    if mailbox_ids is not None:
        box = _mailbox_ids(call, mailbox_ids, boxes)
        if box.id != record.row.mailbox_id:
            target = box
    return flag_changes, target


def _numbers(call: Call, ids: list[Any]) -> dict[str, Optional[int]]:
    out: dict[str, Optional[int]] = {}
    for given in ids:
        real = resolve_id(call, given) if isinstance(given, str) else None
        out[given] = parse_id("M", real) if real is not None else None
    return out


async def set_emails(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    account_of(call, args)
    create = argument(args, "create", dict, None) or {}
    update = argument(args, "update", dict, None) or {}
    destroy = argument(args, "destroy", list, None) or []
    if not all(isinstance(i, str) for i in destroy):
        raise invalid_arguments("destroy", "must be a list of ids")
    _check_limits(call, create, update, destroy)
    old_state = await _check_state(call, args)
    boxes = await _mailboxes(call)
    response: dict[str, Any] = {"accountId": call.account_id, "oldState": old_state,
                                "created": {}, "updated": {}, "destroyed": [],
                                "notCreated": {}, "notUpdated": {}, "notDestroyed": {}}
    for creation_id, obj in create.items():
        try:
            response["created"][creation_id] = await _create(call, obj, boxes)
        except SetError as error:
            response["notCreated"][creation_id] = error.response()
        else:
            call.created[creation_id] = response["created"][creation_id]["id"]
    ids = _numbers(call, list(update) + destroy)
    numbers = [n for n in ids.values() if n is not None]
    records = await call.mail.email_records(numbers) if numbers else {}
    changes: list[tuple[EmailRecord, list[FlagChange], Optional[Mailbox]]] = []
    for given, patch in update.items():
        number = ids.get(given)
        record = records.get(number) if number is not None else None
        if record is None:
            response["notUpdated"][given] = SetError("notFound", "no such email").response()
            continue
        try:
            flag_changes, target = _apply_patch(call, record, patch, boxes)
        except SetError as error:
            response["notUpdated"][given] = error.response()
        else:
            changes.append((record, flag_changes, target))
            response["updated"][given] = None
    await _update(call, changes, boxes)
    if response["updated"] and destroy:  # a move changed mailbox and UID: read them again
        wanted = [n for g in destroy if (n := ids.get(g)) is not None]
        records = await call.mail.email_records(wanted) if wanted else {}
    doomed: dict[int, list[int]] = {}  # mailbox -> UIDs: one STORE and one EXPUNGE each
    for given in destroy:
        number = ids.get(given)
        record = records.get(number) if number is not None else None
        if record is None:
            response["notDestroyed"][given] = SetError("notFound", "no such email").response()
            continue
        doomed.setdefault(record.row.mailbox_id, []).append(record.row.uid)
        response["destroyed"].append(given)
    for mailbox_id, uids in doomed.items():
        await call.mail.set_flags(mailbox_id, uids, [_DELETED], "add", origin=call.origin)
        await call.mail.expunge(mailbox_id, uids, origin=call.origin)
    response["newState"] = await email_state(call)
    for key in ("created", "updated", "notCreated", "notUpdated", "notDestroyed"):
        if not response[key]:
            response[key] = None
    if not response["destroyed"]:
        response["destroyed"] = None
    return response


async def _update(call: Call,
                  changes: list[tuple[EmailRecord, list[FlagChange], Optional[Mailbox]]],
                  boxes: dict[str, Mailbox]) -> None:
    """Apply checked patches: the flags first, then the moves.  Emails that get the same
    flag change in one mailbox share one STORE, and emails moved between the same two mailboxes
    one MOVE (``UserMail.copy``: the IMAP path, so a move into Junk trains the spam filter
    just as IMAP's does) -- a bulk action on 500 emails is a few transactions, not 1,000."""
    stores: dict[tuple[int, Literal["add", "remove", "replace"], tuple[str, ...]], list[int]] = {}
    moves: dict[tuple[int, int], list[int]] = {}
    for record, flag_changes, target in changes:
        row = record.row
        for mode, flags in flag_changes:
            stores.setdefault((row.mailbox_id, mode, flags), []).append(row.uid)
        if target is not None:
            moves.setdefault((row.mailbox_id, target.id), []).append(row.uid)
    for (mailbox_id, mode, flags), uids in stores.items():
        await call.mail.set_flags(mailbox_id, uids, list(flags), mode, origin=call.origin)
    for (source_id, target_id), uids in moves.items():
        await call.mail.copy(boxes[format_id("B", source_id)], uids,
                             boxes[format_id("B", target_id)], move=True)


def _received_at(obj: dict[str, Any]) -> Optional[datetime]:
    value = obj.get("receivedAt")
    if value is None:
        return None
    try:
        return parse_utc_date(value)
    except ValueError:
        raise invalid_properties("receivedAt", "must be a UTCDate like 2026-03-01T10:00:00Z") from None


async def _file(call: Call, raw: bytes, obj: dict[str, Any], boxes: dict[str, Mailbox]
                ) -> dict[str, Any]:
    """Store ``raw`` where ``obj`` says (mailboxIds, keywords, receivedAt), through the one
    local-delivery path; the created Email's server-set properties."""
    if "mailboxIds" not in obj:
        raise invalid_properties("mailboxIds", "is required")
    box = _mailbox_ids(call, obj["mailboxIds"], boxes)
    keywords = _keywords(obj["keywords"]) if obj.get("keywords") is not None else set()
    received = _received_at(obj)
    try:
        delivered = await call.mail.append(box.id, raw, keywords_to_flags(sorted(keywords)),
                                           received)
    except QuotaExceeded as error:
        raise SetError("overQuota", str(error)) from None
    number = delivered.email_id
    return {"id": format_id("M", number), "blobId": message_blob_id(number),
            "threadId": format_id("T", delivered.thread_id), "size": delivered.size}


async def _create(call: Call, obj: Any, boxes: dict[str, Mailbox]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise invalid_properties("", "an Email object is required")
    blobs = await read_blobs(call, compose.blob_ids(obj))
    missing = [b for b in compose.blob_ids(obj) if b not in blobs]
    if missing:
        raise SetError("blobNotFound", "blobs not found", notFound=missing)
    try:
        raw = compose.build({k: v for k, v in obj.items()
                             if k not in ("mailboxIds", "keywords", "receivedAt")},
                            blobs, call.mail.service.now(), call.mail.user.domain)
    except compose.Invalid as error:
        raise invalid_properties(error.prop, str(error)) from None
    if len(raw) > call.limits.max_size_upload:  # MAX_MESSAGE_SIZE, as for uploads
        raise SetError("tooLarge", "the message is larger than the server accepts")
    return await _file(call, raw, obj, boxes)


async def import_emails(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """Email/import (RFC 8621 §4.8): blobs (uploads, or stored messages) filed as they are."""
    account_of(call, args)
    emails = argument(args, "emails", dict)
    if len(emails) > call.limits.max_objects_in_set:
        raise MethodError("requestTooLarge", f"emails: more than "
                                             f"{call.limits.max_objects_in_set}")
    old_state = await _check_state(call, args)
    boxes = await _mailboxes(call)
    wanted = [str(obj["blobId"]) for obj in emails.values()
              if isinstance(obj, dict) and isinstance(obj.get("blobId"), str)]
    blobs = await read_blobs(call, wanted)
    created: dict[str, Any] = {}
    not_created: dict[str, Any] = {}
    for creation_id, obj in emails.items():
        try:
            if not isinstance(obj, dict):
                raise invalid_properties("", "an EmailImport object is required")
            unknown = set(obj) - {"blobId", "mailboxIds", "keywords", "receivedAt"}
            if unknown:
                raise invalid_properties(sorted(unknown)[0], "unknown property")
            if not isinstance(obj.get("blobId"), str):
                raise invalid_properties("blobId", "is required")
            data = blobs.get(obj["blobId"])
            if data is None:
                raise SetError("blobNotFound", "no such blob", notFound=[obj["blobId"]])
            if b"\n" not in data[:65536] or b":" not in data.split(b"\n", 1)[0]:
                raise SetError("invalidEmail", "the blob is not an RFC 5322 message")
            created[creation_id] = await _file(call, data, obj, boxes)
            call.created[creation_id] = created[creation_id]["id"]
        except SetError as error:
            not_created[creation_id] = error.response()
    return {"accountId": call.account_id, "oldState": old_state,
            "newState": await email_state(call), "created": created or None,
            "notCreated": not_created or None}


async def copy_emails(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """Email/copy (RFC 8621 §4.7, RFC 8620 §5.4) copies between two accounts; a user here
    has exactly one, so there is never another account to copy from."""
    from_account = argument(args, "fromAccountId", str)
    account_of(call, args)
    argument(args, "create", dict)
    if from_account != call.account_id:
        raise MethodError("fromAccountNotFound", "fromAccountId: no such account")
    raise invalid_arguments("fromAccountId", "must differ from accountId (RFC 8620 §5.4); "
                                             "to file an email in another mailbox of this "
                                             "account use Email/set mailboxIds")


METHODS = {"Email/set": Method(MAIL, set_emails), "Email/import": Method(MAIL, import_emails),
           "Email/copy": Method(MAIL, copy_emails)}
