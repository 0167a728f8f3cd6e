"""Threads (RFC 8621 §3) from keyed hashes of Message-IDs: no plaintext id is stored.

RFC 8621 §3 suggests that two messages belong to one Thread when (1) an identical message
id appears in both, in any of Message-ID, In-Reply-To and References, and (2) their subjects
are the same once automatically added prefixes ("Re:", "Fwd:", "[list]") and white space
are stripped, so that a reply used to start a new conversation does not join the old one.

Both conditions are folded into one key per id a message names: ``HMAC(key, id + base
subject)`` under the user's "message-id" key (KeyRing), truncated to 16 bytes.  The table
``thread_refs`` maps such a key to the thread filed under it.  A new message looks up its
keys: any live thread found is joined (the oldest when several); otherwise it starts a
thread of its own (``thread_id`` = its Email id).  Its keys are then recorded for the thread,
so a reply that arrives BEFORE its parent still catches the parent: the reply records the
parent's id (from its References/In-Reply-To) and the parent finds it under its Message-ID.

Threads are never merged: RFC 8621 §3 makes ``threadId`` immutable, so a merge would mean
destroying and re-creating Emails.  A message that links two existing threads joins the
oldest; the two stay apart.  The keys are computed where the message is sealed (a worker
thread: mail/delivery.py), the lookups in the delivery's transaction (messages.deliver).
Messages stored before migration 0010 are each their own thread (see the migration).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, Optional, Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from mailgosend.crypto import KeyRing
from mailgosend.db.schema import messages, thread_refs
from mailgosend.store.mimeinfo import MessageInfo

__all__ = ["KEY_PURPOSE", "base_subject", "find_thread", "message_ids", "record_refs",
           "thread_keys"]

KEY_PURPOSE = "message-id"
MAX_REFS = 50  # of a long References list: the first (the root) and the most recent
_MSG_ID = re.compile(r"<([^<>]+)>")
_PREFIX = re.compile(
    r"^(?:\[[^\]]*\]|(?:re|fwd?|aw|sv|wg|antw|tr|rif|r)\s*(?:\[\d+\]|\(\d+\))?\s*:)\s*",
    re.IGNORECASE)
_TRAILER = re.compile(r"\s*\((?:fwd|fw)\)\s*$", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def base_subject(subject: Optional[str]) -> str:
    """The subject without reply/forward prefixes, list tags, "(fwd)" trailers and extra
    white space, case-folded (after RFC 5256 §2.1's base subject)."""
    text = _SPACE.sub(" ", subject or "").strip()
    while True:
        stripped = _TRAILER.sub("", _PREFIX.sub("", text)).strip()
        if stripped == text:
            return text.casefold()
        text = stripped


def message_ids(value: Optional[str]) -> list[str]:
    """The msg-ids of a Message-ID, In-Reply-To or References value (RFC 5322 §3.6.4),
    without angle brackets and white space."""
    if not value:
        return []
    return [_SPACE.sub("", found) for found in _MSG_ID.findall(value) if found.strip()]


def _header_field(header: Optional[str], name: str) -> Optional[str]:
    """The first ``name`` field of a header block, unfolded."""
    if not header:
        return None
    match = re.search(rf"(?im)^{re.escape(name)}[ \t]*:(.*(?:\r?\n[ \t].*)*)", header)
    return None if match is None else re.sub(r"\r?\n", "", match.group(1))


def thread_keys(keyring: KeyRing, owner: str, info: MessageInfo) -> tuple[bytes, ...]:
    """The keys a message is threaded by (worker thread: derives the user's key).  The
    References field is read from the kept header block; a message whose header block was
    too long to keep is threaded by Message-ID and In-Reply-To only."""
    ids = message_ids(info.envelope.message_id) + message_ids(info.envelope.in_reply_to)
    references = message_ids(_header_field(info.header, "references"))
    if len(references) > MAX_REFS:
        references = references[:1] + references[-(MAX_REFS - 1):]
    ids += references
    if not ids:
        return ()
    key = keyring.derive(KEY_PURPOSE, owner)
    subject = base_subject(info.subject or info.envelope.subject).encode("utf-8",
                                                                          "surrogateescape")
    keys = {hmac.new(key, msg_id.encode("utf-8", "surrogateescape") + b"\x00" + subject,
                     hashlib.sha256).digest()[:16] for msg_id in ids}
    return tuple(sorted(keys))


def find_thread(conn: Connection, user_id: int, keys: Sequence[bytes]
                ) -> tuple[Optional[int], dict[bytes, int]]:
    """The live thread a message with ``keys`` joins (None: a new one), and the threads the
    keys are already recorded for."""
    if not keys:
        return None, {}
    known = {bytes(row.ref_hash): int(row.thread_id) for row in conn.execute(
        select(thread_refs.c.ref_hash, thread_refs.c.thread_id).where(
            thread_refs.c.user_id == user_id, thread_refs.c.ref_hash.in_(list(keys))))}
    if not known:
        return None, known
    live = conn.execute(select(messages.c.thread_id).where(
        messages.c.user_id == user_id, messages.c.thread_id.in_(sorted(set(known.values()))),
        messages.c.deleted_at.is_(None)).order_by(messages.c.thread_id).limit(1)).scalar()
    return (None if live is None else int(live)), known


def record_refs(conn: Connection, user_id: int, keys: Sequence[bytes], thread_id: int,
                known: dict[bytes, int]) -> None:
    """Record ``keys`` for the thread a message was filed in: new keys are added, keys of
    threads with no live message left point here now, keys of other live threads stay."""
    if not keys:
        return
    live = set()
    others = sorted({t for t in known.values() if t != thread_id})
    if others:
        found: list[Any] = list(conn.execute(select(messages.c.thread_id).distinct().where(
            messages.c.user_id == user_id, messages.c.thread_id.in_(others),
            messages.c.deleted_at.is_(None))).scalars())
        live = {int(t) for t in found}
    new = [k for k in keys if k not in known]
    if new:
        conn.execute(insert(thread_refs), [dict(user_id=user_id, ref_hash=k, thread_id=thread_id)
                                           for k in new])
    stale = [k for k in keys if k in known and known[k] != thread_id and known[k] not in live]
    if stale:
        conn.execute(update(thread_refs).where(thread_refs.c.user_id == user_id,
                                               thread_refs.c.ref_hash.in_(stale))
                     .values(thread_id=thread_id))
