"""web/ratelimit.py: token buckets per address, on an injected clock."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial import unittest

from mailgosend.web.ratelimit import RateLimiter


class RateLimiterTests(unittest.TestCase):
    def test_a_burst_of_per_minute_passes_and_the_next_waits(self) -> None:
        clock = Clock()
        limiter = RateLimiter(10, clock)
        self.assertEqual([limiter.take("192.0.2.1") for _ in range(10)], [None] * 10)
        self.assertEqual(limiter.take("192.0.2.1"), 6)     # one token every 6 s

    def test_tokens_come_back_with_time(self) -> None:
        clock = Clock()
        limiter = RateLimiter(60, clock)
        for _ in range(60):
            limiter.take("a")
        self.assertEqual(limiter.take("a"), 1)
        clock.advance(1)
        self.assertIsNone(limiter.take("a"))
        self.assertEqual(limiter.take("a"), 1)

    def test_addresses_have_their_own_buckets(self) -> None:
        limiter = RateLimiter(1, Clock())
        self.assertIsNone(limiter.take("a"))
        self.assertIsNotNone(limiter.take("a"))
        self.assertIsNone(limiter.take("b"))

    def test_a_person_clicking_every_few_seconds_never_waits(self) -> None:
        clock = Clock()
        limiter = RateLimiter(10, clock)
        for _ in range(100):
            self.assertIsNone(limiter.take("a"))
            clock.advance(6)

    def test_full_buckets_are_pruned_when_the_table_grows(self) -> None:
        from mailgosend.web import ratelimit

        self.patch(ratelimit, "PRUNE_AT", 5)
        clock = Clock()
        limiter = RateLimiter(2, clock)
        for n in range(5):
            limiter.take(f"old{n}")
        clock.advance(120)
        limiter.take("new")
        self.assertEqual(set(limiter._buckets), {"new"})
