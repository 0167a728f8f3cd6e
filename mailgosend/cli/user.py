# -*- test-case-name: tests.test_cli -*-
"""``mailgosend user`` and ``mailgosend create-admin``: mail accounts.

    mailgosend user add EMAIL [--admin] [--quota SIZE] [--password-stdin]
    mailgosend user list [--domain DOMAIN]
    mailgosend user passwd EMAIL [--password-stdin]
    mailgosend user enable|disable EMAIL
    mailgosend user quota EMAIL SIZE
    mailgosend user delete EMAIL --yes
    mailgosend user mfa-reset EMAIL                      turn two-factor authentication off
                                                         (TOTP and passkeys)
    mailgosend user app-password add EMAIL NAME --protocols imap,submission,...
    mailgosend user app-password list EMAIL
    mailgosend user app-password revoke EMAIL NAME
    mailgosend create-admin EMAIL [--password-stdin]     the first administrator, with its domain

The rules (checks before a password is asked for, the default quota, the password policy,
creating the domain with the first administrator) are mailgosend.admin's; this module reads
passwords and prints results.
"""

from __future__ import annotations

import argparse
import getpass
from typing import TYPE_CHECKING

from mailgosend.cli.context import CLIError, Command, Context, Parser, now, size, subcommands

if TYPE_CHECKING:
    from mailgosend.store.accounts import User


def configure_user(parser: argparse.ArgumentParser) -> None:
    actions = subcommands(parser)
    add = actions.add_parser("add")
    add.add_argument("email")
    add.add_argument("--admin", action="store_true", help="may use the admin panel")
    add.add_argument("--quota", type=size, help="e.g. 2G; default DEFAULT_QUOTA")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    actions.add_parser("list").add_argument("--domain")
    passwd = actions.add_parser("passwd")
    passwd.add_argument("email")
    passwd.add_argument("--password-stdin", action="store_true")
    for action in ("enable", "disable"):
        actions.add_parser(action).add_argument("email")
    quota = actions.add_parser("quota")
    quota.add_argument("email")
    quota.add_argument("size", type=size, help="e.g. 2G, or 0 for unlimited")
    delete = actions.add_parser("delete")
    delete.add_argument("email")
    delete.add_argument("--yes", action="store_true", help="confirm: all of its mail is lost")
    actions.add_parser("mfa-reset", help="turn two-factor authentication off for a user "
                       "locked out of it").add_argument("email")
    app = actions.add_parser("app-password", help="passwords for mail clients, one per "
                             "device, limited to chosen protocols")
    app_actions = app.add_subparsers(dest="app_action", metavar="ACTION", parser_class=Parser)
    app_actions.required = True
    app_add = app_actions.add_parser("add")
    app_add.add_argument("email")
    app_add.add_argument("name", help="what it is for, e.g. 'phone'")
    app_add.add_argument("--protocols", required=True,
                         help="comma-separated: imap, pop3, submission (SMTP AUTH), dav")
    app_actions.add_parser("list").add_argument("email")
    app_revoke = app_actions.add_parser("revoke")
    app_revoke.add_argument("email")
    app_revoke.add_argument("name")


def configure_create_admin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("email")
    parser.add_argument("--password-stdin", action="store_true")


def _read_password(ctx: Context, args: argparse.Namespace, email: str) -> str:
    """The new password from standard input or the terminal (asked twice), checked against
    the password policy."""
    from mailgosend.admin import PasswordRefused

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
    try:
        ctx.admin.check_password(password, email)
    except PasswordRefused as exc:
        raise CLIError(f"{exc}; nothing was changed") from None
    return password


def _user_line(u: User) -> str:
    quota = "unlimited" if not u.quota_bytes else f"{u.quota_bytes} bytes"
    flags = ",".join(f for f, on in (("admin", u.is_admin), ("disabled", not u.enabled)) if on)
    return f"{u.email}\t{flags or '-'}\tquota {quota}\tused {u.used_bytes} bytes"


