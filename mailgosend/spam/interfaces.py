"""The spam-learning hook, shared by the mail-access protocols and the classifier.

Moving or copying a message into the Junk mailbox, or out of it, is the user
telling us "spam" or "not spam" (DESIGN.md §6).  It lives here, not in imap/,
so the classifier does not depend on a protocol package (DESIGN.md §1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zope.interface import Interface, implementer

__all__ = ["ISpamTrainer", "MessageRef", "NoSpamTraining"]


@dataclass(frozen=True)
class MessageRef:
    """Enough to find a stored message again: the copy in ``mailbox_id`` with ``uid``.

    ``blob_id`` names the sealed content (shared by copies); the trainer opens it with the
    user's key when it wants the text.
    """

    user_id: int
    mailbox_id: int
    uid: int
    blob_id: str


class ISpamTrainer(Interface):
    """Learns from the user's own filing decisions."""

    def learn(user_id: int, message: MessageRef, is_spam: bool) -> Any:
        """Called after the copy or move committed; may return a Deferred.  Failures are
        logged and never fail the command that caused them."""


@implementer(ISpamTrainer)
class NoSpamTraining:
    """For servers (and tests) that do not train a classifier."""

    def learn(self, user_id: int, message: MessageRef, is_spam: bool) -> None:
        return None
