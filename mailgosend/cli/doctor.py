# -*- test-case-name: tests.test_admin_doctor -*-
"""``mailgosend doctor [DOMAIN] [--no-server]``: the live DNS and network check of
mailgosend/doctor.py (the admin panel's "Check DNS" page runs the same one), printed with
what each problem means and the record that fixes it.  Without DOMAIN: every enabled
domain.  Lookups go through DNS_PRIMARY / DNS_SECONDARY like the server's."""

from __future__ import annotations

import argparse

from mailgosend import doctor
from mailgosend.cli.context import Command, Context

__all__ = ["COMMANDS"]

MARKS = {doctor.OK: "ok  ", doctor.WARN: "WARN", doctor.FAIL: "FAIL", doctor.SKIPPED: "skip"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("domain", nargs="?", help="one domain (default: every enabled one)")
    parser.add_argument("--no-server", action="store_true",
                        help="skip the server checks (reverse DNS, port 25, blocklists)")


def print_findings(ctx: Context, findings: list[doctor.Finding]) -> None:
    for f in findings:
        ctx.out(f"  [{MARKS[f.status]}] {f.check}: {f.found}")
        if f.status in (doctor.WARN, doctor.FAIL):
            ctx.out(f"         {f.explanation}")
            if f.fix:
                ctx.out(f"         Fix: {f.fix}")
            for line in f.record.splitlines():
                ctx.out(f"           {line}")


def run(ctx: Context, args: argparse.Namespace) -> None:
    from mailgosend.mailauth.resolver import make_resolver

    config = ctx.config
    if args.domain:
        inputs = [ctx.read(doctor.domain_inputs, args.domain, config)]
    else:
        inputs = ctx.read(doctor.all_domain_inputs, config)
    resolver = make_resolver(config["DNS_PRIMARY"], config["DNS_SECONDARY"])
    report = doctor.run_checks(resolver, doctor.DoctorSettings.from_config(config), inputs,
                               server=not args.no_server)
    for domain, findings in report.domains.items():
        ctx.out(domain)
        print_findings(ctx, findings)
    if report.server:
        ctx.out(f"server {config['HOSTNAME']}")
        print_findings(ctx, report.server)
    ctx.out(f"{report.count(doctor.FAIL)} problem(s), {report.count(doctor.WARN)} warning(s)")


COMMANDS = {"doctor": Command(configure, run)}
