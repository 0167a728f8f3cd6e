# -*- test-case-name: tests.test_acme -*-
"""``mailgosend tls``: the certificates the listeners serve.

    mailgosend tls status [--json]   names, expiry, issuer of each certificate; for TLS_MODE =
                                     dns01/http01 also the last ACME attempt, its error, and
                                     the next check (from the ACME service's state file)
"""

from __future__ import annotations

import argparse
import json

from mailgosend.cli.context import Command, Context, subcommands


def configure(parser: argparse.ArgumentParser) -> None:
    actions = subcommands(parser)
    status = actions.add_parser("status", help="certificates, expiry, last renewal attempt")
    status.add_argument("--json", action="store_true", help="machine-readable output")


def run(ctx: Context, args: argparse.Namespace) -> None:
    from mailgosend.tls.status import report

    config = ctx.config
    entries = report(config)
    if args.json:
        ctx.out(json.dumps(entries, indent=2, sort_keys=True))
        return
    if not entries:
        ctx.out(f"TLS_MODE = {config['TLS_MODE']}: no certificates")
        return
    for entry in entries:
        ctx.out(f"{entry['source']}: {entry['cert_path']}")
        if "names" in entry:
            ctx.out(f"  wanted names: {', '.join(entry['names']) or '(HOSTNAME and defaults)'}")
        if "served_names" in entry:
            kind = " (self-signed placeholder)" if entry.get("placeholder") else ""
            ctx.out(f"  names:       {', '.join(entry['served_names'])}{kind}")
            ctx.out(f"  expires:     {entry['not_after']}")
            ctx.out(f"  issuer:      {entry['issuer']}")
        else:
            ctx.out("  (no readable certificate)")
        if entry.get("skipped_names"):
            ctx.out(f"  not in DNS yet (left out): {', '.join(entry['skipped_names'])}")
        if entry["source"].startswith("ACME"):
            ctx.out(f"  last attempt: {entry.get('last_attempt') or 'never'}")
            ctx.out(f"  last success: {entry.get('last_success') or 'never'}")
            if entry.get("last_error"):
                ctx.out(f"  last error:   {entry['last_error']} "
                        f"({entry.get('failures', 0)} failed in a row)")
            ctx.out(f"  next check:   {entry.get('next_check') or 'at the next start'}")


COMMANDS = {"tls": Command(configure, run)}
