# -*- test-case-name: tests.test_jmap_query -*-
"""Email/query, Email/queryChanges (RFC 8621 §4.4-4.5, RFC 8620 §5.5-5.6) and
SearchSnippet/get (RFC 8621 §5).

This module reads and checks the arguments and shapes the answers; the work is done from the
per-user index in mail/query.py (windows of a cached sorted result, never a sort of the
mailbox per call) and the search index (mail/searchtext.py, with the text semantics it
documents: word prefixes, quoted phrases, every term present).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Optional

from mailgosend.jmap.errors import MethodError, invalid_arguments
from mailgosend.jmap.ids import format_id, parse_id
from mailgosend.jmap.methods import MAIL, Call, Method, account_of, argument
from mailgosend.mail.query import (SORT_PROPERTIES, CannotCalculateChanges, Node, Sort,
                                   UnknownState)
from mailgosend.mail.searchtext import Term, parse_terms

__all__ = ["METHODS", "MAX_LIMIT", "parse_filter", "parse_sort"]

MAX_LIMIT = 1000  # ids in one window; a larger (or no) limit is cut to this and said so
MAX_FILTER_DEPTH = 16
COLLATIONS = ("i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap")
DEFAULT_COLLATION = "i;unicode-casemap"
_TEXT_FIELDS = {"text": ("subject", "from", "to", "cc", "bcc", "body"),
                "from": ("from",), "to": ("to",), "cc": ("cc",), "bcc": ("bcc",),
                "subject": ("subject",), "body": ("body",)}
_CONDITIONS = frozenset(("inMailbox", "inMailboxOtherThan", "before", "after", "minSize",
                         "maxSize", "allInThreadHaveKeyword", "someInThreadHaveKeyword",
                         "noneInThreadHaveKeyword", "hasKeyword", "notKeyword",
                         "hasAttachment", "header", *_TEXT_FIELDS))
_KEYWORD_CONDITIONS = {"hasKeyword": "keyword", "notKeyword": "no_keyword",
                       "allInThreadHaveKeyword": "thread_all",
                       "someInThreadHaveKeyword": "thread_some",
                       "noneInThreadHaveKeyword": "thread_none"}
# RFC 8620 §1.4 UTCDate (fractions of a second allowed), upper case T and Z.
_UTC_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z\Z")
# RFC 8621 §4.1.1: a keyword is 1-255 of %x21-%x7e except ( ) { ] % * " \
_KEYWORD = re.compile("[" + re.escape("".join(
    chr(c) for c in range(0x21, 0x7F) if chr(c) not in '(){]%*"\\')) + "]{1,255}\\Z")
_MUTABLE = frozenset(("keyword", "no_keyword", "thread_all", "thread_some", "thread_none",
                      "mailbox", "mailbox_other"))


def _keyword(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _KEYWORD.match(value):
        raise invalid_arguments(f"filter/{name}", "must be a keyword (RFC 8621 §4.1.1)")
    return value.lower()


def _utc_date(name: str, value: Any) -> float:
    match = _UTC_DATE.match(value) if isinstance(value, str) else None
    if match is None:
        raise invalid_arguments(f"filter/{name}", "must be a UTCDate such as "
                                "2026-01-31T12:00:00Z")
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        raise invalid_arguments(f"filter/{name}", "is not a valid date") from None
    return moment.timestamp() + (float(match.group(7)) if match.group(7) else 0.0)


def _unsigned(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise invalid_arguments(f"filter/{name}", "must be an unsigned integer")
    return value


def _condition(cond: dict[str, Any]) -> Node:
    unknown = sorted(set(cond) - _CONDITIONS)
    if unknown:
        raise MethodError("unsupportedFilter", f"filter: unknown condition {unknown[0]}")
    nodes: list[Node] = []
    for name, value in sorted(cond.items()):
        if name == "inMailbox":
            box = parse_id("B", value)
            if not isinstance(value, str):
                raise invalid_arguments("filter/inMailbox", "must be a Mailbox id")
            nodes.append(("mailbox", box) if box is not None else ("none",))
        elif name == "inMailboxOtherThan":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise invalid_arguments("filter/inMailboxOtherThan", "must be a list of ids")
            nodes.append(("mailbox_other",
                          frozenset(b for b in (parse_id("B", v) for v in value)
                                    if b is not None)))
        elif name in ("before", "after"):
            nodes.append((name, _utc_date(name, value)))
        elif name == "minSize":
            nodes.append(("min_size", _unsigned(name, value)))
        elif name == "maxSize":
            nodes.append(("max_size", _unsigned(name, value)))
        elif name in _KEYWORD_CONDITIONS:
            nodes.append((_KEYWORD_CONDITIONS[name], _keyword(name, value)))
        elif name == "hasAttachment":
            if not isinstance(value, bool):
                raise invalid_arguments("filter/hasAttachment", "must be a boolean")
            nodes.append(("attachment", value))
        elif name == "header":
            if (not isinstance(value, list) or not 1 <= len(value) <= 2
                    or not all(isinstance(v, str) for v in value) or not value[0]):
                raise invalid_arguments("filter/header",
                                        "must be [name] or [name, text], both strings")
            text = value[1].casefold() if len(value) == 2 else None
            nodes.append(("header", value[0].lower(), text))
        else:  # a text condition
            if not isinstance(value, str):
                raise invalid_arguments(f"filter/{name}", "must be a string")
            nodes.append(("text", _TEXT_FIELDS[name], parse_terms(value)))
    return ("and", nodes)


def parse_filter(value: Any, depth: int = 0) -> Optional[Node]:
    """A FilterOperator/FilterCondition (RFC 8620 §5.5) as a mail/query.py tree."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_arguments("filter", "must be a FilterOperator or FilterCondition")
    if depth > MAX_FILTER_DEPTH:
        raise invalid_arguments("filter", f"nested more than {MAX_FILTER_DEPTH} deep")
    if "operator" in value:
        operator, conditions = value.get("operator"), value.get("conditions")
        if set(value) - {"operator", "conditions"}:
            raise invalid_arguments("filter", "a FilterOperator has only operator and "
                                    "conditions")
        if operator not in ("AND", "OR", "NOT"):
            raise invalid_arguments("filter/operator", "must be AND, OR or NOT")
        if not isinstance(conditions, list) or not conditions:
            raise invalid_arguments("filter/conditions", "must be a non-empty list")
        children = [parse_filter(c, depth + 1) for c in conditions]
        if any(c is None for c in children):
            raise invalid_arguments("filter/conditions", "must not contain null")
        return (operator.lower(), children)
    return _condition(value)


