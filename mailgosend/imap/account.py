"""A logged-in user's mailboxes (Twisted's IAccount over the mail service), the IMAP avatar.

Every call goes to the user's ``UserMail`` (mailgosend/mail/): one or two database jobs,
nothing blocks the reactor.  What stays here is IMAP's own: LIST patterns and attributes,
TRYCREATE, the hub (sessions of this listener and their snapshots, \Recent).  Names
are Unicode here (the server decodes modified UTF-7) and validated by the store
(``normalize_name``: no empty levels, no "." or "..", no wildcards or control characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional, Sequence, Union

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.mail import imap4
from zope.interface import implementer

from mailgosend.imap.access import StoreAccess
from mailgosend.imap.errors import no
from mailgosend.imap.interfaces import IIMAPAccount
from mailgosend.imap.search import (Lookups, SearchScope, parse_search, run_search,
                                    search_cost)
from mailgosend.imap.selected import SelectedMailbox
from mailgosend.imap.snapshot import MailboxSnapshot
from mailgosend.imap.tokens import tokenize
from mailgosend.mail.moves import CopyResult
from mailgosend.store import mailboxes
from mailgosend.store.accounts import User
from mailgosend.store.mailboxes import DELIMITER, INBOX, Mailbox
from mailgosend.store.messages import Delivered, MailboxCounts

__all__ = ["IMAPAccount", "ListEntry", "pattern_regex"]

log = Logger()

SEARCH_JOB_SIZE = 1000  # messages per database job when a SEARCH reads structures or bodies


@dataclass(frozen=True)
class ListEntry:
    """One LIST/LSUB line; also Twisted's IMailboxInfo."""

    name: str
    attributes: tuple[str, ...]

    def getFlags(self) -> list[str]:
        return list(self.attributes)

    def getHierarchicalDelimiter(self) -> str:
        return DELIMITER


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """LIST wildcards (RFC 3501 §6.3.8): "*" matches anything, "%" stops at the delimiter."""
    if pattern[:5].upper() == INBOX and (len(pattern) == 5 or pattern[5] in "/%*"):
        pattern = INBOX + pattern[5:]  # INBOX is case-insensitive
    parts = [".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def _ancestors(name: str) -> list[str]:
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:i]) for i in range(1, len(levels))]


def _missing_attributes(return_subscribed: bool, lsub: bool) -> tuple[str, ...]:
    """A subscribed name without a mailbox: \\Noselect in LSUB (as Dovecot), \\NonExistent
    in LIST (SUBSCRIBED) (RFC 5258 §3.4, which implies \\Noselect)."""
    if lsub:
        return ("\\Noselect",)
    return ("\\NonExistent", "\\Subscribed") if return_subscribed else ("\\NonExistent",)


def _sort_key(name: str) -> tuple[bool, list[str]]:
    return (name != INBOX, name.split(DELIMITER))


