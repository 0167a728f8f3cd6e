"""Login attempts, bans and security events (DESIGN.md §5).

Every decision the brute-force policy takes is written as a security event
in the same transaction as the attempt that caused it, so the admin log and
the bans never disagree.  No password (or any part of one) is ever stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from mailgosend.counters import NULL as NULL_COUNTERS
from mailgosend.auth.bruteforce import BanDecision, BrutePolicy, decide
from mailgosend.db.runner import DatabaseRunner
from mailgosend.db.schema import (
    account_bans,
    ip_bans,
    login_attempts,
    security_events,
    users,
)

TRUSTED_IP_DAYS = 30
ATTEMPT_RETENTION_DAYS = 30


def _clip(text: Optional[str], size: int) -> Optional[str]:
    return None if text is None else text[:size]


def record_event(conn: Connection, now: datetime, kind: str, *, ip: Optional[str] = None,
                 username: Optional[str] = None, service: Optional[str] = None,
                 detail: str = "") -> None:
    conn.execute(insert(security_events).values(
        kind=kind, ip=_clip(ip, 45), username=_clip(username, 320),
        service=_clip(service, 16), detail=detail, created_at=now))


def record_attempt(conn: Connection, now: datetime, ip: str, username: str, service: str,
                   success: bool) -> None:
    conn.execute(insert(login_attempts).values(
        ip=ip[:45], username=username[:320], service=service[:16], success=success,
        created_at=now))


def ip_banned_until(conn: Connection, ip: str, now: datetime) -> Optional[datetime]:
    return conn.execute(select(func.max(ip_bans.c.expires_at)).where(
        ip_bans.c.ip == ip, ip_bans.c.expires_at > now)).scalar()


def account_banned_until(conn: Connection, username: str, now: datetime) -> Optional[datetime]:
    return conn.execute(select(func.max(account_bans.c.expires_at)).where(
        account_bans.c.username == username, account_bans.c.expires_at > now)).scalar()


def active_ip_bans(conn: Connection, now: datetime) -> dict[str, datetime]:
    rows = conn.execute(select(ip_bans.c.ip, func.max(ip_bans.c.expires_at).label("until"))
                        .where(ip_bans.c.expires_at > now).group_by(ip_bans.c.ip))
    return {row.ip: row.until for row in rows}


def trusted_ips(conn: Connection, username: str, now: datetime) -> list[str]:
    """Addresses this account logged in from successfully in the last TRUSTED_IP_DAYS."""
    since = now - timedelta(days=TRUSTED_IP_DAYS)
    rows = conn.execute(select(login_attempts.c.ip).distinct().where(
        login_attempts.c.username == username, login_attempts.c.success.is_(True),
        login_attempts.c.created_at > since))
    return [row.ip for row in rows]


def _failures(conn: Connection, column: Any, value: str, since: datetime) -> int:
    return int(conn.execute(select(func.count()).select_from(login_attempts).where(
        column == value, login_attempts.c.success.is_(False),
        login_attempts.c.created_at > since)).scalar_one())


def unban_ip(conn: Connection, ip: str, now: datetime) -> int:
    removed = conn.execute(delete(ip_bans).where(ip_bans.c.ip == ip)).rowcount
    if removed:
        record_event(conn, now, "ip_unbanned", ip=ip, detail="removed by an administrator")
    return int(removed)


@dataclass(frozen=True)
class Ban:
    """An active ban of an address (``kind`` "ip") or of an account's password logins
    ("account"): what, why, since and until when."""

    kind: str
    target: str
    reason: str
    created_at: datetime
    expires_at: datetime


def list_bans(conn: Connection, now: datetime) -> list[Ban]:
    """Every ban in force, IP bans first, each soonest to expire first."""
    found = [Ban("ip", r.ip, r.reason, r.created_at, r.expires_at) for r in conn.execute(
        select(ip_bans).where(ip_bans.c.expires_at > now)
        .order_by(ip_bans.c.expires_at, ip_bans.c.id))]
    found += [Ban("account", r.username, r.reason, r.created_at, r.expires_at)
              for r in conn.execute(select(account_bans).where(account_bans.c.expires_at > now)
                                    .order_by(account_bans.c.expires_at, account_bans.c.id))]
    return found


def ban_ip(conn: Connection, ip: str, until: datetime, reason: str, now: datetime) -> None:
    """An administrator's ban of ``ip`` until ``until`` (checked by the caller)."""
    conn.execute(insert(ip_bans).values(ip=ip[:45], reason=reason[:200], created_at=now,
                                        expires_at=until))
    record_event(conn, now, "ip_banned", ip=ip, detail=f"by an administrator until "
                 f"{until.isoformat()}: {reason}"[:500])


