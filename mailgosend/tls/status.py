"""Every certificate the configuration makes the listeners serve, and the ACME renewal state:
what ``mailgosend tls status`` prints and what the admin panel's TLS page can show.

Reads files only (the certificates and the ACME service's state file), so it works in another
process than the server's.
"""

from __future__ import annotations

import os
from typing import Any

from mailgosend.config_keys import ACME_MODES, TLS_GROUPS
from mailgosend.tls import acme


def _configured(config: Any) -> list[tuple[str, str]]:
    """(what, certificate path) of every certificate file the configuration names."""
    found: list[tuple[str, str]] = []
    mode = config["TLS_MODE"]
    if mode == "file":
        found.append(("TLS_CERT", config["TLS_CERT"]))
    elif mode == "selfsigned":
        found.append(("selfsigned", os.path.join(config["DATA_DIR"], "tls", "selfsigned.crt")))
    for group in TLS_GROUPS:
        if config[f"{group}_TLS_CERT"]:
            found.append((f"{group}_TLS_CERT", config[f"{group}_TLS_CERT"]))
    for item in config["TLS_SNI_CERTS"]:
        found.append(("TLS_SNI_CERTS", item.partition(":")[0].strip()))
    return found


def report(config: Any) -> list[dict[str, Any]]:
    """One entry per certificate: what the files say now, plus the ACME state if any."""
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
