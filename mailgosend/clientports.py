# -*- test-case-name: tests.test_dnsrecords -*-
"""Which mail-access ports a client can use, with their security: the one rule the
settings page (web/mailclients.py), client autoconfiguration (web/autoconfig.py) and the
DNS SRV records (dnsrecords.py) all follow.

It is the rule service.py applies when it decides what listens: the implicit-TLS ports
(465, 993, 995) and submission need TLS, so with ``TLS_MODE = off`` they do not listen;
IMAP and POP3 then listen in clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ClientPort", "client_ports", "CLIENT_SETUP_PREFIXES", "MTA_STS_PREFIX",
           "PUBLIC_HOST_PREFIXES"]

# Names clients look up on each local domain, served by the web port (web/autoconfig.py):
# Thunderbird's autoconfig, Outlook's autodiscover; MTA-STS senders fetch mta-sts.<domain>
# (RFC 8461 §3.3).  The web port's host check and the ACME names (tls/acme.py) use these.
CLIENT_SETUP_PREFIXES = ("autoconfig.", "autodiscover.")
MTA_STS_PREFIX = "mta-sts."
PUBLIC_HOST_PREFIXES = CLIENT_SETUP_PREFIXES + (MTA_STS_PREFIX,)

# (listener, protocol, kind, security when TLS is off or None: not listening)
#   kind "ssl": implicit TLS (RFC 8314 §3), "starttls": plain then STARTTLS/STLS.
_LISTENERS = (
    ("imaps", "imap", "ssl", None),
    ("imap", "imap", "starttls", "plain"),
    ("pop3s", "pop3", "ssl", None),
    ("pop3", "pop3", "starttls", "plain"),
    ("submit", "smtp", "starttls", None),
    ("smtps", "smtp", "ssl", None),
)


@dataclass(frozen=True)
class ClientPort:
    """One mail-access listener as a client sees it."""

    listener: str      # imaps, imap, pop3s, pop3, submit, smtps
    protocol: str      # imap, pop3, smtp (sending)
    port: int          # the configured port (even when not active)
    security: str      # "ssl", "starttls" or "plain" (no TLS configured)
    active: bool       # listening with this security


def client_ports(config: Any) -> tuple[ClientPort, ...]:
    """Every mail-access listener in recommendation order (implicit TLS first per protocol,
    RFC 8314 §3.1), active or not: SRV records name disabled ones too (as ``0 0 0 .``)."""
    tls = config["TLS_MODE"] != "off"
    found = []
    for name, protocol, kind, plain in _LISTENERS:
        listener = config.listener(name)
        security = kind if tls else plain
        found.append(ClientPort(name, protocol, listener.port, security or kind,
                                listener.active and security is not None))
    return tuple(found)