def unban_account(conn: Connection, username: str, now: datetime) -> int:
    removed = conn.execute(delete(account_bans).where(account_bans.c.username == username)
                           ).rowcount
    if removed:
        record_event(conn, now, "account_unbanned", username=username,
                     detail="removed by an administrator")
    return int(removed)


@dataclass(frozen=True)
class Attempt:
    id: int
    ip: str
    username: str
    service: str
    success: bool
    created_at: datetime


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    ip: Optional[str]
    username: Optional[str]
    service: Optional[str]
    detail: str
    created_at: datetime


def list_attempts(conn: Connection, *, ip: str = "", username: str = "",
                  success: Optional[bool] = None, before_id: Optional[int] = None,
                  limit: int = 100) -> list[Attempt]:
    """Login attempts newest first, filtered; ``before_id`` is the keyset cursor."""
    query = select(login_attempts)
    if ip:
        query = query.where(login_attempts.c.ip == ip)
    if username:
        query = query.where(login_attempts.c.username == username)
    if success is not None:
        query = query.where(login_attempts.c.success.is_(success))
    if before_id is not None:
        query = query.where(login_attempts.c.id < before_id)
    return [Attempt(int(r.id), r.ip, r.username, r.service, bool(r.success), r.created_at)
            for r in conn.execute(query.order_by(login_attempts.c.id.desc()).limit(limit))]


def list_events(conn: Connection, *, kind: str = "", ip: str = "", username: str = "",
                before_id: Optional[int] = None, limit: int = 100) -> list[Event]:
    """Security events newest first, filtered; ``before_id`` is the keyset cursor."""
    query = select(security_events)
    if kind:
        query = query.where(security_events.c.kind == kind)
    if ip:
        query = query.where(security_events.c.ip == ip)
    if username:
        query = query.where(security_events.c.username == username)
    if before_id is not None:
        query = query.where(security_events.c.id < before_id)
    return [Event(int(r.id), r.kind, r.ip, r.username, r.service, r.detail, r.created_at)
            for r in conn.execute(query.order_by(security_events.c.id.desc()).limit(limit))]


def purge_old(conn: Connection, now: datetime) -> None:
    """Forget attempts past retention and bans long expired (events are kept)."""
    cutoff = now - timedelta(days=ATTEMPT_RETENTION_DAYS)
    conn.execute(delete(login_attempts).where(login_attempts.c.created_at < cutoff))
    conn.execute(delete(ip_bans).where(ip_bans.c.expires_at < cutoff))
    conn.execute(delete(account_bans).where(account_bans.c.expires_at < cutoff))


@dataclass(frozen=True)
class FailureOutcome:
    decision: BanDecision
    ip_until: Optional[datetime]
    account_until: Optional[datetime]


