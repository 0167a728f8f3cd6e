# -*- test-case-name: tests.test_cli -*-
"""``mailgosend``: management commands, one module per command group.

    domain.py   domain add|remove|enable|disable|list
    user.py     user add|list|passwd|enable|disable|quota|delete|mfa-reset|app-password,
                create-admin
    alias.py    alias add|list|remove
    dkim.py     dkim generate|dns|list|activate|remove
    dns.py      dns records
    queue.py    queue list|show|retry|retry-all|delete|stats
    config.py   config check|reference|init
    migrate.py  migrate
    tls.py      tls status

The rules of account administration are not here but in mailgosend.admin, which the admin
panel calls too; these modules read arguments and passwords and print results.

Exit status: 0 done, 2 bad input (the message names the argument), 1 the server side failed
(database unreachable...).  Every command that writes runs in one transaction, so an error
leaves nothing half-written.

Imports are lazy: only the module of the command about to run is imported (its parser is the
only one built in full), and a command loads only what it uses (no Twisted, no migration
machinery when the database is current), so ``mailgosend user list`` answers at once.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import NoReturn, Optional, Sequence, TextIO

from mailgosend import __version__
from mailgosend.cli.context import (
    EXIT_FAILURE,
    EXIT_INPUT,
    CLIError,
    Command,
    Context,
    Parser,
)
from mailgosend.config import ConfigError

__all__ = ["CLIError", "Context", "build_parser", "main", "run"]

# Every command: the module of this package that implements it, and its help line.
COMMANDS: dict[str, tuple[str, str]] = {
    "domain": ("domain", "mail domains"),
    "user": ("user", "mail accounts"),
    "alias": ("alias", "aliases and catch-alls"),
    "create-admin": ("user", "first administrator (creates the domain)"),
    "migrate": ("migrate", "bring the database schema up to date"),
    "tls": ("tls", "TLS certificates and ACME renewal state"),
    "config": ("config", "configuration file"),
    "queue": ("queue", "outbound mail queue"),
    "dkim": ("dkim", "DKIM signing keys and their DNS records"),
    "dns": ("dns", "every DNS record a domain should publish"),
    "doctor": ("doctor", "check DNS, reverse DNS, port 25 and blocklists live"),
}


def _command(name: str) -> Command:
    module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
    command: Command = module.COMMANDS[name]
    return command


def _command_of(argv: Sequence[str]) -> Optional[str]:
    """The command word of ``argv`` (None for none or --help), read before argparse runs."""
    words = iter(argv)
    for word in words:
        if word in ("--config", "-c"):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(command: Optional[str] = None) -> Parser:
    """The parser; given the command about to run, only that command's parser is built in
    full (and only its module imported); the others are listed with their help line."""
    parser = Parser(prog="mailgosend", description="Manage a mailgosend server.")
    parser.add_argument("--config", "-c", default=os.environ.get("MAILGO_CONFIG",
                                                                  "app_config.conf"),
                        help="configuration file (default: $MAILGO_CONFIG or app_config.conf)")
    parser.add_argument("--version", action="version", version=f"mailgosend {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, (_, text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=text)
        if command is None or command == name:
            _command(name).configure(command_parser)
    return parser


def main(argv: Optional[Sequence[str]] = None, *, stdin: Optional[TextIO] = None,
         stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        # argparse writes usage errors to sys.stderr itself.
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            if argv is None:
                argv = sys.argv[1:]
            args = build_parser(_command_of(argv)).parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    ctx = Context(args.config, stdin, stdout, stderr)
    try:
        _command(args.command).run(ctx, args)
        return 0
    except ConfigError as exc:
        stderr.write(f"mailgosend: configuration {args.config}:\n  "
                     + "\n  ".join(exc.problems) + "\n")
        return EXIT_INPUT
    except CLIError as exc:
        stderr.write(f"mailgosend: {exc}\n")
        return EXIT_INPUT
    except Exception as exc:
        from mailgosend.errors import StartupError
        from mailgosend.store.accounts import AccountError
        from mailgosend.store.addresses import AddressError

        if isinstance(exc, (AddressError, AccountError)):
            stderr.write(f"mailgosend: {exc}\n")
            return EXIT_INPUT
        if isinstance(exc, StartupError):
            stderr.write(f"mailgosend: {exc}\n")
        else:
            stderr.write(f"mailgosend: {args.command} failed: {type(exc).__name__}: {exc}\n")
        return EXIT_FAILURE
    finally:
        ctx.close()


def run() -> NoReturn:
    """Console-script entry point."""
    sys.exit(main())
