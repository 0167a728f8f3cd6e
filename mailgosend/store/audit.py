# -*- test-case-name: tests.test_admin_dash_audit -*-
"""The audit log (issue 14 item 11): one row per administrative action, who/what/target,
when and from where.  ``record`` runs inside the transaction of the change it describes
(the caller composes both in one ``runner.write`` job), so a refused change is never
recorded as done and a recorded one always happened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.engine import Connection

from mailgosend.db.schema import audit_log

MAX_PAGE = 200


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: str
    ip: str
    domain: Optional[str]


@dataclass(frozen=True)
class AuditQuery:
    """Filters of the audit page; every one optional.  ``domains`` (a domain
    administrator's) limits the rows to those domains; ``before`` is the cursor (an id)."""

    actor: str = ""
    action: str = ""             # a prefix: "user." matches user.add, user.delete, ...
    text: str = ""               # in target or detail
    since: Optional[datetime] = None
    until: Optional[datetime] = None
    domains: Optional[frozenset[str]] = None
    before: Optional[int] = None
    limit: int = 50


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def record(conn: Connection, *, actor: str, action: str, target: str, ip: str,
           at: datetime, detail: str = "", domain: Optional[str] = None) -> None:
    """Add one entry.  ``detail`` must never hold a secret (a password, a token, a key)."""
    conn.execute(insert(audit_log).values(
        at=at, actor=actor[:320], action=action[:64], target=target[:512], detail=detail,
        ip=(ip or "")[:45], domain=domain.lower()[:253] if domain else None))


def search(conn: Connection, query: AuditQuery) -> list[AuditEntry]:
    """Newest first, at most ``query.limit`` (<= MAX_PAGE) rows older than the cursor."""
    conditions: list[Any] = []
    if query.actor:
        conditions.append(audit_log.c.actor.ilike(_like(query.actor), escape="\\"))
    if query.action:
        conditions.append(audit_log.c.action.startswith(query.action, autoescape=True))
    if query.text:
        pattern = _like(query.text)
        conditions.append(or_(audit_log.c.target.ilike(pattern, escape="\\"),
                              audit_log.c.detail.ilike(pattern, escape="\\")))
    if query.since is not None:
        conditions.append(audit_log.c.at >= query.since)
    if query.until is not None:
        conditions.append(audit_log.c.at < query.until)
    if query.domains is not None:
        conditions.append(audit_log.c.domain.in_(sorted(query.domains)))
    if query.before is not None:
        conditions.append(audit_log.c.id < query.before)
    statement = select(audit_log).order_by(audit_log.c.id.desc()).limit(
        max(1, min(query.limit, MAX_PAGE)))
    if conditions:
        statement = statement.where(and_(*conditions))
    return [AuditEntry(r.id, r.at, r.actor, r.action, r.target, r.detail, r.ip, r.domain)
            for r in conn.execute(statement)]
