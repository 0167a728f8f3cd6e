"""Commands of the authenticated state (RFC 3501 §6.3) and their extensions.

SELECT/EXAMINE, CREATE (RFC 6154 §3 USE), DELETE, RENAME, (UN)SUBSCRIBE, LIST with real
attributes (RFC 3348 CHILDREN, RFC 6154 SPECIAL-USE) and LIST-EXTENDED/LIST-STATUS (RFC 5258,
RFC 5819; listext.py), LSUB, STATUS (RFC 8438 SIZE, RFC 7889 APPENDLIMIT), APPEND (RFC 4315
APPENDUID; RFC 3502 MULTIAPPEND; RFC 3516 literal8; RFC 6855 UTF8; size and quota checked
before the literal is read), NAMESPACE (RFC 2342), QUOTA (RFC 9208 STORAGE) and ENABLE
(RFC 5161: CONDSTORE, QRESYNC, UTF8=ACCEPT, IMAP4rev2 with its rules from rev2.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

from twisted.internet.defer import Deferred

from mailgosend.imap.errors import ImapError, bad, no
from mailgosend.imap.seqset import compress
from mailgosend.imap.qresync import resync_lines, select_params
from mailgosend.imap.rev2 import check_net_unicode, oldname_item, status_items
from mailgosend.imap.server import Reply
from mailgosend.imap.tokens import (Args, Atom, Quoted, decode_name, mailbox_name,
                                    parse_datetime)
from mailgosend.imap.framing import Literal
from mailgosend.imap.listext import ListRequest, extended_list, parse_list
from mailgosend.imap.listext import decode_pattern as _pattern
from mailgosend.imap.wireformat import mailbox, plist
from mailgosend.store.mailboxes import ROLES, MailboxHasChildren
from mailgosend.store.messages import MailboxCounts
from mailgosend.store.quota import fits

__all__ = ["MailboxCommands"]

_SPECIAL_USES = {value.lower(): value for value in ROLES.values() if value}
_STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ",
                 "SIZE", "APPENDLIMIT")  # RFC 8438 SIZE, RFC 7889 APPENDLIMIT
_NO_MESSAGES = MailboxCounts(0, 0, 0)


if TYPE_CHECKING:
    from mailgosend.imap.server import SessionCore

    _Session = SessionCore
else:
    _Session = object


class MailboxCommands(_Session):
    """Mixin for the session class (factory.IMAPServerProtocol)."""

    def append_literal_check(self, size: int, before: int = 0) -> Any:
        """RFC 7889/RFC 4469 TOOBIG and RFC 9208 OVERQUOTA before the message is sent;
        ``before``: the octets of the command's earlier messages (MULTIAPPEND)."""
        limit = self.access.max_message_size
        if size > limit:
            return no(f"Message too big (limit {limit} octets)", "TOOBIG")

        def check(usage: tuple[int, int]) -> Optional[ImapError]:
            used, quota = usage
            if not fits(used + before, quota, size):
                return no("Message does not fit in the mailbox quota", "OVERQUOTA")
            return None

        d: Deferred[Any] = self.account.quota()
        return d.addCallbacks(check, lambda f: no("Quota unavailable", "UNAVAILABLE"))

    async def cmd_SELECT(self, tag: bytes, args: Args) -> Reply:
        return await self._select(args, readonly=False)

    async def cmd_EXAMINE(self, tag: bytes, args: Args) -> Reply:
        return await self._select(args, readonly=True)

    @staticmethod
    def _named(args: Args) -> tuple[str, str]:
        """A mailbox argument: (the name it means, the name as the client wrote it)."""
        raw = args.astring("mailbox name")
        name = mailbox_name(raw, args.utf8)
        return name, decode_name(raw, args.utf8)

    async def _select(self, args: Args, readonly: bool) -> Reply:
        name, supplied = self._named(args)
        resync = None
        if not args.at_end():  # RFC 7162 §3.1.8 CONDSTORE, §3.2.5 QRESYNC (...)
            params = args.parenthesized("SELECT parameters")
            args.end()
            condstore, resync = select_params(params, self.qresync)
            if condstore:
                self.enable_condstore()
        if self.selected is not None:  # RFC 7162 §3.2.11: the old mailbox is closed
            self.send_untagged(b"OK [CLOSED] Previous mailbox closed")
        self.deselect()
        view = await self.account.open(name, readonly, self.rev2)
        if view is None:
            raise no("Mailbox does not exist", "NONEXISTENT")
        view.origin = self
        view.report_modseq = self.condstore
        view.report_vanished = self.qresync
        view.addListener(self)
        self.selected = view
        self.state = "select"
        self.access.hub.attach(view.id, self)
        for line in view.select_lines():
            self.send_untagged(line)
        if self.rev2:  # RFC 9051 §6.3.2: a LIST response with accurate attributes
            await self._send_own_list(view.box.name, oldname_item(supplied, view.box.name))
        if resync is not None:
            for line in await resync_lines(view, resync):
                self.send_untagged(line)
        verb = "EXAMINE" if readonly else "SELECT"
        return Reply(f"{verb} completed", "READ-ONLY" if readonly else "READ-WRITE")

    async def _send_own_list(self, name: str, extended: bytes = b"") -> None:
        """The LIST response of one mailbox, as LIST would give it, with an extended data
        item (rev2.oldname_item)."""
        for entry in await self.account.list_entries("", [name]):
            if entry.name == name:
                self._list_line(b"LIST", entry, extended)

    async def cmd_CREATE(self, tag: bytes, args: Args) -> Reply:
        name, supplied = self._named(args)
        if self.rev2:
            check_net_unicode(name)  # RFC 9051 §6.3.4
        special_use = None
        if not args.at_end():  # RFC 6154 §3: CREATE name (USE (\Sent))
            params = args.parenthesized("CREATE parameters")
            args.end()
            if (len(params) != 2 or not isinstance(params[0], Atom) or params[0].upper() != "USE"
                    or not isinstance(params[1], list)):
                raise bad("Expected (USE (attributes))")
            uses = [str(t).lower() for t in params[1]]
            if len(uses) != 1 or uses[0] not in _SPECIAL_USES:
                raise no("Unsupported special-use attribute", "USEATTR")
            special_use = _SPECIAL_USES[uses[0]]
        box = await self.account.create_mailbox(name, special_use)
        oldname = oldname_item(supplied, box.name)
        if self.rev2 and oldname:  # RFC 9051 §6.3.4
            await self._send_own_list(box.name, oldname)
        return Reply("CREATE completed")

    async def cmd_DELETE(self, tag: bytes, args: Args) -> Reply:
        name = args.mailbox()
        args.end()
        try:
            box = await self.account.delete_mailbox(name)
        except MailboxHasChildren as exc:
            if self.rev2:  # RFC 9051 §6.3.5, §7.1
                raise no(str(exc), "HASCHILDREN") from None
            raise
        if self.selected is not None and self.selected.id == box.id:
            self.deselect()
        return Reply("DELETE completed")

    async def cmd_RENAME(self, tag: bytes, args: Args) -> Reply:
        (old, supplied_old), (new, supplied_new) = self._named(args), self._named(args)
        args.end()
        if self.rev2:
            check_net_unicode(new)  # RFC 9051 §6.3.4, §6.3.6
        box = await self.account.rename_mailbox(old, new)
        if self.rev2 and (oldname_item(supplied_old, old) or oldname_item(supplied_new, new)):
            # RFC 9051 §6.3.6: OLDNAME is the old name as given, the name the new one
            await self._send_own_list(box.name, oldname_item(supplied_old, box.name))
        return Reply("RENAME completed")

    async def cmd_SUBSCRIBE(self, tag: bytes, args: Args) -> Reply:
        name = args.mailbox()
        args.end()
        await self.account.set_subscription(name, True)
        return Reply("SUBSCRIBE completed")

    async def cmd_UNSUBSCRIBE(self, tag: bytes, args: Args) -> Reply:
        name = args.mailbox()
        args.end()
        await self.account.set_subscription(name, False)
        return Reply("UNSUBSCRIBE completed")

    async def cmd_LIST(self, tag: bytes, args: Args) -> Reply:
        request = parse_list(args, status_items(_STATUS_ITEMS, self.rev2))
        if request.patterns == ("",):  # RFC 3501 §6.3.8: the delimiter and root
            self.send_untagged(b'LIST (\\Noselect) "/" ""')
            return Reply("LIST completed")
        if not request.extended:
            for entry in await self.account.list_entries(request.reference,
                                                         list(request.patterns)):
                self._list_line(b"LIST", entry)
            return Reply("LIST completed")
        await self._list_extended(request)
        return Reply("LIST completed")

    async def _list_extended(self, request: ListRequest) -> None:
        """RFC 5258 entries, each followed by its RFC 5819 STATUS when asked and selectable
        (counts of every mailbox from one grouped query, nothing decrypted)."""
        boxes, subscribed = await self.account.mailboxes_and_subscriptions()
        entries = extended_list(boxes, subscribed, request)
        items = request.status_items
        counts: dict[int, MailboxCounts] = {}
        if items and any(entry.selectable for entry in entries):
            if "HIGHESTMODSEQ" in items:
                self.enable_condstore()  # RFC 7162 §3.1.9
            counts = await self.account.counts_by_mailbox()
        for entry in entries:
            line = (b"LIST " + plist(a.encode("ascii") for a in entry.attributes) + b' "/" '
                    + mailbox(entry.name, self.names_utf8))
            if entry.childinfo:  # RFC 5258 §3.5
                line += b' ("CHILDINFO" (' + b" ".join(
                    b'"%s"' % c.encode("ascii") for c in entry.childinfo) + b"))"
            self.send_untagged(line)
            if items and entry.mailbox is not None:
                recent = 0
                if "RECENT" in items:
                    _, _, recent = await self.account.status(entry.name)
                self.send_untagged(self._status_line(
                    entry.name, entry.mailbox, counts.get(entry.mailbox.id, _NO_MESSAGES),
                    recent, items))

    async def cmd_LSUB(self, tag: bytes, args: Args) -> Reply:
        reference = _pattern(args.astring("reference"), args.utf8)
        pattern = _pattern(args.astring("mailbox pattern"), args.utf8)
        args.end()
        entries = await self.account.list_entries(reference, [pattern], subscribed_only=True,
                                                  lsub=True)
        for entry in entries:
            self._list_line(b"LSUB", entry)
        return Reply("LSUB completed")

    def _list_line(self, verb: bytes, entry: Any, extended: bytes = b"") -> None:
        attributes = plist(a.encode("ascii") for a in entry.attributes)
        self.send_untagged(verb + b" " + attributes + b' "/" '
                           + mailbox(entry.name, self.names_utf8) + extended)

    async def cmd_STATUS(self, tag: bytes, args: Args) -> Reply:
        raw = args.astring("mailbox name")
        name = mailbox_name(raw, args.utf8)
        items = args.parenthesized("status items")
        args.end()
        wanted = [str(t).upper() for t in items]
        allowed = status_items(_STATUS_ITEMS, self.rev2)  # RFC 9051: no RECENT, DELETED
        if not wanted or any(not isinstance(t, Atom) for t in items) or \
                set(wanted) - set(allowed):
            raise bad(f"STATUS items must be among {' '.join(allowed)}")
        if "HIGHESTMODSEQ" in wanted:
            self.enable_condstore()  # RFC 7162 §3.1.9
        box, counts, recent = await self.account.status(name)
        self.send_untagged(self._status_line(name, box, counts, recent, wanted))
        return Reply("STATUS completed")

    def _status_line(self, name: str, box: Any, counts: MailboxCounts, recent: int,
                     wanted: Sequence[str]) -> bytes:
        """``STATUS name (...)``, for STATUS and LIST-STATUS alike."""
        values = {"MESSAGES": counts.messages, "RECENT": recent, "UIDNEXT": box.uidnext,
                  "UIDVALIDITY": box.uidvalidity, "UNSEEN": counts.unseen,
                  "DELETED": counts.deleted,  # RFC 9051 §6.3.11
                  "HIGHESTMODSEQ": box.highestmodseq,
                  # RFC 8438 §4: the sum of RFC822.SIZE, a SUM over the stored sizes.
                  "SIZE": counts.size,
                  # RFC 7889 §4: the same limit for every mailbox (also in CAPABILITY).
                  "APPENDLIMIT": self.access.max_message_size}
        pairs = b" ".join(b"%s %d" % (item.encode("ascii"), values[item]) for item in wanted)
        return b"STATUS " + mailbox(name, self.names_utf8) + b" (" + pairs + b")"

    async def cmd_APPEND(self, tag: bytes, args: Args) -> Reply:
        """APPEND, and MULTIAPPEND (RFC 3502): several ``[flags] [date-time] literal``
        groups, stored all or none, answered with APPENDUID and a UID set (RFC 4315 §3)."""
        name = args.mailbox()
        messages: list[tuple[Any, list[str], Any]] = []
        while True:
            flags: list[str] = []
            if isinstance(args.peek(), list):
                tokens = args.parenthesized("flags")
                if not all(isinstance(t, Atom) for t in tokens):
                    raise bad("Flags must be atoms")
                flags = [str(t) for t in tokens]
            date = None
            if isinstance(args.peek(), Quoted):
                date = parse_datetime(args.astring("date-time"))
            message = args.next("message literal")
            if isinstance(message, Atom) and message == "~" and \
                    isinstance(args.peek(), Literal):
                message = args.next()  # RFC 3516 §4.4 literal8: stored as sent, NULs included
            elif isinstance(message, Atom) and message.upper() == "UTF8":
                message = self._utf8_append_data(args)
            if not isinstance(message, Literal):
                raise bad("The message must be a literal")
            if message.size == 0:
                raise no("Refusing to store an empty message")
            messages.append((message, flags, date))
            if args.at_end():
                break
        if len(messages) > 1:
            stored = await self.account.append_many(
                name, [(m.source(), flags, date) for m, flags, date in messages])
            uids = compress([d.uid for d in stored])
            return Reply("APPEND completed", f"APPENDUID {stored[0].uidvalidity} {uids}")
        message, flags, date = messages[0]
        delivered = await self.account.append(name, message.source(), flags, date)
        return Reply("APPEND completed", f"APPENDUID {delivered.uidvalidity} {delivered.uid}")

    def _utf8_append_data(self, args: Args) -> Literal:
        """RFC 6855 §4: ``UTF8 (~{n}...)``, a message that may carry UTF-8 header fields
        (RFC 6532), accepted once the session enabled UTF8=ACCEPT; stored as sent."""
        if not self.utf8:
            raise bad("APPEND UTF8 needs ENABLE UTF8=ACCEPT first")
        data = args.next("UTF8 message")
        if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], Atom)
                and data[0] == "~" and isinstance(data[1], Literal)):
            raise bad("Expected UTF8 (literal8)")
        return data[1]

    async def cmd_NAMESPACE(self, tag: bytes, args: Args) -> Reply:
        args.end()
        self.send_untagged(b'NAMESPACE (("" "/")) NIL NIL')
        return Reply("NAMESPACE completed")

    async def cmd_GETQUOTAROOT(self, tag: bytes, args: Args) -> Reply:
        name = args.mailbox()
        args.end()
        await self.account.status(name)  # NO [NONEXISTENT] for a missing mailbox
        used, limit = await self.account.quota()
        if not limit:  # RFC 9208 §4.3.2: no quota root at all
            self.send_untagged(b"QUOTAROOT " + mailbox(name, self.names_utf8))
            return Reply("GETQUOTAROOT completed")
        self.send_untagged(b"QUOTAROOT " + mailbox(name, self.names_utf8) + b' ""')
        self._quota_line(used, limit)
        return Reply("GETQUOTAROOT completed")

    async def cmd_GETQUOTA(self, tag: bytes, args: Args) -> Reply:
        root = args.astring("quota root")
        args.end()
        used, limit = await self.account.quota()
        if root != b"" or not limit:
            raise no("No such quota root", "NONEXISTENT")
        self._quota_line(used, limit)
        return Reply("GETQUOTA completed")

    async def cmd_SETQUOTA(self, tag: bytes, args: Args) -> Reply:
        raise no("Quotas are set by the administrator", "NOPERM")

    def _quota_line(self, used: int, limit: int) -> None:
        # STORAGE is counted in units of 1024 octets (RFC 9208 §5.1), rounded up.
        self.send_untagged(b'QUOTA "" (STORAGE %d %d)'
                           % ((used + 1023) // 1024, limit // 1024))

    async def cmd_ENABLE(self, tag: bytes, args: Args) -> Reply:
        """RFC 5161: CONDSTORE, QRESYNC, UTF8=ACCEPT (RFC 6855) and IMAP4rev2 (RFC 9051)
        can be enabled; unknown names are ignored, as §3.1 asks."""
        if args.at_end():
            raise bad("ENABLE needs at least one capability")
        names = args.rest()
        if not all(isinstance(t, Atom) for t in names):
            raise bad("ENABLE takes capability names")
        enabled = b""
        wanted = {str(t).upper() for t in names}
        if "CONDSTORE" in wanted:
            self.enable_condstore()
            enabled = b" CONDSTORE"
        if "QRESYNC" in wanted:  # RFC 7162 §3.2.3
            self.enable_qresync()
            enabled += b" QRESYNC"
        if "UTF8=ACCEPT" in wanted:  # RFC 6855 §3
            self.utf8 = True
            enabled += b" UTF8=ACCEPT"
        if "IMAP4REV2" in wanted and not self.rev2:  # RFC 9051 Appendix A, §6.3.1
            self.rev2 = True
            enabled += b" IMAP4rev2"
        self.send_untagged(b"ENABLED" + enabled)
        return Reply("ENABLE completed")
