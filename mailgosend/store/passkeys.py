# -*- test-case-name: tests.test_store_passkeys -*-
"""Registered passkeys and outstanding WebAuthn challenges (auth/passkeys.py holds the rules).

Plain functions over a SQLAlchemy Connection, like store/mfa.py.  ``take_challenge`` is one
DELETE: a challenge is consumed by whoever deletes its row first, so a signed answer replayed
(or raced from a second request) finds nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from mailgosend.db.schema import passkey_challenges, passkeys

__all__ = ["Challenge", "Passkey", "NameTaken", "add", "find", "has_any", "list_for",
           "put_challenge", "record_use", "remove", "remove_all", "take_challenge"]


class NameTaken(Exception):
    """The user already has a passkey with this name (or this credential is registered)."""


@dataclass(frozen=True)
class Passkey:
    id: int
    name: str
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    created_at: datetime
    last_used_at: Optional[datetime]


@dataclass(frozen=True)
class Challenge:
    user_id: int
    rp_id: str
    origin: str


def _passkey(row: object) -> Passkey:
    return Passkey(row.id, row.name, row.credential_id,  # type: ignore[attr-defined]
                   row.public_key, row.sign_count,  # type: ignore[attr-defined]
                   tuple(t for t in row.transports.split(",") if t),  # type: ignore[attr-defined]
                   row.created_at, row.last_used_at)  # type: ignore[attr-defined]


def list_for(conn: Connection, user_id: int, rp_id: Optional[str] = None) -> list[Passkey]:
    query = select(passkeys).where(passkeys.c.user_id == user_id)
    if rp_id is not None:
        query = query.where(passkeys.c.rp_id == rp_id)
    return [_passkey(r) for r in conn.execute(query.order_by(passkeys.c.id))]


def has_any(conn: Connection, user_id: int) -> bool:
    return bool(conn.execute(select(exists().where(passkeys.c.user_id == user_id))).scalar())


def find(conn: Connection, user_id: int, credential_id: bytes) -> Optional[Passkey]:
    row = conn.execute(select(passkeys).where(passkeys.c.user_id == user_id,
                                              passkeys.c.credential_id == credential_id)).first()
    return None if row is None else _passkey(row)


def add(conn: Connection, user_id: int, name: str, credential_id: bytes, public_key: bytes,
        sign_count: int, transports: tuple[str, ...], rp_id: str, now: datetime) -> int:
    """The new passkey's id; NameTaken when the name or the credential is already there."""
    try:
        with conn.begin_nested():
            result = conn.execute(insert(passkeys).values(
                user_id=user_id, name=name, credential_id=credential_id,
                public_key=public_key, sign_count=sign_count,
                transports=",".join(transports), rp_id=rp_id, created_at=now))
    except IntegrityError:
        raise NameTaken(name) from None
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def remove(conn: Connection, user_id: int, passkey_id: int) -> bool:
    """A user removes one of their own passkeys (never someone else's)."""
    result = conn.execute(delete(passkeys).where(passkeys.c.id == passkey_id,
                                                 passkeys.c.user_id == user_id))
    return result.rowcount == 1


def remove_all(conn: Connection, user_id: int) -> int:
    """Every passkey of a locked-out user goes (``mailgosend user mfa-reset``)."""
    return int(conn.execute(delete(passkeys).where(passkeys.c.user_id == user_id)).rowcount)


def record_use(conn: Connection, passkey_id: int, sign_count: int, now: datetime) -> None:
    conn.execute(update(passkeys).where(passkeys.c.id == passkey_id).values(
        sign_count=sign_count, last_used_at=now))


def put_challenge(conn: Connection, challenge: bytes, session_id: int, user_id: int,
                  purpose: str, rp_id: str, origin: str, expires_at: datetime,
                  now: datetime) -> None:
    """Remember a challenge for one session; older ones of that session and purpose, and
    expired ones anywhere, go (a session has one ceremony in flight at a time)."""
    conn.execute(delete(passkey_challenges).where(passkey_challenges.c.expires_at <= now))
    conn.execute(delete(passkey_challenges).where(
        passkey_challenges.c.session_id == session_id,
        passkey_challenges.c.purpose == purpose))
    conn.execute(insert(passkey_challenges).values(
        challenge=challenge, session_id=session_id, user_id=user_id, purpose=purpose,
        rp_id=rp_id, origin=origin, expires_at=expires_at))


def take_challenge(conn: Connection, challenge: bytes, purpose: str, now: datetime, *,
                   user_id: int, session_id: Optional[int] = None) -> Optional[Challenge]:
    """Consume a challenge of this user (and session, when given): the first call gets it,
    any later one None, as does an expired one."""
    where = [passkey_challenges.c.challenge == challenge,
             passkey_challenges.c.user_id == user_id,
             passkey_challenges.c.purpose == purpose]
    if session_id is not None:
        where.append(passkey_challenges.c.session_id == session_id)
    row = conn.execute(select(passkey_challenges).where(*where)).first()
    if row is None:
        return None
    if conn.execute(delete(passkey_challenges).where(*where)).rowcount != 1:
        return None
    if row.expires_at <= now:
        return None
    return Challenge(row.user_id, row.rp_id, row.origin)
