# -*- test-case-name: tests.test_cli -*-
"""What every command module of the CLI shares: the context a command runs in, the parser
class, the error for bad input, and the small argument types.

Light on purpose (no database, no Twisted at import): ``mailgosend user list`` imports this,
its own command module, and only then what the command uses.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional, TextIO

from mailgosend.config import Config, load, new_file_notice, parse_size

if TYPE_CHECKING:
    from mailgosend.admin import AccountAdmin

EXIT_INPUT = 2
EXIT_FAILURE = 1


class CLIError(Exception):
    """Bad input: printed as ``mailgosend: <message>`` with exit status 2."""


class Parser(argparse.ArgumentParser):
    """Usage errors exit with status 2 and a ``mailgosend:`` message."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_INPUT, f"mailgosend: {message}\n")


@dataclass(frozen=True)
class Command:
    """One top-level command: ``configure`` adds its arguments and actions to its parser,
    ``run`` carries it out."""

    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Context, argparse.Namespace], None]


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def size(text: str) -> int:
    """An argparse type: ``2G``, ``500M``, ``0``..."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: {exc}") from None


def subcommands(parser: argparse.ArgumentParser) -> Any:
    """The required ACTION subparsers of a command (``domain add``, ``user list``...)."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    actions.required = True
    return actions


class Context:
    """What a command needs: the validated config and, on demand, the database and the
    account rules."""

    def __init__(self, config_path: str, stdin: TextIO, stdout: TextIO,
                 stderr: Optional[TextIO] = None) -> None:
        self.config_path = config_path
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr or sys.stderr
        self._config: Optional[Config] = None
        self._engine: Any = None
        self._admin: Optional[AccountAdmin] = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load(self.config_path)
            self.announce(self._config)
        return self._config

    def announce(self, config: Config) -> None:
        """What loading said: the new-key notice (once, when the file was made), warnings."""
        if config.created:
            self.stderr.write(f"mailgosend: {new_file_notice(config)}\n")
        for warning in config.warnings:
            self.stderr.write(f"mailgosend: warning: {warning}\n")

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from mailgosend.crypto import KeyRing
            from mailgosend.db.opening import open_database

            config = self.config
            keyring = KeyRing(config["ENCRYPTION_KEY"], config["ENCRYPTION_KEYS_OLD"])
            self._engine = open_database(config, keyring)
        return self._engine

    @property
    def admin(self) -> AccountAdmin:
        """The account rules (mailgosend.admin) under this configuration."""
        if self._admin is None:
            from mailgosend.admin import AccountAdmin, AccountPolicy

            self._admin = AccountAdmin(AccountPolicy.from_config(self.config))
        return self._admin

    def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from mailgosend.db.sync import run_sync

        return run_sync(self.engine, fn, *args, write=True, **kwargs)

    def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from mailgosend.db.sync import run_sync

        return run_sync(self.engine, fn, *args, write=False, **kwargs)

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
