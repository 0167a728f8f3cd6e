# -*- test-case-name: tests.test_acme -*-
"""``mailgosend tls``: the certificates the listeners serve.

    mailgosend tls status [--json]   names, expiry, issuer of each certificate; for TLS_MODE =
                                     dns01/http01 also the last ACME attempt, its error, and
                                     the next check (from the ACME service's state file)
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from mailgosend.cli.context import Command, Context, subcommands

ACME_MODES = ("http01", "dns01")


def configure(parser: argparse.ArgumentParser) -> None:
    actions = subcommands(parser)
    status = actions.add_parser("status", help="certificates, expiry, last renewal attempt")
    status.add_argument("--json", action="store_true", help="machine-readable output")


def _configured(config: Any) -> list[tuple[str, str]]:
    """(what, certificate path) of every certificate file the configuration names."""
    found: list[tuple[str, str]] = []
    mode = config["TLS_MODE"]
    if mode == "file":
        found.append(("TLS_CERT", config["TLS_CERT"]))
    elif mode == "selfsigned":
        found.append(("selfsigned", os.path.join(config["DATA_DIR"], "tls", "selfsigned.crt")))
    for group in ("SMTP", "IMAP", "POP3", "WEB"):
        if config[f"{group}_TLS_CERT"]:
            found.append((f"{group}_TLS_CERT", config[f"{group}_TLS_CERT"]))
    for item in config["TLS_SNI_CERTS"]:
        found.append(("TLS_SNI_CERTS", item.partition(":")[0].strip()))
    return found


def status(config: Any) -> list[dict[str, Any]]:
    """One entry per certificate: what the files say now, plus the ACME state if any."""
    from mailgosend.tls import acme

    entries: list[dict[str, Any]] = []
    if config["TLS_MODE"] in ACME_MODES:
        directory = acme.cache_dir(config)
        cert_path = acme.live_paths(directory)[0]
        states = acme.read_state(directory) or [acme.CertificateStatus(
            name="default", names=list(config["ACME_DOMAINS"]), cert_path=cert_path)]
        for state in states:
            entry = {"source": f"ACME ({config['TLS_MODE']})", **state.as_dict()}
            entry.update(_public(acme.describe_certificate(state.cert_path)))
            entries.append(entry)
    for what, path in _configured(config):
        entries.append({"source": what, "cert_path": path,
                        **_public(acme.describe_certificate(path))})
    return entries


def _public(info: dict[str, Any]) -> dict[str, Any]:
    """describe_certificate without its datetime objects (JSON) and with the served names."""
    shown = {k: v for k, v in info.items() if not k.endswith("_dt")}
    if "names" in shown:
        shown["served_names"] = shown.pop("names")
    return shown


def run(ctx: Context, args: argparse.Namespace) -> None:
    config = ctx.config
    entries = status(config)
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
        if entry["source"].startswith("ACME"):
            ctx.out(f"  last attempt: {entry.get('last_attempt') or 'never'}")
            ctx.out(f"  last success: {entry.get('last_success') or 'never'}")
            if entry.get("last_error"):
                ctx.out(f"  last error:   {entry['last_error']} "
                        f"({entry.get('failures', 0)} failed in a row)")
            ctx.out(f"  next check:   {entry.get('next_check') or 'at the next start'}")


COMMANDS = {"tls": Command(configure, run)}
