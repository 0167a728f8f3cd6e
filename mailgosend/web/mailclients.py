# -*- test-case-name: tests.test_web_mailclients -*-
"""Where to point a mail client, as the settings page shows it: the server name (HOSTNAME)
and, for each active mail-access listener, its port and security.  Read from the
configuration once; the same rules service.py uses to decide what listens (submission and
implicit-TLS ports need TLS, so without TLS they are not listed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# (listener, protocol shown, security with TLS, security without TLS or None: not listening)
_LISTENERS = (
    ("imaps", "IMAP", "SSL/TLS", None),
    ("imap", "IMAP", "STARTTLS", "None (no TLS configured)"),
    ("pop3s", "POP3", "SSL/TLS", None),
    ("pop3", "POP3", "STARTTLS", "None (no TLS configured)"),
    ("submit", "SMTP (sending)", "STARTTLS", None),
    ("smtps", "SMTP (sending)", "SSL/TLS", None),
)


@dataclass(frozen=True)
class ClientEndpoint:
    protocol: str
    server: str
    port: int
    security: str


def client_endpoints(config: Any) -> tuple[ClientEndpoint, ...]:
    """The endpoints a mail client can use, the recommended (implicit TLS) first per protocol."""
    tls = config["TLS_MODE"] != "off"
    server = config["HOSTNAME"]
    found = []
    for name, protocol, secure, plain in _LISTENERS:
        listener = config.listener(name)
        security = secure if tls else plain
        if listener.active and security is not None:
            found.append(ClientEndpoint(protocol, server, listener.port, security))
    return tuple(found)
