# -*- test-case-name: tests.test_imap_sort -*-
"""SORT and THREAD commands (RFC 5256), with ESORT result options (RFC 5267 §3).

``SORT [RETURN (...)] (criteria) charset search-keys`` and ``THREAD algorithm charset
search-keys``, and their UID forms.  The search runs as SEARCH does (cmd_selected.py); the
matches' order fields come from the listener's OrderCache (sort.py), and the sort or
threading runs over plain tuples: a sort of up to ``INLINE_SORT`` matches (a few ms) in the
reactor thread, larger sorts and every threading in a worker thread.  CONTEXT=SORT (RFC 5267 §4) is not
implemented and not advertised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional, Sequence

from mailgosend.imap.errors import bad
from mailgosend.imap.esearch import esearch_line, parse_return, saved_part
from mailgosend.imap.search import check_charset
from mailgosend.imap.server import Reply
from mailgosend.imap.sort import (JOB_SIZE, OrderFields, SortEntry, load_order_job,
                                  parse_criteria, sort_numbers)
from mailgosend.imap.thread import (Forest, ThreadItem, format_threads, ordered_subject,
                                    references)
from mailgosend.imap.tokens import Args

__all__ = ["SortCommands", "THREAD_ALGORITHMS", "thread_text"]

INLINE_SORT = 20_000  # matches sorted in the reactor thread; more go to a worker thread
THREAD_ALGORITHMS = {"ORDEREDSUBJECT": ordered_subject, "REFERENCES": references}

if TYPE_CHECKING:
    from mailgosend.imap.cmd_selected import SelectedCommands

    _Session = SelectedCommands
else:
    _Session = object


class SortCommands(_Session):
    """Mixin for the session class (factory.IMAPServerProtocol)."""

    async def cmd_SORT(self, tag: bytes, args: Args, uid: bool = False) -> Reply:
        options = parse_return(args)  # RFC 5267 §3: ESORT
        view = self.selected
        try:
            criteria = parse_criteria(args.parenthesized("sort criteria"))
            check_charset(args.astring("charset"))
            found, uses_modseq = await self._search(args, False)  # sequence numbers
            entries = await self._entries(found)
            if len(entries) <= INLINE_SORT:  # a few ms: cheaper than two thread hand-overs
                ordered = sort_numbers(entries, criteria)
            else:
                ordered = await self.access.workers.run(sort_numbers, entries, criteria)
        except Exception:
            if options.save:  # RFC 5182 §2.1: a failed SAVE empties "$"
                view.saved_uids = []
            raise
        numbers = [view.uids[n - 1] for n in ordered] if uid else ordered
        if options.save:  # MIN and MAX are first and last in sort order here
            kept = saved_part(numbers, options, ordered=True)
            view.saved_uids = sorted(kept if uid else [view.uids[n - 1] for n in kept])
        modseq = self._highest_modseq(uid) if uses_modseq else None
        if options.extended:
            if options.answers:
                self.send_untagged(esearch_line(tag, uid, numbers, options, modseq,
                                                ordered=True))
            return Reply("SORT completed")
        line = " ".join(["SORT"] + [str(n) for n in numbers]).encode("ascii")
        if modseq is not None and numbers:  # RFC 7162 §3.1.5
            line += b" (MODSEQ %d)" % modseq(numbers)
        self.send_untagged(line)
        return Reply("SORT completed")

    async def cmd_THREAD(self, tag: bytes, args: Args, uid: bool = False) -> Reply:
        name = args.atom("threading algorithm").upper()
        algorithm = THREAD_ALGORITHMS.get(name)
        if algorithm is None:
            raise bad("Threading algorithms are ORDEREDSUBJECT and REFERENCES")
        check_charset(args.astring("charset"))
        found, _ = await self._search(args, False)  # sequence numbers
        entries = await self._entries(found)
        threads = await self.access.workers.run(
            thread_text, entries, list(self.selected.uids) if uid else None, algorithm)
        self.send_untagged(b"THREAD " + threads if threads else b"THREAD")
        return Reply("THREAD completed")

    async def _entries(self, seqs: Sequence[int]) -> list[SortEntry]:
        """(sequence number, order fields) of the matches; the fields of messages not cached
        yet are read ``JOB_SIZE`` per database job.  The structures decrypted for them fill
        no other cache: warming ENVELOPE, header and SEARCH caches for a whole mailbox (as
        ``StoreAccess.remember`` does for FETCH) cost 40 % more than the keys themselves, and
        a client that sorts fetches only a window of what it sorted."""
        view, access = self.selected, self.access
        uids = view.uids
        cache = access.order_cache
        known = cache.mailbox(view.box.id, view.box.uidvalidity)
        missing = [view.rows[uids[s - 1]] for s in seqs if uids[s - 1] not in known]
        loaded: dict[int, OrderFields] = {}
        for start in range(0, len(missing), JOB_SIZE):
            # no uidvalidity: the order keys fill no structure cache (see above)
            loaded.update(await view.mail.read_messages(
                load_order_job, missing[start:start + JOB_SIZE], view.box.uidvalidity, cache))
        if not loaded:
            get = known.get
            return [(s, f) for s in seqs if (f := get(uids[s - 1])) is not None]
        entries: list[SortEntry] = []
        for seq in seqs:
            fields = known.get(uids[seq - 1]) or loaded.get(uids[seq - 1])
            if fields is not None:  # None: purged since the view saw it, left out
                entries.append((seq, fields))
        return entries


def thread_text(entries: Sequence[SortEntry], uids: Optional[Sequence[int]],
                algorithm: Callable[[Sequence[ThreadItem]], Forest]) -> bytes:
    """Worker thread: the thread-list of the matches, numbered by UID if ``uids`` (the view's,
    in sequence order) is given, else by sequence number; RFC 5256 §2.2 dates (the
    INTERNALDATE when Date cannot be read)."""
    make = tuple.__new__  # the NamedTuple's own constructor costs five times more
    items = [make(ThreadItem, (seq if uids is None else uids[seq - 1],
                               (f[10] if f[0] is None else f[0], seq), f[1], f[2], f[8], f[9]))
             for seq, f in entries]
    return format_threads(algorithm(items))
