"""Commands of the selected state (RFC 3501 §6.4) except FETCH (cmd_fetch.py) and IDLE.

UID covers FETCH, STORE, SEARCH, COPY, MOVE (RFC 6851) and EXPUNGE (RFC 4315); COPY and MOVE
answer COPYUID.  STORE takes RFC 7162 UNCHANGEDSINCE and answers MODIFIED; SEARCH takes MODSEQ,
RFC 4731 RETURN options and RFC 5182 SAVE (esearch.py); "$" is accepted wherever a set is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from mailgosend.imap.errors import bad, no
from mailgosend.imap.esearch import (ResultOptions, bind_saved, esearch_line, parse_return,
                                     saved_part)
from mailgosend.imap.rev2 import reject_removed_keys
from mailgosend.imap.search import check_charset, parse_search, uses_modseq_key
from mailgosend.imap.seqset import SequenceSet, compress
from mailgosend.imap.server import Reply
from mailgosend.imap.tokens import Args, Atom

__all__ = ["SelectedCommands"]


if TYPE_CHECKING:
    from mailgosend.imap.server import SessionCore

    _Session = SessionCore
else:
    _Session = object


class SelectedCommands(_Session):
    """Mixin for the session class (factory.IMAPServerProtocol)."""

    # --- STORE, SEARCH, COPY/MOVE, EXPUNGE ---------------------------------------------------

    async def cmd_STORE(self, tag: bytes, args: Args, uid: bool = False) -> Reply:
        view = self.selected
        seqset = SequenceSet.parse(args.atom("sequence set"))
        unchanged_since = args.modifier("UNCHANGEDSINCE")
        if unchanged_since is not None:
            self.enable_condstore()
        item = args.atom("store item").upper()
        silent = item.endswith(".SILENT")
        base = item[:-len(".SILENT")] if silent else item
        modes = {"FLAGS": "replace", "+FLAGS": "add", "-FLAGS": "remove"}
        if base not in modes:
            raise bad("Expected FLAGS, +FLAGS or -FLAGS")
        tokens = args.rest()
        if not tokens:
            raise bad("Expected a list of flags")
        if len(tokens) == 1 and isinstance(tokens[0], list):
            tokens = tokens[0]  # RFC 3501 §9: flag-list = "(" [flag *(SP flag)] ")", may be empty
        if not all(isinstance(t, Atom) for t in tokens):
            raise bad("Expected a list of flags")
        if view.readonly:
            raise no("The mailbox is read-only (EXAMINE)")
        pairs = view.resolve(seqset, uid)
        modified: list[int] = []
        changed: set[int] = set()
        if pairs:
            result = await view.store_flags([u for _, u in pairs], [str(t) for t in tokens],
                                            modes[base], unchanged_since)
            modified = result.modified
            changed = {c.uid for c in result.changed}
            for line in view.keyword_lines(view.rows[u] for u in changed if u in view.rows):
                self.send_untagged(line)
        for seq, message_uid in pairs:
            if message_uid not in view.rows or message_uid in modified:
                continue
            if not silent:
                self.send_untagged(view.fetch_flags_line(message_uid, with_uid=uid))
            elif self.condstore and message_uid in changed:  # RFC 7162 §3.1.3 example
                self.send_untagged(view.fetch_flags_line(message_uid, with_uid=uid,
                                                         with_flags=False))
        if modified:  # RFC 7162 §3.1.3: MODIFIED names what failed UNCHANGEDSINCE
            names = modified if uid else [view.seq_of(u) for u in modified]
            return Reply("Conditional STORE failed", f"MODIFIED {compress(sorted(names))}")
        return Reply("STORE completed")

    async def cmd_SEARCH(self, tag: bytes, args: Args, uid: bool = False) -> Reply:
        options = parse_return(args)  # RFC 4731 §3.1: RETURN comes before CHARSET
        if self.rev2 and not options.extended:  # RFC 9051 §6.4.4: no option means ALL
            options = ResultOptions(frozenset({"ALL"}))
        try:
            found, uses_modseq = await self._search(args, uid)
        except Exception:
            if options.save:  # RFC 5182 §2.1: a failed SEARCH ... SAVE empties "$"
                self.selected.saved_uids = []
            raise
        if options.save:
            kept = saved_part(found, options)
            self.selected.saved_uids = kept if uid else [self.selected.uids[n - 1] for n in kept]
        if options.extended:
            if options.answers:
                self.send_untagged(esearch_line(tag, uid, found, options,
                                                self._highest_modseq(uid) if uses_modseq
                                                else None))
            return Reply("SEARCH completed")
        line = b" ".join([b"SEARCH"] + [b"%d" % n for n in found])
        if uses_modseq and found:  # RFC 7162 §3.1.5: the highest MODSEQ of the matches
            rows = self.selected.rows
            uids = found if uid else [self.selected.uids[n - 1] for n in found]
            line += b" (MODSEQ %d)" % max(rows[u].modseq for u in uids)
        self.send_untagged(line)
        return Reply("SEARCH completed")

    async def _search(self, args: Args, uid: bool) -> tuple[list[int], bool]:
        """SEARCH's criteria run over the selected mailbox: the numbers found and whether a
        MODSEQ key was among them (SORT and THREAD take the same criteria)."""
        first = args.peek()
        if isinstance(first, Atom) and first.upper() == "CHARSET":
            if self.utf8:  # RFC 6855 §3 (erratum 4029): strings are UTF-8 already
                raise bad("SEARCH CHARSET is not allowed after ENABLE UTF8=ACCEPT")
            args.next()
            check_charset(args.astring("charset"))
        tree = parse_search(args.rest())
        if self.rev2:
            reject_removed_keys(tree)  # RFC 9051 §9: no NEW, OLD, RECENT
        bind_saved(tree, self.selected.saved_uids, self.selected.uids)
        uses_modseq = uses_modseq_key(tree)
        if uses_modseq:
            self.enable_condstore()
        return await self.account.search(self.selected, tree, uid), uses_modseq

    def _highest_modseq(self, uid: bool) -> Callable[[Sequence[int]], int]:
        """The highest MODSEQ of some numbers of the view (RFC 7162 §3.1.5, RFC 4731 §3.2)."""
        view = self.selected

        def highest(numbers: Sequence[int]) -> int:
            uids = numbers if uid else [view.uids[n - 1] for n in numbers]
            return max(view.rows[u].modseq for u in uids)

        return highest

    async def cmd_COPY(self, tag: bytes, args: Args, uid: bool = False) -> Reply:
        return await self._copy(args, uid, move=False)

    async def cmd_MOVE(self, tag: bytes, args: Args, uid: bool = False) -> Reply:
        return await self._copy(args, uid, move=True)

    async def _copy(self, args: Args, uid: bool, move: bool) -> Reply:
        view = self.selected
        seqset = SequenceSet.parse(args.atom("sequence set"))
        target = args.mailbox()
        args.end()
        if move and view.readonly:
            raise no("The mailbox is read-only (EXAMINE)")
        pairs = view.resolve(seqset, uid)
        verb = "MOVE" if move else "COPY"
        if not pairs:
            return Reply(f"{verb} completed (no messages)")
        result = await self.account.copy(view, [u for _, u in pairs], target, move)
        code = None
        if result.pairs:
            code = (f"COPYUID {result.uidvalidity} {compress(s for s, _ in result.pairs)} "
                    f"{compress(d for _, d in result.pairs)}")
        if move:
            if code:  # RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs
                self.send_untagged(f"OK [{code}] Moved".encode("ascii"))
            view.pending_expunge.update(result.expunged)
            for line in view.announce_expunges():
                self.send_untagged(line)
            return Reply("MOVE completed")
        return Reply("COPY completed", code)

    async def cmd_EXPUNGE(self, tag: bytes, args: Args, uid: bool = False) -> Reply:
        view = self.selected
        uids = None
        if uid:
            uids = [u for _, u in view.resolve(SequenceSet.parse(args.atom("UID set")), True)]
        args.end()
        if view.readonly:
            raise no("The mailbox is read-only (EXAMINE)")
        if uids == []:
            return Reply("EXPUNGE completed")
        for line in await view.expunge_uids(uids):
            self.send_untagged(line)
        return Reply("EXPUNGE completed")

    async def cmd_UID(self, tag: bytes, args: Args) -> Reply:
        name = args.atom("UID command").upper()
        if name not in ("FETCH", "STORE", "SEARCH", "COPY", "MOVE", "EXPUNGE", "SORT",
                        "THREAD"):
            raise bad(f"Unknown UID command {name[:20]}")
        handler = getattr(self, f"cmd_{name}")  # FETCH: cmd_fetch.py, SORT/THREAD: cmd_sort.py
        reply: Reply = await handler(tag, args, uid=True)
        return reply

    # --- leaving the mailbox -------------------------------------------------------------------

    async def cmd_CHECK(self, tag: bytes, args: Args) -> Reply:
        args.end()
        return Reply("CHECK completed")

    async def cmd_CLOSE(self, tag: bytes, args: Args) -> Reply:
        """§6.4.2: expunge silently (no untagged EXPUNGE), then leave the mailbox."""
        args.end()
        view = self.selected
        if not view.readonly:
            await view.expunge_uids(None)
        self.deselect()
        return Reply("CLOSE completed")

    async def cmd_UNSELECT(self, tag: bytes, args: Args) -> Reply:
        """RFC 3691: leave the mailbox without expunging."""
        args.end()
        self.deselect()
        return Reply("UNSELECT completed")