def _add_user(ctx: Context, args: argparse.Namespace, *, is_admin: bool,
              create_domain: bool = False) -> None:
    admin = ctx.admin
    # Refusals that do not depend on the password come before asking for it.
    address = ctx.read(admin.check_new_user, args.email, create_domain=create_domain)
    password_hash = admin.hash_password(_read_password(ctx, args, address))
    user = ctx.write(admin.add_user, address, password_hash, now(),
                     quota=getattr(args, "quota", None), is_admin=is_admin,
                     create_domain=create_domain)
    ctx.out(f"added {'admin ' if user.is_admin else ''}user {user.email}")


def run_user(ctx: Context, args: argparse.Namespace) -> None:
    admin = ctx.admin
    if args.action == "add":
        _add_user(ctx, args, is_admin=args.admin)
    elif args.action == "list":
        rows = ctx.read(admin.list_users, args.domain)
        if not rows:
            ctx.out("no users")
        for user in rows:
            ctx.out(_user_line(user))
    elif args.action == "passwd":
        user = ctx.read(admin.get_user, args.email)
        password_hash = admin.hash_password(_read_password(ctx, args, user.email))
        # As on the settings page: the user's web sessions end with the old password.
        ctx.write(admin.change_password, user.email, password_hash, now())
        ctx.out(f"changed the password of {user.email}; their web sessions were ended")
    elif args.action in ("enable", "disable"):
        user = ctx.write(admin.set_user_enabled, args.email, args.action == "enable")
        ctx.out(f"{args.action}d user {user.email}")
    elif args.action == "quota":
        user = ctx.write(admin.set_quota, args.email, args.size)
        ctx.out(f"quota of {user.email} is now "
                f"{'unlimited' if not user.quota_bytes else str(user.quota_bytes) + ' bytes'}")
    elif args.action == "delete":
        if not args.yes:
            raise CLIError(f"deleting {args.email} removes all of its mail; repeat with --yes "
                           "to confirm")
        user = ctx.write(admin.delete_user, args.email)
        ctx.out(f"deleted user {user.email} and all of its mail")
    elif args.action == "mfa-reset":
        was_on = ctx.write(admin.reset_mfa, args.email)
        ctx.out(f"two-factor authentication of {args.email} is now off"
                if was_on else f"{args.email} had no two-factor authentication; nothing changed")
    elif args.action == "app-password":
        _run_app_password(ctx, args)


def _run_app_password(ctx: Context, args: argparse.Namespace) -> None:
    admin = ctx.admin
    if args.app_action == "add":
        user = ctx.read(admin.get_user, args.email)   # refuse an unknown user before bcrypt
        new = admin.make_app_password(args.name, [args.protocols])
        ctx.write(admin.add_app_password, user.email, new, now())
        ctx.out(f"app password {new.name!r} for {user.email} "
                f"({', '.join(new.protocols)}): {new.shown}")
        ctx.out("it is shown only now: enter it in the mail client instead of the account "
                "password")
    elif args.app_action == "list":
        rows = ctx.read(admin.list_app_passwords, args.email)
        if not rows:
            ctx.out("no app passwords")
        for row in rows:
            used = (f"last used {row.last_used_at:%Y-%m-%d %H:%M} UTC from {row.last_ip}"
                    if row.last_used_at else "never used")
            ctx.out(f"{row.name}\t{row.prefix}-...\t{','.join(row.protocols)}\t"
                    f"created {row.created_at:%Y-%m-%d %H:%M} UTC\t{used}")
    elif args.app_action == "revoke":
        ctx.write(admin.revoke_app_password, args.email, args.name)
        ctx.out(f"revoked app password {args.name!r} of {args.email}")


def run_create_admin(ctx: Context, args: argparse.Namespace) -> None:
    _add_user(ctx, args, is_admin=True, create_domain=True)


COMMANDS = {"user": Command(configure_user, run_user),
            "create-admin": Command(configure_create_admin, run_create_admin)}
