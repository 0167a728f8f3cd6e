# -*- test-case-name: tests.test_imap_sort -*-
"""SORT (RFC 5256 §3, RFC 5957 DISPLAYFROM/DISPLAYTO) and the data SORT and THREAD read.

No message is decrypted per request once a mailbox is known: what the sort keys need of each
message (sortkeys.OrderFields: sent time, base subject, first addresses, Message-ID,
references) is computed once from its structure and kept per mailbox in the listener's
``OrderCache`` (bounded, never stale: a message's bytes never change and (mailbox,
UIDVALIDITY, UID) is never reused).  ARRIVAL and SIZE come from the view's rows.  Messages
not in the cache yet are read a chunk of structures per query, ``JOB_SIZE`` messages per
database job so other sessions' jobs are served in between (as SEARCH does).

The sort itself is a pure function (``sort_numbers``) over plain tuples, run in a worker
thread: one stable sort per criterion, last criterion first, so ties keep sequence order
(RFC 5256 §3: "sorted in the order given by their sequence numbers").
"""

from __future__ import annotations

from typing import Any, Sequence

from mailgosend.imap.errors import bad
from mailgosend.imap.message import StoredMessage
from mailgosend.imap.search import FieldCache
from mailgosend.mail.sortkeys import OrderFields, order_fields
from mailgosend.imap.tokens import Atom, Token
from mailgosend.mail.source import MessageSource
from mailgosend.store.blobs import BlobNotFound
from mailgosend.store.messages import MessageRow

__all__ = ["Criterion", "OrderCache", "SortEntry", "load_order_job", "parse_criteria",
           "sort_numbers"]

SORT_KEYS = ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM",
             "DISPLAYTO")
PREFETCH_CHUNK = 500
JOB_SIZE = 2000

Criterion = tuple[str, bool]  # (key, reversed)
SortEntry = tuple[int, OrderFields]  # (sequence number, order fields)


class OrderCache(FieldCache[OrderFields]):
    """Order fields by (mailbox id, UIDVALIDITY) -> {UID: OrderFields} (search.FieldCache);
    about 0.6 KB a message, at most ``limit`` messages over all mailboxes (a single larger
    mailbox is kept whole)."""

    def __init__(self, limit: int = 150_000) -> None:
        super().__init__(limit)


def parse_criteria(tokens: list[Token]) -> list[Criterion]:
    """``(REVERSE DATE SUBJECT)`` -> [("DATE", True), ("SUBJECT", False)]; BAD otherwise."""
    if not tokens:
        raise bad("SORT needs at least one sort criterion")
    criteria: list[Criterion] = []
    reverse = False
    for token in tokens:
        name = token.upper() if isinstance(token, Atom) else ""
        if name == "REVERSE" and not reverse:
            reverse = True
        elif name in SORT_KEYS:
            criteria.append((name, reverse))
            reverse = False
        else:
            raise bad("Sort criteria are [REVERSE] " + ", ".join(SORT_KEYS))
    if reverse:
        raise bad("REVERSE must precede a sort key")
    return criteria


def _key(name: str) -> Any:
    if name == "DATE":  # RFC 5256 §2.2: the INTERNALDATE when the Date cannot be read
        return lambda e: e[1][10] if e[1][0] is None else e[1][0]
    index = {"SUBJECT": 1, "FROM": 3, "TO": 4, "CC": 5, "DISPLAYFROM": 6, "DISPLAYTO": 7,
             "ARRIVAL": 10, "SIZE": 11}[name]
    return lambda e: e[1][index]


def sort_numbers(entries: Sequence[SortEntry], criteria: Sequence[Criterion]) -> list[int]:
    """The sequence numbers of ``entries`` in the order the criteria give (pure)."""
    ordered = sorted(entries, key=lambda e: e[0]) if entries else []
    for name, reverse in reversed(criteria):
        ordered.sort(key=_key(name), reverse=reverse)  # stable, also when reversed
    return [e[0] for e in ordered]


def load_order_job(source: MessageSource, rows: Sequence[MessageRow], uidvalidity: int,
                   cache: OrderCache) -> dict[int, OrderFields]:
    """Database thread (``UserMail.read_messages``): the order fields of ``rows`` (one
    mailbox) by UID, also added to the cache, a chunk of structures per query; messages
    purged meanwhile are left out."""
    loaded: dict[int, OrderFields] = {}
    for start in range(0, len(rows), PREFETCH_CHUNK):
        chunk = rows[start:start + PREFETCH_CHUNK]
        source.prefetch(list(chunk))
        found: dict[int, OrderFields] = {}
        for row in chunk:
            try:
                with StoredMessage(row, source) as message:
                    found[row.uid] = order_fields(message.info, message.header_block(),
                                                  row.internal_date.timestamp(), row.size)
            except (LookupError, BlobNotFound):
                continue
        if found:
            cache.put(chunk[0].mailbox_id, uidvalidity, found)
            loaded.update(found)
    return loaded