def parse_sort(value: Any) -> list[Sort]:
    """Comparators (RFC 8620 §5.5, RFC 8621 §4.4.2); none means newest first."""
    if value is None:
        return [("receivedAt", False, DEFAULT_COLLATION, None)]
    if not isinstance(value, list):
        raise invalid_arguments("sort", "must be a list of Comparators")
    sorts: list[Sort] = []
    for n, comparator in enumerate(value):
        where = f"sort/{n}"
        if not isinstance(comparator, dict):
            raise invalid_arguments(where, "must be a Comparator object")
        prop = comparator.get("property")
        if not isinstance(prop, str):
            raise invalid_arguments(f"{where}/property", "must be a string")
        if prop not in SORT_PROPERTIES:
            raise MethodError("unsupportedSort", f"{where}/property: cannot sort by {prop}")
        ascending = comparator.get("isAscending", True)
        if not isinstance(ascending, bool):
            raise invalid_arguments(f"{where}/isAscending", "must be a boolean")
        collation = comparator.get("collation", DEFAULT_COLLATION)
        if collation not in COLLATIONS:
            raise MethodError("unsupportedSort", f"{where}/collation: unknown {collation!r}")
        keyword = None
        if prop in ("hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword"):
            keyword = _keyword(f"{where}/keyword", comparator.get("keyword"))
        sorts.append((prop, ascending, collation, keyword))
    return sorts


def _immutable(node: Optional[Node], sorts: list[Sort]) -> bool:
    """Filter and sort only on what never changes for an email (RFC 8620 §5.6 upToId)."""
    def fixed(n: Optional[Node]) -> bool:
        if n is None:
            return True
        if n[0] in ("and", "or", "not"):
            return all(fixed(c) for c in n[1])
        return n[0] not in _MUTABLE
    return fixed(node) and all(prop in ("receivedAt", "size", "from", "to", "subject",
                                        "sentAt") for prop, _, _, _ in sorts)


def _common(call: Call, args: dict[str, Any]) -> tuple[Optional[Node], list[Sort], bool, Any]:
    account_of(call, args)
    tree = parse_filter(args.get("filter"))
    sorts = parse_sort(args.get("sort"))
    collapse = argument(args, "collapseThreads", bool, False)
    cache_key = json.dumps([args.get("filter"), sorts, collapse], sort_keys=True)
    return tree, sorts, collapse, cache_key


def _email_id(value: Any, name: str) -> Optional[int]:
    if not isinstance(value, str):
        raise invalid_arguments(name, "must be an Email id")
    return parse_id("M", value)


