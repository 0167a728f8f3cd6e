# -*- test-case-name: tests.test_admin_dash_counters -*-
"""The dashboard's numbers in the database: hourly counter buckets (counters.py writes
them) and the few cheap gauges read from small tables (queue depth, storage per domain)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Optional, Sequence

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection

from mailgosend.db.schema import counter_buckets, domains, queue, queue_recipients, users
from mailgosend.store.queue import PENDING


@dataclass(frozen=True)
class Bucket:
    hour: datetime
    name: str
    label: str
    value: int


def add_counts(conn: Connection, node: str,
               counts: Iterable[tuple[datetime, str, str, int]]) -> None:
    """Add to this node's buckets.  Only this node writes its rows (one flush at a time),
    so update-then-insert cannot race with another writer."""
    for hour, name, label, value in counts:
        key = and_(counter_buckets.c.hour == hour, counter_buckets.c.name == name,
                   counter_buckets.c.label == label, counter_buckets.c.node == node)
        done = conn.execute(update(counter_buckets).where(key).values(
            value=counter_buckets.c.value + value))
        if done.rowcount == 0:
            conn.execute(insert(counter_buckets).values(hour=hour, name=name, label=label,
                                                        node=node, value=value))


def buckets(conn: Connection, names: Sequence[str], since: datetime,
            group: str = "all") -> list[Bucket]:
    """Buckets of ``names`` from ``since`` on, summed over nodes (index name, hour), and
    with ``group="hour"`` over labels too (label ""), with ``group="label"`` over hours
    (hour = ``since``): the database adds up, the caller gets few rows."""
    c = counter_buckets.c
    total = func.sum(c.value)
    keys: list[Any] = {"all": [c.hour, c.name, c.label], "hour": [c.hour, c.name],
                       "label": [c.name, c.label]}[group]
    rows = conn.execute(select(*keys, total)
                        .where(c.name.in_(list(names)), c.hour >= since).group_by(*keys))
    if group == "hour":
        return [Bucket(r[0], r[1], "", int(r[2] or 0)) for r in rows]
    if group == "label":
        return [Bucket(since, r[0], r[1], int(r[2] or 0)) for r in rows]
    return [Bucket(r[0], r[1], r[2], int(r[3] or 0)) for r in rows]


def purge_before(conn: Connection, before: datetime) -> int:
    return int(conn.execute(counter_buckets.delete().where(
        counter_buckets.c.hour < before)).rowcount or 0)


@dataclass(frozen=True)
class Gauges:
    queued_messages: int
    pending_recipients: int
    oldest: Optional[datetime]
    storage_by_domain: list[tuple[str, int]]


def gauges(conn: Connection) -> Gauges:
    """Queue depth, its oldest message and storage per domain: the queue holds what is not
    yet delivered (small), users one row per account."""
    messages = int(conn.execute(select(func.count()).select_from(queue)).scalar() or 0)
    pending = int(conn.execute(select(func.count()).select_from(queue_recipients).where(
        queue_recipients.c.status.in_(PENDING))).scalar() or 0)
    oldest = conn.execute(select(func.min(queue.c.created_at))).scalar()
    storage = [(r[0], int(r[1] or 0)) for r in conn.execute(
        select(domains.c.name, func.sum(users.c.used_bytes))
        .select_from(domains.outerjoin(users, users.c.domain_id == domains.c.id))
        .group_by(domains.c.name).order_by(domains.c.name))]
    return Gauges(messages, pending, oldest, storage)
