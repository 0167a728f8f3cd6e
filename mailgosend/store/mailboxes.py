"""Mailboxes: names, special-use roles and UIDVALIDITY (RFC 3501 §2.3.1.1, §5.1; RFC 6154).

Plain functions over a Connection, run inside the caller's transaction like accounts.py.

UIDVALIDITY.  A mailbox gets ``max(now as Unix seconds, last value handed out + 1)`` from one
server-wide counter kept in the ``meta`` table, so values are non-zero 32-bit integers (until
2106), strictly increasing, and never handed out twice: a mailbox deleted and re-created with
the same name, even in the same second or after the clock stepped back, gets a greater value
and clients drop their cached UIDs as RFC 3501 requires.  The time floor keeps values from
restarting low if the database is ever rebuilt.  The counter row is locked only when a mailbox
is created, which is rare.

Lock order, shared with messages.py so concurrent transactions cannot deadlock on PostgreSQL:
users row, then the meta counter, then the user's change counter (mailstate.py), then mailbox
rows, then message rows.

JMAP state: creating, renaming, deleting and (un)subscribing a mailbox take the next value of
the user's change counter (``created_modseq``, ``changed_modseq``); a deleted mailbox leaves
a tombstone, and so do the messages deleted with it, so ``/changes`` reports them destroyed.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from sqlalchemy import Table, case, func, insert, literal, select, update
from mailgosend.db.upsert import upsert_into
from sqlalchemy.engine import Connection

from mailgosend.db.schema import (email_tombstones, mailbox_tombstones, mailboxes, messages,
                                  meta, subscriptions, users)
from mailgosend.db.types import UTCDateTime
from mailgosend.store import mailstate

__all__ = ["DEFAULT_MAILBOXES", "ROLES", "CannotDeleteInbox", "InvalidMailboxName", "Mailbox",
           "MailboxError", "MailboxExists", "MailboxHasChildren", "MailboxNotFound",
           "SpecialUseInUse", "create_mailbox", "delete_mailbox", "ensure_default_mailboxes",
           "ensure_role_mailbox",
           "get_by_role", "get_mailbox", "get_mailbox_by_id", "list_mailboxes",
           "list_subscriptions", "normalize_name", "rename_mailbox", "set_sort_order",
           "set_subscribed"]

INBOX = "INBOX"
DELIMITER = "/"
MAX_NAME_LENGTH = 512  # characters, the column size
MAX_LEVEL_LENGTH = 255
MAX_DEPTH = 32

#: role -> RFC 6154 attribute; "inbox" has none.
ROLES: dict[str, Optional[str]] = {
    "inbox": None, "sent": "\\Sent", "drafts": "\\Drafts", "trash": "\\Trash",
    "junk": "\\Junk", "archive": "\\Archive",
    # created on demand by the first snooze (mail/snooze.py), not with the account;
    # IANA IMAP Mailbox Name Attributes (draft-ietf-mailmaint-messageflag-mailboxattribute)
    "snoozed": "\\Snoozed",
}
#: role -> name a new account gets.
DEFAULT_MAILBOXES: dict[str, str] = {
    "inbox": INBOX, "sent": "Sent", "drafts": "Drafts", "trash": "Trash", "junk": "Spam",
    "archive": "Archive",
}
_UIDVALIDITY_KEY = "mailbox_uidvalidity_last"
_UINT32 = 2**32


class MailboxError(ValueError):
    """A mailbox request that cannot be carried out; ``imap_code`` is the RFC 5530 code."""

    imap_code = "CANNOT"


class InvalidMailboxName(MailboxError):
    pass


class MailboxExists(MailboxError):
    imap_code = "ALREADYEXISTS"


class MailboxNotFound(MailboxError):
    imap_code = "NONEXISTENT"


class MailboxHasChildren(MailboxError):
    """Dovecot's answer too: we keep no \\Noselect stand-ins, so delete children first."""

    imap_code = "INUSE"


class CannotDeleteInbox(MailboxError):
    pass  # RFC 3501 §6.3.4: deleting INBOX is an error


class SpecialUseInUse(MailboxError):
    """Another mailbox already has this RFC 6154 attribute; roles must stay unambiguous."""

    imap_code = "USEATTR"  # RFC 6154 §6


@dataclass(frozen=True)
class Mailbox:
    id: int
    user_id: int
    name: str
    special_use: Optional[str]
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    recent_floor: int = 0  # highest UID already \Recent to a session (RFC 3501 §2.3.2)
    created_modseq: int = 0  # the user's change counter at creation (mailstate.py)
    changed_modseq: int = 0  # ... at the last change of name, role, subscription, sort order
    sort_order: int = 0  # JMAP Mailbox sortOrder (RFC 8621 §2)

    @property
    def role(self) -> Optional[str]:
        if self.name == INBOX:
            return "inbox"
        return next((r for r, attr in ROLES.items() if attr and attr == self.special_use), None)


