# -*- test-case-name: tests.test_imap_esearch -*-
"""ESEARCH (RFC 4731) result options and SEARCHRES (RFC 5182) saved results.

``SEARCH RETURN (MIN MAX ALL COUNT SAVE) ...`` answers one ``* ESEARCH (TAG "t") [UID] ...``
line instead of ``* SEARCH``; SORT uses the same options for ESORT (RFC 5267 §3).  SAVE
keeps the result in the session's view of the selected mailbox as UIDs (RFC 5182 §2.1), so
expunged messages drop out of it and a SELECT, EXAMINE, CLOSE or UNSELECT forgets it (a new
view is made); ``$`` then names it wherever a sequence set is accepted (seqset.py parses it,
``bind_saved`` fills it in for SEARCH keys, ``SelectedMailbox.resolve`` for the rest).

Pure functions over plain values, tested with tables in tests.test_imap_esearch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from mailgosend.imap.errors import bad
from mailgosend.imap.seqset import SequenceSet, compress
from mailgosend.imap.tokens import Args, Atom

__all__ = ["ResultOptions", "bind_saved", "esearch_line", "parse_return", "saved_part"]

RESULT_OPTIONS = ("MIN", "MAX", "ALL", "COUNT", "SAVE")


@dataclass(frozen=True)
class ResultOptions:
    """The RETURN options of one command; ``names`` is empty for a plain SEARCH/SORT."""

    names: frozenset[str]

    @property
    def extended(self) -> bool:
        """An ESEARCH response instead of SEARCH/SORT (RFC 4731 §3.1)."""
        return bool(self.names)

    @property
    def save(self) -> bool:
        return "SAVE" in self.names

    @property
    def answers(self) -> bool:
        """RFC 5182 §2.1: with SAVE alone the server returns no ESEARCH response."""
        return bool(self.names - {"SAVE"})


def parse_return(args: Args) -> ResultOptions:
    """``RETURN (options)`` if the next token is RETURN; ``RETURN ()`` means ALL (§3.1)."""
    first = args.peek()
    if not (isinstance(first, Atom) and first.upper() == "RETURN"):
        return ResultOptions(frozenset())
    args.next()
    options = args.parenthesized("RETURN options")
    names = set()
    for option in options:
        if not isinstance(option, Atom) or option.upper() not in RESULT_OPTIONS:
            raise bad("RETURN options are MIN, MAX, ALL, COUNT and SAVE")
        names.add(option.upper())
    return ResultOptions(frozenset(names or {"ALL"}))


def saved_part(found: Sequence[int], options: ResultOptions, ordered: bool = False
               ) -> list[int]:
    """What SAVE keeps of a result (RFC 5182 §2.4): with MIN and/or MAX but neither ALL nor
    COUNT, only those messages; otherwise all of them.  ``ordered``: ``found`` is in SORT
    order, whose first and last are MIN and MAX (RFC 5267 §3.2)."""
    if not found:
        return []
    names = options.names
    if names & {"MIN", "MAX"} and not names & {"ALL", "COUNT"}:
        low, high = (found[0], found[-1]) if ordered else (min(found), max(found))
        kept = set()
        if "MIN" in names:
            kept.add(low)
        if "MAX" in names:
            kept.add(high)
        return sorted(kept)
    return list(found)


def esearch_line(tag: bytes, uid: bool, found: Sequence[int], options: ResultOptions,
                 modseq: Optional[Callable[[Sequence[int]], int]] = None,
                 ordered: bool = False) -> bytes:
    """``ESEARCH (TAG "t") [UID] MIN a MAX b COUNT n ALL set [MODSEQ m]`` (RFC 4731 §3.1).

    ``found`` are numbers (UIDs when ``uid``); MIN, MAX and ALL are left out when nothing
    matched.  ``modseq(numbers)`` gives the highest MODSEQ of those messages when the search
    used MODSEQ: RFC 4731 §3.2 reports it over what MIN/MAX return when only they are asked
    for, else over every match.  ``ordered``: ESORT (RFC 5267 §3.2), ``found`` is in sort
    order: MIN and MAX are its first and last, ALL lists it in that order."""
    names = options.names
    line = b'ESEARCH (TAG "' + tag + b'")'
    if uid:
        line += b" UID"
    if found:
        if "MIN" in names:
            line += b" MIN %d" % (found[0] if ordered else min(found))
        if "MAX" in names:
            line += b" MAX %d" % (found[-1] if ordered else max(found))
    if "COUNT" in names:
        line += b" COUNT %d" % len(found)
    if found and "ALL" in names:
        line += b" ALL " + compress(found if ordered else sorted(found)).encode("ascii")
    if modseq is not None and found:
        if names & {"MIN", "MAX"} and not names & {"ALL", "COUNT"}:
            reported = saved_part(found, ResultOptions(names - {"SAVE"}), ordered)
        else:
            reported = list(found)
        line += b" MODSEQ %d" % modseq(reported)
    return line


def bind_saved(tree: Any, saved_uids: Sequence[int], uids: Sequence[int]) -> None:
    """Fill the ``$`` sets of a parsed SEARCH tree with the saved result (RFC 5182 §2.1):
    a ``$`` key names sequence numbers, ``UID $`` names UIDs.  ``uids`` is the view's UIDs
    in sequence order; saved messages expunged since are gone from it.  Iterative, so a
    deeply nested tree costs no recursion."""
    live = set(uids)
    kept = sorted(u for u in saved_uids if u in live)
    positions = {u: i + 1 for i, u in enumerate(uids)} if kept else {}
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            if len(node) == 2 and node[0] in ("seq", "uid") and \
                    isinstance(node[1], SequenceSet) and node[1].saved:
                numbers = kept if node[0] == "uid" else [positions[u] for u in kept]
                node[1].ranges = [(n, n) for n in numbers]
                continue
            stack.extend(node)
