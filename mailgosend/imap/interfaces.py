"""Interfaces the IMAP package offers to the rest of the server.

``IIMAPAccount`` is the avatar interface registered on the shared realm: a login through the
Portal for it yields an :class:`~mailgosend.imap.account.IMAPAccount`.  ``ISpamTrainer`` is
the hook the Bayesian classifier will implement (DESIGN §6): moving or copying a message into
the Junk mailbox, or out of it, is the user telling us "spam" or "not spam".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.mail import imap4
from zope.interface import Interface, implementer

__all__ = ["IIMAPAccount", "ISpamTrainer", "MessageRef", "NoSpamTraining"]


class IIMAPAccount(imap4.IAccount):
    """The mailboxes of one logged-in user, as an IMAP session sees them."""


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
        logged and never fail the IMAP command that caused them."""


@implementer(ISpamTrainer)
class NoSpamTraining:
    """The trainer used until the classifier exists: learning is not yet wanted."""

    def learn(self, user_id: int, message: MessageRef, is_spam: bool) -> None:
        return None
