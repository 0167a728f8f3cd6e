# -*- test-case-name: tests.test_imap_qresync -*-
"""QRESYNC (RFC 7162 §3.2): which UIDs have vanished since a MODSEQ, and the SELECT parameter.

Expunge is a soft delete here (DESIGN.md §3): an expunged row keeps its UID, gets
``deleted_at`` and a new MODSEQ (store.messages.expunge, MOVE included), so "expunged since
MODSEQ m" is an indexed query.  Two things remove a UID without such a trace: the purge, which
deletes rows expunged more than ``maintenance.EXPUNGE_RETENTION`` ago, and RENAME INBOX, which
moves the messages to the new mailbox.  UIDs are allocated one by one from 1 (UIDNEXT), so a
UID below UIDNEXT without a row at all left by one of those two ways, at a MODSEQ nobody knows.
Those UIDs are reported too: RFC 7162 §3.2.5.2 lets a server that cannot tell when a message
went answer with every UID of the known set that is no longer in the mailbox, and a client
ignores UIDs it never had.  When no UID is missing (the usual case) the answer is exact.

The ranges are worked out on (low, high) pairs, never UID by UID, so a mailbox whose UIDs run
into the millions costs what its rows cost.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from mailgosend.imap.errors import bad
from mailgosend.imap.seqset import SequenceSet
from mailgosend.imap.tokens import Atom, Token, as_number
from mailgosend.mail.sync import Vanished

__all__ = ["QresyncParams", "fetch_modifiers", "format_ranges", "parse_qresync",
           "resync_lines", "select_params", "vanished_earlier", "vanished_ranges"]

Range = tuple[int, int]


@dataclass(frozen=True)
class QresyncParams:
    """``SELECT name (QRESYNC (uidvalidity modseq [known-uids [seq-match]]))``, §3.2.5."""

    uidvalidity: int
    modseq: int
    known_uids: Optional[SequenceSet]


def parse_qresync(tokens: Sequence[Token]) -> QresyncParams:
    """The list after QRESYNC; BAD for anything RFC 7162 §4 does not allow."""
    if not 2 <= len(tokens) <= 4:
        raise bad("QRESYNC takes (uidvalidity modseq [known-uids [seq-match-data]])")
    uidvalidity = as_number(tokens[0], "UIDVALIDITY")
    modseq = as_number(tokens[1], "mod-sequence")
    if uidvalidity == 0 or modseq == 0:
        raise bad("QRESYNC UIDVALIDITY and mod-sequence must be non-zero")
    known = None
    rest = list(tokens[2:])
    if rest and isinstance(rest[0], Atom):
        known = SequenceSet.parse(str(rest.pop(0)))
        if known.saved:
            raise bad("QRESYNC known-uids cannot be $")
    if rest:  # seq-match-data: validated; the expunge trace makes it unnecessary
        match = rest.pop(0)
        if not (isinstance(match, list) and len(match) == 2
                and all(isinstance(t, Atom) for t in match)):
            raise bad("QRESYNC seq-match-data is (known-sequence-set known-uid-set)")
        for text in match:
            SequenceSet.parse(str(text))
    if rest:
        raise bad("QRESYNC takes (uidvalidity modseq [known-uids [seq-match-data]])")
    return QresyncParams(uidvalidity, modseq, known)


def _merge(ranges: list[Range]) -> list[Range]:
    merged: list[Range] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            if high > merged[-1][1]:
                merged[-1] = (merged[-1][0], high)
        else:
            merged.append((low, high))
    return merged


def vanished_ranges(found: Vanished, uidnext: int, known: Optional[SequenceSet],
                    live: Optional[Sequence[int]] = None) -> list[Range]:
    """UID ranges for ``VANISHED (EARLIER)``: the expunged rows, plus the UIDs below UIDNEXT
    with no row (when ``found.present`` says there are some), within ``known`` if given.
    ``live`` (ascending), if given, are UIDs the session shows as present: never reported."""
    ranges = [(u, u) for u in found.expunged]
    if found.present is not None:
        previous = 0
        for uid in found.present:
            if uid > previous + 1:
                ranges.append((previous + 1, uid - 1))
            previous = max(previous, uid)
        if previous < uidnext - 1:
            ranges.append((previous + 1, uidnext - 1))
    result = _merge(ranges)
    if known is not None:
        largest = max(uidnext - 1, 1)
        wanted = _merge([tuple(sorted((largest if a is None else a,  # type: ignore[misc]
                                       largest if b is None else b)))
                         for a, b in known.ranges])
        result = _intersect(result, wanted)
    if live:
        result = _subtract(result, live)
    return result


def _intersect(left: list[Range], right: list[Range]) -> list[Range]:
    out: list[Range] = []
    i = j = 0
    while i < len(left) and j < len(right):
        low, high = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if low <= high:
            out.append((low, high))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


def _subtract(ranges: list[Range], uids: Sequence[int]) -> list[Range]:
    """``ranges`` without the (ascending) ``uids``."""
    out: list[Range] = []
    for low, high in ranges:
        start = bisect.bisect_left(uids, low)
        stop = bisect.bisect_right(uids, high)
        for uid in uids[start:stop]:
            if uid > low:
                out.append((low, uid - 1))
            low = uid + 1
        if low <= high:
            out.append((low, high))
    return out


def format_ranges(ranges: Sequence[Range]) -> bytes:
    """(1, 1), (3, 7) -> b"1,3:7"."""
    return b",".join(b"%d" % low if low == high else b"%d:%d" % (low, high)
                     for low, high in ranges)


def select_params(params: Sequence[Token], enabled: bool) -> tuple[bool, Optional[QresyncParams]]:
    """SELECT/EXAMINE parameters: (CONDSTORE given, QRESYNC parameters or None)."""
    condstore, qresync = False, None
    items = list(params)
    while items:
        name = items.pop(0)
        upper = name.upper() if isinstance(name, Atom) else ""
        if upper == "CONDSTORE" and not condstore:  # RFC 7162 §3.1.8
            condstore = True
        elif upper == "QRESYNC" and qresync is None and items and isinstance(items[0], list):
            if not enabled:  # RFC 7162 §3.2.5: BAD unless ENABLE QRESYNC came first
                raise bad("QRESYNC must be enabled first (ENABLE QRESYNC)")
            values = items.pop(0)
            assert isinstance(values, list)  # checked above
            qresync = parse_qresync(values)
        else:
            raise bad("SELECT parameters are CONDSTORE and QRESYNC (...)")
    return condstore, qresync


def fetch_modifiers(tokens: Sequence[Token], uid: bool, enabled: bool
                    ) -> tuple[Optional[int], bool]:
    """FETCH modifiers ``(CHANGEDSINCE n [VANISHED])``: (CHANGEDSINCE value, VANISHED)."""
    changed_since, vanished = None, False
    items = list(tokens)
    while items:
        name = items.pop(0)
        upper = name.upper() if isinstance(name, Atom) else ""
        if upper == "CHANGEDSINCE" and changed_since is None and items:
            changed_since = as_number(items.pop(0), "CHANGEDSINCE")
        elif upper == "VANISHED" and not vanished:
            vanished = True
        else:
            raise bad("FETCH modifiers are CHANGEDSINCE mod-sequence and VANISHED")
    if changed_since is None:
        raise bad("Expected (CHANGEDSINCE mod-sequence)")
    if vanished and not (uid and enabled):  # RFC 7162 §3.2.6
        raise bad("VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC")
    return changed_since, vanished


async def resync_lines(view: Any, params: QresyncParams) -> list[bytes]:
    """What SELECT (QRESYNC ...) adds after the usual responses (RFC 7162 §3.2.5.2): VANISHED
    (EARLIER) for what left since the client's MODSEQ, then FETCH FLAGS/MODSEQ of what
    changed, within the known UIDs if given; nothing if UIDVALIDITY changed."""
    if params.uidvalidity != view.box.uidvalidity:
        return []
    lines = []
    early = await vanished_earlier(view, params.modseq, params.known_uids)
    if early is not None:
        lines.append(early)
    rows, largest = view.rows, view.uids[-1] if view.uids else 0
    known = params.known_uids
    lines += [view.fetch_flags_line(uid) for uid in view.uids
              if rows[uid].modseq > params.modseq
              and (known is None or known.contains(uid, largest))]
    return lines


async def vanished_earlier(view: Any, since: int, known: Optional[SequenceSet]
                           ) -> Optional[bytes]:
    """``VANISHED (EARLIER) uids`` for the view's mailbox since MODSEQ ``since`` (or None):
    UIDs the view still shows are left to the ordinary announcements."""
    box = view.box
    found = await view.mail.vanished(box.id, since, box.uidnext)
    ranges = vanished_ranges(found, box.uidnext, known, live=view.uids)
    return b"VANISHED (EARLIER) " + format_ranges(ranges) if ranges else None
