"""The selected mailbox as one session sees it (RFC 3501 §2.3.1, §7.4.1, §5.2).

A session keeps its own view: UIDs in sequence order, each message's row (flags, size,
INTERNALDATE) and its \\Recent set.  The view changes only when the session announces the
change, so sequence numbers stay what the client believes:

* ``sync`` asks the store what changed since the view's MODSEQ (an indexed query, including
  soft-deleted rows) and turns it into untagged responses: FLAGS for new keywords, EXISTS and
  RECENT for new messages, FETCH FLAGS for changes made elsewhere, and EXPUNGE.  Expunges are
  held back while the current command forbids them (FETCH, STORE, SEARCH by sequence number,
  §7.4.1) and announced at the next command that allows them;
* changes this session makes (STORE, EXPUNGE, MOVE) update the view directly; a later sync
  sees those rows again but reports nothing because the flags match.

The class provides Twisted's IMailbox/ISearchableMailbox for the mailbox operations the
server needs; everything that touches storage returns a Deferred.
"""

from __future__ import annotations

import bisect
from dataclasses import replace
from typing import Any, Iterable, Literal, Optional, Sequence

from twisted.internet.defer import Deferred
from twisted.mail import imap4
from zope.interface import implementer

from mailgosend.imap.access import StoreAccess
from mailgosend.imap.message import MessageSource, StoredMessage
from mailgosend.imap.seqset import SequenceSet
from mailgosend.imap.storeops import SyncState, live_uids, sync_state
from mailgosend.imap.wireformat import flag_list
from mailgosend.store.mailboxes import DELIMITER, Mailbox
from mailgosend.store.messages import FlagsResult, MessageRow, set_flags
from mailgosend.store.messages import expunge as store_expunge

__all__ = ["MailboxGone", "SYSTEM_FLAGS", "SelectedMailbox"]

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


class MailboxGone(Exception):
    """The selected mailbox was deleted by another session."""


