"""Delivery into mailboxes and the message index IMAP reads (RFC 3501, RFC 7162, RFC 9208).

A message is a ``messages`` row (UID, MODSEQ, flags, sizes and dates in clear, because the
server indexes them) pointing at a sealed blob (blobs.py) plus its ``MessageInfo`` sealed in
``messages.meta`` (purpose "meta", owner = the user's uuid, context ``b"blob:" + blob_id``).

``deliver`` runs inside the caller's transaction and leaves nothing changed when it refuses.
MODSEQ is the user's change counter (mailstate.py), HIGHESTMODSEQ its value at the mailbox's
last change; UID comes from one ``UPDATE mailboxes ... RETURNING``, atomic on its own; in practice
the quota reservation (an ``UPDATE users``, checked by quota.fits) already serialises a user's deliveries on
PostgreSQL for the rest of their transaction.  UIDs are strictly ascending and never reused
(an expunge does not lower UIDNEXT).  Lock order is users row, meta counter, the user's change
counter, mailbox, messages (see mailboxes.py, mailstate.py); ``LocalDelivery.file`` (mail/delivery.py) takes users in id order so two
multi-recipient deliveries cannot deadlock.

The one local-delivery path above this (mail/delivery.py) seals a blob per recipient user in
the worker pool, then calls ``deliver`` for every copy in ONE ``runner.write`` job (DESIGN §3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Literal, Optional, Protocol, Sequence, Union

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from mailgosend.crypto import KeyRing
from mailgosend.db.schema import mailboxes, messages, users
from mailgosend.store import mailstate, threads
from mailgosend.store.accounts import UnknownUser, User
from mailgosend.store.blobs import BlobStore, SealedBlob, blob_context
from mailgosend.store.mailboxes import (MailboxError, MailboxNotFound, ensure_default_mailboxes,
                                        get_by_role, get_mailbox_by_id)
from mailgosend.store.mimeinfo import MessageInfo
from mailgosend.store.quota import fits

__all__ = ["META_PURPOSE", "Delivered", "EmailLink", "FlagChange", "FlagsResult", "InvalidFlag",
           "MailboxCounts", "MessageError", "MessageRow", "QuotaExceeded", "RawSource",
           "RecipientRefused", "RefusedRecipient", "Workers", "deliver",
           "SealedInfo", "expunge",
           "list_messages", "load_info", "load_infos",
           "load_sealed_infos", "mailbox_counts", "mailbox_counts_by_mailbox",
           "normalize_flags", "open_info",
           "purge_expunged", "seal_info", "set_flags", "store_structures"]

META_PURPOSE = "meta"
SEEN, DELETED = "\\Seen", "\\Deleted"
_SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", DELETED, "\\Draft")}
_ATOM_SPECIALS = set('(){%*"\\]') | {" "}
_MAX_UID = 2**32 - 1  # RFC 3501 nz-number is 32-bit
_IN_BATCH = 500  # ids per IN (...) list, well under SQLite's and PostgreSQL's parameter limits


class MessageError(Exception):
    """A message operation refused; ``imap_code`` is its RFC 5530 response code."""

    imap_code = "CANNOT"


class QuotaExceeded(MessageError):
    """The message does not fit (RFC 9208 STORAGE).  SMTP: ``452 4.2.2``, what every SMTP
    refusal for a full mailbox sends (smtp/replies.py ``mailbox_full``): RFC 3463 §3.3 calls
    X.2.2 "a persistent transient failure" (the user can make room) and RFC 5321 §4.2.3 has
    452 for lack of storage; Dovecot's LMTP sends the same with ``quota_full_tempfail``."""

    imap_code = "OVERQUOTA"
    smtp_code = 452
    enhanced_code = "4.2.2"

    def __init__(self, size: int, quota: int, used: int) -> None:
        super().__init__(f"mailbox full: {size} bytes do not fit, {used} of {quota} bytes used")
        self.size, self.quota, self.used = size, quota, used


class InvalidFlag(MessageError, ValueError):
    """Not a flag a client may set (RFC 3501 §2.3.2); IMAP answers BAD."""


#: Per-recipient refusals: ``LocalDelivery.file`` can put these in the recipient's slot.
RecipientRefused = (QuotaExceeded, MailboxError, UnknownUser)
RefusedRecipient = Union[QuotaExceeded, MailboxError, UnknownUser]


