"""The mail service every front end calls (DESIGN.md §11): IMAP, POP3 and, later, webmail,
admin and DAV reach mail data through here, never through ``db.schema`` or the keyring.

Modules: :mod:`~.service` (``MailService``, one per process, and the per-user ``UserMail``),
:mod:`~.mailboxes` (listing, STATUS, quota, \\Recent floor jobs), :mod:`~.sync` (what changed
since a MODSEQ), :mod:`~.moves` (copy/move in one transaction), :mod:`~.filing` (the pure
spam-filing rule), :mod:`~.messages` (POP3 UPDATE, inbox index, plaintext ranges),
:mod:`~.source` (the one door to a message's structure and bytes; the keyring stays there),
:mod:`~.delivery` (the one local-delivery path: SMTP receive, DSNs, APPEND, MULTIAPPEND),
:mod:`~.query` (JMAP Email/query from a per-user index), :mod:`~.searchtext` (the search
index's words, keyed tokens and exact matching), :mod:`~.text` (where a message's text is).
After each commit the service publishes what changed on the change feed (events.py).  Below
this package, ``store/`` keeps the tables; above it, the protocols keep their own state
(IMAP's \\Recent claims and snapshots, POP3's marks).

Implementation notes (the invariants this layer relies on and keeps):

1. UIDs are allocated one by one from the mailbox row's UIDNEXT, under that row's lock, in
   the transaction that inserts the message (store/messages.py ``deliver``); a UID is never
   reused, and UIDVALIDITY changes only when a mailbox is created anew.
2. MODSEQ: every change to a message (new message, flags, expunge) takes a new value from
   its mailbox's HIGHESTMODSEQ in the same transaction, so "changed since m" is one indexed
   query (sync.py) and equal HIGHESTMODSEQ means nothing changed.
3. Expunge is a soft delete: the row keeps its UID, gets ``deleted_at`` and a new MODSEQ;
   the purge removes it (and then its blob) long after any session could still see it.
   MOVE is copy + expunge in one transaction (moves.py), the sources expunged first so a
   move fits in a full quota.
4. Lock order on PostgreSQL: the users row (quota) before the mailbox row (UIDs, MODSEQ);
   a job that does both takes the user first (messages.py ``delete_and_mark_seen``).
5. Structures and small sealed blobs are cached once per process (``MailService``), by
   (mailbox id, UIDVALIDITY, UID): never stale, since a message's bytes never change and a
   UID is never reused under one UIDVALIDITY.
6. Spam training and the change feed follow the commit, never precede it; a failing
   trainer or subscriber never fails the operation (service.py, delivery.py ``settle``).
"""

from mailgosend.mail.service import MailService, UserMail

__all__ = ["MailService", "UserMail"]
