# -*- test-case-name: tests.test_cli_queue -*-
"""``mailgosend queue``: look at and steer the outbound queue (Postfix's mailq/postqueue/postsuper).

A running server picks up ``retry`` within its poll interval (60 s) or at the next queued
message; ``hold`` keeps a message from being delivered until ``release``; ``delete`` removes
a message without a bounce.  The admin panel's queue page does the same (store/queue.py).  Addresses are shown, contents never.
"""

from __future__ import annotations

import argparse
import datetime

from mailgosend.cli.context import CLIError, Command, Context, now, subcommands
from mailgosend.store import queue as queue_store


def _positive_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid queue id {text!r}: a number from "
                                         "'mailgosend queue list'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid queue id {text!r}: must be positive")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    queue = subcommands(parser)
    queue.add_parser("list", help="messages waiting, with their recipients")
    for action, text in (("show", "one message: recipients and every delivery attempt"),
                         ("retry", "attempt a message now"),
                         ("hold", "stop delivering a message until 'release'"),
                         ("release", "deliver a held message again, now"),
                         ("delete", "remove a message without sending a bounce")):
        queue.add_parser(action, help=text).add_argument("id", type=_positive_id,
                                                         metavar="ID")
    queue.add_parser("retry-all", help="attempt every waiting message now")
    stats = queue.add_parser("stats", help="counts by state and destination")
    stats.add_argument("--hours", type=float, default=24.0,
                       help="delivery attempts of the last HOURS (default 24)")


def _when(value: datetime.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "-"


def _sender(sender: str) -> str:
    return f"<{sender}>"


def run(ctx: Context, args: argparse.Namespace) -> None:
    try:
        if args.action == "list":
            entries = ctx.read(queue_store.list_entries)
            if not entries:
                ctx.out("queue is empty")
            for entry in entries:
                m = entry.message
                ctx.out(f"{m.id}\t{_when(m.created_at)}\t{m.size} bytes\tfrom {_sender(m.sender)}")
                for r in entry.recipients:
                    due = f"next {_when(r.next_attempt_at)}" if r.status == "queued" else r.status
                    last = f"\t{r.last_code} {r.last_text}" if r.last_code else ""
                    ctx.out(f"\t<{r.recipient}>\t{due}\tattempts {r.attempts}{last}")
        elif args.action == "show":
            try:
                entry, log_lines = ctx.read(queue_store.get_entry, args.id)
            except queue_store.NoSuchEntry:
                # Delivered, bounced or deleted: the delivery log still says what happened.
                log_lines = ctx.read(queue_store.history, args.id)
                if not log_lines:
                    raise
                ctx.out(f"queue id {args.id} is no longer queued; its delivery log:")
            else:
                m = entry.message
                ctx.out(f"queue id {m.id}")
                ctx.out(f"  from      {_sender(m.sender)}")
                ctx.out(f"  queued    {_when(m.created_at)}")
                if m.release_at is not None:  # send later (RFC 4865)
                    ctx.out(f"  held till {_when(m.release_at)}")
                ctx.out(f"  size      {m.size} bytes" + ("  SMTPUTF8" if m.smtputf8 else ""))
                for r in entry.recipients:
                    ctx.out(f"  to        <{r.recipient}>  {r.status}, attempts {r.attempts}, "
                            f"next {_when(r.next_attempt_at)}")
                ctx.out("  attempts:" if log_lines else "  no attempts yet")
            for line in log_lines:
                via = f" via {line.mx_host}" if line.mx_host else ""
                tls = f" ({line.tls_version})" if line.tls_version else ""
                ctx.out(f"    {_when(line.attempted_at)}  <{line.recipient or ''}>  "
                        f"{line.status}{via}{tls}: {line.code or ''} {line.text or ''}".rstrip())
        elif args.action == "retry":
            count = ctx.write(queue_store.retry_now, args.id, now())
            ctx.out(f"queue id {args.id}: {count} recipient(s) due now")
        elif args.action in ("hold", "release"):
            ctx.read(queue_store.get_entry, args.id)            # NoSuchEntry when gone
            count = ctx.write(queue_store.set_held, [args.id], args.action == "hold", now())
            ctx.out(f"queue id {args.id}: {count} recipient(s) "
                    f"{'held' if args.action == 'hold' else 'released, due now'}")
        elif args.action == "retry-all":
            count = ctx.write(queue_store.retry_now, None, now())
            ctx.out(f"{count} recipient(s) due now")
        elif args.action == "delete":
            count = ctx.write(queue_store.delete_entry, args.id, now())
            ctx.out(f"deleted queue id {args.id} ({count} recipient(s) not delivered; "
                    "no bounce sent)")
        else:
            if args.hours <= 0:
                raise CLIError(f"--hours: must be positive, not {args.hours:g}")
            since = now() - datetime.timedelta(hours=args.hours)
            st = ctx.read(queue_store.stats, since)
            ctx.out(f"messages queued: {st.messages}")
            ctx.out(f"oldest:          {_when(st.oldest)}")
            for status in ("queued", "delivering", queue_store.HELD):
                ctx.out(f"recipients {status + ':':12s} {st.by_status.get(status, 0)}")
            if st.by_domain:
                ctx.out("waiting by domain:")
                for domain, count in st.by_domain:
                    ctx.out(f"  {domain}\t{count}")
            ctx.out(f"attempts in the last {args.hours:g} h: " + (", ".join(
                f"{k or 'unknown'} {v}" for k, v in sorted(st.log_by_status.items())) or "none"))
    except queue_store.NoSuchEntry:
        raise CLIError(f"ID: no queue entry {args.id} (delivered, bounced or deleted "
                       "already? see 'mailgosend queue list')") from None


COMMANDS = {"queue": Command(configure, run)}
