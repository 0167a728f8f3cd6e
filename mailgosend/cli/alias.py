# -*- test-case-name: tests.test_cli -*-
"""``mailgosend alias``: aliases and catch-alls.

    mailgosend alias add SOURCE DESTINATION     SOURCE is name@domain, or @domain (catch-all)
    mailgosend alias list [--domain DOMAIN]
    mailgosend alias remove SOURCE [DESTINATION]

The rules (what is refused) are mailgosend.admin's.
"""

from __future__ import annotations

import argparse

from mailgosend.cli.context import Command, Context, now, subcommands


def configure(parser: argparse.ArgumentParser) -> None:
    actions = subcommands(parser)
    add = actions.add_parser("add", help="SOURCE is name@domain, or @domain for a catch-all")
    add.add_argument("source")
    add.add_argument("destination")
    actions.add_parser("list").add_argument("--domain")
    remove = actions.add_parser("remove")
    remove.add_argument("source")
    remove.add_argument("destination", nargs="?")


def run(ctx: Context, args: argparse.Namespace) -> None:
    admin = ctx.admin
    if args.action == "add":
        alias = ctx.write(admin.add_alias, args.source, args.destination, now())
        what = "catch-all" if alias.source.startswith("@") else "alias"
        ctx.out(f"added {what} {alias.source} -> {alias.destination}")
    elif args.action == "list":
        rows = ctx.read(admin.list_aliases, args.domain)
        if not rows:
            ctx.out("no aliases")
        for alias in rows:
            ctx.out(f"{alias.source}\t{alias.destination}"
                    + ("" if alias.enabled else "\tdisabled"))
    else:
        count = ctx.write(admin.remove_alias, args.source, args.destination)
        ctx.out(f"removed {count} alias destination(s) of {args.source}")


COMMANDS = {"alias": Command(configure, run)}
