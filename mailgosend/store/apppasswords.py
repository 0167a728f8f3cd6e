# -*- test-case-name: tests.test_auth_apppasswords -*-
"""App passwords of a user: named, bcrypt-hashed, scoped to protocols (auth/apppasswords.py).

Plain functions over a SQLAlchemy Connection.  Revoking deletes the row, so the checker,
which reads the rows on every login (auth/checker.py), stops accepting it at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Optional, Sequence

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from mailgosend.db.schema import app_passwords, users
from mailgosend.store import passkeys
from mailgosend.store.accounts import AccountError, Duplicate, User, find_user

__all__ = ["AppPassword", "LoginFacts", "MAX_PER_USER", "add", "count", "list_for_user",
           "login_facts", "note_use", "owners_with_prefix", "revoke"]

MAX_PER_USER = 50
# A login writes last use only when it is this much newer or from another address, so a DAV
# client logging in on every request does not write on every request.
_USE_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class AppPassword:
    id: int
    name: str
    prefix: str
    protocols: tuple[str, ...]
    created_at: datetime
    last_used_at: Optional[datetime]
    last_ip: Optional[str]
    password_hash: str = field(repr=False, default="")


@dataclass(frozen=True)
class LoginFacts:
    """What the checker needs about an account in one read."""

    user: User
    mfa_enabled: bool
    candidates: tuple[AppPassword, ...]   # the app passwords with the login's prefix


def _row(row: object) -> AppPassword:
    r = row
    return AppPassword(r.id, r.name, r.prefix,  # type: ignore[attr-defined]
                       tuple(p for p in r.protocols.split(",") if p),  # type: ignore[attr-defined]
                       r.created_at, r.last_used_at, r.last_ip,  # type: ignore[attr-defined]
                       r.password_hash)  # type: ignore[attr-defined]


def add(conn: Connection, user_id: int, name: str, prefix: str, password_hash: str,
        protocols: Sequence[str], now: datetime) -> AppPassword:
    if conn.execute(select(app_passwords.c.id).where(
            app_passwords.c.user_id == user_id, app_passwords.c.name == name)).first():
        raise Duplicate(f"an app password named {name!r} already exists; revoke it first or "
                        "choose another name", "name")
    if count(conn, user_id) >= MAX_PER_USER:
        raise AccountError(f"at most {MAX_PER_USER} app passwords per account; revoke unused "
                           "ones first", "name")
    result = conn.execute(insert(app_passwords).values(
        user_id=user_id, name=name, prefix=prefix, password_hash=password_hash,
        protocols=",".join(protocols), created_at=now))
    key = result.inserted_primary_key
    assert key is not None
    return AppPassword(int(key[0]), name, prefix, tuple(protocols), now, None, None)


def count(conn: Connection, user_id: int) -> int:
    return int(conn.execute(select(func.count()).select_from(app_passwords)
                            .where(app_passwords.c.user_id == user_id)).scalar_one())


def list_for_user(conn: Connection, user_id: int) -> list[AppPassword]:
    rows = conn.execute(select(app_passwords).where(app_passwords.c.user_id == user_id)
                        .order_by(app_passwords.c.created_at, app_passwords.c.id))
    return [_row(r) for r in rows]


def revoke(conn: Connection, user_id: int, name: str) -> bool:
    result = conn.execute(delete(app_passwords).where(
        app_passwords.c.user_id == user_id, app_passwords.c.name == name))
    return result.rowcount == 1


def login_facts(conn: Connection, email: str, prefix: Optional[str]) -> Optional[LoginFacts]:
    """The account, whether MFA is on, and the app passwords starting with ``prefix``."""
    user = find_user(conn, email)
    if user is None:
        return None
    # A second factor is TOTP or a passkey (store/passkeys.py): either protects the mailbox.
    enabled = conn.execute(select(users.c.totp_enabled_at)
                           .where(users.c.id == user.id)).scalar_one() is not None \
        or passkeys.has_any(conn, user.id)
    candidates: tuple[AppPassword, ...] = ()
    if prefix is not None:
        rows = conn.execute(select(app_passwords).where(
            app_passwords.c.user_id == user.id, app_passwords.c.prefix == prefix))
        candidates = tuple(_row(r) for r in rows)
    return LoginFacts(user, enabled, candidates)


def note_use(conn: Connection, password_id: int, ip: str, now: datetime) -> None:
    conn.execute(update(app_passwords).where(
        app_passwords.c.id == password_id,
        or_(app_passwords.c.last_used_at.is_(None),
            app_passwords.c.last_used_at < now - _USE_RESOLUTION,
            app_passwords.c.last_ip.is_(None), app_passwords.c.last_ip != ip),
    ).values(last_used_at=now, last_ip=ip))


def owners_with_prefix(conn: Connection, prefix: str) -> list[str]:
    """The addresses of the users holding an app password that starts with ``prefix``: a
    Bearer token (jmap/auth.py) is an app password alone, so its owner is found by the
    stored prefix (about one in 900,000 passwords shares it), then checked as usual."""
    rows = conn.execute(select(users.c.email).distinct().join(
        app_passwords, app_passwords.c.user_id == users.c.id).where(
        app_passwords.c.prefix == prefix).order_by(users.c.email))
    return [r.email for r in rows]