@implementer(IIMAPAccount, imap4.INamespacePresenter)
class IMAPAccount:
    """One user's view of their mailboxes; ``access`` is shared by the listener's sessions."""

    def __init__(self, user: User, access: StoreAccess) -> None:
        self.user = user
        self.access = access
        self.mail = access.mail.for_user(user)

    def for_access(self, access: StoreAccess) -> IMAPAccount:
        """The same user on a listener's own shared state (the realm has one factory for
        every IMAP listener, each listener its own hub unless they share one)."""
        return self if access is self.access else IMAPAccount(self.user, access)

    # --- listing ---------------------------------------------------------------------------

    def list_entries(self, reference: str, patterns: Sequence[str], *,
                     subscribed_only: bool = False, special_only: bool = False,
                     return_subscribed: bool = False, lsub: bool = False
                     ) -> Deferred[list[ListEntry]]:
        d = self.mailboxes_and_subscriptions()
        return d.addCallback(self._entries, reference, patterns, subscribed_only, special_only,
                             return_subscribed, lsub)

    def mailboxes_and_subscriptions(self) -> Deferred[tuple[list[Mailbox], set[str]]]:
        """Every mailbox, and the subscribed names, read in one transaction: a subscription
        is a name (RFC 3501 §6.3.6), kept when its mailbox is deleted."""
        return self.mail.mailboxes_and_subscriptions()

    def _entries(self, found_boxes: tuple[list[Mailbox], set[str]], reference: str,
                 patterns: Sequence[str], subscribed_only: bool, special_only: bool,
                 return_subscribed: bool, lsub: bool) -> list[ListEntry]:
        boxes, subscribed = found_boxes
        by_name = {box.name: box for box in boxes}
        parents = {a for name in by_name for a in _ancestors(name)}
        # RFC 3501 §6.3.9: LSUB lists subscribed names, whether or not the mailbox exists
        candidates = subscribed if subscribed_only else set(by_name)
        found: dict[str, tuple[str, ...]] = {}
        for pattern in patterns:
            regex = pattern_regex(reference + pattern)
            for name in candidates:
                box = by_name.get(name)
                if regex.match(name):
                    if box is None:  # a subscription without its mailbox
                        if not special_only:
                            found[name] = _missing_attributes(return_subscribed, lsub)
                    elif not special_only or box.special_use is not None:
                        found[name] = self._attributes(
                            box, name in parents, return_subscribed and name in subscribed,
                            lsub)
                    continue
                if special_only:
                    continue
                for ancestor in _ancestors(name):  # RFC 3501 §6.3.9: "%" cut the name
                    if ancestor not in candidates and regex.match(ancestor):
                        found.setdefault(ancestor, ("\\Noselect",) if lsub else
                                         ("\\Noselect", "\\HasChildren"))
        return [ListEntry(name, found[name]) for name in sorted(found, key=_sort_key)]

    @staticmethod
    def _attributes(box: Mailbox, has_children: bool, return_subscribed: bool,
                    lsub: bool) -> tuple[str, ...]:
        if lsub:
            return ()
        attributes = ["\\HasChildren" if has_children else "\\HasNoChildren"]
        if box.special_use:
            attributes.append(box.special_use)
        if return_subscribed:
            attributes.append("\\Subscribed")
        return tuple(attributes)

    def counts_by_mailbox(self) -> Deferred[dict[int, MailboxCounts]]:
        """MESSAGES/UNSEEN/SIZE of every mailbox in one query (RFC 5819 LIST-STATUS)."""
        return self.mail.counts_by_mailbox()

    # --- mailbox management ----------------------------------------------------------------

    def create_mailbox(self, name: str, special_use: Optional[str] = None) -> Deferred[Mailbox]:
        name = name[:-1] if name.endswith(DELIMITER) and len(name) > 1 else name  # §6.3.3
        return self.mail.create_mailbox(name, special_use)

    def delete_mailbox(self, name: str) -> Deferred[Mailbox]:
        return self.mail.delete_mailbox(name)

    def rename_mailbox(self, old: str, new: str) -> Deferred[Mailbox]:
        """RENAME; renaming INBOX empties it, which INBOX's sessions learn from the feed."""
        return self.mail.rename_mailbox(old, new)

    def set_subscription(self, name: str, subscribed: bool) -> Deferred[None]:
        return self.mail.set_subscription(name, subscribed)

    def open(self, name: str, readonly: bool, rev2: bool = False
             ) -> Deferred[Optional[SelectedMailbox]]:
        """SELECT/EXAMINE: a view copied from the shared snapshot, brought up to date first
        (snapshot.py: one indexed query when nothing changed since another session's SELECT);
        ``rev2``: for an IMAP4rev2 session (no \\Recent, rev2.py)."""
        return Deferred.fromCoroutine(self._open(name, readonly, rev2))

    async def _open(self, name: str, readonly: bool, rev2: bool
                    ) -> Optional[SelectedMailbox]:
        snapshot = await self.current_snapshot(name)
        return None if snapshot is None else SelectedMailbox(self, snapshot, readonly, rev2)

    async def current_snapshot(self, name: str) -> Optional[MailboxSnapshot]:
        """The shared snapshot of mailbox ``name``, current as of this call (or None)."""
        access, cache = self.access, self.access.hub.snapshots
        lock = cache.lock(self.user.id)
        await lock.acquire()
        try:
            now = access.clock.seconds()
            delta = await self.mail.refresh(name, cache.known(self.user.id, now))
            if delta.mailbox is None:
                return None
            snapshot = cache.update(delta, access.clock.seconds(), access.hub.in_use)
            if snapshot.count_mismatch:
                snapshot.reconcile(await self.mail.live_uids(snapshot.box.id))
            return snapshot
        finally:
            cache.release(self.user.id, lock)

    def save_recent_floor(self, mailbox_id: int, floor: int) -> None:
        """Store a raised \\Recent floor (hub.py); a failure only makes messages \\Recent
        once more after a restart, so it is logged, not reported to the client."""
        d = self.mail.raise_recent_floor(mailbox_id, floor)
        d.addErrback(lambda f: log.failure("storing the \\Recent floor failed", f))

    def status(self, name: str) -> Deferred[tuple[Mailbox, MailboxCounts, int]]:
        d = self.mail.get_mailbox(name)

        def found(box: Optional[Mailbox]) -> Any:
            if box is None:
                raise mailboxes.MailboxNotFound(f"mailbox {name} does not exist")
            floor = self.access.hub.known_floor(box.id, box.recent_floor)
            return self.mail.status(name, floor)

        return d.addCallback(found)

    def quota(self) -> Deferred[tuple[int, int]]:
        return self.mail.quota()

    # --- messages --------------------------------------------------------------------------

    async def append(self, name: str, source: Union[bytes, str], flags: Sequence[str],
                     date: Optional[datetime]) -> Delivered:
        """APPEND (RFC 3501 §6.3.11): TRYCREATE for a missing mailbox; quota enforced."""
        box = await self.mail.get_mailbox(name)
        if box is None:
            raise no("Mailbox does not exist", "TRYCREATE")
        return await self.mail.append(box.id, source, flags, date)

    async def append_many(self, name: str,
                          messages: Sequence[tuple[Union[bytes, str], Sequence[str],
                                                   Optional[datetime]]]) -> list[Delivered]:
        """MULTIAPPEND (RFC 3502): every message stored, in order and with consecutive UIDs,
        or none (one transaction); TRYCREATE for a missing mailbox; quota enforced."""
        box = await self.mail.get_mailbox(name)
        if box is None:
            raise no("Mailbox does not exist", "TRYCREATE")
        return await self.mail.append_all(box.id, messages)

    async def copy(self, view: SelectedMailbox, uids: Sequence[int], target_name: str,
                   move: bool) -> CopyResult:
        """COPY/MOVE; the mail service applies the spam-filing rule and trains (DESIGN §6)."""
        target = await self.mail.get_mailbox(target_name)
        if target is None:
            raise no("Mailbox does not exist", "TRYCREATE")
        return await self.mail.copy(view.box, uids, target, move=move)

    def search(self, view: SelectedMailbox, query: Any, uid: bool) -> Deferred[list[int]]:
        """SEARCH in database threads; ``query`` is a parsed tree or the key text."""
        tree = query if isinstance(query, tuple) else parse_search(
            tokenize([query.encode("utf-8") if isinstance(query, str) else query]))
        return Deferred.fromCoroutine(self._search(view, tree, uid))

    async def _search(self, view: SelectedMailbox, tree: Any, uid: bool) -> list[int]:
        access = self.access
        rows = view.rows
        scope = SearchScope([rows[u] for u in view.uids], frozenset(view.recent),
                            view.box.uidvalidity)
        total = len(scope.rows)
        # Keys that read structures or bodies run a chunk per job: other sessions' jobs get
        # the reader threads in between (a whole-mailbox SEARCH BODY used to hold one).
        step = total if search_cost(tree) == 0 else SEARCH_JOB_SIZE
        found: list[int] = []
        lookups: Lookups = {}  # the index's answers, asked once for the whole command
        for start in range(0, total, max(step, 1)):  # one at a time: they would share the GIL
            found += await self.mail.read_messages(
                run_search, scope, tree, start, min(start + step, total),
                uidvalidity=scope.uidvalidity, headers=access.header_cache,
                remember=access.remember, fields=access.field_cache, parts=access.parts_cache,
                lookups=lookups)
        return [scope.rows[i].uid if uid else i + 1 for i in found]

    # --- Twisted's IAccount and INamespacePresenter ----------------------------------------

    def addMailbox(self, name: str, mbox: Any = None) -> Deferred[Mailbox]:
        return self.create_mailbox(name)

    def create(self, pathspec: str) -> Deferred[bool]:
        return self.create_mailbox(pathspec).addCallback(lambda _: True)

    def select(self, name: str, rw: bool = True) -> Deferred[Optional[SelectedMailbox]]:
        return self.open(name, readonly=not rw)

    def delete(self, name: str) -> Deferred[Mailbox]:
        return self.delete_mailbox(name)

    def rename(self, oldname: str, newname: str) -> Deferred[Mailbox]:
        return self.rename_mailbox(oldname, newname)

    def isSubscribed(self, name: str) -> Deferred[bool]:
        d = self.mailboxes_and_subscriptions()
        return d.addCallback(lambda found: mailboxes.normalize_name(name) in found[1])

    def subscribe(self, name: str) -> Deferred[None]:
        return self.set_subscription(name, True)

    def unsubscribe(self, name: str) -> Deferred[None]:
        return self.set_subscription(name, False)

    def listMailboxes(self, ref: str, wildcard: str) -> Deferred[list[tuple[str, ListEntry]]]:
        d = self.list_entries(ref, [wildcard])
        return d.addCallback(lambda entries: [(e.name, e) for e in entries])

    def getPersonalNamespaces(self) -> list[list[str]]:
        return [["", DELIMITER]]

    def getSharedNamespaces(self) -> None:
        return None

    def getOtherNamespaces(self) -> None:
        return None

    def getUserNamespaces(self) -> None:
        return None
