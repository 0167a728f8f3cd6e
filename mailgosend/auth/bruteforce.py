"""Brute-force policy: pure decisions over counts, tested with tables.

Failures are counted per client IP and per account in a sliding window
(BRUTE_WINDOW_MIN).  An IP that reaches BRUTE_MAX_TRIES is banned from every
listener; an account that reaches BRUTE_ACCOUNT_MAX_TRIES (from any number of
addresses: a distributed guess) has password logins suspended, except from
addresses where that account logged in successfully before, so an attacker
cannot lock the real owner out of their own mail (the weakness of plain
account lockout that Dovecot's auth_policy and fail2ban setups also avoid).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable, Sequence, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


@dataclass(frozen=True)
class BrutePolicy:
    ip_max_tries: int
    account_max_tries: int
    window: timedelta
    ban_duration: timedelta
    exempt: tuple[Network, ...] = ()

    @classmethod
    def from_config(cls, config: Any) -> "BrutePolicy":
        get = config.__getitem__
        return cls(get("BRUTE_MAX_TRIES"), get("BRUTE_ACCOUNT_MAX_TRIES"),
                   timedelta(minutes=get("BRUTE_WINDOW_MIN")),
                   timedelta(hours=get("BRUTE_BAN_HOURS")),
                   parse_networks(get("BAN_EXEMPT_IPS")))

    def is_exempt(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self.exempt)


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """CIDR networks or single addresses; ValueError names the bad item."""
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(networks)


@dataclass(frozen=True)
class BanDecision:
    ban_ip: bool
    ban_account: bool


def decide(policy: BrutePolicy, ip: str, ip_failures: int, account_failures: int,
           *, ip_already_banned: bool = False, account_already_banned: bool = False,
           account_exists: bool = True) -> BanDecision:
    """Whether this failure (already counted) crosses a threshold."""
    ban_ip = (ip_failures >= policy.ip_max_tries and not policy.is_exempt(ip)
              and not ip_already_banned)
    # Suspending a non-existent account protects nothing and fills the table.
    ban_account = (account_exists and account_failures >= policy.account_max_tries
                   and not account_already_banned)
    return BanDecision(ban_ip, ban_account)


def account_ban_applies(trusted_ips: Sequence[str], ip: str) -> bool:
    """An account suspension does not stop logins from the owner's known addresses."""
    return ip not in trusted_ips
