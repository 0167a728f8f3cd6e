#!/usr/bin/env python3
"""JMAP state reads on a big mailbox (issue 12): figures only, no pass/fail.

Builds a SQLite database (migrated to head) with one user and --messages message rows
(1.5 KB of meta each, in threads of 3, a fifth unread, spread over INBOX, Archive and
Trash; rows inserted directly, no blobs: these reads never touch blobs or decrypt), makes
10 changes (8 flag changes, one expunge) and times, --runs times each, p50/p95 in ms:

  Mailbox/get view   state + mailboxes + subscriptions + the four counts (store/emails.py),
                     uncached (a repeated Mailbox/get at one state hits MailService's cache)
  Email/changes      after the 10 changes (from the state before them)
  Thread/changes     same
  Mailbox/changes    same (includes the thread-induced count changes)
  Thread/get x50     50 threads' emails by receivedAt

  PYTHONPATH=. python3 benchmarks/jmap_state.py [--messages 100000] [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import insert, update

from mailgosend.db.engine import create_db_engine
from mailgosend.db.migrate import upgrade_to_head
from mailgosend.db.schema import mailboxes, messages
from mailgosend.db.sync import run_sync
from mailgosend.store import accounts, mailstate
from mailgosend.store import emails as store_emails
from mailgosend.store.mailboxes import ensure_default_mailboxes, get_by_role
from mailgosend.store.messages import expunge, set_flags

NOW = datetime(2026, 12, 5, tzinfo=timezone.utc)
META = b"\x00" * 1500  # as wide as a sealed structure: rows are not narrow in real life


def build(engine: Any, count: int) -> tuple[int, list[int], dict[str, int]]:
    def job(conn: Any) -> tuple[int, list[int], dict[str, int]]:
        accounts.add_domain(conn, "example.com", NOW)
        user = accounts.add_user(conn, "bench@example.com", "x", NOW)
        ensure_default_mailboxes(conn, user.id, NOW)
        boxes = {role: get_by_role(conn, user.id, role).id  # type: ignore[union-attr]
                 for role in ("inbox", "archive", "trash")}
        rows, thread, uids = [], 0, {b: 0 for b in boxes.values()}
        for i in range(count):
            if i % 3 == 0:
                thread = i + 1
            box = boxes["inbox"] if i % 10 < 7 else (boxes["archive"] if i % 10 < 9
                                                     else boxes["trash"])
            uids[box] += 1
            modseq = mailstate.allocate(conn, user.id)
            rows.append(dict(id=i + 1, mailbox_id=box, user_id=user.id, uid=uids[box],
                             modseq=modseq, flags="" if i % 5 == 0 else "\\Seen",
                             internal_date=NOW + timedelta(seconds=i), size=2000,
                             blob_id=f"b{i}", created_at=NOW, email_id=i + 1,
                             meta=META,
                             thread_id=thread, created_modseq=modseq))
            if len(rows) == 5000:
                conn.execute(insert(messages), rows)
                rows = []
        if rows:
            conn.execute(insert(messages), rows)
        for box, uid in uids.items():  # UIDNEXT and HIGHESTMODSEQ as deliveries leave them
            conn.execute(update(mailboxes).where(mailboxes.c.id == box).values(
                uidnext=uid + 1, highestmodseq=mailstate.read_state(conn, user.id).modseq))
        return user.id, list(range(1, count + 1, max(1, count // 60))), boxes
    return run_sync(engine, job, write=True)  # type: ignore[no-any-return]


def timed(runs: int, fn: Callable[[], object]) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        engine = create_db_engine("sqlite", sqlite_path=os.path.join(directory, "b.sqlite"))
        upgrade_to_head(engine)
        started = time.perf_counter()
        user_id, some, boxes = build(engine, options.messages)
        print(f"{options.messages} messages built in {time.perf_counter() - started:.1f} s")
        before = run_sync(engine, mailstate.read_state, user_id, write=False).modseq
        for uid in range(1, 9):
            run_sync(engine, set_flags, boxes["inbox"], [uid * 7], ["$Tagged"], "add",
                     write=True)
        run_sync(engine, set_flags, boxes["inbox"], [3], ["\\Deleted"], "add", write=True)
        run_sync(engine, expunge, boxes["inbox"], [3], now=NOW, write=True)
        current = run_sync(engine, mailstate.read_state, user_id, write=False).modseq
        since = store_emails.Position(before)
        threads = run_sync(engine, store_emails.thread_ids, user_id, 50, write=False)
        steps = {
            "Mailbox/get view": lambda: run_sync(engine, store_emails.mailbox_view, user_id,
                                                 write=False),
            "Email/changes": lambda: run_sync(engine, store_emails.email_changes, user_id,
                                              since, current, None, write=False),
            "Thread/changes": lambda: run_sync(engine, store_emails.thread_changes, user_id,
                                               since, current, None, write=False),
            "Mailbox/changes": lambda: run_sync(engine, store_emails.mailbox_changes,
                                                user_id, since, current, None, write=False),
            "Thread/get x50": lambda: run_sync(engine, store_emails.emails_in_threads,
                                               user_id, threads, write=False),
        }
        for label, fn in steps.items():
            p50, p95 = timed(options.runs, fn)
            print(f"{label:18s} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms")


if __name__ == "__main__":
    main()
