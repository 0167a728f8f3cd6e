"""Commands of the authenticated state (RFC 3501 §6.3) and their extensions.

SELECT/EXAMINE, CREATE (RFC 6154 §3 USE), DELETE, RENAME, (UN)SUBSCRIBE, LIST with real
attributes (RFC 3348 CHILDREN, RFC 6154 SPECIAL-USE, and the RFC 5258 selection/return options
those two define), LSUB, STATUS, APPEND (RFC 4315 APPENDUID; size and quota checked before the
literal is read), NAMESPACE (RFC 2342), QUOTA (RFC 9208 STORAGE) and ENABLE (RFC 5161).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from twisted.internet.defer import Deferred

from mailgosend.imap.errors import ImapError, bad, no
from mailgosend.imap.qresync import resync_lines, select_params
from mailgosend.imap.server import Reply
from mailgosend.imap.tokens import (Args, Atom, Quoted, as_bytes, mailbox_name,
                                    parse_datetime)
from mailgosend.imap.framing import Literal
from mailgosend.imap import mutf7
from mailgosend.imap.wireformat import mailbox, plist
from mailgosend.store.mailboxes import ROLES

__all__ = ["MailboxCommands"]

_SPECIAL_USES = {value.lower(): value for value in ROLES.values() if value}
_STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ")
_LIST_SELECT = {"SUBSCRIBED", "SPECIAL-USE", "REMOTE", "RECURSIVEMATCH"}
_LIST_RETURN = {"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"}


def _pattern(raw: bytes) -> str:
    try:
        return mutf7.decode(raw)
    except mutf7.InvalidModifiedUTF7 as exc:
        raise bad(str(exc)) from None


def _options(token: Any, allowed: set[str], what: str) -> set[str]:
    if not isinstance(token, list) or not all(isinstance(t, Atom) for t in token):
        raise bad(f"Invalid {what} options")
    options = {t.upper() for t in token}
    if options - allowed:
        raise bad(f"Unsupported {what} option {sorted(options - allowed)[0]}")
    return options


if TYPE_CHECKING:
    from mailgosend.imap.server import SessionCore

    _Session = SessionCore
else:
    _Session = object


class MailboxCommands(_Session):
    """Mixin for the session class (factory.IMAPServerProtocol)."""

    def append_literal_check(self, size: int) -> Any:
        """RFC 7889/RFC 4469 TOOBIG and RFC 9208 OVERQUOTA before the message is sent."""
        limit = self.access.max_message_size
        if size > limit:
            return no(f"Message too big (limit {limit} octets)", "TOOBIG")

        def check(usage: tuple[int, int]) -> Optional[ImapError]:
            used, quota = usage
            if quota and used + size > quota:
                return no("Message does not fit in the mailbox quota", "OVERQUOTA")
            return None

        d: Deferred[Any] = self.account.quota()
        return d.addCallbacks(check, lambda f: no("Quota unavailable", "UNAVAILABLE"))

    async def cmd_SELECT(self, tag: bytes, args: Args) -> Reply:
        return await self._select(args, readonly=False)

    async def cmd_EXAMINE(self, tag: bytes, args: Args) -> Reply:
        return await self._select(args, readonly=True)

    async def _select(self, args: Args, readonly: bool) -> Reply:
        name = args.mailbox()
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
        view = await self.account.open(name, readonly)
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
        if resync is not None:
            for line in await resync_lines(view, resync):
                self.send_untagged(line)
        verb = "EXAMINE" if readonly else "SELECT"
        return Reply(f"{verb} completed", "READ-ONLY" if readonly else "READ-WRITE")

    async def cmd_CREATE(self, tag: bytes, args: Args) -> Reply:
        name = args.mailbox()
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
        await self.account.create_mailbox(name, special_use)
        return Reply("CREATE completed")

    async def cmd_DELETE(self, tag: bytes, args: Args) -> Reply:
        name = args.mailbox()
        args.end()
        box = await self.account.delete_mailbox(name)
        if self.selected is not None and self.selected.id == box.id:
            self.deselect()
        return Reply("DELETE completed")

    async def cmd_RENAME(self, tag: bytes, args: Args) -> Reply:
        old, new = args.mailbox(), args.mailbox()
        args.end()
        await self.account.rename_mailbox(old, new)
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
        selection: set[str] = set()
        if isinstance(args.peek(), list):
            selection = _options(args.next(), _LIST_SELECT, "LIST selection")
        reference = _pattern(args.astring("reference"))
        if isinstance(args.peek(), list):
            patterns = [_pattern(as_bytes(t, "pattern")) for t in args.parenthesized()]
        else:
            patterns = [_pattern(args.astring("mailbox pattern"))]
        returns: set[str] = set()
        if not args.at_end():
            keyword = args.atom("RETURN")
            if keyword.upper() != "RETURN":
                raise bad("Expected RETURN")
            returns = _options(args.next("return options"), _LIST_RETURN, "LIST return")
        args.end()
        if patterns == [""]:  # RFC 3501 §6.3.8: the delimiter and root
            self.send_untagged(b'LIST (\\Noselect) "/" ""')
            return Reply("LIST completed")
        entries = await self.account.list_entries(
            reference, patterns, subscribed_only="SUBSCRIBED" in selection,
            special_only="SPECIAL-USE" in selection,
            return_subscribed="SUBSCRIBED" in returns or "SUBSCRIBED" in selection)
        for entry in entries:
            self._list_line(b"LIST", entry)
        return Reply("LIST completed")

    async def cmd_LSUB(self, tag: bytes, args: Args) -> Reply:
        reference = _pattern(args.astring("reference"))
        pattern = _pattern(args.astring("mailbox pattern"))
        args.end()
        entries = await self.account.list_entries(reference, [pattern], subscribed_only=True,
                                                  lsub=True)
        for entry in entries:
            self._list_line(b"LSUB", entry)
        return Reply("LSUB completed")

    def _list_line(self, verb: bytes, entry: Any) -> None:
        attributes = plist(a.encode("ascii") for a in entry.attributes)
        self.send_untagged(verb + b" " + attributes + b' "/" '
                           + mailbox(entry.name))

    async def cmd_STATUS(self, tag: bytes, args: Args) -> Reply:
        raw = args.astring("mailbox name")
        name = mailbox_name(raw)
        items = args.parenthesized("status items")
        args.end()
        wanted = [str(t).upper() for t in items]
        if not wanted or any(not isinstance(t, Atom) for t in items) or \
                set(wanted) - set(_STATUS_ITEMS):
            raise bad(f"STATUS items must be among {' '.join(_STATUS_ITEMS)}")
        if "HIGHESTMODSEQ" in wanted:
            self.enable_condstore()  # RFC 7162 §3.1.9
        box, counts, recent = await self.account.status(name)
        values = {"MESSAGES": counts.messages, "RECENT": recent, "UIDNEXT": box.uidnext,
                  "UIDVALIDITY": box.uidvalidity, "UNSEEN": counts.unseen,
                  "HIGHESTMODSEQ": box.highestmodseq}
        pairs = b" ".join(b"%s %d" % (item.encode("ascii"), values[item]) for item in wanted)
        self.send_untagged(b"STATUS " + mailbox(name) + b" (" + pairs + b")")
        return Reply("STATUS completed")

    async def cmd_APPEND(self, tag: bytes, args: Args) -> Reply:
        name = args.mailbox()
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
        args.end()
        if not isinstance(message, Literal):
            raise bad("The message must be a literal")
        if message.size == 0:
            raise no("Refusing to store an empty message")
        delivered = await self.account.append(name, message.source(), flags, date)
        return Reply("APPEND completed", f"APPENDUID {delivered.uidvalidity} {delivered.uid}")

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
            self.send_untagged(b"QUOTAROOT " + mailbox(name))
            return Reply("GETQUOTAROOT completed")
        self.send_untagged(b"QUOTAROOT " + mailbox(name) + b' ""')
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
        """RFC 5161: CONDSTORE and QRESYNC are the extensions we have that can be enabled;
        unknown names are ignored, as §3.1 asks."""
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
        self.send_untagged(b"ENABLED" + enabled)
        return Reply("ENABLE completed")
