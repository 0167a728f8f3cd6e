"""``mailgosend``: management commands.

Exit status: 0 done, 2 bad input (the message names the argument), 1 the
server side failed (database unreachable...).  Every command that writes runs
in one transaction, so an error leaves nothing half-written.

Imports are lazy: a command loads only what it uses (no Twisted, no migration
machinery when the database is current), so ``mailgosend user list`` answers
at once.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import getpass
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional, Sequence, TextIO

from mailgosend import __version__
from mailgosend.config import (
    Config,
    ConfigError,
    load,
    missing_keys,
    new_file_notice,
    parse_size,
)

if TYPE_CHECKING:
    from mailgosend.store import accounts

EXIT_INPUT = 2
EXIT_FAILURE = 1


class CLIError(Exception):
    """Bad input: printed as ``mailgosend: <message>`` with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_INPUT, f"mailgosend: {message}\n")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: {exc}") from None


class Context:
    """What a command needs: the validated config and, on demand, the database."""

    def __init__(self, config_path: str, stdin: TextIO, stdout: TextIO,
                 stderr: Optional[TextIO] = None) -> None:
        self.config_path = config_path
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr or sys.stderr
        self._config: Optional[Config] = None
        self._engine: Any = None

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


def _read_password(ctx: Context, args: argparse.Namespace, email: str) -> str:
    from mailgosend import passwords

    if args.password_stdin:
        line = ctx.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
    elif ctx.stdin.isatty():
        password = getpass.getpass(f"Password for {email}: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise CLIError("the two passwords differ; nothing was changed")
    else:
        raise CLIError("no password given: pipe it with --password-stdin, or run the "
                       "command in a terminal to be asked")
    problem = passwords.check_password_strength(password, email=email)
    if problem:
        raise CLIError(f"password refused: {problem}; nothing was changed")
    return password


def _hash(ctx: Context, password: str) -> str:
    from mailgosend import passwords

    return passwords.hash_password(password, ctx.config["BCRYPT_COST"])


# --- commands ------------------------------------------------------------------

def cmd_domain(ctx: Context, args: argparse.Namespace) -> None:
    from mailgosend.store import accounts

    if args.action == "add":
        domain = ctx.write(accounts.add_domain, args.domain, _now())
        ctx.out(f"added domain {domain.name}")
        ctx.out(ctx.read(accounts.postmaster_route, domain.name))  # RFC 5321 §4.5.1
    elif args.action == "list":
        rows = ctx.read(accounts.list_domains)
        if not rows:
            ctx.out("no domains; add one with: mailgosend domain add example.com")
        for d in rows:
            state = "enabled" if d.enabled else "disabled"
            ctx.out(f"{d.name}\t{state}\t{d.users} user(s)\t{d.aliases} alias(es)")
    elif args.action == "remove":
        domain = ctx.write(accounts.remove_domain, args.domain)
        ctx.out(f"removed domain {domain.name}")
    else:
        domain = ctx.write(accounts.set_domain_enabled, args.domain, args.action == "enable")
        ctx.out(f"{args.action}d domain {domain.name}")


def _user_line(u: accounts.User) -> str:
    quota = "unlimited" if not u.quota_bytes else f"{u.quota_bytes} bytes"
    flags = ",".join(f for f, on in (("admin", u.is_admin), ("disabled", not u.enabled)) if on)
    return f"{u.email}\t{flags or '-'}\tquota {quota}\tused {u.used_bytes} bytes"


def cmd_user(ctx: Context, args: argparse.Namespace) -> None:
    from mailgosend.store import accounts

    if args.action == "add":
        _add_user(ctx, args.email, args, is_admin=args.admin)
    elif args.action == "list":
        rows = ctx.read(accounts.list_users, args.domain)
        if not rows:
            ctx.out("no users")
        for user in rows:
            ctx.out(_user_line(user))
    elif args.action == "passwd":
        user = ctx.read(accounts.get_user, args.email)
        password = _read_password(ctx, args, user.email)
        ctx.write(accounts.set_password, user.email, _hash(ctx, password), _now())
        ctx.out(f"changed the password of {user.email}")
    elif args.action in ("enable", "disable"):
        user = ctx.write(accounts.set_user_enabled, args.email, args.action == "enable")
        ctx.out(f"{args.action}d user {user.email}")
    elif args.action == "quota":
        user = ctx.write(accounts.set_quota, args.email, args.size)
        ctx.out(f"quota of {user.email} is now "
                f"{'unlimited' if not user.quota_bytes else str(user.quota_bytes) + ' bytes'}")
    elif args.action == "delete":
        if not args.yes:
            raise CLIError(f"deleting {args.email} removes all of its mail; repeat with --yes "
                           "to confirm")
        user = ctx.write(accounts.delete_user, args.email)
        ctx.out(f"deleted user {user.email} and all of its mail")


def _add_user(ctx: Context, email: str, args: argparse.Namespace, *, is_admin: bool,
              create_domain: bool = False) -> None:
    from mailgosend.store import accounts
    from mailgosend.store.addresses import parse_address

    address = parse_address(email)
    existing = ctx.read(accounts.find_user, str(address))
    if existing is not None:
        raise accounts.Duplicate(f"user {address} already exists")
    if not create_domain and not ctx.read(accounts.is_local_domain, address.domain):
        raise accounts.UnknownDomain(f"unknown domain {address.domain}: add it first with "
                                     f"'mailgosend domain add {address.domain}'")
    password = _read_password(ctx, args, str(address))
    password_hash = _hash(ctx, password)
    quota = args.quota if getattr(args, "quota", None) is not None else \
        ctx.config["DEFAULT_QUOTA"]

    def create(conn: Any) -> accounts.User:
        now = _now()
        if create_domain and not accounts.is_local_domain(conn, address.domain):
            accounts.add_domain(conn, address.domain, now)
        return accounts.add_user(conn, str(address), password_hash, now,
                                 quota_bytes=quota, is_admin=is_admin)

    user = ctx.write(create)
    ctx.out(f"added {'admin ' if user.is_admin else ''}user {user.email}")


def cmd_create_admin(ctx: Context, args: argparse.Namespace) -> None:
    _add_user(ctx, args.email, args, is_admin=True, create_domain=True)


def cmd_alias(ctx: Context, args: argparse.Namespace) -> None:
    from mailgosend.store import accounts

    if args.action == "add":
        alias = ctx.write(accounts.add_alias, args.source, args.destination, _now())
        what = "catch-all" if alias.source.startswith("@") else "alias"
        ctx.out(f"added {what} {alias.source} -> {alias.destination}")
    elif args.action == "list":
        rows = ctx.read(accounts.list_aliases, args.domain)
        if not rows:
            ctx.out("no aliases")
        for alias in rows:
            ctx.out(f"{alias.source}\t{alias.destination}"
                    + ("" if alias.enabled else "\tdisabled"))
    else:
        count = ctx.write(accounts.remove_alias, args.source, args.destination)
        ctx.out(f"removed {count} alias destination(s) of {args.source}")


def cmd_migrate(ctx: Context, args: argparse.Namespace) -> None:
    from mailgosend.db.migrate import current_revision

    revision = current_revision(ctx.engine)  # opening the database migrates it
    ctx.out(f"database is at revision {revision}")


def cmd_config(ctx: Context, args: argparse.Namespace) -> None:
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


# Commands whose parsers live in their own modules, with the help shown for them.
_SUBMODULE_COMMANDS = {"queue": "outbound mail queue",
                       "dkim": "DKIM signing keys and their DNS records"}


def _command_of(argv: Sequence[str]) -> Optional[str]:
    """The command word of ``argv`` (None for none or --help), read before argparse runs."""
    words = iter(argv)
    for word in words:
        if word in ("--config", "-c"):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The whole parser; given the command about to run, the queue and dkim parsers (and the
    stores they import) are only built when that command is one of them."""
    parser = _Parser(prog="mailgosend", description="Manage a mailgosend server.")
    parser.add_argument("--config", "-c", default=os.environ.get("MAILGO_CONFIG",
                                                                  "app_config.conf"),
                        help="configuration file (default: $MAILGO_CONFIG or app_config.conf)")
    parser.add_argument("--version", action="version", version=f"mailgosend {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    domain = sub.add_parser("domain", help="mail domains").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser)
    domain.required = True
    for action in ("add", "remove", "enable", "disable"):
        domain.add_parser(action).add_argument("domain")
    domain.add_parser("list")

    user = sub.add_parser("user", help="mail accounts").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser)
    user.required = True
    add = user.add_parser("add")
    add.add_argument("email")
    add.add_argument("--admin", action="store_true", help="may use the admin panel")
    add.add_argument("--quota", type=_size, help="e.g. 2G; default DEFAULT_QUOTA")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    user.add_parser("list").add_argument("--domain")
    passwd = user.add_parser("passwd")
    passwd.add_argument("email")
    passwd.add_argument("--password-stdin", action="store_true")
    for action in ("enable", "disable"):
        user.add_parser(action).add_argument("email")
    quota = user.add_parser("quota")
    quota.add_argument("email")
    quota.add_argument("size", type=_size, help="e.g. 2G, or 0 for unlimited")
    delete = user.add_parser("delete")
    delete.add_argument("email")
    delete.add_argument("--yes", action="store_true", help="confirm: all of its mail is lost")

    alias = sub.add_parser("alias", help="aliases and catch-alls").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser)
    alias.required = True
    alias_add = alias.add_parser("add", help="SOURCE is name@domain, or @domain for a catch-all")
    alias_add.add_argument("source")
    alias_add.add_argument("destination")
    alias.add_parser("list").add_argument("--domain")
    alias_remove = alias.add_parser("remove")
    alias_remove.add_argument("source")
    alias_remove.add_argument("destination", nargs="?")

    admin = sub.add_parser("create-admin", help="first administrator (creates the domain)")
    admin.add_argument("email")
    admin.add_argument("--password-stdin", action="store_true")

    sub.add_parser("migrate", help="bring the database schema up to date")

    config = sub.add_parser("config", help="configuration file").add_subparsers(
        dest="action", metavar="ACTION", parser_class=_Parser)
    config.required = True
    config.add_parser("check", help="validate the file and report problems")
    config.add_parser("reference", help="print the configuration reference (reStructuredText)")
    init = config.add_parser("init", help="create the file with every key documented")
    init.add_argument("--profile", choices=("standard", "local"), default="standard")
    if command is None or command in _SUBMODULE_COMMANDS:
        from mailgosend import cli_dkim, cli_queue

        cli_queue.add_parsers(sub)
        cli_dkim.add_parsers(sub)
    else:
        for name, text in _SUBMODULE_COMMANDS.items():
            sub.add_parser(name, help=text)
    return parser


COMMANDS: dict[str, Callable[[Context, argparse.Namespace], None]] = {
    "domain": cmd_domain, "user": cmd_user, "alias": cmd_alias,
    "create-admin": cmd_create_admin, "migrate": cmd_migrate, "config": cmd_config,
    "queue": lambda ctx, args: _queue(ctx, args),
    "dkim": lambda ctx, args: _dkim(ctx, args),
}


def _dkim(ctx: Context, args: argparse.Namespace) -> None:
    from mailgosend.cli_dkim import cmd_dkim

    cmd_dkim(ctx, args)


def _queue(ctx: Context, args: argparse.Namespace) -> None:
    from mailgosend.cli_queue import cmd_queue

    cmd_queue(ctx, args)


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
        COMMANDS[args.command](ctx, args)
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
