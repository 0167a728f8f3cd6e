# -*- test-case-name: tests.test_store_sessions -*-
"""Web sessions in the database (DESIGN.md §5).

Implementation notes:
1. Only SHA-256 of the cookie token is stored: a copy of the database opens no session.
2. A session belongs to one port (``kind``: web or admin) and one user; deleting the user
   deletes its sessions (ON DELETE CASCADE).
3. A session with ``pending_step`` is a sign-in half done (password accepted, a second
   step owed); it grants nothing else.
4. Expiry is checked by the caller with its own clock: these functions take ``now``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from mailgosend.db.schema import sessions, users


def token_hash(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


@dataclass(frozen=True)
class SessionRow:
    id: int
    user_id: int
    email: str
    kind: str
    csrf_secret: bytes
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: Optional[str]
    user_agent: Optional[str]
    pending_step: Optional[str]


def _query():  # type: ignore[no-untyped-def]
    return select(sessions, users.c.email).join(users, users.c.id == sessions.c.user_id)


def _row(r: object) -> SessionRow:
    return SessionRow(r.id, r.user_id, r.email, r.kind, r.csrf_secret,  # type: ignore[attr-defined]
                      r.created_at, r.last_seen_at, r.expires_at,  # type: ignore[attr-defined]
                      r.ip, r.user_agent, r.pending_step)  # type: ignore[attr-defined]


def create_session(conn: Connection, *, token: bytes, user_id: int, kind: str,
                   csrf_secret: bytes, now: datetime, expires_at: datetime, ip: str,
                   user_agent: str, pending_step: Optional[str]) -> int:
    result = conn.execute(sessions.insert().values(
        token_hash=token_hash(token), user_id=user_id, kind=kind, csrf_secret=csrf_secret,
        created_at=now, last_seen_at=now, expires_at=expires_at, ip=ip[:45],
        user_agent=user_agent[:300], pending_step=pending_step, mfa_passed=False))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def find_session(conn: Connection, token: bytes, kind: str) -> Optional[SessionRow]:
    row = conn.execute(_query().where(sessions.c.token_hash == token_hash(token),
                                      sessions.c.kind == kind)).first()
    return _row(row) if row is not None else None


def touch_session(conn: Connection, session_id: int, now: datetime, ip: str) -> None:
    conn.execute(update(sessions).where(sessions.c.id == session_id)
                 .values(last_seen_at=now, ip=ip[:45]))


def rotate_session(conn: Connection, session_id: int, *, token: bytes, csrf_secret: bytes,
                   pending_step: Optional[str], now: datetime) -> None:
    """A new token (and CSRF secret) for the same session: at each privilege change, so a
    token known before the change (session fixation) is worth nothing after it."""
    conn.execute(update(sessions).where(sessions.c.id == session_id).values(
        token_hash=token_hash(token), csrf_secret=csrf_secret, pending_step=pending_step,
        mfa_passed=pending_step is None, last_seen_at=now))


def end_session(conn: Connection, session_id: int, user_id: Optional[int] = None) -> bool:
    """Delete one session; with ``user_id``, only if it is that user's (a user ends only
    their own sessions).  True when a session was ended."""
    query = delete(sessions).where(sessions.c.id == session_id)
    if user_id is not None:
        query = query.where(sessions.c.user_id == user_id)
    return bool(conn.execute(query).rowcount)


def end_user_sessions(conn: Connection, user_id: int, *, keep: Optional[int] = None) -> int:
    """End every session of a user (password change, account disabled), but ``keep``."""
    query = delete(sessions).where(sessions.c.user_id == user_id)
    if keep is not None:
        query = query.where(sessions.c.id != keep)
    return int(conn.execute(query).rowcount)


def list_user_sessions(conn: Connection, user_id: int, kind: str,
                       now: datetime) -> list[SessionRow]:
    """A user's signed-in sessions on one port, most recently used first."""
    rows = conn.execute(_query().where(
        sessions.c.user_id == user_id, sessions.c.kind == kind,
        sessions.c.pending_step.is_(None), sessions.c.expires_at > now)
        .order_by(sessions.c.last_seen_at.desc(), sessions.c.id.desc()))
    return [_row(r) for r in rows]


def purge_expired(conn: Connection, now: datetime) -> int:
    return int(conn.execute(delete(sessions).where(sessions.c.expires_at <= now)).rowcount)
