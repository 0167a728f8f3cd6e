"""Build real Config objects for tests (through config.load, so validation runs)."""

from __future__ import annotations

import os
from typing import Any

from mailgosend.config import Config, load

# Every listener off unless a test turns it on with a free port: tests run in parallel.
TEST_DEFAULTS = {
    "PROFILE": "local",
    "BCRYPT_COST": "4",
    "TLS_MODE": "off",
    "DNSBL_ZONES": "",
    **{f"{name}_PORT": "0" for name in ("SMTP", "SUBMIT", "SMTPS", "IMAP", "IMAPS", "POP3",
                                         "POP3S", "WEB", "ADMIN", "DAV", "HTTP")},
}


def make_config(directory: str, **values: Any) -> Config:
    """A config file in ``directory`` (generated, local profile) with overrides applied."""
    os.makedirs(directory, exist_ok=True)
    env = {f"MAILGO_{k}": str(v) for k, v in {**TEST_DEFAULTS, **values}.items()}
    return load(os.path.join(directory, "app_config.conf"), profile="local", environ=env)


def make_config_file(directory: str, **values: Any) -> Config:
    """make_config, with ``values`` also written into the file, for code that reads the file
    itself rather than the test's environment (the ``mailgosend`` CLI)."""
    config = make_config(directory, **values)
    with open(config.path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    wanted = {key: str(value) for key, value in values.items()}
    kept = [line for line in lines if line.split("=", 1)[0].strip() not in wanted]
    with open(config.path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(kept + [f"{k} = {v}" for k, v in wanted.items()]) + "\n")
    return config


def auth_settings(**overrides: Any) -> dict[str, Any]:
    """The settings the Portal, SecurityStore and BanCache read, for tests that build them
    without a whole Config: generous limits unless a test overrides them."""
    values: dict[str, Any] = {
        "BRUTE_MAX_TRIES": 50, "BRUTE_ACCOUNT_MAX_TRIES": 50, "BRUTE_WINDOW_MIN": 15,
        "BRUTE_BAN_HOURS": 1, "BAN_EXEMPT_IPS": (), "DEFAULT_DOMAIN": "example.com",
        "BCRYPT_COST": 4, "MFA_PROTECTS_PROTOCOLS": True}
    values.update(overrides)
    return values
