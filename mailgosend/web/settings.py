"""What one web listener needs from the configuration, read once (DESIGN.md §12)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from mailgosend.clientports import PUBLIC_HOST_PREFIXES
from mailgosend.auth.bruteforce import Network, parse_networks

# Client setup (web/autoconfig.py) and MTA-STS are asked for at autoconfig.<domain>,
# autodiscover.<domain> and mta-sts.<domain> of every local domain: names not in
# WEB_HOSTNAMES, answered for these public paths only, so no page with a session is
# reachable under them (no DNS-rebinding target).
PUBLIC_PATHS = frozenset((b"/.well-known/autoconfig/mail/config-v1.1.xml",
                          b"/mail/config-v1.1.xml", b"/autodiscover/autodiscover.xml",
                          b"/Autodiscover/Autodiscover.xml", b"/.well-known/mta-sts.txt"))

# Form posts are small; routes that take uploads (up to MAX_MESSAGE_SIZE) say so.
FORM_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class WebSettings:
    kind: str                       # "web" or "admin": the port, the session kind
    secret: bytes                   # SESSION_SECRET
    hostnames: frozenset[str]       # Host names answered (IP literals always are)
    trusted_proxies: tuple[Network, ...]
    tls: bool                       # this listener speaks HTTPS itself
    secure_cookie: bool             # SECURE_COOKIE: Secure even over plain HTTP
    max_age: int                    # SESSION_MAX_AGE, seconds
    idle_timeout: int               # SESSION_IDLE_TIMEOUT, seconds
    rate_per_min: int
    max_upload: int                 # MAX_MESSAGE_SIZE

    @classmethod
    def from_config(cls, config: Any, kind: str) -> "WebSettings":
        names = {config["HOSTNAME"].lower(), "localhost"}
        names.update(name.lower().rstrip(".") for name in config["WEB_HOSTNAMES"])
        return cls(kind=kind, secret=config["SESSION_SECRET"], hostnames=frozenset(names),
                   trusted_proxies=parse_networks(config["TRUSTED_PROXIES"]),
                   tls=config["WEB_TLS"], secure_cookie=config["SECURE_COOKIE"],
                   max_age=config["SESSION_MAX_AGE"],
                   idle_timeout=config["SESSION_IDLE_TIMEOUT"],
                   rate_per_min=config["WEB_RATE_PER_MIN" if kind == "web"
                                       else "ADMIN_RATE_PER_MIN"],
                   max_upload=config["MAX_MESSAGE_SIZE"])

    def host_allowed(self, host: str, path: bytes = b"") -> bool:
        """Refusing unknown Host headers defeats DNS rebinding: a hostile name pointed at
        us never reaches a page.  IP literals cannot be rebound, so they are answered; the
        per-domain setup names only for PUBLIC_PATHS."""
        name = host.strip().lower().rstrip(".")
        if name in self.hostnames:
            return True
        if self.kind == "web" and name.startswith(PUBLIC_HOST_PREFIXES) and \
                path in PUBLIC_PATHS:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True
