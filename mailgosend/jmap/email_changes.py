# -*- test-case-name: tests.test_jmap_state -*-
"""Email/changes (RFC 8621 §4.3, RFC 8620 §5.2): exact from the per-user change counter.

An Email is ``updated`` when its keywords or mailboxes change (a MOVE keeps its id), and
``created`` / ``destroyed`` when it arrives or goes (expunge, COPY makes a new one, a
mailbox deleted with it).  With ``maxChanges`` the answer ends at an intermediate state
(``hasMoreChanges``) from which the next call goes on.
"""

from __future__ import annotations

from typing import Any

from mailgosend.jmap.methods import MAIL, Call, Method
from mailgosend.jmap.standard import changes_response

__all__ = ["METHODS"]


async def email_changes(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    response, _ = await changes_response(call, args, "M", lambda mail: mail.email_changes)
    return response


METHODS: dict[str, Method] = {"Email/changes": Method(MAIL, email_changes)}