def login_failed(conn: Connection, now: datetime, policy: BrutePolicy, ip: str,
                 username: str, service: str, reason: str) -> FailureOutcome:
    """Record a failure, count the window, and ban if a threshold is crossed."""
    record_attempt(conn, now, ip, username, service, False)
    record_event(conn, now, "login_failed", ip=ip, username=username, service=service,
                 detail=reason)
    since = now - policy.window
    account_exists = conn.execute(select(users.c.id).where(users.c.email == username)
                                  ).first() is not None
    decision = decide(policy, ip, _failures(conn, login_attempts.c.ip, ip, since),
                      _failures(conn, login_attempts.c.username, username, since),
                      ip_already_banned=ip_banned_until(conn, ip, now) is not None,
                      account_already_banned=account_banned_until(conn, username, now)
                      is not None,
                      account_exists=account_exists)
    until = now + policy.ban_duration
    ip_until = account_until = None
    if decision.ban_ip:
        conn.execute(insert(ip_bans).values(ip=ip, reason=f"{service}: too many failed logins",
                                            created_at=now, expires_at=until))
        record_event(conn, now, "ip_banned", ip=ip, service=service,
                     detail=f"until {until.isoformat()}")
        ip_until = until
    if decision.ban_account:
        conn.execute(insert(account_bans).values(
            username=username, reason="too many failed logins", created_at=now,
            expires_at=until))
        record_event(conn, now, "account_banned", username=username, ip=ip, service=service,
                     detail=f"password logins suspended until {until.isoformat()}")
        account_until = until
    return FailureOutcome(decision, ip_until, account_until)


class SecurityStore:
    """The asynchronous face of this module for protocol code."""

    def __init__(self, runner: DatabaseRunner, config: Any, clock: Any) -> None:
        self.runner = runner
        self.policy = BrutePolicy.from_config(config)
        self._clock = clock
        self.counters: Any = NULL_COUNTERS   # counters.py, set by the service

    def apply_config(self, config: Any) -> None:
        """BRUTE_* and BAN_EXEMPT_IPS saved on the settings page apply at once."""
        self.policy = BrutePolicy.from_config(config)

    @property
    def clock(self) -> Any:
        return self._clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), timezone.utc)

    def login_failed(self, ip: str, username: str, service: str,
                     reason: str) -> "Deferred[FailureOutcome]":
        self.counters.add("logins", service, "failure")
        return self.runner.write(login_failed, self.now(), self.policy, ip, username,
                                 service, reason)

    def login_succeeded(self, ip: str, username: str, service: str) -> "Deferred[None]":
        self.counters.add("logins", service, "success")
        return self.runner.write(record_attempt, self.now(), ip, username, service, True)

    def refused(self, kind: str, ip: str, username: str, service: str,
                detail: str = "") -> "Deferred[None]":
        return self.runner.write(record_event, self.now(), kind, ip=ip, username=username,
                                 service=service, detail=detail)

    def account_ban_for(self, username: str, ip: str) -> "Deferred[Optional[datetime]]":
        """When the account is suspended for this address, the end of the suspension."""
        now = self.now()

        def check(conn: Connection) -> Optional[datetime]:
            until = account_banned_until(conn, username, now)
            if until is None or ip in trusted_ips(conn, username, now):
                return None
            return until
        return self.runner.read(check)

    def ip_ban_for(self, ip: str) -> "Deferred[Optional[datetime]]":
        return self.runner.read(ip_banned_until, ip, self.now())

    def active_ip_bans(self) -> "Deferred[dict[str, datetime]]":
        return self.runner.read(active_ip_bans, self.now())

    def purge_old(self) -> "Deferred[None]":
        return self.runner.write(purge_old, self.now())


@dataclass(frozen=True)
class SecurityEvent:
    id: int
    kind: str
    ip: Optional[str]
    username: Optional[str]
    service: Optional[str]
    detail: str
    created_at: datetime


def recent_events(conn: Connection, limit: int = 10) -> list[SecurityEvent]:
    """The newest security events (the dashboard's list; index on created_at)."""
    rows = conn.execute(select(security_events).order_by(
        security_events.c.created_at.desc(), security_events.c.id.desc()).limit(limit))
    return [SecurityEvent(r.id, r.kind, r.ip, r.username, r.service, r.detail, r.created_at)
            for r in rows]
