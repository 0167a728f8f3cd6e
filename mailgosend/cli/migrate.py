# -*- test-case-name: tests.test_cli -*-
"""``mailgosend migrate``: bring the database schema up to date (opening it migrates it)."""

from __future__ import annotations

import argparse

from mailgosend.cli.context import Command, Context


def configure(parser: argparse.ArgumentParser) -> None:
    """No arguments."""


def run(ctx: Context, args: argparse.Namespace) -> None:
    from mailgosend.db.migrate import current_revision

    revision = current_revision(ctx.engine)  # opening the database migrates it
    ctx.out(f"database is at revision {revision}")


COMMANDS = {"migrate": Command(configure, run)}
