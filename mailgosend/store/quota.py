# -*- test-case-name: tests.test_store_quota -*-
"""The quota rule: does a message fit?  One pure function for every place that asks.

SMTP asks at RCPT (with the SIZE= the client declared, RFC 1870), IMAP before it reads an
APPEND literal (RFC 9208 OVERQUOTA, RFC 7888), and the store asks last, when it reserves
the octets inside the delivery's transaction (messages.py), which is the answer that counts.
The limit is on the octets stored, as RFC 9208 §5.1 STORAGE counts them; 0 means no limit.
"""

from __future__ import annotations

__all__ = ["fits"]


def fits(used: int, quota: int, size: int) -> bool:
    """A message of ``size`` octets fits a mailbox holding ``used`` of ``quota`` octets
    (``quota`` 0: unlimited); exactly full is allowed, one octet more is not."""
    return not quota or used + size <= quota