@dataclass(frozen=True)
class Delivered:
    message_id: int
    user_id: int
    mailbox_id: int
    uidvalidity: int  # with uid: the UIDPLUS APPENDUID answer
    uid: int
    modseq: int
    blob_id: str
    size: int
    flags: tuple[str, ...]  # with the above: the row, for the change feed (events.py)
    internal_date: datetime  # in UTC, as the row reads back
    email_id: int = 0  # JMAP (migration 0010): the Email and Thread the row belongs to
    thread_id: int = 0


@dataclass(frozen=True)
class EmailLink:
    """What a new row inherits from the row it copies (mail/moves.py): a COPY is a new
    Email in the same Thread (``email_id`` None); a MOVE keeps the Email, its Thread and
    when it was created (RFC 8621: the Email id stays, only ``mailboxIds`` change)."""

    thread_id: int
    email_id: Optional[int] = None
    created_modseq: Optional[int] = None


@dataclass(frozen=True)
class MessageRow:
    """What FETCH FLAGS/UID/RFC822.SIZE/INTERNALDATE needs; nothing here is decrypted."""

    id: int
    mailbox_id: int
    uid: int
    modseq: int
    flags: tuple[str, ...]
    internal_date: datetime
    size: int
    blob_id: str
    deleted_at: Optional[datetime]


@dataclass(frozen=True)
class FlagChange:
    uid: int
    modseq: int
    flags: tuple[str, ...]


@dataclass(frozen=True)
class FlagsResult:
    changed: list[FlagChange]
    modified: list[int]  # UIDs refused by UNCHANGEDSINCE (RFC 7162 §3.1.3 MODIFIED)
    highestmodseq: int


@dataclass(frozen=True)
class MailboxCounts:
    messages: int
    unseen: int
    size: int
    deleted: int = 0  # messages flagged \\Deleted (RFC 9051 §6.3.11 STATUS DELETED)


def normalize_flags(flags: Iterable[str]) -> tuple[str, ...]:
    """Canonical flags: system flags in their RFC spelling, keywords validated as atoms,
    duplicates (case-insensitive) removed, \\Recent dropped (the server owns it), sorted."""
    seen: dict[str, str] = {}
    for flag in flags:
        key = flag.lower()
        if key == "\\recent":
            continue
        if flag.startswith("\\"):
            if key not in _SYSTEM_FLAGS:
                raise InvalidFlag(f"unknown system flag {flag}")
            flag = _SYSTEM_FLAGS[key]
        elif not flag or any(ch in _ATOM_SPECIALS or ord(ch) < 0x21 or ord(ch) > 0x7E
                             for ch in flag):
            raise InvalidFlag(f"invalid keyword {flag!r}")
        seen.setdefault(key, flag)
    return tuple(sorted(seen.values(), key=lambda f: (not f.startswith("\\"), f.lower())))


