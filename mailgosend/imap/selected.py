"""The selected mailbox as one session sees it (RFC 3501 §2.3.1, §7.4.1, §5.2).

A session keeps its own view: UIDs in sequence order, each message's row (flags, size,
INTERNALDATE) and its \\Recent set.  The view changes only when the session announces the
change, so sequence numbers stay what the client believes:

* a view starts as a copy of the listener's shared snapshot (snapshot.py), so SELECT loads
  no rows;
* changes committed by this process arrive on the change feed (events.py) with their data:
  new messages with their rows, flag changes with their flags and MODSEQ, expunges with their
  UIDs; ``note_changes`` applies them to the view without a query and ``sync`` announces them
  (§5.2: updates are sent for the changes the server has observed).  A new message is taken
  from the feed only when its UID is the next one the view expects (UIDs of a mailbox are
  committed in order, so a gap means the view missed something and reads instead);
* ``sync`` also asks the store what changed since the view's MODSEQ (an indexed query,
  including soft-deleted rows) and turns it into untagged responses: FLAGS for new keywords,
  EXISTS and RECENT for new messages, FETCH FLAGS for changes made elsewhere, and EXPUNGE.
  The query runs at NOOP and CHECK, after the feed reported a change it did not describe
  (another node, a lost cross-node connection, RENAME INBOX), at IDLE's periodic poll, and at
  least every ``SYNC_INTERVAL`` for changes made outside the feed.  Expunges are held back
  while the current command forbids them (FETCH, STORE, SEARCH by sequence number, §7.4.1)
  and announced at the next command that allows them;
* changes this session makes (STORE, EXPUNGE, MOVE) update the view directly; a later sync
  sees those rows again but reports nothing because the flags match.

The class provides Twisted's IMailbox/ISearchableMailbox for the mailbox operations the
server needs; everything that touches storage returns a Deferred.
"""

from __future__ import annotations

import bisect
from dataclasses import replace
from typing import Any, Iterable, Literal, Optional, Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.mail import imap4
from zope.interface import implementer

from mailgosend.events import (Change, Expunged, FlagsChanged, NewMessage,
                               RemoteChange)
from mailgosend.imap.access import StoreAccess
from mailgosend.imap.message import StoredMessage
from mailgosend.imap.seqset import SequenceSet, compress
from mailgosend.imap.snapshot import MailboxSnapshot
from mailgosend.imap.wireformat import flag_list
from mailgosend.mail.sync import SyncState
from mailgosend.store.mailboxes import DELIMITER
from mailgosend.store.messages import FlagChange, FlagsResult, MessageRow

__all__ = ["MailboxGone", "SYSTEM_FLAGS", "SelectedMailbox"]

SYNC_INTERVAL = 1.0  # seconds a view may go without reading the database (see ``sync``)
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


class MailboxGone(Exception):
    """The selected mailbox was deleted by another session."""


