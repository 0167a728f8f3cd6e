# -*- test-case-name: tests.test_web_mailclients -*-
"""Where to point a mail client, as the settings page shows it: the server name (HOSTNAME)
and, for each active mail-access listener, its port and security.  Read from the
configuration once; which listeners count is clientports.py's rule (the one service.py
follows when it decides what listens)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailgosend.clientports import client_ports

_PROTOCOL = {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP (sending)"}
_SECURITY = {"ssl": "SSL/TLS", "starttls": "STARTTLS", "plain": "None (no TLS configured)"}


@dataclass(frozen=True)
class ClientEndpoint:
    protocol: str
    server: str
    port: int
    security: str


def client_endpoints(config: Any) -> tuple[ClientEndpoint, ...]:
    """The endpoints a mail client can use, the recommended (implicit TLS) first per protocol."""
    server = config["HOSTNAME"]
    return tuple(ClientEndpoint(_PROTOCOL[p.protocol], server, p.port, _SECURITY[p.security])
                 for p in client_ports(config) if p.active)
