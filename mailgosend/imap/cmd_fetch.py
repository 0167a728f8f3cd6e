"""FETCH (RFC 3501 §6.4.5, RFC 7162 §3.1.4 MODSEQ and CHANGEDSINCE).

FLAGS, UID, INTERNALDATE, RFC822.SIZE and MODSEQ come from the session's view; the other
items are loaded in a database thread, a batch of messages per job (fetch.py).  Output follows
the transport's flow control for the whole command: a producer registered on the transport
pauses the loop while the socket buffer is full, so neither a FETCH 1:* over a large mailbox
nor a 50 MB BODY[] (streamed chunk by chunk, never whole in memory) monopolises the reactor or
memory.  BODY[] and RFC822(.TEXT) set \\Seen in a read-write mailbox, BODY.PEEK[] does not,
and the FETCH then carries the new FLAGS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from mailgosend.crypto import DecryptionError
from mailgosend.imap.errors import no
from mailgosend.imap.fetch import FetchItem, Loaded, load_batch, parse_items
from mailgosend.imap.qresync import fetch_modifiers, vanished_earlier
from mailgosend.imap.seqset import SequenceSet
from mailgosend.imap.server import Reply
from mailgosend.imap.tokens import Args
from mailgosend.imap.wireformat import flag_list, internal_date, literal
from mailgosend.store.messages import MessageRow

__all__ = ["FetchCommand", "STREAM_THRESHOLD"]

log = Logger()

STREAM_THRESHOLD = 1 << 20
STREAM_CHUNK = 256 * 1024
META_BATCH = 200
CONTENT_BATCH = 50
CONTENT_BATCH_BYTES = 4 << 20
WRITE_BUFFER = 64 * 1024  # bytes of responses joined into one transport write


@implementer(IPushProducer)
class _OutputGate:
    """Registered on the transport while a big literal streams: its pause/resume calls are
    the transport's buffer filling and draining."""

    def __init__(self) -> None:
        self.paused = False
        self._waiters: list[Deferred[None]] = []

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def stopProducing(self) -> None:
        self.resumeProducing()

    def wait(self) -> Deferred[None]:
        if not self.paused:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter


def _batches(pairs: list[tuple[int, int]], rows: dict[int, Any], content: bool
             ) -> list[list[tuple[int, int]]]:
    batches: list[list[tuple[int, int]]] = [[]]
    size = 0
    for pair in pairs:
        limit_reached = (len(batches[-1]) >= CONTENT_BATCH or size >= CONTENT_BATCH_BYTES) \
            if content else len(batches[-1]) >= META_BATCH
        if limit_reached:
            batches.append([])
            size = 0
        batches[-1].append(pair)
        size += rows[pair[1]].size
    return [b for b in batches if b]


# Session-data items, from the row and whether the message is \Recent to this session.
_ENCODERS: dict[str, Callable[[MessageRow, bool], bytes]] = {
    "uid": lambda row, recent: b"UID %d" % row.uid,
    "flags": lambda row, recent: b"FLAGS " + flag_list(
        row.flags + ("\\Recent",) if recent else row.flags),
    "internaldate": lambda row, recent: b"INTERNALDATE " + internal_date(row.internal_date),
    "size": lambda row, recent: b"RFC822.SIZE %d" % row.size,
    "modseq": lambda row, recent: b"MODSEQ (%d)" % row.modseq,
}

if TYPE_CHECKING:
    from mailgosend.imap.server import SessionCore

    _Session = SessionCore
else:
    _Session = object


