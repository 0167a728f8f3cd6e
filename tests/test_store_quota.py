"""The one quota rule (store/quota.py) and the SMTP reply a full mailbox gets."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.smtp.pipeline.delivery import mailbox_full
from mailgosend.store.messages import QuotaExceeded
from mailgosend.store.quota import fits

# (used, quota, size, fits)
CASES = [
    (0, 0, 10**12, True),        # 0 = unlimited
    (10**12, 0, 1, True),
    (0, 1000, 1000, True),       # exactly full is allowed
    (0, 1000, 1001, False),
    (999, 1000, 1, True),
    (1000, 1000, 1, False),
    (1000, 1000, 0, True),       # nothing more fits even a full mailbox
    (1001, 1000, 0, False),      # over quota already (quota lowered by the administrator)
    (400, 1000, 600, True),
    (401, 1000, 600, False),
]


class FitsTests(unittest.TestCase):
    def test_table(self) -> None:
        for used, quota, size, expected in CASES:
            self.assertEqual(fits(used, quota, size), expected, (used, quota, size))


class MailboxFullReplyTests(unittest.TestCase):
    def test_smtp_sends_the_code_the_exception_carries(self) -> None:
        # Regression: QuotaExceeded carried 552 5.2.2 while SMTP sent 452 4.2.2.
        reply = mailbox_full("Mailbox full")
        error = QuotaExceeded(10, 5, 0)
        self.assertEqual((reply.code, reply.status), (error.smtp_code, error.enhanced_code))
        # RFC 3463 §3.3: X.2.2 is a persistent transient failure; the user can make room.
        self.assertEqual((reply.code, reply.status), (452, "4.2.2"))
