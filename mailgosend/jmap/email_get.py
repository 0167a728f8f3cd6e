# -*- test-case-name: tests.test_jmap_email_get -*-
"""Email/get (RFC 8621 §4.2): every property of §4.1.

The list properties (id, blobId, threadId, mailboxIds, keywords, size, receivedAt, the
header convenience properties, preview, hasAttachment) come from the message row and its
sealed structure, which keeps the top-level header block: no message body is read, and the
whole call is ONE database job (``UserMail.emails``).  bodyStructure, textBody, htmlBody,
attachments and bodyValues need the parts' bytes: the job then also reads each message.

A message's content never changes under its Email id (a move keeps the id, a copy gets a
new one), so the properties made from it (the header ones, preview, hasAttachment) are kept
per (user, Email id) in the service's ``list_cache``; the others come from the row.  When the
user's query index is loaded (a JMAP client queries before it gets), the rows come from it
too: a list window of cached Emails then reads no table and decrypts nothing.
"""

from __future__ import annotations

from typing import Any, Optional

from mailgosend.jmap import parts as jparts
from mailgosend.jmap.errors import MethodError, invalid_arguments
from mailgosend.jmap.headers import HeaderProperty, fields, utc_date
from mailgosend.jmap.ids import format_id, message_blob_id, parse_id
from mailgosend.jmap.keywords import flags_to_keywords
from mailgosend.jmap.state import account_state
from mailgosend.jmap.methods import MAIL, Call, Method, account_of, argument, resolve_id
from mailgosend.mail.emails import EmailRecord

__all__ = ["METHODS", "DEFAULT_PROPERTIES", "EMAIL_PROPERTIES", "email_state", "get_emails"]

DEFAULT_PROPERTIES = (
    "id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId",
    "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject",
    "sentAt", "hasAttachment", "preview", "bodyValues", "textBody", "htmlBody", "attachments")
# RFC 8621 §4.1.3: the convenience properties and the header form they are.
CONVENIENCE = {
    "messageId": "header:Message-ID:asMessageIds",
    "inReplyTo": "header:In-Reply-To:asMessageIds",
    "references": "header:References:asMessageIds",
    "sender": "header:Sender:asAddresses", "from": "header:From:asAddresses",
    "to": "header:To:asAddresses", "cc": "header:Cc:asAddresses",
    "bcc": "header:Bcc:asAddresses", "replyTo": "header:Reply-To:asAddresses",
    "subject": "header:Subject:asText", "sentAt": "header:Date:asDate",
}
_CONVENIENT = {prop: HeaderProperty.of(form) for prop, form in CONVENIENCE.items()}
_BODY = frozenset({"bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments"})
# What comes from the row (and the Email id): everything else is made from the content.
_ROW = frozenset({"id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt"})
EMAIL_PROPERTIES = frozenset(DEFAULT_PROPERTIES) | _BODY | {"headers"}


async def email_state(call: Call) -> str:
    """The Email state string (RFC 8620 §5.1): the account's (jmap/state.py)."""
    return await account_state(call.mail)


def _properties(args: dict[str, Any], name: str, known: frozenset[str],
                default: tuple[str, ...]) -> tuple[list[str], list[HeaderProperty]]:
    """The asked properties, split into plain ones and ``header:`` ones; invalidArguments
    naming the first unknown one."""
    value = argument(args, name, list, None)
    if value is None:
        return list(default), []
    plain: list[str] = []
    headers: list[HeaderProperty] = []
    for prop in value:
        if not isinstance(prop, str):
            raise invalid_arguments(name, "must be a list of strings")
        if prop in known:
            plain.append(prop)
            continue
        header = HeaderProperty.of(prop)
        if header is None:
            raise invalid_arguments(name, f"unknown property {prop!r}")
        headers.append(header)
    return list(dict.fromkeys(plain)), headers


