# -*- test-case-name: tests.test_auth_mfa -*-
"""TOTP state and recovery codes of a user (auth/mfa.py holds the rules).

Plain functions over a SQLAlchemy Connection, like store/accounts.py.  The secret arrives
sealed; nothing here sees it in the clear.  ``accept_step`` is one conditional UPDATE, so two
requests (or two nodes) racing with the same code cannot both succeed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional, Sequence

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from mailgosend.db.schema import recovery_codes, users

__all__ = ["MFAState", "accept_step", "begin_enrolment", "clear", "enable", "recovery_left",
           "state", "use_recovery_code"]


@dataclass(frozen=True)
class MFAState:
    sealed_secret: Optional[bytes] = field(repr=False)
    enabled: bool
    last_step: Optional[int]


def state(conn: Connection, user_id: int) -> MFAState:
    row = conn.execute(select(users.c.totp_secret, users.c.totp_enabled_at,
                              users.c.totp_last_step).where(users.c.id == user_id)).one()
    return MFAState(row.totp_secret, row.totp_enabled_at is not None, row.totp_last_step)


def begin_enrolment(conn: Connection, user_id: int, sealed_secret: bytes) -> None:
    """Store a new, not yet confirmed, secret (replacing an unconfirmed one)."""
    conn.execute(update(users).where(users.c.id == user_id).values(
        totp_secret=sealed_secret, totp_enabled_at=None, totp_last_step=None))


def accept_step(conn: Connection, user_id: int, step: int) -> bool:
    """Record ``step`` as used unless it (or a later one) already was: True if recorded."""
    result = conn.execute(update(users).where(
        users.c.id == user_id,
        or_(users.c.totp_last_step.is_(None), users.c.totp_last_step < step),
    ).values(totp_last_step=step))
    return result.rowcount == 1


def enable(conn: Connection, user_id: int, now: datetime, code_hashes: Sequence[bytes]) -> None:
    """Turn MFA on with a fresh set of recovery codes (the old ones, if any, are void)."""
    conn.execute(update(users).where(users.c.id == user_id).values(totp_enabled_at=now))
    conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    if code_hashes:
        conn.execute(insert(recovery_codes), [
            {"user_id": user_id, "code_hash": h, "created_at": now} for h in code_hashes])


def use_recovery_code(conn: Connection, user_id: int, code_hash: bytes) -> bool:
    """Consume a recovery code: True once, False ever after (and for an unknown one)."""
    result = conn.execute(delete(recovery_codes).where(
        recovery_codes.c.user_id == user_id, recovery_codes.c.code_hash == code_hash))
    return result.rowcount == 1


def recovery_left(conn: Connection, user_id: int) -> int:
    return int(conn.execute(select(func.count()).select_from(recovery_codes)
                            .where(recovery_codes.c.user_id == user_id)).scalar_one())


def clear(conn: Connection, user_id: int) -> bool:
    """MFA off: secret, state and recovery codes gone.  True if it was on or enrolling."""
    result = conn.execute(update(users).where(
        users.c.id == user_id, users.c.totp_secret.is_not(None)).values(
        totp_secret=None, totp_enabled_at=None, totp_last_step=None))
    conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    return result.rowcount == 1