class FetchCommand(_Session):
    """Mixin for the session class (factory.IMAPServerProtocol)."""

    async def cmd_FETCH(self, tag: bytes, args: Args, uid: bool = False) -> Reply:
        view = self.selected
        seqset = SequenceSet.parse(args.atom("sequence set"))
        items = parse_items(args.next("FETCH attributes"))
        changed_since, vanished = None, False
        if isinstance(args.peek(), list):  # RFC 7162 §3.1.4.1 CHANGEDSINCE, §3.2.6 VANISHED
            changed_since, vanished = fetch_modifiers(args.parenthesized("modifiers"), uid,
                                                      self.qresync)
        args.end()
        pairs = view.resolve(seqset, uid)
        if uid and not any(item.kind == "uid" for item in items):
            items.append(FetchItem("uid", b"UID"))  # RFC 3501 §6.4.8
        if changed_since is not None or any(item.kind == "modseq" for item in items):
            self.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE enabling command
        if vanished and changed_since is not None:  # before the FETCH responses
            known = SequenceSet([(u, u) for u in view.saved_uids]) if seqset.saved else seqset
            early = await vanished_earlier(view, changed_since, known)
            if early is not None:
                self.send_untagged(early)
        if changed_since is not None:  # RFC 7162 §3.1.4.1
            pairs = [(s, u) for s, u in pairs if view.rows[u].modseq > changed_since]
            if not any(item.kind == "modseq" for item in items):
                items.append(FetchItem("modseq", b"MODSEQ"))
        newly_seen: set[int] = set()
        if not view.readonly and any(i.kind in ("section", "binary") and not i.peek
                                     for i in items):
            unseen = [u for _, u in pairs if "\\Seen" not in view.rows[u].flags]
            if unseen:
                result = await view.store_flags(unseen, ["\\Seen"], "add")
                newly_seen = {change.uid for change in result.changed}
        gate = _OutputGate()
        self.transport.registerProducer(gate, True)
        try:
            missing = await self._fetch_all(pairs, items, newly_seen, gate)
        finally:
            if not self.lost:
                self.transport.unregisterProducer()
        if self.lost:
            return Reply(None)
        if missing:
            raise no("Some messages were expunged meanwhile", "EXPUNGEISSUED")
        return Reply("FETCH completed")

    async def _fetch_all(self, pairs: list[tuple[int, int]], items: list[FetchItem],
                         newly_seen: set[int], gate: _OutputGate) -> bool:
        """Write every response, a batch at a time; True if some messages had vanished.

        Responses without a streamed literal are built synchronously and written a buffer
        (``WRITE_BUFFER``) at a time; the loop yields to the reactor only when the
        transport's buffer is full (the gate) or a literal streams."""
        view = self.selected
        threaded = [item for item in items if item.needs_thread]
        # Header sections come from the structure or caches: batches as large as ENVELOPE's.
        content = any(item.kind == "section" and not item.cacheable
                      or item.kind in ("binary", "binarysize") for item in items)
        missing = False
        simple = [(index, item) for index, item in enumerate(items) if not item.needs_thread]
        wants_flags = any(i.kind == "flags" for i in items)
        access = self.access
        cached_only = all(i.kind == "envelope" or i.cacheable for i in threaded)
        # BODY[] and its partials need no structure: a small blob the listener holds sealed
        # is decrypted here, without a database job (_bodies_from_cache).
        whole_only = all(i.kind == "section" and i.section == "" for i in threaded)
        if not threaded and not newly_seen:
            return await self._fetch_simple(pairs, items, gate)
        for batch in _batches(pairs, view.rows, content) if threaded else [pairs]:
            loaded: dict[int, Loaded] = {}
            todo = [u for _, u in batch]
            if threaded and cached_only:
                loaded, todo = self._from_caches(todo, items)
            elif threaded and whole_only:
                loaded, todo = self._bodies_from_cache(todo, items)
            if threaded and todo:
                results = await view.mail.read_messages(
                    load_batch, [view.rows[u] for u in todo], items, STREAM_THRESHOLD,
                    uidvalidity=view.box.uidvalidity, headers=access.header_cache,
                    remember=access.remember, envelopes=access.envelope_cache,
                    items_cache=access.item_cache)
                loaded.update((entry.uid, entry) for entry in results)
                if results and results[-1].upgraded:
                    self._store_structures(results[-1].upgraded)
            out: list[bytes] = []
            size = 0
            for seq, message_uid in batch:
                entry = loaded.get(message_uid)
                if entry is not None and entry.missing:
                    missing = True
                    continue
                with_flags = not wants_flags and message_uid in newly_seen
                if entry is not None and entry.streams:
                    if out:
                        self.transport.write(b"".join(out))
                        out, size = [], 0
                    await self._write_fetch(seq, message_uid, items, entry, with_flags, gate)
                    await gate.wait()
                else:
                    line = self._fetch_line(seq, message_uid, items, simple, entry, with_flags)
                    out.append(line)
                    size += len(line)
                    if size >= WRITE_BUFFER:
                        self.transport.write(b"".join(out))
                        out, size = [], 0
                        if gate.paused:  # the socket buffer is full: let the reactor drain it
                            await gate.wait()
                if self.lost:
                    return missing
            if out:
                self.transport.write(b"".join(out))
            if gate.paused:
                await gate.wait()
            if self.lost:
                return missing
        return missing

    async def _fetch_simple(self, pairs: list[tuple[int, int]], items: list[FetchItem],
                            gate: _OutputGate) -> bool:
        """FETCH of session data only (FLAGS, UID, INTERNALDATE, RFC822.SIZE, MODSEQ): one
        tight loop with an encoder per item, no database, no per-message coroutine."""
        view = self.selected
        rows, recent = view.rows, view.recent
        encoders = [_ENCODERS[item.kind] for item in items]
        kinds = [item.kind for item in items]
        # The usual (UID) FETCH (FLAGS): one format per line and each flag set encoded once.
        fast = set(kinds) <= {"uid", "flags"} and len(set(kinds)) == len(kinds)
        template = b"* %d FETCH (" + b" ".join(
            b"UID %d" if kind == "uid" else b"FLAGS %s" for kind in kinds) + b")\r\n"
        flags_first = kinds[0] == "flags"
        encoded: dict[tuple[str, ...], bytes] = {}
        out: list[bytes] = []
        size = 0
        for seq, message_uid in pairs:
            row = rows[message_uid]
            if fast:
                flags = row.flags + ("\\Recent",) if message_uid in recent else row.flags
                listed = encoded.get(flags)
                if listed is None:
                    listed = encoded[flags] = flag_list(flags)
                values: tuple[Any, ...] = (
                    (seq, listed) if len(kinds) == 1 and flags_first else
                    (seq, message_uid) if len(kinds) == 1 else
                    (seq, listed, message_uid) if flags_first else (seq, message_uid, listed))
                line = template % values
            else:
                line = b"* %d FETCH (%s)\r\n" % (seq, b" ".join(
                    [encode(row, message_uid in recent) for encode in encoders]))
            out.append(line)
            size += len(line)
            if size >= WRITE_BUFFER:
                self.transport.write(b"".join(out))
                out, size = [], 0
                if gate.paused:
                    await gate.wait()
                if self.lost:
                    return False
        if out:
            self.transport.write(b"".join(out))
        return False

    def _from_caches(self, uids: list[int], items: list[FetchItem]
                     ) -> tuple[dict[int, Loaded], list[int]]:
        """ENVELOPE and top-level header sections answered from the listener's caches in
        the reactor thread (a dictionary lookup each); the UIDs missing something go to a
        database job."""
        access, view = self.access, self.selected
        mailbox_id, uidvalidity = view.box.id, view.box.uidvalidity
        threaded = [(index, item) for index, item in enumerate(items) if item.needs_thread]
        envelopes, item_cache = access.envelope_cache, access.item_cache
        loaded: dict[int, Loaded] = {}
        missing: list[int] = []
        for uid in uids:
            key = (mailbox_id, uidvalidity, uid)
            found: dict[int, bytes] = {}
            for index, item in threaded:
                value = envelopes.get(key) if item.kind == "envelope" else \
                    item_cache.get(item.label, key)
                if value is None:
                    break
                found[index] = value
            else:
                loaded[uid] = Loaded(uid, found)
                continue
            missing.append(uid)
        return loaded, missing

    def _bodies_from_cache(self, uids: list[int], items: list[FetchItem]
                           ) -> tuple[dict[int, Loaded], list[int]]:
        """BODY[] (and partials) of messages whose sealed blob the listener's cache holds
        (store.blobs.SealedBlobCache: at most SMALL_BLOB_BYTES each), decrypted in the
        reactor thread; the others, and any that fails to open, go to a database job, which
        reports them as it always has (missing, or damaged and logged)."""
        view = self.selected
        sections = [(index, item) for index, item in enumerate(items) if item.needs_thread]
        loaded: dict[int, Loaded] = {}
        missing: list[int] = []
        for uid in uids:
            row = view.rows[uid]
            try:
                reader = view.mail.open_cached_blob(row.blob_id)
                if reader is None:
                    missing.append(uid)
                    continue
                found: dict[int, bytes] = {}
                for index, item in sections:
                    start, end = 0, row.size
                    if item.partial:
                        start = min(item.partial[0], end)
                        end = min(item.partial[0] + item.partial[1], end)
                    found[index] = item.label + b" " + literal(
                        reader.read_range(start, end - start) if end > start else b"")
            except (DecryptionError, ValueError):
                missing.append(uid)  # the database job decides (and logs a damaged blob)
                continue
            loaded[uid] = Loaded(uid, found)
        return loaded, missing

    def _store_structures(self, structures: list[Any]) -> None:
        """Persist header blocks read from old messages' blobs; a failure only costs speed."""
        d = self.selected.mail.store_structures(structures)
        d.addErrback(lambda f: log.failure("storing header blocks failed", f))

    def _fetch_line(self, seq: int, message_uid: int, items: list[FetchItem],
                    simple: list[tuple[int, FetchItem]], entry: Optional[Loaded],
                    with_flags: bool) -> bytes:
        """One whole untagged FETCH response without streamed parts."""
        if entry is None:
            parts = [self._simple(item, message_uid) for item in items]
        else:
            parts = [entry.items.get(index, b"") for index in range(len(items))]
            for index, item in simple:
                parts[index] = self._simple(item, message_uid)
        if with_flags:  # \Seen was set by this FETCH (and so was a new MODSEQ)
            parts.append(b"FLAGS " + flag_list(self.selected.flags_of(message_uid)))
            if self.condstore and not any(i.kind == "modseq" for i in items):
                parts.append(self._simple(FetchItem("modseq", b"MODSEQ"), message_uid))
        return b"* %d FETCH (%s)\r\n" % (seq, b" ".join(parts))

    def _simple(self, item: FetchItem, message_uid: int) -> bytes:
        view = self.selected
        if item.kind == "uid":
            return b"UID %d" % message_uid
        if item.kind == "flags":
            return b"FLAGS " + flag_list(view.flags_of(message_uid))
        row = view.rows[message_uid]
        if item.kind == "internaldate":
            return b"INTERNALDATE " + internal_date(row.internal_date)
        if item.kind == "modseq":
            return b"MODSEQ (%d)" % row.modseq
        return b"RFC822.SIZE %d" % row.size

    async def _write_fetch(self, seq: int, message_uid: int, items: list[FetchItem],
                           entry: Optional[Loaded], with_flags: bool, gate: _OutputGate
                           ) -> None:
        pending = [b"* %d FETCH (" % seq]
        parts: list[Any] = []
        for index, item in enumerate(items):
            if not item.needs_thread:
                parts.append(self._simple(item, message_uid))
            elif entry is not None and index in entry.streams:
                parts.append((item, entry.streams[index]))
            else:
                assert entry is not None
                parts.append(entry.items[index])
        if with_flags:  # \Seen was set by this FETCH (and so was a new MODSEQ)
            parts.append(b"FLAGS " + flag_list(self.selected.flags_of(message_uid)))
            if self.condstore and not any(i.kind == "modseq" for i in items):
                parts.append(self._simple(FetchItem("modseq", b"MODSEQ"), message_uid))
        for position, part in enumerate(parts):
            if position:
                pending.append(b" ")
            if isinstance(part, bytes):
                pending.append(part)
                continue
            item, (start, end) = part
            pending.append(item.label + b" {%d}\r\n" % (end - start))
            self.transport.write(b"".join(pending))
            pending = []
            await self._stream(message_uid, start, end, gate)
        pending.append(b")\r\n")
        self.transport.write(b"".join(pending))

    async def _stream(self, message_uid: int, start: int, end: int, gate: _OutputGate
                      ) -> None:
        """Send [start, end) of the blob, one chunk per worker call, at the reader's pace."""
        access, row = self.access, self.selected.rows[message_uid]
        reader = await self.selected.mail.open_blob(row.blob_id)
        try:
            position = start
            while position < end and not self.lost:
                chunk = await access.workers.run(reader.read_range, position,
                                                 min(STREAM_CHUNK, end - position))
                if not chunk:  # the literal promised more octets: the stream is broken
                    raise ConnectionError("message shorter than its recorded size")
                self.transport.write(chunk)
                position += len(chunk)
                await gate.wait()
        except Exception:
            log.failure("streaming a message failed; closing the connection")
            self.transport.abortConnection()
            raise
        finally:
            access.workers.run(reader.close)