def _stored_flags(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def seal_info(keyring: KeyRing, owner_uuid: str, blob_id: str, info: MessageInfo | bytes) -> bytes:
    """Encrypt a message's structure for ``messages.meta``, bound to its user and blob."""
    data = info if isinstance(info, bytes) else info.to_json()
    return keyring.seal(data, purpose=META_PURPOSE, owner=owner_uuid, context=blob_context(blob_id))


def load_info(conn: Connection, keyring: KeyRing, user: User, message: MessageRow | int
              ) -> MessageInfo:
    """Decrypt one message's structure (only the meta, never the blob).  ``DecryptionError``
    if the meta was not sealed for this user and blob."""
    message_id = message if isinstance(message, int) else message.id
    row = conn.execute(select(messages.c.meta, messages.c.blob_id).where(
        messages.c.id == message_id, messages.c.user_id == user.id)).first()
    if row is None or row.meta is None:
        raise LookupError(f"message {message_id} has no structure for this user")
    return open_info(keyring, user, SealedInfo(row.meta, row.blob_id))


@dataclass(frozen=True)
class SealedInfo:
    """A message's ``meta`` as stored, with the blob id its seal is bound to."""

    meta: bytes
    blob_id: str


def open_info(keyring: KeyRing, user: User, sealed: SealedInfo) -> MessageInfo:
    """Decrypt and parse one sealed structure; ``DecryptionError`` if it was not sealed for
    this user and blob.  Split from the query so a batch can be fetched in one statement and
    decrypted only for the messages a command really reaches."""
    return MessageInfo.from_json(keyring.open(sealed.meta, purpose=META_PURPOSE, owner=user.uuid,
                                              context=blob_context(sealed.blob_id)))


def load_sealed_infos(conn: Connection, user: User, messages_or_ids: Iterable[MessageRow | int]
                      ) -> dict[int, SealedInfo]:
    """The sealed ``meta`` of many messages, one ``IN`` query per ``_IN_BATCH`` ids: a FETCH
    or SEARCH over a big mailbox would otherwise pay one round trip (and one statement
    compilation) per message.  Messages gone or without a structure are absent."""
    ids = sorted({m if isinstance(m, int) else m.id for m in messages_or_ids})
    found: dict[int, SealedInfo] = {}
    for i in range(0, len(ids), _IN_BATCH):
        for row in conn.execute(select(messages.c.id, messages.c.meta, messages.c.blob_id).where(
                messages.c.id.in_(ids[i:i + _IN_BATCH]), messages.c.user_id == user.id)):
            if row.meta is not None:
                found[row.id] = SealedInfo(bytes(row.meta), row.blob_id)
    return found


def load_infos(conn: Connection, keyring: KeyRing, user: User,
               messages_or_ids: Iterable[MessageRow | int]) -> dict[int, MessageInfo]:
    """``load_info`` for a batch, keyed by message id, in O(n / 500) queries.  Messages gone
    or without a structure are absent; ``DecryptionError`` if one does not decrypt."""
    return {message_id: open_info(keyring, user, sealed)
            for message_id, sealed in load_sealed_infos(conn, user, messages_or_ids).items()}


def store_structures(conn: Connection, keyring: KeyRing, user: User,
                     structures: Sequence[tuple[int, str, MessageInfo]]) -> int:
    """Re-seal the structures of messages stored before ``MessageInfo.header`` existed, now
    that a reader has filled it in (derived data: the message itself never changes).
    Returns how many rows were updated."""
    updated = 0
    for message_id, blob_id, info in structures:
        result = conn.execute(update(messages).where(
            messages.c.id == message_id, messages.c.user_id == user.id,
            messages.c.blob_id == blob_id).values(
                meta=seal_info(keyring, user.uuid, blob_id, info)))
        updated += int(result.rowcount)
    return updated


def _reserve_quota(conn: Connection, user_id: int, size: int) -> None:
    """Add ``size`` to used_bytes if it fits (quota.fits), else raise QuotaExceeded leaving
    used_bytes as it was.  Exact under concurrent deliveries: the UPDATE locks the user's row
    until the transaction ends (SQLite has one writer), so nobody reserves in between; the
    common case, a fit, costs this one statement."""
    row = conn.execute(update(users).where(users.c.id == user_id)
                       .values(used_bytes=users.c.used_bytes + size)
                       .returning(users.c.used_bytes, users.c.quota_bytes)).first()
    if row is None:
        raise UnknownUser(f"user {user_id} no longer exists")
    used = int(row.used_bytes) - size
    if not fits(used, int(row.quota_bytes), size):
        conn.execute(update(users).where(users.c.id == user_id)
                     .values(used_bytes=users.c.used_bytes - size))
        raise QuotaExceeded(size, int(row.quota_bytes), used)


def _bump_modseq(conn: Connection, user_id: int, mailbox_id: int, *, uid: bool = False) -> Any:
    """Allocate the next MODSEQ from the user's change counter (mailstate.py) and the next
    UID; the UPDATEs lock the counter, then the mailbox row."""
    values: dict[str, Any] = {"highestmodseq": mailstate.allocate(conn, user_id)}
    if uid:
        values["uidnext"] = mailboxes.c.uidnext + 1
    row = conn.execute(update(mailboxes).where(mailboxes.c.id == mailbox_id,
                                               mailboxes.c.user_id == user_id).values(**values)
                       .returning(mailboxes.c.uidnext, mailboxes.c.highestmodseq,
                                  mailboxes.c.uidvalidity, mailboxes.c.user_id)).first()
    if row is None:
        raise MailboxNotFound(f"mailbox {mailbox_id} does not exist")
    return row


def deliver(conn: Connection, user: User, mailbox: Union[str, int], sealed: SealedBlob,
            meta: bytes, flags: Iterable[str], internal_date: datetime, now: datetime, *,
            blob_store: Optional[BlobStore] = None, thread_keys: Sequence[bytes] = (),
            link: Optional[EmailLink] = None) -> Delivered:
    """Store one message for ``user`` in the mailbox with that role ("inbox", "junk", ...)
    or id, inside the caller's transaction.

    Checks first, writes after: an unknown mailbox id or a full quota raises before anything
    is written.  Then used_bytes grows by the size, the role's mailbox is created if missing,
    UID and MODSEQ are allocated and the row inserted.  ``blob_store`` records the blob
    (``commit``); pass None when the blob row already exists (a second copy for the same user).

    JMAP: the row is a new Email (``email_id`` = its id) filed in the Thread its
    ``thread_keys`` find (threads.py), or in a new one; ``link`` instead names what a copy
    or move inherits.
    """
    flag_text = " ".join(normalize_flags(flags))
    box = None
    if not isinstance(mailbox, str):
        box = get_mailbox_by_id(conn, user.id, mailbox)
        if box is None:
            raise MailboxNotFound(f"mailbox {mailbox} does not exist")
    _reserve_quota(conn, user.id, sealed.size)
    if box is None:
        assert isinstance(mailbox, str)
        box = get_by_role(conn, user.id, mailbox)
        if box is None:
            ensure_default_mailboxes(conn, user.id, now)
            box = get_by_role(conn, user.id, mailbox)
        if box is None:
            raise MailboxNotFound(f"user {user.id} has no {mailbox} mailbox")
    allocated = _bump_modseq(conn, user.id, box.id, uid=True)
    uid = allocated.uidnext - 1
    if uid > _MAX_UID:
        raise MailboxError(f"mailbox {box.id} has used every UID; it must be re-created")
    if blob_store is not None:
        blob_store.commit(conn, sealed, user.id, now)
    modseq = int(allocated.highestmodseq)
    known: dict[bytes, int] = {}
    if link is not None:
        thread_id: Optional[int] = link.thread_id
    else:
        thread_id, known = threads.find_thread(conn, user.id, thread_keys)
    created = link.created_modseq if link is not None and link.created_modseq else modseq
    email_id = link.email_id if link is not None else None
    result = conn.execute(insert(messages).values(
        mailbox_id=box.id, user_id=user.id, uid=uid, modseq=modseq,
        flags=flag_text, internal_date=internal_date, size=sealed.size, blob_id=sealed.blob_id,
        meta=meta, created_at=now, email_id=email_id, thread_id=thread_id,
        created_modseq=created))
    inserted = result.inserted_primary_key
    assert inserted is not None
    message_id = int(inserted[0])
    if email_id is None or thread_id is None:
        email_id = message_id if email_id is None else email_id
        thread_id = email_id if thread_id is None else thread_id
        conn.execute(update(messages).where(messages.c.id == message_id)
                     .values(email_id=email_id, thread_id=thread_id))
    if link is None:
        threads.record_refs(conn, user.id, thread_keys, thread_id, known)
    return Delivered(message_id, user.id, box.id,
                     int(allocated.uidvalidity), int(uid), modseq,
                     sealed.blob_id, sealed.size, _stored_flags(flag_text),
                     internal_date.astimezone(timezone.utc), email_id, thread_id)


class Workers(Protocol):
    def run(self, fn: Any, *args: Any) -> Deferred[Any]: ...


RawSource = Union[bytes, str, "os.PathLike[str]"]


def _row(row: Any) -> MessageRow:
    return MessageRow(row.id, row.mailbox_id, row.uid, row.modseq, _stored_flags(row.flags),
                      row.internal_date, row.size, row.blob_id, row.deleted_at)


_ROW_COLUMNS = (messages.c.id, messages.c.mailbox_id, messages.c.uid, messages.c.modseq,
                messages.c.flags, messages.c.internal_date, messages.c.size, messages.c.blob_id,
                messages.c.deleted_at)


def list_messages(conn: Connection, mailbox_id: int, *, since_uid: Optional[int] = None,
                  changed_since: Optional[int] = None, include_expunged: bool = False
                  ) -> list[MessageRow]:
    """Messages of a mailbox in UID order, without decrypting anything.

    ``since_uid``: only UIDs greater than it (what arrived after the last UID a client knows).
    ``changed_since``: only MODSEQ greater than it (RFC 7162 CHANGEDSINCE).
    ``include_expunged``: also soft-deleted rows (QRESYNC VANISHED needs their UIDs).
    """
    query = select(*_ROW_COLUMNS).where(messages.c.mailbox_id == mailbox_id)
    if since_uid is not None:
        query = query.where(messages.c.uid > since_uid)
    if changed_since is not None:
        query = query.where(messages.c.modseq > changed_since)
    if not include_expunged:
        query = query.where(messages.c.deleted_at.is_(None))
    return [_row(row) for row in conn.execute(query.order_by(messages.c.uid))]


def _live_rows(conn: Connection, mailbox_id: int, uids: Optional[Sequence[int]]) -> list[Any]:
    base = select(messages.c.id, messages.c.uid, messages.c.modseq, messages.c.flags,
                  messages.c.size).where(messages.c.mailbox_id == mailbox_id,
                                         messages.c.deleted_at.is_(None))
    if uids is None:
        return list(conn.execute(base))
    unique = sorted(set(uids))
    return [row for i in range(0, len(unique), _IN_BATCH)
            for row in conn.execute(base.where(messages.c.uid.in_(unique[i:i + _IN_BATCH])))]


def set_flags(conn: Connection, mailbox_id: int, uids: Optional[Sequence[int]],
              flags: Iterable[str], mode: Literal["add", "remove", "replace"], *,
              unchanged_since: Optional[int] = None) -> FlagsResult:
    """STORE (RFC 3501 §6.4.6) with CONDSTORE (RFC 7162 §3.1): messages whose flags really
    change get one new MODSEQ, shared by this operation; ``uids=None`` means all."""
    wanted = {flag.lower(): flag for flag in normalize_flags(flags)}  # keywords: any case
    if mode not in ("add", "remove", "replace"):
        raise ValueError(f"mode must be add, remove or replace, not {mode!r}")
    owner = _owner(conn, mailbox_id)
    mailstate.lock(conn, owner)  # lock order: the change counter before the mailbox
    locked = conn.execute(select(mailboxes.c.highestmodseq).where(mailboxes.c.id == mailbox_id)
                          .with_for_update(key_share=True)).first()
    if locked is None:
        raise MailboxNotFound(f"mailbox {mailbox_id} does not exist")
    updates: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    modified: list[int] = []
    # A mailbox has few distinct flag sets: work each one out once, not once per message.
    outcome: dict[str, Optional[tuple[str, ...]]] = {}
    for row in _live_rows(conn, mailbox_id, uids):
        if unchanged_since is not None and row.modseq > unchanged_since:
            modified.append(row.uid)
            continue
        if row.flags not in outcome:
            current = {flag.lower(): flag for flag in _stored_flags(row.flags)}
            if mode == "replace":
                new = wanted
            elif mode == "add":
                new = {**wanted, **current}  # an existing keyword keeps its spelling
            else:
                new = {key: flag for key, flag in current.items() if key not in wanted}
            outcome[row.flags] = normalize_flags(new.values()) if new != current else None
        target = outcome[row.flags]
        if target is not None:
            updates.setdefault(target, []).append((row.id, row.uid))
    if not updates:
        return FlagsResult([], sorted(modified), int(locked.highestmodseq))
    modseq = int(_bump_modseq(conn, owner, mailbox_id).highestmodseq)
    changed: list[FlagChange] = []
    for new_flags, targets in updates.items():
        ids = [message_id for message_id, _ in targets]
        for i in range(0, len(ids), _IN_BATCH):
            conn.execute(update(messages).where(messages.c.id.in_(ids[i:i + _IN_BATCH]))
                         .values(flags=" ".join(new_flags), modseq=modseq))
        changed.extend(FlagChange(uid, modseq, new_flags) for _, uid in targets)
    return FlagsResult(sorted(changed, key=lambda c: c.uid), sorted(modified), modseq)


def _owner(conn: Connection, mailbox_id: int) -> int:
    """The user a mailbox belongs to; MailboxNotFound if it is gone."""
    owner = conn.execute(select(mailboxes.c.user_id).where(mailboxes.c.id == mailbox_id)).scalar()
    if owner is None:
        raise MailboxNotFound(f"mailbox {mailbox_id} does not exist")
    return int(owner)


def expunge(conn: Connection, mailbox_id: int, uids: Optional[Sequence[int]] = None, *,
            now: datetime) -> list[int]:
    """EXPUNGE / UID EXPUNGE (RFC 3501 §6.4.3, RFC 4315 §2.1): soft-delete the \\Deleted
    messages (``deleted_at``, a new MODSEQ for QRESYNC) and give their size back to the quota.
    Returns the expunged UIDs in ascending order."""
    owner = _owner(conn, mailbox_id)
    conn.execute(select(users.c.id).where(users.c.id == owner)
                 .with_for_update(key_share=True)).first()
    mailstate.lock(conn, owner)
    conn.execute(select(mailboxes.c.id).where(mailboxes.c.id == mailbox_id)
                 .with_for_update(key_share=True)).first()
    doomed = [row for row in _live_rows(conn, mailbox_id, uids)
              if DELETED in _stored_flags(row.flags)]
    if not doomed:
        return []
    modseq = _bump_modseq(conn, owner, mailbox_id).highestmodseq
    ids = [row.id for row in doomed]
    for i in range(0, len(ids), _IN_BATCH):
        conn.execute(update(messages).where(messages.c.id.in_(ids[i:i + _IN_BATCH]))
                     .values(deleted_at=now, modseq=modseq))
    freed = sum(row.size for row in doomed)
    floor = func.max if conn.dialect.name == "sqlite" else func.greatest
    conn.execute(update(users).where(users.c.id == owner)
                 .values(used_bytes=floor(users.c.used_bytes - freed, 0)))
    return sorted(row.uid for row in doomed)


def purge_expunged(conn: Connection, *, before: datetime) -> int:
    """Delete rows expunged before ``before``; their blobs then become unreferenced and
    ``BlobStore.purge_unreferenced`` removes them.  Keep ``before`` well in the past: sessions
    may still FETCH an expunged message until they are told (RFC 3501 §7.4.1).

    JMAP: a purged row whose Email is gone is history ``/changes`` can no longer show, so
    each user's pruning floor (mailstate.py) rises to the highest such row's MODSEQ; rows
    left behind by a MOVE (the Email lives on in another row) cost no history."""
    doomed = (messages.c.deleted_at.is_not(None), messages.c.deleted_at < before)
    other = messages.alias("other")
    alive = select(other.c.id).where(other.c.user_id == messages.c.user_id,
                                     other.c.email_id == messages.c.email_id,
                                     other.c.deleted_at.is_(None)).exists()
    for row in conn.execute(select(messages.c.user_id, func.max(messages.c.modseq))
                            .where(*doomed, ~alive).group_by(messages.c.user_id)):
        mailstate.raise_floor(conn, int(row[0]), int(row[1]))
    result = conn.execute(messages.delete().where(*doomed))
    return int(result.rowcount)


def mailbox_counts(conn: Connection, mailbox_id: int) -> MailboxCounts:
    """STATUS MESSAGES/UNSEEN/SIZE/DELETED (RFC 3501 §6.3.10, RFC 8438, RFC 9051 §6.3.11)
    in one query."""
    unseen = ~messages.c.flags.contains(SEEN, autoescape=True)
    deleted = messages.c.flags.contains(DELETED, autoescape=True)
    row = conn.execute(select(func.count(), func.count().filter(unseen),
                              func.coalesce(func.sum(messages.c.size), 0),
                              func.count().filter(deleted))
                       .where(messages.c.mailbox_id == mailbox_id,
                              messages.c.deleted_at.is_(None))).one()
    return MailboxCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def mailbox_counts_by_mailbox(conn: Connection, user_id: int) -> dict[int, MailboxCounts]:
    """``mailbox_counts`` of every mailbox of a user in one grouped query (RFC 5819
    LIST-STATUS): plain columns only, nothing decrypted.  Empty mailboxes are absent."""
    unseen = ~messages.c.flags.contains(SEEN, autoescape=True)
    deleted = messages.c.flags.contains(DELETED, autoescape=True)
    rows = conn.execute(select(messages.c.mailbox_id, func.count(), func.count().filter(unseen),
                               func.coalesce(func.sum(messages.c.size), 0),
                               func.count().filter(deleted))
                        .where(messages.c.mailbox_id.in_(  # the per-mailbox indexes serve it
                            select(mailboxes.c.id).where(mailboxes.c.user_id == user_id)),
                            messages.c.deleted_at.is_(None))
                        .group_by(messages.c.mailbox_id))
    return {int(row[0]): MailboxCounts(int(row[1]), int(row[2]), int(row[3]), int(row[4]))
            for row in rows}
