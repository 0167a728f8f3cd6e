"""The per-listener connection limiter shared by SMTP, IMAP and POP3 (connlimit.py)."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.connlimit import ConnectionLimiter

A, B = "192.0.2.1", "2001:db8::1"


class ConnectionLimiterTests(unittest.TestCase):
    def test_admissions_in_order(self) -> None:
        # (connection, ip, admitted) against at most 3 in all and 2 per address
        limiter: ConnectionLimiter[str] = ConnectionLimiter(3, 2)
        steps = [("a1", A, True), ("a2", A, True), ("a3", A, False), ("b1", B, True),
                 ("b2", B, False), ("a1", A, True)]  # admitting an admitted one again: no change
        for connection, ip, admitted in steps:
            self.assertEqual(limiter.admit(connection, ip), admitted, connection)
        self.assertEqual(limiter.open(), {"a1", "a2", "b1"})
        self.assertEqual((limiter.count(A), limiter.count(B)), (2, 1))

    def test_release_makes_room_and_ignores_the_unknown(self) -> None:
        limiter: ConnectionLimiter[str] = ConnectionLimiter(2, 1)
        self.assertTrue(limiter.admit("a1", A))
        self.assertFalse(limiter.admit("a2", A))
        limiter.release("a2")  # refused, never counted
        limiter.release("a1")
        limiter.release("a1")  # twice is harmless
        self.assertEqual((limiter.count(A), limiter.open()), (0, set()))
        self.assertTrue(limiter.admit("a2", A))

    def test_limits_must_be_positive(self) -> None:
        for limits in ((0, 1), (1, 0), (-1, 5)):
            self.assertRaises(ValueError, ConnectionLimiter, *limits)

