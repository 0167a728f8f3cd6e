"""Sequence sets (RFC 3501 §9 sequence-set) and their compact form for UIDPLUS responses.

``*`` is the largest number in use; ``a:b`` is the same range as ``b:a``.  With message
sequence numbers, a number beyond the mailbox (or ``*`` in an empty mailbox) is an error
(§6.4.8: "The server should respond with a tagged BAD").  With UIDs, numbers name nothing when
they are not in use, and ``n:*`` always includes the largest UID (§6.4.8 note).  ``$`` is the
saved search result (RFC 5182): a set marked ``saved`` whose numbers the session fills in.
"""

from __future__ import annotations

import bisect
from typing import Iterable, Optional, Sequence

from mailgosend.imap.errors import bad

__all__ = ["SequenceSet", "compress"]

_MAX = 2**32 - 1


class SequenceSet:
    """A parsed sequence set; ``None`` in a range stands for ``*``."""

    def __init__(self, ranges: list[tuple[Optional[int], Optional[int]]],
                 saved: bool = False) -> None:
        self.ranges = ranges
        self.saved = saved  # "$" (RFC 5182 §2.1)

    @classmethod
    def parse(cls, text: str) -> SequenceSet:
        ranges: list[tuple[Optional[int], Optional[int]]] = []
        if not text:
            raise bad("Empty sequence set")
        if text == "$":  # RFC 5182 §4: "$" stands alone, never inside a list
            return cls([], saved=True)
        for item in text.split(","):
            pieces = item.split(":")
            if len(pieces) > 2:
                raise bad(f"Invalid sequence set {text[:40]!r}")
            bounds = [cls._number(p, text) for p in pieces]
            ranges.append((bounds[0], bounds[-1]))
        return cls(ranges)

    @staticmethod
    def _number(piece: str, text: str) -> Optional[int]:
        if piece == "*":
            return None
        if not piece.isdigit() or not piece.isascii() or len(piece) > 10:
            raise bad(f"Invalid sequence set {text[:40]!r}")
        value = int(piece)
        if not 1 <= value <= _MAX:
            raise bad(f"Invalid sequence set {text[:40]!r}")
        return value

    def uses_star(self) -> bool:
        return any(a is None or b is None for a, b in self.ranges)

    def sequence_numbers(self, count: int) -> list[int]:
        """Sequence numbers in ascending order; BAD for numbers beyond ``count``."""
        if count == 0:
            raise bad("No messages in the mailbox; invalid message sequence number")
        chosen: set[int] = set()
        for a, b in self.ranges:
            low, high = sorted((count if a is None else a, count if b is None else b))
            if high > count:
                raise bad("Invalid message sequence number (beyond the last message)")
            chosen.update(range(low, high + 1))
        return sorted(chosen)

    def uids(self, known: Sequence[int]) -> list[int]:
        """The UIDs of ``known`` (ascending) that the set names."""
        if not known:
            return []
        largest = known[-1]
        chosen: set[int] = set()
        for a, b in self.ranges:
            low, high = sorted((largest if a is None else a, largest if b is None else b))
            start = bisect.bisect_left(known, low)
            stop = bisect.bisect_right(known, high)
            chosen.update(known[start:stop])
        return sorted(chosen)

    def uid_positions(self, known: Sequence[int]) -> list[int]:
        """Indices into ``known`` (ascending UIDs) of the UIDs the set names, ascending: the
        sequence number of each is its index + 1, with no per-UID search."""
        if not known:
            return []
        largest = known[-1]
        spans = []
        for a, b in self.ranges:
            low, high = sorted((largest if a is None else a, largest if b is None else b))
            spans.append((bisect.bisect_left(known, low), bisect.bisect_right(known, high)))
        if len(spans) == 1:
            return list(range(*spans[0]))
        chosen: set[int] = set()
        for start, stop in spans:
            chosen.update(range(start, stop))
        return sorted(chosen)

    def contains(self, value: int, largest: int) -> bool:
        """Whether ``value`` is in the set when ``*`` is ``largest`` (SEARCH keys)."""
        for a, b in self.ranges:
            low, high = sorted((largest if a is None else a, largest if b is None else b))
            if low <= value <= high:
                return True
        return False


def compress(numbers: Iterable[int]) -> str:
    """"1,2,3,7,9,10" -> "1:3,7,9:10"; order kept (COPYUID pairs source and destination)."""
    parts: list[str] = []
    run_start = previous = None
    for n in numbers:
        if previous is not None and n == previous + 1:
            previous = n
            continue
        if run_start is not None:
            parts.append(str(run_start) if run_start == previous else f"{run_start}:{previous}")
        run_start = previous = n
    if run_start is not None:
        parts.append(str(run_start) if run_start == previous else f"{run_start}:{previous}")
    return ",".join(parts)
