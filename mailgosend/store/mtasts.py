# -*- test-case-name: tests.test_mtasts -*-
"""Recipient domains' MTA-STS policies (RFC 8461 §5.1 cache) and the outbound TLS result
counters of TLS-RPT (RFC 8460 §4.4): plain functions over a Connection, run by the
DatabaseRunner (delivery/mtasts.py, delivery/tlsrpt.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import delete, insert, select, update

from mailgosend.db.upsert import upsert_into
from sqlalchemy.engine import Connection

from mailgosend.db.schema import mta_sts_policies, tls_results
from mailgosend.mtasts import Policy

__all__ = ["CachedPolicy", "TLSCount", "cached_policy", "count_result", "forget_results",
           "results_before", "store_policy"]


@dataclass(frozen=True)
class CachedPolicy:
    domain: str
    policy_id: str
    policy: Policy
    fetched_at: datetime
    expires_at: datetime


def cached_policy(conn: Connection, domain: str) -> Optional[CachedPolicy]:
    """The stored policy of ``domain``, expired or not (the caller compares with now)."""
    row = conn.execute(select(mta_sts_policies)
                       .where(mta_sts_policies.c.domain == domain)).first()
    if row is None:
        return None
    mx = tuple(line for line in row.mx.split("\n") if line)
    return CachedPolicy(row.domain, row.policy_id, Policy(row.mode, row.max_age, mx),
                        row.fetched_at, row.expires_at)


def store_policy(conn: Connection, domain: str, policy_id: str, policy: Policy,
                 now: datetime) -> CachedPolicy:
    """Cache a freshly fetched policy for its max_age (RFC 8461 §5.1), replacing any other."""
    values = dict(policy_id=policy_id, mode=policy.mode, max_age=policy.max_age,
                  mx="\n".join(policy.mx), fetched_at=now,
                  expires_at=now + timedelta(seconds=policy.max_age))
    changed = conn.execute(update(mta_sts_policies)
                           .where(mta_sts_policies.c.domain == domain).values(**values))
    if not changed.rowcount:
        conn.execute(insert(mta_sts_policies).values(domain=domain, **values))
    return CachedPolicy(domain, policy_id, policy, now, values["expires_at"])  # type: ignore[arg-type]


@dataclass(frozen=True)
class TLSCount:
    day: str
    domain: str
    policy_type: str       # sts | no-policy-found
    policy: tuple[str, ...]
    mx_host: str
    result_type: str       # success, or an RFC 8460 §4.3 result type
    count: int


def count_result(conn: Connection, *, day: str, domain: str, policy_type: str,
                 policy: tuple[str, ...], mx_host: str, result_type: str) -> None:
    """Add one session outcome to the day's counter."""
    # One statement: two nodes counting the same outcome at once must both count (an
    # UPDATE-then-INSERT raced into a UniqueViolation on PostgreSQL).
    conn.execute(upsert_into(conn, tls_results).values(
        day=day, domain=domain, policy_type=policy_type, policy="\n".join(policy),
        mx_host=mx_host, result_type=result_type, count=1).on_conflict_do_update(
        index_elements=[tls_results.c.day, tls_results.c.domain, tls_results.c.policy_type,
                        tls_results.c.mx_host, tls_results.c.result_type],
        set_={"count": tls_results.c.count + 1, "policy": "\n".join(policy)}))


def results_before(conn: Connection, day: str) -> list[TLSCount]:
    """Every counter of the days before ``day`` (those complete), by day and domain."""
    rows = conn.execute(select(tls_results).where(tls_results.c.day < day)
                        .order_by(tls_results.c.day, tls_results.c.domain, tls_results.c.id))
    return [TLSCount(r.day, r.domain, r.policy_type,
                     tuple(line for line in r.policy.split("\n") if line), r.mx_host,
                     r.result_type, r._mapping["count"]) for r in rows]


def forget_results(conn: Connection, day: str, domain: str) -> int:
    """Drop one domain's counters of one day once its report is queued (or not wanted)."""
    return conn.execute(delete(tls_results).where(
        tls_results.c.day == day, tls_results.c.domain == domain)).rowcount