@implementer(imap4.IMailbox, imap4.ISearchableMailbox)
class SelectedMailbox:
    def __init__(self, account: Any, box: Mailbox, rows: list[MessageRow],
                 readonly: bool) -> None:
        self.account = account  # the IMAPAccount that selected it
        self.access: StoreAccess = account.access
        self.user = account.user
        self.box, self.readonly = box, readonly
        access = self.access
        self.rows = {row.uid: row for row in rows}
        self.uids = sorted(self.rows)
        self.modseq = max([box.highestmodseq] + [row.modseq for row in rows])
        self.pending_expunge: set[int] = set()
        self.keywords = self._keywords(rows)
        self.listeners: list[Any] = []
        self.origin: Any = None  # the session showing this view; not poked by its own changes
        self.report_modseq = False  # RFC 7162 §3.1.4, once CONDSTORE is enabled
        if readonly:
            floor = access.hub.known_floor(box.id)
            self.recent = {uid for uid in self.uids if floor is not None and uid > floor}
        else:
            self.recent = access.hub.claim(box.id, self.uids, box.uidnext)

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
        if uid:
            return [(self.seq_of(u), u) for u in seqset.uids(self.uids)]
        return [(seq, self.uids[seq - 1]) for seq in seqset.sequence_numbers(len(self.uids))]

    def select_lines(self) -> list[bytes]:
        """The untagged part of SELECT/EXAMINE (RFC 3501 §6.3.1)."""
        unseen = next((seq for seq, uid in enumerate(self.uids, 1)
                       if "\\Seen" not in self.rows[uid].flags), None)
        lines = [b"FLAGS " + flag_list(self.getFlags()),
                 b"%d EXISTS" % len(self.uids), b"%d RECENT" % len(self.recent),
                 b"OK [PERMANENTFLAGS " + (b"()" if self.readonly else
                                           flag_list(self.getFlags() + ["\\*"])) + b"] Limited",
                 b"OK [UIDVALIDITY %d] UIDs valid" % self.box.uidvalidity,
                 b"OK [UIDNEXT %d] Predicted next UID" % self.box.uidnext,
                 b"OK [HIGHESTMODSEQ %d] Highest" % self.modseq]  # >= every row's MODSEQ
        if unseen is not None:
            lines.insert(3, b"OK [UNSEEN %d] First unseen" % unseen)
        return lines

    # --- synchronisation -------------------------------------------------------------------

    def sync(self, allow_expunge: bool, full: bool = False) -> Deferred[list[bytes]]:
        return Deferred.fromCoroutine(self._sync(allow_expunge, full))

    async def _sync(self, allow_expunge: bool, full: bool) -> list[bytes]:
        runner = self.access.runner
        state = await runner.read(sync_state, self.user.id, self.box.id, self.modseq, full)
        present = None
        if state.live_count is not None:
            known = set(self.uids) - self.pending_expunge
            known.update(r.uid for r in state.changed if r.deleted_at is None)
            known.difference_update(r.uid for r in state.changed if r.deleted_at is not None)
            if len(known) != state.live_count:
                present = set(await runner.read(live_uids, self.box.id))
        return self._apply(state, allow_expunge, present)

    def _apply(self, state: SyncState, allow_expunge: bool,
               present: Optional[set[int]] = None) -> list[bytes]:
        if state.mailbox is None:
            raise MailboxGone(self.box.name)
        self.box = state.mailbox
        new: list[MessageRow] = []
        changed: list[int] = []
        live: list[MessageRow] = []
        for row in state.changed:
            self.modseq = max(self.modseq, row.modseq)
            if row.deleted_at is not None:
                if row.uid in self.rows:
                    self.pending_expunge.add(row.uid)
                continue
            live.append(row)
            if row.uid in self.rows:
                if self.rows[row.uid].flags != row.flags:
                    changed.append(row.uid)
                self.rows[row.uid] = row
            else:
                new.append(row)
        if present is not None:
            self.pending_expunge.update(uid for uid in self.uids if uid not in present)
        lines: list[bytes] = []
        if allow_expunge:
            lines += self.announce_expunges()
        keywords = self._keywords(live)  # only changed rows can bring a new keyword
        if keywords - self.keywords:
            self.keywords |= keywords
            lines.append(b"FLAGS " + flag_list(self.getFlags()))
        if new:
            for row in sorted(new, key=lambda r: r.uid):
                self.rows[row.uid] = row
                bisect.insort(self.uids, row.uid)
            before = len(self.recent)
            if not self.readonly:
                self.recent |= self.access.hub.claim(self.box.id, [r.uid for r in new],
                                                     self.box.uidnext)
            lines.append(b"%d EXISTS" % len(self.uids))
            if len(self.recent) != before:
                lines.append(b"%d RECENT" % len(self.recent))
        lines += [self.fetch_flags_line(uid) for uid in changed
                  if uid not in self.pending_expunge and uid in self.rows]
        return lines

    def announce_expunges(self) -> list[bytes]:
        """EXPUNGE responses, ascending, each number as it is at that moment (§7.4.1)."""
        lines = []
        for uid in sorted(self.pending_expunge):
            if uid in self.rows:
                index = bisect.bisect_left(self.uids, uid)
                del self.uids[index]
                del self.rows[uid]
                self.recent.discard(uid)
                lines.append(b"%d EXPUNGE" % (index + 1))
        self.pending_expunge.clear()
        return lines

    # --- changes made by this session ------------------------------------------------------

    def store_flags(self, uids: Sequence[int], flags: Sequence[str],
                    mode: Literal["add", "remove", "replace"],
                    unchanged_since: Optional[int] = None) -> Deferred[FlagsResult]:
        """STORE through the store (one new MODSEQ; RFC 7162 UNCHANGEDSINCE); the view takes
        the new flags and MODSEQs."""
        d = self.access.runner.write(set_flags, self.box.id, list(uids), list(flags), mode,
                                     unchanged_since=unchanged_since)

        def stored(result: FlagsResult) -> FlagsResult:
            for change in result.changed:
                if change.uid in self.rows:
                    self.rows[change.uid] = replace(self.rows[change.uid], flags=change.flags,
                                                    modseq=change.modseq)
            self.keywords |= self._keywords(self.rows[c.uid] for c in result.changed
                                            if c.uid in self.rows)
            if result.changed:
                self.access.hub.changed(self.box.id, origin=self.origin)
            return result

        return d.addCallback(stored)

    def expunge_uids(self, uids: Optional[Sequence[int]]) -> Deferred[list[bytes]]:
        """EXPUNGE / UID EXPUNGE: soft-delete, then announce (with anything pending)."""
        d = self.access.runner.write(store_expunge, self.box.id,
                                     None if uids is None else list(uids),
                                     now=self.access.now())

        def done(expunged: list[int]) -> list[bytes]:
            self.pending_expunge.update(u for u in expunged if u in self.rows)
            if expunged:
                self.access.hub.changed(self.box.id, origin=self.origin)
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
        return d.addCallback(lambda delivered: delivered.uid)

    def expunge(self) -> Deferred[list[int]]:
        """Twisted's expunge: the sequence numbers removed, in announcement order."""
        return self.expunge_uids(None).addCallback(
            lambda lines: [int(line.split()[0]) for line in lines])

    def fetch(self, messages: Any, uid: bool) -> list[tuple[int, StoredMessage]]:
        """(sequence number, IMessage) pairs.  Their content accessors block (database and
        AES): call them in a thread, as fetch.load_batch does with its own connection."""
        seqset = SequenceSet.parse(str(messages))
        access = self.access
        source = MessageSource(access.runner.engine, access.keyring, access.blob_store,
                               self.user, cache=access.info_cache,
                               uidvalidity=self.box.uidvalidity)
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
