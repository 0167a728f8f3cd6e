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

from typing import TYPE_CHECKING, Any, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from mailgosend.imap.errors import no
from mailgosend.imap.fetch import FetchItem, Loaded, load_batch, parse_items
from mailgosend.imap.seqset import SequenceSet
from mailgosend.imap.server import Reply
from mailgosend.imap.tokens import Args
from mailgosend.imap.wireformat import flag_list, internal_date

__all__ = ["FetchCommand", "STREAM_THRESHOLD"]

log = Logger()

STREAM_THRESHOLD = 1 << 20
STREAM_CHUNK = 256 * 1024
META_BATCH = 200
CONTENT_BATCH = 50
CONTENT_BATCH_BYTES = 4 << 20


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
        changed_since = args.modifier("CHANGEDSINCE")
        args.end()
        pairs = view.resolve(seqset, uid)
        if uid and not any(item.kind == "uid" for item in items):
            items.append(FetchItem("uid", b"UID"))  # RFC 3501 §6.4.8
        if changed_since is not None or any(item.kind == "modseq" for item in items):
            self.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE enabling command
        if changed_since is not None:  # RFC 7162 §3.1.4.1
            pairs = [(s, u) for s, u in pairs if view.rows[u].modseq > changed_since]
            if not any(item.kind == "modseq" for item in items):
                items.append(FetchItem("modseq", b"MODSEQ"))
        newly_seen: set[int] = set()
        if not view.readonly and any(i.kind == "section" and not i.peek for i in items):
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
        """Write every response, a batch at a time; True if some messages had vanished."""
        view = self.selected
        threaded = [item for item in items if item.needs_thread]
        content = any(item.kind == "section" for item in items)
        missing = False
        for batch in _batches(pairs, view.rows, content):
            loaded: dict[int, Loaded] = {}
            if threaded:
                results = await self.access.runner.read(
                    load_batch, self.access.keyring, self.access.blob_store, view.user,
                    [view.rows[u] for _, u in batch], items, STREAM_THRESHOLD,
                    cache=self.access.info_cache, uidvalidity=view.box.uidvalidity)
                loaded = {entry.uid: entry for entry in results}
            for seq, message_uid in batch:
                entry = loaded.get(message_uid)
                if entry is not None and entry.missing:
                    missing = True
                    continue
                with_flags = message_uid in newly_seen and not any(
                    i.kind == "flags" for i in items)
                await self._write_fetch(seq, message_uid, items, entry, with_flags, gate)
                await gate.wait()  # the socket buffer is full: let the reactor drain it
                if self.lost:
                    return missing
        return missing

    def _simple(self, item: FetchItem, message_uid: int) -> bytes:
        view = self.selected
        row = view.rows[message_uid]
        if item.kind == "uid":
            return b"UID %d" % message_uid
        if item.kind == "flags":
            return b"FLAGS " + flag_list(view.flags_of(message_uid))
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
        reader = await access.workers.run(access.blob_store.open_blob, access.runner.engine,
                                          access.keyring, self.selected.user.uuid, row.blob_id)
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