@implementer(imap4.IMailbox, imap4.ISearchableMailbox)
class SelectedMailbox:
    def __init__(self, account: Any, snapshot: MailboxSnapshot, readonly: bool,
                 rev2: bool = False) -> None:
        """A view copied from the listener's shared snapshot (snapshot.py): the dict and list
        are copied, the rows (immutable) are shared, so a SELECT costs no row loading.
        ``rev2``: the session enabled IMAP4rev2, which has no \\Recent (RFC 9051 Appendix
        E item 12): the view claims none, so rev1 sessions still see them \\Recent, and
        sends no RECENT response nor UNSEEN code."""
        self.account = account  # the IMAPAccount that selected it
        self.access: StoreAccess = account.access
        self.user = account.user
        self.mail = account.mail  # the user's UserMail (mailgosend/mail/)
        self.box, self.readonly = snapshot.box, readonly
        access = self.access
        self.rows = dict(snapshot.rows)
        self.uids = list(snapshot.uids)
        self.modseq = snapshot.modseq
        self.pending_expunge: set[int] = set()
        self.keywords = set(snapshot.keywords)
        self._first_unseen = snapshot.first_unseen()
        self.listeners: list[Any] = []
        self.origin: Any = None  # the session showing this view; not poked by its own changes
        self.report_modseq = False  # RFC 7162 §3.1.4, once CONDSTORE is enabled
        self.report_vanished = False  # RFC 7162 §3.2.10: VANISHED, once QRESYNC is enabled
        self.dirty = False  # the feed reported a change the view has not read yet
        self.recount = False  # ... one the MODSEQ cannot show (read with a live count)
        self.arrived: dict[int, MessageRow] = {}  # new rows from the feed, not announced yet
        self.next_uid = max(self.box.uidnext, self.uids[-1] + 1 if self.uids else 1)
        self.local_changes: set[int] = set()  # flag changes applied by note_change
        self.saved_uids: list[int] = []  # RFC 5182 "$", as UIDs; new views start empty
        self.synced_at = access.clock.seconds()  # the snapshot was current then
        self.rev2 = rev2
        if rev2:
            self.recent: set[int] = set()
        elif readonly:
            floor = access.hub.known_floor(self.box.id, self.box.recent_floor)
            self.recent = set(self.uids[bisect.bisect_right(self.uids, floor):])
        else:
            self.recent = self._claim(self.uids)

    def _claim(self, uids: list[int]) -> set[int]:
        """\\Recent for this session (hub.py); a raised floor is stored, so it outlives
        the process (RFC 3501 §2.3.2)."""
        claimed = self.access.hub.claim(self.box.id, uids, self.box.recent_floor)
        if claimed:
            self.account.save_recent_floor(self.box.id, max(claimed))
        return claimed

    @staticmethod
    def _keywords(rows: Iterable[MessageRow]) -> set[str]:
        return {flag for row in rows for flag in row.flags if not flag.startswith("\\")}

    # --- what the session shows ------------------------------------------------------------

    @property
    def id(self) -> int:
        return self.box.id

    def flags_of(self, uid: int) -> tuple[str, ...]:
        flags = self.rows[uid].flags
        return flags + ("\\Recent",) if uid in self.recent else flags

    def fetch_flags_line(self, uid: int, with_uid: bool = True, with_flags: bool = True
                         ) -> bytes:
        """An untagged FETCH with FLAGS (and UID, and MODSEQ once CONDSTORE is on)."""
        items = [b"FLAGS " + flag_list(self.flags_of(uid))] if with_flags else []
        if with_uid:
            items.append(b"UID %d" % uid)
        if self.report_modseq:
            items.append(b"MODSEQ (%d)" % self.rows[uid].modseq)
        return b"%d FETCH (%s)" % (self.seq_of(uid), b" ".join(items))

    def seq_of(self, uid: int) -> int:
        return bisect.bisect_left(self.uids, uid) + 1

    def resolve(self, seqset: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        """(sequence number, UID) pairs a set names, ascending."""
        if seqset.saved:  # RFC 5182 §2.1: expunged messages have left the saved result
            rows = self.rows
            return [(self.seq_of(u), u) for u in self.saved_uids if u in rows]
        if uid:
            uids = self.uids
            return [(i + 1, uids[i]) for i in seqset.uid_positions(uids)]
        return [(seq, self.uids[seq - 1]) for seq in seqset.sequence_numbers(len(self.uids))]

    def select_lines(self) -> list[bytes]:
        """The untagged part of SELECT/EXAMINE (RFC 3501 §6.3.1)."""
        unseen = None if self._first_unseen is None else self.seq_of(self._first_unseen)
        lines = [b"FLAGS " + flag_list(self.getFlags()),
                 b"%d EXISTS" % len(self.uids), b"%d RECENT" % len(self.recent),
                 self._permanent_flags_line(),
                 b"OK [UIDVALIDITY %d] UIDs valid" % self.box.uidvalidity,
                 b"OK [UIDNEXT %d] Predicted next UID" % self.box.uidnext,
                 b"OK [HIGHESTMODSEQ %d] Highest" % self.modseq]  # >= every row's MODSEQ
        if self.rev2:  # RFC 9051 §6.3.2: neither RECENT nor UNSEEN (Appendix E 11, 12)
            del lines[2]
        elif unseen is not None:
            lines.insert(3, b"OK [UNSEEN %d] First unseen" % unseen)
        return lines

    def _permanent_flags_line(self) -> bytes:
        return (b"OK [PERMANENTFLAGS " + (b"()" if self.readonly else
                                          flag_list(self.getFlags() + ["\\*"])) + b"] Limited")

    def keyword_lines(self, rows: Iterable[MessageRow]) -> list[bytes]:
        """FLAGS and OK [PERMANENTFLAGS] when ``rows`` carry a keyword this session has not
        been told of, to send before the FETCH or EXISTS that shows it (RFC 3501 §7.2.6,
        as Dovecot does); nothing otherwise."""
        keywords = self._keywords(rows)
        if not keywords - self.keywords:
            return []
        self.keywords |= keywords
        lines = [b"FLAGS " + flag_list(self.getFlags())]
        if not self.readonly:
            lines.append(self._permanent_flags_line())
        return lines

    # --- synchronisation -------------------------------------------------------------------

    def note_changes(self, changes: Sequence[Change]) -> None:
        """Changes of this mailbox from the feed (events.py), applied to the view at once and
        announced at the next sync without a database query; a change without data (another
        node's, a rename, a resync) makes the next sync read the database."""
        for change in changes:
            if isinstance(change, FlagsChanged):
                self.note_change(change.changes)
            elif isinstance(change, NewMessage):
                self._arrive(change)
            elif isinstance(change, Expunged):
                self.pending_expunge.update(uid for uid in change.uids if uid in self.rows)
                for uid in change.uids:
                    self.arrived.pop(uid, None)
            elif isinstance(change, RemoteChange) and change.kind != "mailbox":
                self.dirty = True  # MODSEQ shows it
            else:  # a rename, a deletion, a resync: read with a live count
                self.dirty = self.recount = True

    def _arrive(self, new: NewMessage) -> None:
        if new.uid < self.next_uid:
            return  # read already (or expunged since)
        if new.uid > self.next_uid:
            self.dirty = True  # a gap: the rows between were missed
            return
        self.arrived[new.uid] = MessageRow(new.message_id, new.mailbox_id, new.uid, new.modseq,
                                           new.flags, new.internal_date, new.size, new.blob_id,
                                           None)
        self.next_uid = new.uid + 1

    def note_change(self, changes: Optional[Sequence[FlagChange]]) -> None:
        """Flag changes (from the feed) are applied to the view at once and announced at the
        next sync (RFC 3501 §7.4.1 FETCH FLAGS) without a database query; None: anything may
        have changed, the next sync reads the database."""
        if changes is None:
            self.dirty = True
            return
        rows = self.rows
        for change in changes:
            row = rows.get(change.uid)
            if row is not None and row.modseq < change.modseq:
                rows[change.uid] = replace(row, flags=change.flags, modseq=change.modseq)
                self.local_changes.add(change.uid)
            elif change.uid in self.arrived and self.arrived[change.uid].modseq < change.modseq:
                self.arrived[change.uid] = replace(self.arrived[change.uid], flags=change.flags,
                                                   modseq=change.modseq)

    def sync(self, allow_expunge: bool, full: bool = False, timed: bool = True
             ) -> Deferred[list[bytes]]:
        """Untagged updates for the end of a command.  The database is read when ``full``
        (NOOP, CHECK, IDLE's poll), when the feed reported changes it did not describe, and,
        when ``timed``, at least every ``SYNC_INTERVAL`` seconds for changes made elsewhere
        (webmail, a direct store call; IDLE has its own poll for those)."""
        if full or self.dirty or (timed and self.access.clock.seconds() - self.synced_at
                                  >= SYNC_INTERVAL):
            return Deferred.fromCoroutine(self._sync(allow_expunge, full or self.recount))
        return succeed(self._local_lines(allow_expunge))

    def _local_lines(self, allow_expunge: bool) -> list[bytes]:
        """EXPUNGE, EXISTS, FLAGS and FETCH FLAGS for changes ``note_changes`` applied."""
        lines: list[bytes] = []
        if allow_expunge and self.pending_expunge:
            lines += self.announce_expunges()
        if self.arrived:
            new = [row for uid, row in sorted(self.arrived.items()) if uid not in self.rows]
            self.arrived.clear()
            lines += self.keyword_lines(new)
            lines += self._add_new(new)
        if not self.local_changes:
            return lines
        lines += self.keyword_lines(self.rows[uid] for uid in self.local_changes
                                    if uid in self.rows)
        lines += [self.fetch_flags_line(uid) for uid in sorted(self.local_changes)
                  if uid in self.rows and uid not in self.pending_expunge]
        self.local_changes.clear()
        return lines

    def _add_new(self, new: list[MessageRow]) -> list[bytes]:
        """EXISTS (and RECENT) for rows not in the view yet, ascending by UID."""
        if not new:
            return []
        for row in sorted(new, key=lambda r: r.uid):
            self.rows[row.uid] = row
            bisect.insort(self.uids, row.uid)
        self.next_uid = max(self.next_uid, self.uids[-1] + 1)
        before = len(self.recent)
        if not self.readonly and not self.rev2:  # RFC 9051: no \Recent in IMAP4rev2
            self.recent |= self._claim(sorted(r.uid for r in new))
        lines = [b"%d EXISTS" % len(self.uids)]
        if len(self.recent) != before:
            lines.append(b"%d RECENT" % len(self.recent))
        return lines

    async def _sync(self, allow_expunge: bool, full: bool) -> list[bytes]:
        self.dirty = self.recount = False
        self.synced_at = self.access.clock.seconds()
        state = await self.mail.changes_since(self.box.id, self.modseq, full)
        present = None
        if state.live_count is not None:
            known = set(self.uids) - self.pending_expunge
            known.update(r.uid for r in state.changed if r.deleted_at is None)
            known.difference_update(r.uid for r in state.changed if r.deleted_at is not None)
            if len(known) != state.live_count:
                present = set(await self.mail.live_uids(self.box.id))
        return self._apply(state, allow_expunge, present)

    def _apply(self, state: SyncState, allow_expunge: bool,
               present: Optional[set[int]] = None) -> list[bytes]:
        if state.mailbox is None:
            raise MailboxGone(self.box.name)
        self.box = state.mailbox
        new: list[MessageRow] = []
        changed: list[int] = []
        live: list[MessageRow] = []
        arrived, self.arrived = self.arrived, {}
        for row in state.changed:
            self.modseq = max(self.modseq, row.modseq)
            if row.deleted_at is not None:
                arrived.pop(row.uid, None)
                if row.uid in self.rows:
                    self.pending_expunge.add(row.uid)
                continue
            live.append(row)
            if row.uid in self.rows:
                known = self.rows[row.uid]
                if known.modseq > row.modseq:
                    continue  # note_change brought a newer state than this read
                if known.flags != row.flags:
                    changed.append(row.uid)
                self.rows[row.uid] = row
            else:
                early = arrived.pop(row.uid, None)
                new.append(early if early is not None and early.modseq > row.modseq else row)
        for row in arrived.values():  # from the feed, committed after this read began
            if row.uid in self.rows:
                continue
            if present is None or row.uid in present:
                new.append(row)
                live.append(row)
            else:
                self.arrived[row.uid] = row  # committed after the UIDs were listed
        if present is not None:
            self.pending_expunge.update(uid for uid in self.uids if uid not in present)
        self.next_uid = max(self.next_uid, self.box.uidnext)
        lines: list[bytes] = []
        if allow_expunge:
            lines += self.announce_expunges()
        lines += self.keyword_lines(live)  # only changed rows can bring a new keyword
        lines += self._add_new(new)
        lines += [self.fetch_flags_line(uid) for uid in changed
                  if uid not in self.pending_expunge and uid in self.rows
                  and uid not in self.local_changes]
        lines += self._local_lines(False)
        return lines

    def announce_expunges(self) -> list[bytes]:
        """EXPUNGE responses, ascending, each number as it is at that moment (§7.4.1); one
        VANISHED response instead once QRESYNC is enabled (RFC 7162 §3.2.10)."""
        lines = []
        vanished = []
        for uid in sorted(self.pending_expunge):
            if uid in self.rows:
                index = bisect.bisect_left(self.uids, uid)
                del self.uids[index]
                del self.rows[uid]
                self.recent.discard(uid)
                if self.report_vanished:
                    vanished.append(uid)
                else:
                    lines.append(b"%d EXPUNGE" % (index + 1))
        self.pending_expunge.clear()
        if vanished:
            lines.append(b"VANISHED " + compress(vanished).encode("ascii"))
        return lines

    # --- changes made by this session ------------------------------------------------------

    def store_flags(self, uids: Sequence[int], flags: Sequence[str],
                    mode: Literal["add", "remove", "replace"],
                    unchanged_since: Optional[int] = None) -> Deferred[FlagsResult]:
        """STORE through the store (one new MODSEQ; RFC 7162 UNCHANGEDSINCE); the view takes
        the new flags and MODSEQs."""
        d = self.mail.set_flags(self.box.id, uids, flags, mode, unchanged_since,
                                origin=self.origin)  # published by the mail service

        def stored(result: FlagsResult) -> FlagsResult:
            for change in result.changed:  # new keywords: the caller sends keyword_lines first
                if change.uid in self.rows:
                    self.rows[change.uid] = replace(self.rows[change.uid], flags=change.flags,
                                                    modseq=change.modseq)
            return result

        return d.addCallback(stored)

    def expunge_uids(self, uids: Optional[Sequence[int]]) -> Deferred[list[bytes]]:
        """EXPUNGE / UID EXPUNGE: soft-delete, then announce (with anything pending)."""
        d = self.mail.expunge(self.box.id, uids, origin=self.origin)

        def done(expunged: list[int]) -> list[bytes]:
            self.pending_expunge.update(u for u in expunged if u in self.rows)
            return self.announce_expunges()

        return d.addCallback(done)

    # --- Twisted's IMailbox / ISearchableMailbox -------------------------------------------

    def getFlags(self) -> list[str]:
        return list(SYSTEM_FLAGS) + sorted(self.keywords, key=str.lower)

    def getHierarchicalDelimiter(self) -> str:
        return DELIMITER

    def getUIDValidity(self) -> int:
        return self.box.uidvalidity

    def getUIDNext(self) -> int:
        return self.box.uidnext

    def getUID(self, message: int) -> int:
        return self.uids[message - 1]

    def getMessageCount(self) -> int:
        return len(self.uids)

    def getRecentCount(self) -> int:
        return len(self.recent)

    def getUnseenCount(self) -> int:
        return sum(1 for uid in self.uids if "\\Seen" not in self.rows[uid].flags)

    def isWriteable(self) -> bool:
        return not self.readonly

    def destroy(self) -> None:
        """Nothing to release: deletion goes through IMAPAccount.delete and the store."""

    def requestStatus(self, names: Iterable[str]) -> dict[str, int]:
        values = {"MESSAGES": self.getMessageCount(), "RECENT": self.getRecentCount(),
                  "UIDNEXT": self.getUIDNext(), "UIDVALIDITY": self.getUIDValidity(),
                  "UNSEEN": self.getUnseenCount()}
        return {name.upper(): values[name.upper()] for name in names}

    def addListener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def removeListener(self, listener: Any) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def addMessage(self, message: Any, flags: Iterable[str] = (), date: Any = None
                   ) -> Deferred[int]:
        """Twisted's append: delegated to the account (quota, UIDPLUS)."""
        data = message if isinstance(message, bytes) else message.read()
        d = Deferred.fromCoroutine(self.account.append(self.box.name, data, list(flags), date))

        def appended(delivered: Any) -> int:
            self.dirty = True  # the next sync reads it (the feed pokes sessions, not views)
            return int(delivered.uid)

        return d.addCallback(appended)

    def expunge(self) -> Deferred[list[int]]:
        """Twisted's expunge: the sequence numbers removed, in announcement order."""
        return self.expunge_uids(None).addCallback(
            lambda lines: [int(line.split()[0]) for line in lines])

    def fetch(self, messages: Any, uid: bool) -> list[tuple[int, StoredMessage]]:
        """(sequence number, IMessage) pairs.  Their content accessors block (database and
        AES): call them in a thread, as fetch.load_batch does with its own connection."""
        seqset = SequenceSet.parse(str(messages))
        source = self.mail.message_source(self.box.uidvalidity)
        return [(seq, StoredMessage(self.rows[u], source))
                for seq, u in self.resolve(seqset, uid)]

    def store(self, messages: Any, flags: Sequence[str], mode: int, uid: bool
              ) -> Deferred[dict[int, tuple[str, ...]]]:
        pairs = self.resolve(SequenceSet.parse(str(messages)), uid)
        how: Literal["add", "remove", "replace"] = (
            "add" if mode == 1 else "remove" if mode == -1 else "replace")
        d = self.store_flags([u for _, u in pairs], flags, how)
        return d.addCallback(lambda _: {seq: self.flags_of(u) for seq, u in pairs})

    def search(self, query: Any, uid: bool) -> Deferred[list[int]]:
        return self.account.search(self, query, uid)
