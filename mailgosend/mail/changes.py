"""What front ends need to name a point in a user's change history (JMAP states): the
``Position`` and the ``Changes`` a /changes answer holds, from store/emails.py, where the
queries over the per-user change counter live (store/mailstate.py)."""

from mailgosend.store.emails import Changes, EmailRow, MailboxTally, MailboxView, Position

__all__ = ["Changes", "EmailRow", "MailboxTally", "MailboxView", "Position"]
