# -*- test-case-name: tests.test_jmap_core -*-
"""Per-user concurrency limits (RFC 8620 §2 maxConcurrentRequests, maxConcurrentUpload):
one counter per user of what is being answered now, refused with the request-level
``limit`` error naming the limit when full."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from mailgosend.jmap.errors import RequestError

__all__ = ["Slots"]


class Slots:
    def __init__(self, limit: int, name: str, what: str) -> None:
        self.limit = limit
        self.name = name          # the capability's limit name, e.g. "maxConcurrentRequests"
        self.what = what          # "requests", "uploads"
        self.counts: dict[int, int] = {}

    @contextmanager
    def taken(self, user_id: int) -> Iterator[None]:
        """One slot of ``user_id`` for the ``with`` block; RequestError (429) when full."""
        if self.counts.get(user_id, 0) >= self.limit:
            raise RequestError("limit", f"more than {self.name} ({self.limit}) {self.what} "
                                        "at once", status=429, limit=self.name)
        self.counts[user_id] = self.counts.get(user_id, 0) + 1
        try:
            yield
        finally:
            left = self.counts[user_id] - 1
            if left:
                self.counts[user_id] = left
            else:
                del self.counts[user_id]
