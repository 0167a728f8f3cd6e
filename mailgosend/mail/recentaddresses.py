# -*- test-case-name: tests.test_webmail_contacts -*-
"""Addresses the user has used before, for compose autocomplete (issue #15 item 7): the
recipients (To, Cc, Bcc) of their Sent mail and the senders of mail they read ($seen),
most recent first, outside Junk and Trash.

The source is exact and cheap without a table of its own: the newest ``LIMIT`` such messages
come from the in-memory query index (mail/query.py: no decryption), and their envelopes
(decrypted structures, one database job) are read only when the account's state moved since
the last time; otherwise the addresses found then are reused.  Nothing is stored, so there is
nothing to migrate, to seal or to forget when a message is deleted.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from mailgosend.mail.addresses import MISSING_HOST, parse_address_list
from mailgosend.mail.sortkeys import decode_words

__all__ = ["RecentAddresses", "LIMIT"]

LIMIT = 300          # messages looked at
KEEP = 500           # addresses kept per user
CACHED_USERS = 200
_SORT = [("receivedAt", False, "i;unicode-casemap", None)]


def _addresses(raw: Any) -> list[tuple[str, str]]:
    if not raw:
        return []
    out = []
    for name, _adl, local, host in parse_address_list(str(raw)):
        if local is None or host is None or host == MISSING_HOST:
            continue   # group markers, broken addresses
        out.append((decode_words(name or "").strip().strip('"'), f"{local}@{host}"))
    return out


class RecentAddresses:
    """One per process; ``addresses(mail)`` is a user's list: (name, address)."""

    def __init__(self) -> None:
        self._cache: OrderedDict[int, tuple[str, list[tuple[str, str]]]] = OrderedDict()

    async def addresses(self, mail: Any) -> list[tuple[str, str]]:
        user = mail.user
        boxes, _subscribed = await mail.mailboxes_and_subscriptions()
        sent = sorted(b.id for b in boxes if b.role == "sent")
        skip = sorted(b.id for b in boxes if b.role in ("junk", "trash"))
        used: Any = ("or", [("mailbox", i) for i in sent] + [("keyword", "$seen")])
        tree = ("and", [used, ("not", [("mailbox", i) for i in skip])]) if skip else used
        result = await mail.query_emails(tree, _SORT, False, 0, None, 0, LIMIT,
                                         ("recent-addresses", tuple(sent), tuple(skip)))
        cached = self._cache.pop(user.id, None)
        if cached is not None and cached[0] == result.state:
            self._cache[user.id] = cached
            return cached[1]
        records = await mail.email_records(result.ids)
        own = user.email.lower()
        seen: set[str] = set()
        found: list[tuple[str, str]] = []
        for number in result.ids:
            record = records.get(number)
            envelope = getattr(getattr(record, "info", None), "envelope", None)
            if envelope is None:
                continue
            if record.row.mailbox_id in sent:
                people = (_addresses(envelope.to) + _addresses(envelope.cc)
                          + _addresses(envelope.bcc))
            else:
                people = _addresses(envelope.from_)
            for name, address in people:
                key = address.lower()
                if key == own or key in seen:
                    continue
                seen.add(key)
                found.append((name, address))
        found = found[:KEEP]
        self._cache[user.id] = (result.state, found)
        while len(self._cache) > CACHED_USERS:
            self._cache.popitem(last=False)
        return found
