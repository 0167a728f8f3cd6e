# -*- test-case-name: tests.test_mail_filing -*-
"""The spam-filing rule: what a user's own copy or move teaches their Bayes filter (DESIGN §6).

Pure: a function of the source and target mailbox roles (``Mailbox.role``: "inbox", "junk",
"trash", ... or None for a user's own folders), so IMAP COPY/MOVE, webmail's "mark as spam"
and any later front end decide the same way.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["training_verdict"]


def training_verdict(source_role: Optional[str], target_role: Optional[str], *,
                     same_mailbox: bool = False) -> Optional[bool]:
    """True: teach "spam"; False: teach "ham"; None: the move says nothing.

    Filing into Junk from elsewhere is "this is spam".  Taking mail out of Junk is "this is
    good mail", except into Trash: deleting spam is not a verdict on it.  A copy within one
    mailbox, or between two non-Junk mailboxes, teaches nothing.
    """
    if same_mailbox:
        return None
    if target_role == "junk" and source_role != "junk":
        return True
    if source_role == "junk" and target_role not in ("junk", "trash"):
        return False
    return None