async def email_query(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """Email/query (RFC 8621 §4.4, RFC 8620 §5.5)."""
    tree, sorts, collapse, cache_key = _common(call, args)
    position = argument(args, "position", int, 0)
    anchor_arg = argument(args, "anchor", str, None)
    anchor_offset = argument(args, "anchorOffset", int, 0)
    limit = argument(args, "limit", int, None)
    total_wanted = argument(args, "calculateTotal", bool, False)
    if limit is not None and limit < 0:
        raise invalid_arguments("limit", "must not be negative")
    capped = limit is None or limit > MAX_LIMIT
    window = MAX_LIMIT if capped else limit
    anchor: Optional[int] = None
    if anchor_arg is not None:
        anchor = _email_id(anchor_arg, "anchor")
        if anchor is None:
            raise MethodError("anchorNotFound", "anchor: not in the results")
    try:
        result = await call.mail.query_emails(tree, sorts, collapse, position, anchor,
                                              anchor_offset, window, cache_key)
    except KeyError:
        raise MethodError("anchorNotFound", "anchor: not in the results") from None
    response: dict[str, Any] = {
        "accountId": call.account_id, "queryState": result.state,
        "canCalculateChanges": True, "position": result.position,
        "ids": [format_id("M", i) for i in result.ids]}
    if total_wanted:
        response["total"] = result.total
    if capped:
        response["limit"] = MAX_LIMIT
    return response


async def email_query_changes(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """Email/queryChanges (RFC 8621 §4.5, RFC 8620 §5.6)."""
    tree, sorts, collapse, cache_key = _common(call, args)
    since = argument(args, "sinceQueryState", str)
    max_changes = argument(args, "maxChanges", int, None)
    if max_changes is not None and max_changes < 1:
        raise invalid_arguments("maxChanges", "must be a positive integer")
    up_to_arg = argument(args, "upToId", str, None)
    up_to = _email_id(up_to_arg, "upToId") if up_to_arg is not None else None
    total_wanted = argument(args, "calculateTotal", bool, False)
    try:
        changes = await call.mail.query_changes(since, tree, sorts, collapse, up_to,
                                                _immutable(tree, sorts), cache_key)
    except UnknownState:
        raise MethodError("cannotCalculateChanges",
                          "sinceQueryState: not a state of this query") from None
    except CannotCalculateChanges as why:
        raise MethodError("cannotCalculateChanges", f"sinceQueryState: {why}") from None
    if max_changes is not None and len(changes.removed) + len(changes.added) > max_changes:
        raise MethodError("tooManyChanges", f"maxChanges: more than {max_changes} changes")
    response: dict[str, Any] = {
        "accountId": call.account_id, "oldQueryState": since,
        "newQueryState": changes.new_state,
        "removed": [format_id("M", i) for i in changes.removed],
        "added": [{"id": format_id("M", i), "index": n} for i, n in changes.added]}
    if total_wanted:
        response["total"] = changes.total
    return response


def _terms(node: Optional[Node], fields: tuple[str, ...], negated: bool = False) -> list[Term]:
    """The terms of the text conditions that look in ``fields`` (not under NOT)."""
    if node is None:
        return []
    if node[0] in ("and", "or", "not"):
        return [t for child in node[1]
                for t in _terms(child, fields, negated or node[0] == "not")]
    if node[0] == "text" and not negated and set(node[1]) & set(fields):
        return list(node[2])
    return []


async def search_snippet_get(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """SearchSnippet/get (RFC 8621 §5): subject and preview, HTML-escaped, the matching
    words in <mark>; null when nothing of the filter's text occurs there."""
    account_of(call, args)
    tree = parse_filter(args.get("filter"))
    raw_ids = argument(args, "emailIds", list)
    if len(raw_ids) > call.limits.max_objects_in_get:
        raise MethodError("requestTooLarge",
                          f"emailIds: more than {call.limits.max_objects_in_get}")
    wanted: dict[int, str] = {}
    for value in raw_ids:
        number = _email_id(value, "emailIds")
        if number is not None:
            wanted.setdefault(number, value)
    snippets, missing = await call.mail.search_snippets(
        list(wanted), _terms(tree, ("subject",)), _terms(tree, ("body",)))
    gone = {wanted[i] for i in missing}
    not_found = [value for value in raw_ids
                 if parse_id("M", value) is None or value in gone]
    return {"accountId": call.account_id,
            "list": [{"emailId": wanted[s.email_id], "subject": s.subject,
                      "preview": s.preview} for s in snippets],
            "notFound": not_found or None}


METHODS: dict[str, Method] = {
    "Email/query": Method(MAIL, email_query),
    "Email/queryChanges": Method(MAIL, email_query_changes),
    "SearchSnippet/get": Method(MAIL, search_snippet_get),
}