def _mailbox(row: Any) -> Mailbox:
    return Mailbox(row.id, row.user_id, row.name, row.special_use, row.uidvalidity, row.uidnext,
                   row.highestmodseq, row.recent_floor, row.created_modseq, row.changed_modseq,
                   row.sort_order)


def normalize_name(name: str) -> str:
    """Validate a decoded mailbox name and return its stored form.

    "INBOX" is case-insensitive (RFC 3501 §5.1), also as the first level of a hierarchy.
    Refused: empty levels (leading, trailing or doubled "/"), "." and "..", control characters
    and unpaired surrogates, the LIST wildcards "%" and "*", and over-long names.
    """
    if not isinstance(name, str) or not name:
        raise InvalidMailboxName("mailbox name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidMailboxName(f"mailbox name is longer than {MAX_NAME_LENGTH} characters")
    levels = name.split(DELIMITER)
    if len(levels) > MAX_DEPTH:
        raise InvalidMailboxName(f"mailbox name has more than {MAX_DEPTH} levels")
    for level in levels:
        if not level:
            raise InvalidMailboxName("mailbox name has an empty level (check the '/' characters)")
        if level in (".", ".."):
            raise InvalidMailboxName("mailbox name levels must not be '.' or '..'")
        if len(level) > MAX_LEVEL_LENGTH:
            raise InvalidMailboxName(f"a mailbox name level is longer than {MAX_LEVEL_LENGTH}")
        if any(ch in "%*" or unicodedata.category(ch) in ("Cc", "Cs") for ch in level):
            raise InvalidMailboxName("mailbox name contains a control character or wildcard")
    if levels[0].upper() == INBOX:
        levels[0] = INBOX
    return DELIMITER.join(levels)


def get_mailbox(conn: Connection, user_id: int, name: str) -> Optional[Mailbox]:
    row = conn.execute(select(mailboxes).where(
        mailboxes.c.user_id == user_id, mailboxes.c.name == normalize_name(name))).first()
    return _mailbox(row) if row is not None else None


def get_mailbox_by_id(conn: Connection, user_id: int, mailbox_id: int) -> Optional[Mailbox]:
    """By id, but only the user's own: ids come from clients (webmail forms)."""
    row = conn.execute(select(mailboxes).where(
        mailboxes.c.user_id == user_id, mailboxes.c.id == mailbox_id)).first()
    return _mailbox(row) if row is not None else None


def get_by_role(conn: Connection, user_id: int, role: str) -> Optional[Mailbox]:
    """The mailbox playing ``role`` ("inbox", "sent", ... see ROLES), if any."""
    if role not in ROLES:
        raise ValueError(f"unknown mailbox role {role!r}; expected one of {', '.join(ROLES)}")
    attribute = ROLES[role]
    condition = (mailboxes.c.name == INBOX) if attribute is None else (
        mailboxes.c.special_use == attribute)
    row = conn.execute(select(mailboxes).where(mailboxes.c.user_id == user_id, condition)
                       .order_by(mailboxes.c.id)).first()
    return _mailbox(row) if row is not None else None


def list_mailboxes(conn: Connection, user_id: int) -> list[Mailbox]:
    """All of a user's mailboxes, INBOX first, then by name (parents before children)."""
    rows = conn.execute(select(mailboxes).where(mailboxes.c.user_id == user_id))
    found = [_mailbox(row) for row in rows]
    return sorted(found, key=lambda m: (m.name != INBOX, m.name.split(DELIMITER)))


def _next_uidvalidity(conn: Connection, now: datetime) -> int:
    """Hand out the next value of the server-wide counter (see the module docstring)."""
    _insert_ignoring_conflict(conn, meta, {"key": _UIDVALIDITY_KEY, "value": "0"}, ["key"])
    current: Any = conn.execute(select(meta.c.value).where(meta.c.key == _UIDVALIDITY_KEY)
                           .with_for_update(key_share=True)).scalar_one()
    value = max(int(now.timestamp()), int(current) + 1) % _UINT32 or 1
    conn.execute(update(meta).where(meta.c.key == _UIDVALIDITY_KEY).values(value=str(value)))
    return value


def _insert_ignoring_conflict(conn: Connection, table: Table, values: Mapping[str, object],
                              keys: list[str]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING: concurrent creators of one row never fail (both back
    ends support it).  True if this call inserted the row; RETURNING tells, because psycopg
    reports rowcount -1 for this statement."""
    stmt = upsert_into(conn, table).values(**values).on_conflict_do_nothing(index_elements=keys)
    return conn.execute(stmt.returning(table.c[keys[0]])).first() is not None


def _insert(conn: Connection, user_id: int, name: str, now: datetime,
            special_use: Optional[str]) -> bool:
    """Create one mailbox unless the name exists; True if this call created it."""
    uidvalidity = _next_uidvalidity(conn, now)
    modseq = mailstate.allocate(conn, user_id)
    values = dict(user_id=user_id, name=name, special_use=special_use, uidvalidity=uidvalidity,
                  created_at=now, created_modseq=modseq, changed_modseq=modseq,
                  highestmodseq=modseq)
    return _insert_ignoring_conflict(conn, mailboxes, values, ["user_id", "name"])


def ensure_default_mailboxes(conn: Connection, user_id: int, now: datetime) -> list[Mailbox]:
    """Create whichever of DEFAULT_MAILBOXES the user lacks; idempotent and race-safe.

    A role is present if some mailbox carries its attribute.  If the default name exists
    without a role (the user made "Sent" by hand), it is given the role rather than
    duplicated.  Two deliveries doing this at once on PostgreSQL both succeed: the second
    INSERT waits for the first and then does nothing.
    """
    present = {m.role for m in list_mailboxes(conn, user_id)}
    for role, name in DEFAULT_MAILBOXES.items():
        if role in present:
            continue
        created = _insert(conn, user_id, name, now, ROLES[role])
        if created:  # the defaults start subscribed, so clients that list only those show them
            _insert_ignoring_conflict(conn, subscriptions, dict(user_id=user_id, name=name),
                                      ["user_id", "name"])
        if not created and ROLES[role] is not None:
            conn.execute(update(mailboxes).where(
                mailboxes.c.user_id == user_id, mailboxes.c.name == name,
                mailboxes.c.special_use.is_(None)).values(
                    special_use=ROLES[role], changed_modseq=mailstate.allocate(conn, user_id)))
    return list_mailboxes(conn, user_id)


def ensure_role_mailbox(conn: Connection, user_id: int, role: str, name: str,
                        now: datetime) -> tuple[Mailbox, bool]:
    """The mailbox playing ``role``, created as ``name`` (subscribed) when the user has none:
    special-use folders made on demand, like \\Snoozed at the first snooze.  A mailbox
    already named ``name`` without a role is given it (as ensure_default_mailboxes does).
    (mailbox, created); race-safe like ensure_default_mailboxes."""
    found = get_by_role(conn, user_id, role)
    if found is not None:
        return found, False
    attribute = ROLES[role]
    name = normalize_name(name)
    created = _insert(conn, user_id, name, now, attribute)
    if created:
        _insert_ignoring_conflict(conn, subscriptions, dict(user_id=user_id, name=name),
                                  ["user_id", "name"])
    else:
        conn.execute(update(mailboxes).where(
            mailboxes.c.user_id == user_id, mailboxes.c.name == name,
            mailboxes.c.special_use.is_(None)).values(
                special_use=attribute, changed_modseq=mailstate.allocate(conn, user_id)))
    box = get_by_role(conn, user_id, role)
    if box is None:  # the name is taken by a mailbox with another role
        raise SpecialUseInUse(f"mailbox {name} already has another special use")
    return box, created


def _check_special_use(conn: Connection, user_id: int, special_use: Optional[str]) -> None:
    if special_use is None:
        return
    if special_use not in ROLES.values():
        raise MailboxError(f"unsupported special-use attribute {special_use}")
    if conn.execute(select(mailboxes.c.id).where(mailboxes.c.user_id == user_id,
                                                 mailboxes.c.special_use == special_use)).first():
        raise SpecialUseInUse(f"another mailbox already has {special_use}")


def _create_parents(conn: Connection, user_id: int, name: str, now: datetime) -> None:
    """RFC 3501 §6.3.3: CREATE makes missing superior levels too."""
    levels = name.split(DELIMITER)
    for depth in range(1, len(levels)):
        parent = DELIMITER.join(levels[:depth])
        if get_mailbox(conn, user_id, parent) is None:
            _insert(conn, user_id, parent, now, None)


def create_mailbox(conn: Connection, user_id: int, name: str, now: datetime,
                   special_use: Optional[str] = None) -> Mailbox:
    """Create a mailbox (and missing parents); MailboxExists if the name is taken."""
    name = normalize_name(name)
    _check_special_use(conn, user_id, special_use)
    _create_parents(conn, user_id, name, now)
    if not _insert(conn, user_id, name, now, special_use):
        raise MailboxExists(f"mailbox {name} already exists")
    created = get_mailbox(conn, user_id, name)
    assert created is not None
    return created


def _children(conn: Connection, user_id: int, name: str) -> list[Mailbox]:
    prefix = name + DELIMITER
    rows = conn.execute(select(mailboxes).where(
        mailboxes.c.user_id == user_id,
        mailboxes.c.name.startswith(prefix, autoescape=True)))
    return [_mailbox(row) for row in rows]


def rename_mailbox(conn: Connection, user_id: int, old: str, new: str,
                   now: datetime) -> Mailbox:
    """RENAME (RFC 3501 §6.3.5): children move along; UIDVALIDITY and UIDs are kept.

    Renaming INBOX moves its messages into a new mailbox and leaves INBOX empty, as the RFC
    specifies; INBOX's UIDNEXT is kept, so its UIDs are still never reused.
    """
    old_name, new_name = normalize_name(old), normalize_name(new)
    source = get_mailbox(conn, user_id, old_name)
    if source is None:
        raise MailboxNotFound(f"mailbox {old_name} does not exist")
    if get_mailbox(conn, user_id, new_name) is not None:
        raise MailboxExists(f"mailbox {new_name} already exists")
    if new_name.startswith(old_name + DELIMITER):
        raise InvalidMailboxName("a mailbox cannot be moved inside itself")
    _create_parents(conn, user_id, new_name, now)
    if old_name == INBOX:
        _insert(conn, user_id, new_name, now, None)  # the meta counter before the mailbox rows
        modseq = mailstate.allocate(conn, user_id)
        locked = conn.execute(update(mailboxes).where(mailboxes.c.id == source.id).values(
            highestmodseq=modseq).returning(mailboxes.c.uidnext)).one()
        conn.execute(update(mailboxes).where(mailboxes.c.user_id == user_id,
                                             mailboxes.c.name == new_name)
                     .values(uidnext=locked.uidnext, highestmodseq=modseq))
        target = get_mailbox(conn, user_id, new_name)
        assert target is not None
        # The live messages change mailbox: a new MODSEQ, so JMAP sees their mailboxIds change.
        conn.execute(update(messages).where(messages.c.mailbox_id == source.id,
                                            messages.c.deleted_at.is_(None))
                     .values(mailbox_id=target.id, modseq=modseq))
        conn.execute(update(messages).where(messages.c.mailbox_id == source.id)
                     .values(mailbox_id=target.id))
        return target
    children = _children(conn, user_id, old_name)
    for child in children:
        moved = new_name + child.name[len(old_name):]
        if get_mailbox(conn, user_id, moved) is not None:
            raise MailboxExists(f"mailbox {moved} already exists")
    modseq = mailstate.allocate(conn, user_id)
    conn.execute(update(mailboxes).where(mailboxes.c.id == source.id).values(
        name=new_name, changed_modseq=modseq))
    for child in children:
        conn.execute(update(mailboxes).where(mailboxes.c.id == child.id)
                     .values(name=new_name + child.name[len(old_name):], changed_modseq=modseq))
    _rename_subscriptions(conn, user_id, [source.name] + [c.name for c in children],
                          old_name, new_name)
    renamed = get_mailbox(conn, user_id, new_name)
    assert renamed is not None
    return renamed


def _rename_subscriptions(conn: Connection, user_id: int, names: list[str], old: str,
                          new: str) -> None:
    """A renamed mailbox keeps its subscription under the new name, as Dovecot does; names
    without a mailbox, and those of other mailboxes, are left alone (RFC 3501 §6.3.6)."""
    subscribed = set(list_subscriptions(conn, user_id))
    for name in names:
        if name in subscribed:
            set_subscribed(conn, user_id, name, False)
            set_subscribed(conn, user_id, new + name[len(old):], True)


def list_subscriptions(conn: Connection, user_id: int) -> list[str]:
    """The subscribed names (RFC 3501 §6.3.6), whether or not such mailboxes exist."""
    return [row.name for row in conn.execute(
        select(subscriptions.c.name).where(subscriptions.c.user_id == user_id)
        .order_by(subscriptions.c.name))]


def set_subscribed(conn: Connection, user_id: int, name: str, subscribed: bool
                   ) -> Optional[int]:
    """SUBSCRIBE/UNSUBSCRIBE a name (RFC 3501 §6.3.6-7): no mailbox of that name is needed,
    so a deleted mailbox can be unsubscribed; both are idempotent.  Returns the id of the
    mailbox of that name when its subscription changed."""
    name = normalize_name(name)
    if subscribed:
        changed = _insert_ignoring_conflict(conn, subscriptions,
                                            dict(user_id=user_id, name=name),
                                            ["user_id", "name"])
    else:
        changed = conn.execute(subscriptions.delete().where(
            subscriptions.c.user_id == user_id, subscriptions.c.name == name)
            .returning(subscriptions.c.name)).first() is not None
    if changed:  # JMAP isSubscribed is a property of the mailbox of that name, if any
        box = conn.execute(select(mailboxes.c.id).where(mailboxes.c.user_id == user_id,
                                                        mailboxes.c.name == name)).scalar()
        if box is not None:
            conn.execute(update(mailboxes).where(mailboxes.c.id == box).values(
                changed_modseq=mailstate.allocate(conn, user_id)))
            return int(box)
    return None


def set_sort_order(conn: Connection, user_id: int, mailbox_id: int, sort_order: int) -> Mailbox:
    """Store a JMAP sortOrder (RFC 8621 §2: an unsigned integer hint for clients)."""
    if not 0 <= sort_order < 2**31:
        raise MailboxError("sortOrder must be an integer from 0 to 2^31-1")
    modseq = mailstate.allocate(conn, user_id)
    found = conn.execute(update(mailboxes).where(mailboxes.c.user_id == user_id,
                                                 mailboxes.c.id == mailbox_id)
                         .values(sort_order=sort_order, changed_modseq=modseq)
                         .returning(mailboxes.c.id)).first()
    if found is None:
        raise MailboxNotFound(f"mailbox {mailbox_id} does not exist")
    box = get_mailbox_by_id(conn, user_id, mailbox_id)
    assert box is not None
    return box


def _tombstones(conn: Connection, box: Mailbox, now: datetime) -> None:
    """Before a mailbox and its rows go: a tombstone for it, and one per message row (live
    rows stop being live now, at a new counter value; expunged rows keep the value they
    were expunged at), so JMAP ``/changes`` still reports them destroyed."""
    modseq = mailstate.allocate(conn, box.user_id)
    m = messages.c
    gone = case((m.deleted_at.is_(None), literal(modseq)), else_=m.modseq)
    conn.execute(insert(email_tombstones).from_select(
        ["user_id", "email_id", "thread_id", "mailbox_id", "created_modseq", "modseq",
         "deleted_at"],
        select(m.user_id, func.coalesce(m.email_id, m.id), func.coalesce(m.thread_id, m.id),
               m.mailbox_id, m.created_modseq, gone,
               func.coalesce(m.deleted_at, literal(now, UTCDateTime())))
        .where(m.mailbox_id == box.id)))
    conn.execute(insert(mailbox_tombstones).values(
        mailbox_id=box.id, user_id=box.user_id, created_modseq=box.created_modseq,
        modseq=modseq, deleted_at=now))


def delete_mailbox(conn: Connection, user_id: int, name: str, now: Optional[datetime] = None
                   ) -> Mailbox:
    """DELETE (RFC 3501 §6.3.4): its messages go at once and their size leaves the quota;
    the blobs stay until ``purge_unreferenced``.  Refused for INBOX and for mailboxes with
    children.  The mailbox and its messages leave tombstones (at ``now``) for JMAP."""
    name = normalize_name(name)
    if name == INBOX:
        raise CannotDeleteInbox("INBOX cannot be deleted")
    # Lock order (module docstring): the users row first.
    conn.execute(select(users.c.id).where(users.c.id == user_id)
                 .with_for_update(key_share=True)).first()
    target = get_mailbox(conn, user_id, name)
    if target is None:
        raise MailboxNotFound(f"mailbox {name} does not exist")
    if _children(conn, user_id, name):
        raise MailboxHasChildren(f"mailbox {name} has children; delete them first")
    freed: Any = conn.execute(select(func.coalesce(func.sum(messages.c.size), 0)).where(
        messages.c.mailbox_id == target.id, messages.c.deleted_at.is_(None))).scalar_one()
    _tombstones(conn, target, now or datetime.now(timezone.utc))
    conn.execute(messages.delete().where(messages.c.mailbox_id == target.id))
    conn.execute(mailboxes.delete().where(mailboxes.c.id == target.id))
    if freed:
        conn.execute(update(users).where(users.c.id == user_id).values(
            used_bytes=func.max(users.c.used_bytes - freed, 0) if conn.dialect.name == "sqlite"
            else func.greatest(users.c.used_bytes - freed, 0)))
    return target
