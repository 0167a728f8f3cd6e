"""Pure decisions of the queue worker (delivery/policy.py), as tables."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from twisted.trial import unittest

from mailgosend.delivery import policy
from mailgosend.delivery.mx import Destinations, Host

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
POLICY = policy.RetryPolicy((5, 10, 30), timedelta(hours=5), jitter=0.0)


class DecideTests(unittest.TestCase):
    def test_reply_classes(self) -> None:
        rand = random.Random(1)
        cases = [
            # code, age, attempts before, expected status, expected delay (minutes)
            (250, timedelta(0), 0, "delivered", None),
            (550, timedelta(0), 0, "failed", None),
            (554, timedelta(hours=4), 3, "failed", None),
            (451, timedelta(0), 0, "deferred", 5),
            (421, timedelta(minutes=5), 1, "deferred", 10),
            (450, timedelta(hours=1), 2, "deferred", 30),
            (450, timedelta(hours=2), 9, "deferred", 30),        # the last step repeats
            (451, timedelta(hours=5), 4, "expired", None),       # older than the maximum age
            (451, timedelta(hours=4, minutes=50), 4, "deferred", 10),  # capped at max age
        ]
        for code, age, attempts, status, minutes in cases:
            now = T0 + age
            got, when = policy.decide(code, created_at=T0, attempts_before=attempts, now=now,
                                      policy=POLICY, rand=rand)
            self.assertEqual(got, status, (code, age, attempts))
            if minutes is None:
                self.assertIsNone(when)
            else:
                self.assertEqual(when, now + timedelta(minutes=minutes), (code, age, attempts))

    def test_jitter_stays_within_ten_percent(self) -> None:
        jittered = policy.RetryPolicy((10,), timedelta(hours=5))
        rand = random.Random(7)
        delays = {jittered.delay(1, rand) for _ in range(200)}
        self.assertGreater(len(delays), 100)
        self.assertTrue(all(timedelta(minutes=9) <= d <= timedelta(minutes=11) for d in delays))


class OrderTests(unittest.TestCase):
    DEST = Destinations("beta.test", (Host("mx1.beta.test", 10, ("192.0.2.1", "192.0.2.2")),
                                      Host("mx2.beta.test", 20, ("192.0.2.3",)),
                                      Host("mx3.beta.test", 30, ("192.0.2.4",))))

    def names(self, last: str | None) -> list[str]:
        return [a for _h, a in policy.ordered_attempts(self.DEST, last)]

    def test_starts_after_the_host_that_deferred_last_time(self) -> None:
        self.assertEqual(self.names(None), ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"])
        self.assertEqual(self.names("mx1.beta.test"),
                         ["192.0.2.3", "192.0.2.4", "192.0.2.1", "192.0.2.2"])
        self.assertEqual(self.names("mx3.beta.test"),
                         ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"])
        self.assertEqual(self.names("gone.beta.test"),
                         ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"])


class NotifyTests(unittest.TestCase):
    def test_notify_parameter(self) -> None:
        for notify, failure, delay in [(None, True, True), ("NEVER", False, False),
                                       ("SUCCESS", False, False), ("FAILURE", True, False),
                                       ("delay,failure", True, True), ("DELAY", False, True)]:
            self.assertEqual(policy.wants_failure_dsn(notify), failure, notify)
            self.assertEqual(policy.wants_delay_dsn(notify), delay, notify)

    def test_delay_warning_due(self) -> None:
        self.assertFalse(policy.delay_warning_due(T0, T0 + timedelta(hours=3), False, 4))
        self.assertTrue(policy.delay_warning_due(T0, T0 + timedelta(hours=4), False, 4))
        self.assertFalse(policy.delay_warning_due(T0, T0 + timedelta(hours=9), True, 4))
        self.assertFalse(policy.delay_warning_due(T0, T0 + timedelta(hours=9), False, 0))

    def test_split_reply_text(self) -> None:
        self.assertEqual(policy.split_reply_text("556 5.1.10 Recipient address has null MX"),
                         (556, "5.1.10", "Recipient address has null MX"))
        self.assertEqual(policy.split_reply_text("451 4.4.3 DNS failure: timeout"),
                         (451, "4.4.3", "DNS failure: timeout"))
        self.assertEqual(policy.split_reply_text("whatever"), (451, None, "whatever"))

    def test_reply_status(self) -> None:
        self.assertEqual(policy.reply_status(550, "5.1.1"), "5.1.1")
        self.assertEqual(policy.reply_status(550, "4.1.1"), "5.0.0")
        self.assertEqual(policy.reply_status(452, None), "4.0.0")


class WireAddressTests(unittest.TestCase):
    def test_idn_domains_go_out_as_a_labels_when_the_local_part_is_ascii(self) -> None:
        from mailgosend.delivery.worker import wire_address

        self.assertEqual(wire_address("bob@bücher.test"), "bob@xn--bcher-kva.test")
        self.assertEqual(wire_address("bob@example.org"), "bob@example.org")
        self.assertEqual(wire_address("jörg@bücher.test"), "jörg@bücher.test")  # SMTPUTF8
        self.assertEqual(wire_address(""), "")
