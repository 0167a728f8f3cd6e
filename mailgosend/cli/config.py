# -*- test-case-name: tests.test_cli -*-
"""``mailgosend config``: the configuration file.

    mailgosend config check        validate the file and report problems
    mailgosend config reference    print the configuration reference (reStructuredText)
    mailgosend config init [--profile standard|local]
"""

from __future__ import annotations

import argparse
import os

from mailgosend.cli.context import CLIError, Command, Context, subcommands
from mailgosend.config import load, missing_keys


def configure(parser: argparse.ArgumentParser) -> None:
    actions = subcommands(parser)
    actions.add_parser("check", help="validate the file and report problems")
    actions.add_parser("reference", help="print the configuration reference (reStructuredText)")
    init = actions.add_parser("init", help="create the file with every key documented")
    init.add_argument("--profile", choices=("standard", "local"), default="standard")


def run(ctx: Context, args: argparse.Namespace) -> None:
    if args.action == "reference":
        from mailgosend.config_docs import reference_rst

        ctx.stdout.write(reference_rst())
        return
    if args.action == "init":
        if os.path.exists(ctx.config_path):
            raise CLIError(f"{ctx.config_path} already exists; it was not changed")
        config = load(ctx.config_path, profile=args.profile)
        ctx.out(f"created {config.path} (profile {config['PROFILE']}, mode 0600)")
        ctx.announce(config)
        return
    config = load(ctx.config_path, create=False)
    for warning in config.warnings:
        ctx.out(f"warning: {warning}")
    missing = missing_keys(config.path)
    if missing:
        ctx.out(f"note: not in the file, defaults used (the server appends them at its next "
                f"start): {', '.join(missing)}")
    ctx.out(f"{config.path}: OK")


COMMANDS = {"config": Command(configure, run)}
