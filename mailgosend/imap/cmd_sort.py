# -*- test-case-name: tests.test_imap_sort -*-
"""SORT and THREAD commands (RFC 5256), with ESORT result options (RFC 5267 §3).

``SORT [RETURN (...)] (criteria) charset search-keys`` and ``THREAD algorithm charset
search-keys``, and their UID forms.  The search runs as SEARCH does (cmd_selected.py); the
matches' order fields come from the listener's OrderCache (sort.py), and the sort or
threading runs in a worker thread over plain tuples.  CONTEXT=SORT (RFC 5267 §4) is not
implemented and not advertised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from mailgosend.imap.errors import bad
from mailgosend.imap.esearch import esearch_line, parse_return, saved_part
from mailgosend.imap.search import check_charset
from mailgosend.imap.server import Reply
from mailgosend.imap.sort import (JOB_SIZE, OrderFields, SortEntry, load_order_job,
                                  parse_criteria, sort_numbers)
from mailgosend.imap.thread import ThreadItem, format_threads, ordered_subject, references
from mailgosend.imap.tokens import Args

__all__ = ["SortCommands", "THREAD_ALGORITHMS"]

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
            found, uses_modseq = await self._search(args, uid)
            entries = await self._entries(found, uid)
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
        line = b" ".join([b"SORT"] + [b"%d" % n for n in numbers])
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
        found, _ = await self._search(args, uid)
        entries = await self._entries(found, uid)
        view = self.selected
        items = [ThreadItem(view.uids[seq - 1] if uid else seq,
                            (date if fields[0] is None else fields[0], seq),
                            fields[1], fields[2], fields[8], fields[9])
                 for seq, date, _, fields in entries]
        threads = await self.access.workers.run(lambda: format_threads(algorithm(items)))
        self.send_untagged(b"THREAD " + threads if threads else b"THREAD")
        return Reply("THREAD completed")

    async def _entries(self, found: Sequence[int], uid: bool) -> list[SortEntry]:
        """(sequence number, INTERNALDATE, size, order fields) of the matches; the fields of
        messages not cached yet are read ``JOB_SIZE`` per database job."""
        view, access = self.selected, self.access
        seqs = [view.seq_of(n) for n in found] if uid else list(found)
        rows = [view.rows[view.uids[s - 1]] for s in seqs]
        cache = access.order_cache
        known = cache.mailbox(view.box.id, view.box.uidvalidity)
        missing = [row for row in rows if row.uid not in known]
        loaded: dict[int, OrderFields] = {}
        for start in range(0, len(missing), JOB_SIZE):
            loaded.update(await access.runner.read(
                load_order_job, access.keyring, access.blob_store, view.user,
                missing[start:start + JOB_SIZE], view.box.uidvalidity, cache,
                infos=access.info_cache, headers=access.header_cache,
                remember=access.remember, blob_cache=access.blob_cache))
        entries: list[SortEntry] = []
        for seq, row in zip(seqs, rows):
            fields = known.get(row.uid) or loaded.get(row.uid)
            if fields is None:  # purged since the view saw it: left out
                continue
            entries.append((seq, row.internal_date.timestamp(), row.size, fields))
        return entries
