# -*- test-case-name: tests.test_web_ratelimit -*-
"""Token buckets per client address for sign-ins and changes on the web ports.

A bucket holds up to ``per_minute`` tokens and refills at ``per_minute`` a minute, so a person
(a few clicks a minute) never meets the limit and a script meets it after one burst.
The clock is injected (IReactorTime.seconds).
"""

from __future__ import annotations

import math
from typing import Any, Optional

# Buckets that have refilled completely carry no information; they are dropped when the
# table grows past this many, so a scan of many addresses cannot exhaust memory.
PRUNE_AT = 10000


class RateLimiter:
    def __init__(self, per_minute: int, clock: Any) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0   # tokens a second
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}   # ip -> (tokens, when)

    def set_rate(self, per_minute: int) -> None:
        """A new limit from the settings page; buckets keep their tokens (capped)."""
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0

    def take(self, key: str) -> Optional[int]:
        """Spend one token: None when allowed, else the whole seconds to wait (Retry-After)."""
        now = self._clock.seconds()
        tokens, when = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - when) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.rate))
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > PRUNE_AT:
            self._prune(now)
        return None

    def _prune(self, now: float) -> None:
        full = [key for key, (tokens, when) in self._buckets.items()
                if tokens + (now - when) * self.rate >= self.capacity]
        for key in full:
            del self._buckets[key]
