# -*- test-case-name: tests.test_web_proxy -*-
"""Who is really asking: the client address and scheme behind trusted reverse proxies.

Only a peer in TRUSTED_PROXIES may say who the client is (``X-Forwarded-For``) and whether it
spoke HTTPS (``X-Forwarded-Proto``); anyone else could forge those headers to dodge bans and
rate limits.  X-Forwarded-For is read from the right: each proxy appends the address it saw,
so the first address from the right that is not a trusted proxy is the client.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional, Sequence

from mailgosend.auth.bruteforce import Network


@dataclass(frozen=True)
class ClientOrigin:
    ip: str
    secure: bool


def _trusted(ip: str, networks: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _clean(item: str) -> Optional[str]:
    try:
        return str(ipaddress.ip_address(item.strip()))
    except ValueError:
        return None


def client_origin(peer_ip: str, peer_secure: bool, forwarded_for: Sequence[str],
                  forwarded_proto: Sequence[str], trusted: Sequence[Network]) -> ClientOrigin:
    """The client's address and whether its connection was HTTPS, as far as we can trust."""
    if not _trusted(peer_ip, trusted):
        return ClientOrigin(peer_ip, peer_secure)
    client = peer_ip
    hops = [part for header in forwarded_for for part in header.split(",")]
    for hop in reversed(hops):
        ip = _clean(hop)
        if ip is None:
            break   # a garbled hop: stop at the last address we could read
        client = ip
        if not _trusted(ip, trusted):
            break
    protos = [part.strip().lower() for header in forwarded_proto for part in header.split(",")]
    secure = protos[-1] == "https" if protos else peer_secure
    return ClientOrigin(client, secure)
