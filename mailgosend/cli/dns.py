# -*- test-case-name: tests.test_dnsrecords -*-
"""``mailgosend dns records DOMAIN``: every DNS record a local domain should publish (MX,
SPF, DKIM, DMARC, MTA-STS, TLS-RPT, autoconfig/autodiscover, RFC 6186 and RFC 6764 SRV), in
zone-file form with a comment saying what each is for.  The list is dnsrecords.py's; the
admin panel and ``doctor`` show the same one."""

from __future__ import annotations

import argparse
from typing import Any

from mailgosend.cli.context import Command, Context, subcommands
from mailgosend.dnsrecords import domain_records

__all__ = ["COMMANDS", "domain_records"]


def configure(parser: argparse.ArgumentParser) -> None:
    actions = subcommands(parser)
    actions.add_parser("records", help="print the zone-file records a domain should publish") \
        .add_argument("domain")


def run(ctx: Context, args: argparse.Namespace) -> None:
    from mailgosend.dnsrecords import zone_file

    records = ctx.read(domain_records, args.domain, ctx.config)
    ctx.out(zone_file(records).rstrip("\n"))
    if not any("._domainkey." in r.name for r in records):
        ctx.out(f"; no DKIM key yet: mailgosend dkim generate {args.domain}")


COMMANDS = {"dns": Command(configure, run)}