async def get_emails(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    account_of(call, args)
    ids = argument(args, "ids", list, None)
    if ids is None:  # RFC 8620 §5.1: "all" is not offered for Email (use Email/query)
        raise MethodError("requestTooLarge", "ids: null would mean every email; use "
                                             "Email/query and give ids")
    if len(ids) > call.limits.max_objects_in_get:
        raise MethodError("requestTooLarge", f"ids: more than "
                                             f"{call.limits.max_objects_in_get} ids")
    if not all(isinstance(i, str) for i in ids):
        raise invalid_arguments("ids", "must be a list of ids (strings)")
    props, header_props = _properties(args, "properties", EMAIL_PROPERTIES, DEFAULT_PROPERTIES)
    body_props, body_headers = _properties(args, "bodyProperties", jparts.BODY_PROPERTIES,
                                           jparts.DEFAULT_BODY_PROPERTIES)
    fetch_text = argument(args, "fetchTextBodyValues", bool, False)
    fetch_html = argument(args, "fetchHTMLBodyValues", bool, False)
    fetch_all = argument(args, "fetchAllBodyValues", bool, False)
    max_bytes = argument(args, "maxBodyValueBytes", int, 0)
    if max_bytes < 0:
        raise invalid_arguments("maxBodyValueBytes", "must not be negative")
    if "id" not in props:
        props.insert(0, "id")
    wanted: dict[str, Optional[int]] = {}
    for given in dict.fromkeys(ids):
        real = resolve_id(call, given)
        wanted[given] = parse_id("M", real) if real is not None else None
    numbers = [n for n in wanted.values() if n is not None]
    need_body = bool(_BODY.intersection(props))
    options = dict(fetch_text=fetch_text, fetch_html=fetch_html, fetch_all=fetch_all,
                   max_bytes=max_bytes)
    rendered: dict[int, dict[str, Any]] = {}
    if numbers and not need_body and "headers" not in props:
        rendered, absent = await _from_cache(call, numbers, props, header_props)
        numbers = [n for n in numbers if n not in rendered and n not in absent]
    records = await call.mail.email_records(numbers, raw=need_body) if numbers else {}
    needs_headers = bool(header_props) or "headers" in props or any(p in CONVENIENCE
                                                                    for p in props)
    if needs_headers and not need_body:  # structures without their header block
        missing = [n for n, r in records.items() if r.info.header is None]
        if missing:
            records.update(await call.mail.email_records(missing, raw=True))
    cache = _list_cache(call)
    for number, record in records.items():
        rendered[number] = render(record, props, header_props, body_props, body_headers,
                                  **options)  # type: ignore[arg-type]
        if cache is not None and not need_body:
            _remember(cache, call, number, rendered[number], props, header_props)
    state = await email_state(call)
    found: list[dict[str, Any]] = []
    not_found: list[str] = []
    for given, number in wanted.items():
        email = rendered.get(number) if number is not None else None
        if email is None:
            not_found.append(given)
            continue
        found.append(email)
    return {"accountId": call.account_id, "state": state, "list": found,
            "notFound": not_found}


def _list_cache(call: Call) -> Any:
    """The service's cache of content properties (None for a mail object without one)."""
    return getattr(getattr(call.mail, "service", None), "list_cache", None)


def _content_keys(props: list[str], header_props: list[HeaderProperty]) -> list[str]:
    return [p for p in props if p not in _ROW] + [h.key for h in header_props]


def _remember(cache: Any, call: Call, number: int, email: dict[str, Any], props: list[str],
              header_props: list[HeaderProperty]) -> None:
    key = (call.mail.user.id, number, 0)
    known = dict(cache.get(key) or {})
    for name in _content_keys(props, header_props):
        known[name] = email[name]
    cache.put(key, known)


async def _from_cache(call: Call, numbers: list[int], props: list[str],
                      header_props: list[HeaderProperty]
                      ) -> tuple[dict[int, dict[str, Any]], set[int]]:
    """The Emails among ``numbers`` made from the cache and the index's rows, and those the
    index says are gone; ({}, set()) when some are not cached or the index is not loaded."""
    cache = _list_cache(call)
    if cache is None:
        return {}, set()
    user_id = call.mail.user.id
    content = _content_keys(props, header_props)
    known = {n: cache.get((user_id, n, 0)) for n in numbers}
    if any(v is None or any(k not in v for k in content) for v in known.values()):
        # some must be read anyway: one job for all of them keeps the answer at one state
        return {}, set()
    rows = await call.mail.email_rows(numbers)
    if rows is None:
        return {}, set()
    out: dict[int, dict[str, Any]] = {}
    for number, (row, thread_id) in rows.items():
        values = known[number]
        assert values is not None
        email: dict[str, Any] = {}
        for prop in props:
            email[prop] = (_row_value(prop, number, thread_id, row) if prop in _ROW
                           else values[prop])
        for header in header_props:
            email[header.key] = values[header.key]
        out[number] = email
    return out, set(numbers) - set(rows)


def _row_value(prop: str, number: int, thread_id: int, row: Any) -> Any:
    if prop == "id":
        return format_id("M", number)
    if prop == "blobId":
        return message_blob_id(number)
    if prop == "threadId":
        return format_id("T", thread_id)
    if prop == "mailboxIds":
        return {format_id("B", row.mailbox_id): True}
    if prop == "keywords":
        return flags_to_keywords(row.flags)
    if prop == "size":
        return row.size
    assert prop == "receivedAt"
    return utc_date(row.internal_date)


def _header_block(record: EmailRecord) -> bytes:
    stored = record.info.header_bytes()
    if stored is not None:
        return stored
    assert record.raw is not None
    root = record.info.root
    return record.raw[root.header_start:root.body_start]


def render(record: EmailRecord, props: list[str], header_props: list[HeaderProperty],
           body_props: list[str], body_headers: list[HeaderProperty], *,
           fetch_text: bool = False, fetch_html: bool = False, fetch_all: bool = False,
           max_bytes: int = 0) -> dict[str, Any]:
    """One Email object with the asked properties."""
    row, info, number = record.row, record.info, record.number
    out: dict[str, Any] = {}
    top_fields: Optional[list[tuple[str, str]]] = None

    def top() -> list[tuple[str, str]]:
        nonlocal top_fields
        if top_fields is None:
            top_fields = fields(_header_block(record))
        return top_fields

    classified: Optional[tuple[list[Any], list[Any], list[Any]]] = None

    def parts_lists() -> tuple[list[Any], list[Any], list[Any]]:
        nonlocal classified
        if classified is None:
            classified = jparts.classify(info.root)
        return classified

    raw = record.raw or b""
    for prop in props:
        if prop in _ROW:
            out[prop] = _row_value(prop, number, record.thread_id, row)
        elif prop in CONVENIENCE:
            header = _CONVENIENT[prop]
            assert header is not None
            out[prop] = header.value(top())
        elif prop == "headers":
            out[prop] = [{"name": n, "value": v} for n, v in top()]
        elif prop == "hasAttachment":
            out[prop] = info.has_attachments
        elif prop == "preview":
            out[prop] = info.snippet
        elif prop == "bodyStructure":
            out[prop] = jparts.body_part(number, info.root, raw,
                                         list(dict.fromkeys(body_props + ["subParts"])),
                                         body_headers)
        elif prop in ("textBody", "htmlBody", "attachments"):
            chosen = parts_lists()[("textBody", "htmlBody", "attachments").index(prop)]
            out[prop] = [jparts.body_part(number, part, raw,
                                          [p for p in body_props if p != "subParts"],
                                          body_headers) for part in chosen]
        elif prop == "bodyValues":
            out[prop] = _body_values(record, parts_lists(), fetch_text, fetch_html,
                                     fetch_all, max_bytes)
    for header in header_props:
        out[header.key] = header.value(top())
    return out


def _body_values(record: EmailRecord, lists: tuple[list[Any], list[Any], list[Any]],
                 fetch_text: bool, fetch_html: bool, fetch_all: bool,
                 max_bytes: int) -> dict[str, Any]:
    """RFC 8621 §4.2: the text/* parts of textBody, htmlBody, or the whole structure."""
    text, html, _ = lists
    chosen: list[Any] = []
    if fetch_all:
        chosen = jparts.leaves(record.info.root)
    else:
        if fetch_text:
            chosen += text
        if fetch_html:
            chosen += html
    raw = record.raw or b""
    values: dict[str, Any] = {}
    for part in chosen:
        if part.type.lower() == "text" and part.number not in values:
            values[part.number] = jparts.body_value(part, raw, max_bytes).to_json()
    return values


METHODS = {"Email/get": Method(MAIL, get_emails)}
