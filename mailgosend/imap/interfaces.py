"""Interfaces the IMAP package offers to the rest of the server.

``IIMAPAccount`` is the avatar interface registered on the shared realm: a login through the
Portal for it yields an :class:`~mailgosend.imap.account.IMAPAccount`.  The spam-learning hook
(``ISpamTrainer``) is defined in mailgosend.spam.interfaces and re-exported here.
"""

from __future__ import annotations

from twisted.mail import imap4

# The spam-learning hook is the classifier's interface; re-exported for the IMAP package.
from mailgosend.spam.interfaces import ISpamTrainer, MessageRef, NoSpamTraining

__all__ = ["IIMAPAccount", "ISpamTrainer", "MessageRef", "NoSpamTraining"]


class IIMAPAccount(imap4.IAccount):
    """The mailboxes of one logged-in user, as an IMAP session sees them."""

