# -*- test-case-name: tests.test_jmap_core -*-
"""The account's state string (RFC 8620 §1.2, §5.1): the one place it is derived.

The session resource, push (push.py) and every /get and /changes ask here, so when the
per-user change counter of jmap-state lands, only ``account_state`` changes.  Until then
the state is a digest of every mailbox's id, name and HIGHESTMODSEQ: any new message, flag
change, expunge or mailbox change moves at least one of them (mail/__init__.py note 2).
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["account_state"]


async def account_state(mail: Any) -> str:
    """The state of the whole account of ``mail`` (a UserMail), as a short opaque string."""
    boxes, _subscribed = await mail.mailboxes_and_subscriptions()
    digest = hashlib.sha256()
    for box in sorted(boxes, key=lambda b: b.id):
        digest.update(f"{box.id}\0{box.name}\0{box.highestmodseq}\n".encode())
    return "s" + digest.hexdigest()[:16]
