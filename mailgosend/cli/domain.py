# -*- test-case-name: tests.test_cli -*-
"""``mailgosend domain``: mail domains.

    mailgosend domain add|remove|enable|disable DOMAIN
    mailgosend domain list

The rules (what is refused, where postmaster@ mail goes) are mailgosend.admin's.
"""

from __future__ import annotations

import argparse

from mailgosend.cli.context import Command, Context, now, subcommands


def configure(parser: argparse.ArgumentParser) -> None:
    actions = subcommands(parser)
    for action in ("add", "remove", "enable", "disable"):
        actions.add_parser(action).add_argument("domain")
    actions.add_parser("list")


def run(ctx: Context, args: argparse.Namespace) -> None:
    admin = ctx.admin
    if args.action == "add":
        added = ctx.write(admin.add_domain, args.domain, now())
        ctx.out(f"added domain {added.domain.name}")
        ctx.out(added.postmaster)   # RFC 5321 §4.5.1
    elif args.action == "list":
        rows = ctx.read(admin.list_domains)
        if not rows:
            ctx.out("no domains; add one with: mailgosend domain add example.com")
        for d in rows:
            state = "enabled" if d.enabled else "disabled"
            ctx.out(f"{d.name}\t{state}\t{d.users} user(s)\t{d.aliases} alias(es)")
    elif args.action == "remove":
        domain = ctx.write(admin.remove_domain, args.domain)
        ctx.out(f"removed domain {domain.name}")
    else:
        domain = ctx.write(admin.set_domain_enabled, args.domain, args.action == "enable")
        ctx.out(f"{args.action}d domain {domain.name}")


COMMANDS = {"domain": Command(configure, run)}
