# -*- test-case-name: tests.test_cli_dkim -*-
"""``mailgosend dkim``: DKIM signing keys per domain (RFC 6376, RFC 8463).

    mailgosend dkim generate DOMAIN [--algo rsa2048|ed25519] [--selector S]
    mailgosend dkim dns DOMAIN
    mailgosend dkim list [DOMAIN]
    mailgosend dkim activate DOMAIN SELECTOR
    mailgosend dkim remove DOMAIN SELECTOR [--yes]

Rotation: the first key of an algorithm is active at once; a later one is stored *pending*
so that mail keeps passing while its record reaches DNS, and ``activate`` switches to it and
retires the old key (kept, so its record stays published while mail it signed is verified).
``remove`` deletes a key; removing one that is still signing asks for ``--yes``.  The running
server sees a change within dkimsign.CACHE_SECONDS.

Same conventions as the other commands: errors exit 2 and name the argument, every change is
one transaction, and no private key is ever printed.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mailgosend.cli.context import CLIError, Command, Context, now, subcommands
from mailgosend.store import dkimkeys

if TYPE_CHECKING:
    from mailgosend.crypto import KeyRing

__all__ = ["COMMANDS"]


def configure(parser: argparse.ArgumentParser) -> None:
    actions = subcommands(parser)
    generate = actions.add_parser("generate", help="create a key and print its DNS record")
    generate.add_argument("domain")
    generate.add_argument("--algo", choices=tuple(dkimkeys.ALGORITHMS), default="rsa2048",
                          help="rsa2048 (default; every verifier knows it) or ed25519 "
                               "(RFC 8463; add it next to an RSA key for dual signing)")
    generate.add_argument("--selector", help="DNS label for the key (default mg<yyyymm>, "
                                             "mg<yyyymm>e for ed25519)")
    actions.add_parser("dns", help="print the zone-file TXT records to publish") \
        .add_argument("domain")
    actions.add_parser("list", help="keys and their state").add_argument("domain", nargs="?")
    activate = actions.add_parser("activate", help="sign with a pending key from now on")
    activate.add_argument("domain")
    activate.add_argument("selector")
    remove = actions.add_parser("remove", help="delete a key")
    remove.add_argument("domain")
    remove.add_argument("selector")
    remove.add_argument("--yes", action="store_true",
                        help="confirm removing a key that is still signing")


def _keyring(ctx: Context) -> KeyRing:
    from mailgosend.crypto import KeyRing

    config = ctx.config
    return KeyRing(config["ENCRYPTION_KEY"], config["ENCRYPTION_KEYS_OLD"])


def _state(key: dkimkeys.DKIMKey, keys: list[dkimkeys.DKIMKey]) -> str:
    return dkimkeys.key_state(key, keys)


def _record(key: dkimkeys.DKIMKey) -> str:
    return dkimkeys.zone_file_record(key.record_name, key.txt_value)


def run(ctx: Context, args: argparse.Namespace) -> None:
    if args.action == "generate":
        if args.selector is not None:
            dkimkeys.validate_selector(args.selector)   # before the slow key generation
        material = dkimkeys.new_key_material(args.algo)
        key = ctx.write(dkimkeys.generate_key, _keyring(ctx), args.domain, args.algo,
                        args.selector, now=now(), material=material)
        if key.active:
            ctx.out(f"generated {key.algorithm} key {key.selector} for {key.domain}; "
                    "mail from the domain is signed with it from now on.")
            ctx.out("Publish this DNS record (signatures fail until it is visible):")
        else:
            ctx.out(f"generated {key.algorithm} key {key.selector} for {key.domain}, pending: "
                    "mail is still signed with the current key.")
            ctx.out("Publish this DNS record, wait until it is visible (and the old record's "
                    "TTL has passed), then run:")
            ctx.out(f"  mailgosend dkim activate {key.domain} {key.selector}")
        ctx.out()
        ctx.out(_record(key))
    elif args.action == "dns":
        keys = ctx.read(dkimkeys.list_keys, args.domain)
        if not keys:
            ctx.out(f"; no DKIM keys for {args.domain}; create one with: "
                    f"mailgosend dkim generate {args.domain}")
        for key in keys:
            ctx.out(f"; {_state(key, keys)} {key.algorithm} key, created "
                    f"{key.created_at:%Y-%m-%d}")
            ctx.out(_record(key))
        ctx.out(f"; MX, SPF, DMARC, MTA-STS, TLS-RPT and client-discovery records too: "
                f"mailgosend dns records {args.domain}")
    elif args.action == "list":
        keys = ctx.read(dkimkeys.list_keys, args.domain)
        if not keys:
            ctx.out("no DKIM keys; create one with: mailgosend dkim generate DOMAIN")
        for key in keys:
            same_domain = [k for k in keys if k.domain == key.domain]
            ctx.out(f"{key.domain}\t{key.selector}\t{key.algorithm}\t"
                    f"{_state(key, same_domain)}\t{key.created_at:%Y-%m-%d}")
    elif args.action == "activate":
        key, retired = ctx.write(dkimkeys.activate_key, args.domain, args.selector)
        ctx.out(f"{key.domain} is now signed with {key.algorithm} key {key.selector}")
        for old in retired:
            ctx.out(f"retired {old.selector}: keep its DNS record for a few days, then "
                    f"'mailgosend dkim remove {old.domain} {old.selector}'")
    elif args.action == "remove":
        _remove(ctx, args)


def _remove(ctx: Context, args: argparse.Namespace) -> None:
    def remove(conn: Any) -> dkimkeys.DKIMKey:
        keys = dkimkeys.list_keys(conn, args.domain)
        selector = dkimkeys.validate_selector(args.selector)
        current = [k for k in keys if k.selector == selector and k.active]
        if current and not args.yes:
            key = current[0]
            raise CLIError(f"{key.selector} is the active {key.algorithm} key of {key.domain}: "
                           f"without it, mail from {key.domain} is no longer signed with "
                           f"{key.algorithm}; repeat with --yes to confirm")
        return dkimkeys.remove_key(conn, args.domain, args.selector)

    key = ctx.write(remove)
    ctx.out(f"removed key {key.selector} of {key.domain}; delete the DNS record "
            f"{key.record_name} too")


COMMANDS = {"dkim": Command(configure, run)}
