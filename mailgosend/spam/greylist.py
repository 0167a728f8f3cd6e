"""Greylisting (RFC 6647): a first delivery attempt from an unknown (client, sender,
recipient) triplet is deferred; a real MTA retries and is accepted after the delay, most
spamware never does.

Implemented:
- the triplet of §4.2: the client's network (IPv4 /24, IPv6 /64, because large senders retry
  from another address of the same pool, §4.2.1), the envelope sender lower-cased (the null
  sender is a sender like any other) and the recipient lower-cased;
- the temporary failure at RCPT TO (§4.1), ``451 4.7.1`` (the backend maps ``Action.DEFER``);
- a retry before the delay is deferred again; after it the triplet is passed; an unpassed
  triplet older than the retry window starts over; a passed triplet unused for the expiry
  period is forgotten (§4.5 and §6: bounded state).
- exemptions (§5): never on submission or for an authenticated client, never for the exempt
  client networks (loopback by default).  And, as postgrey's client auto-whitelist: once one
  triplet of a client network has passed, that network has shown it retries like an MTA and
  is not greylisted again until it has been silent for the expiry period, so only a sender's
  very first message is delayed, not its first message to each recipient.

Not done, on purpose: an SPF-pass exemption.  SPF is checked after DATA here, and spammers
publish SPF for their own throw-away domains as readily as anyone; the auto-whitelist covers
the senders an SPF exemption is meant to help.

Privacy: a triplet is stored as HMAC-SHA256 under ``KeyRing.derive("greylist", "server")``,
never the addresses (§8 leaves storage to the implementation).  A new ENCRYPTION_KEY derives a
new key: every sender is then greylisted once more, which is harmless.

The pure part (``client_network``, ``triplet_key``, ``exemption``, ``decide``) takes plain data;
``Greylist`` is the edge that reads and writes the state through the database runner.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Optional, Union

from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from mailgosend.auth.bruteforce import Network, parse_networks
from mailgosend.crypto import KeyRing
from mailgosend.db.runner import DatabaseRunner
from mailgosend.errors import StartupError
from mailgosend.store import greylist as state
from mailgosend.store.greylist import TripletState

__all__ = ["KEY_OWNER", "KEY_PURPOSE", "Action", "Greylist", "GreylistPolicy", "Outcome",
           "Step", "check", "client_key", "client_network", "decide", "exemption",
           "parse_networks", "peek", "purge", "triplet_key", "trusted_client"]

KEY_PURPOSE = "greylist"
KEY_OWNER = "server"
IPV4_PREFIX = 24
IPV6_PREFIX = 64
# A passed triplet's last_seen is rewritten at most this often: its expiry is measured in
# days, and one write per RCPT of a known sender would be wasted work.
REFRESH_AFTER = timedelta(hours=1)



@dataclass(frozen=True)
class GreylistPolicy:
    delay: timedelta = timedelta(seconds=300)       # RFC 6647 §4.3: minutes, not hours
    retry_window: timedelta = timedelta(hours=24)
    expire: timedelta = timedelta(days=35)          # §6: longer than a monthly newsletter
    exempt: tuple[Network, ...] = ()

    @classmethod
    def from_config(cls, config: Any) -> "GreylistPolicy":
        try:
            exempt = parse_networks(config["GREYLIST_EXEMPT_NETWORKS"])
        except ValueError as exc:
            raise StartupError(f"GREYLIST_EXEMPT_NETWORKS: {exc}") from None
        return cls(timedelta(seconds=config["GREYLIST_DELAY_SECONDS"]),
                   timedelta(hours=config["GREYLIST_RETRY_WINDOW_HOURS"]),
                   timedelta(days=config["GREYLIST_EXPIRE_DAYS"]), exempt)

    def is_exempt(self, ip: str) -> bool:
        address = _address(ip)
        return address is not None and any(address in net for net in self.exempt
                                           if net.version == address.version)


def _address(ip: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    return address


def client_network(ip: str) -> str:
    """The client part of the triplet: the /24 or /64 holding ``ip`` (RFC 6647 §4.2.1);
    anything unparsable stands for itself."""
    address = _address(ip)
    if address is None:
        return ip
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def triplet_key(key: bytes, ip: str, sender: str, recipient: str) -> bytes:
    """The stored form of a triplet: HMAC-SHA256 over network, sender and recipient."""
    material = b"\x00".join((b"triplet", _encode(client_network(ip)),
                             _encode(sender.lower()), _encode(recipient.lower())))
    return hmac.new(key, material, hashlib.sha256).digest()


def client_key(key: bytes, ip: str) -> bytes:
    """The stored form of a client network's auto-whitelist entry (its own prefix, so it
    can never equal a triplet's hash)."""
    material = b"\x00".join((b"client", _encode(client_network(ip))))
    return hmac.new(key, material, hashlib.sha256).digest()


def exemption(listener: str, authenticated: Optional[str], peer_ip: str,
              policy: GreylistPolicy) -> Optional[str]:
    """Why this session is never greylisted, or None (RFC 6647 §5)."""
    if listener != "inbound":
        return "submission"
    if authenticated:
        return "authenticated"
    if policy.is_exempt(peer_ip):
        return "exempt network"
    return None


class Action(Enum):
    DEFER = "defer"      # 451 4.7.1
    ACCEPT = "accept"


class Step(Enum):
    """What the state needs: the write that goes with a decision."""

    INSERT = "insert"        # first attempt: a new row
    RESTART = "restart"      # a row too old to count: first attempt again
    NOTHING = "nothing"
    PASS = "pass"            # retried after the delay: passed (and the client trusted)
    TOUCH = "touch"          # passed before: keep it alive


@dataclass(frozen=True)
class Outcome:
    action: Action
    step: Step
    reason: str              # for the log and the reply; never an address
    retry_in: float = 0.0    # seconds until a retry can pass (DEFER only)


def decide(current: Optional[TripletState], now: datetime,
           policy: GreylistPolicy) -> Outcome:
    """The decision for one triplet given its stored state (None: never seen)."""
    delay = policy.delay.total_seconds()
    if current is None:
        return Outcome(Action.DEFER, Step.INSERT, "new triplet", delay)
    if current.passed:
        if now - current.last_seen > policy.expire:
            return Outcome(Action.DEFER, Step.RESTART, "expired triplet", delay)
        step = Step.TOUCH if now - current.last_seen >= REFRESH_AFTER else Step.NOTHING
        return Outcome(Action.ACCEPT, step, "known triplet")
    waited = now - current.first_seen
    if waited > policy.retry_window:
        return Outcome(Action.DEFER, Step.RESTART, "triplet retried too late", delay)
    if waited < policy.delay:
        return Outcome(Action.DEFER, Step.NOTHING, "retried too early",
                       (policy.delay - waited).total_seconds())
    return Outcome(Action.ACCEPT, Step.PASS, "retried after the delay")


def trusted_client(current: Optional[TripletState], now: datetime,
                   policy: GreylistPolicy) -> bool:
    """A client network one of whose triplets passed, and which is not silent since."""
    return current is not None and current.passed and now - current.last_seen <= policy.expire


# --- the edge: state in the database ---------------------------------------------------------

def peek(conn: Connection, triplet: bytes, client: bytes, now: datetime,
         policy: GreylistPolicy) -> Optional[Outcome]:
    """The decision when it needs no write (a known sender, an early retry), from a reader
    job: most RCPTs never queue for the single writer.  None: ``check`` must decide."""
    known_client = state.get(conn, client)
    if trusted_client(known_client, now, policy):
        assert known_client is not None
        if now - known_client.last_seen < REFRESH_AFTER:
            return Outcome(Action.ACCEPT, Step.NOTHING, "known client")
        return None
    outcome = decide(state.get(conn, triplet), now, policy)
    return outcome if outcome.step is Step.NOTHING else None


def check(conn: Connection, triplet: bytes, client: bytes, now: datetime,
          policy: GreylistPolicy) -> Outcome:
    """One RCPT's decision and the state change that goes with it, in one transaction."""
    known_client = state.get(conn, client)
    if trusted_client(known_client, now, policy):
        assert known_client is not None
        if now - known_client.last_seen >= REFRESH_AFTER:
            state.touch(conn, client, now)
        return Outcome(Action.ACCEPT, Step.NOTHING, "known client")
    outcome = decide(state.get(conn, triplet, lock=True), now, policy)
    if outcome.step is Step.INSERT:
        state.insert_new(conn, triplet, now)  # lost a race: the other session's row stands
    elif outcome.step is Step.RESTART:
        state.restart(conn, triplet, now)
    elif outcome.step is Step.PASS:
        state.mark_passed(conn, triplet, now)
        state.upsert_passed(conn, client, now)
    elif outcome.step is Step.TOUCH:
        state.touch(conn, triplet, now)
    return outcome


def purge(conn: Connection, now: datetime, policy: GreylistPolicy) -> int:
    """Forget triplets never retried within the window and passed ones unused too long."""
    return state.purge(conn, unpassed_before=now - policy.retry_window,
                       passed_before=now - policy.expire)


class Greylist:
    """The inbound listener's greylist: keys, policy, clock and the database.

    ``clock`` is a public attribute so a test can swap in a ``task.Clock`` after the server
    is built; it is only asked for ``seconds()``.
    """

    def __init__(self, runner: DatabaseRunner, keyring: KeyRing, policy: GreylistPolicy,
                 clock: IReactorTime) -> None:
        self._runner = runner
        self._key = keyring.derive(KEY_PURPOSE, KEY_OWNER)
        self.policy = policy
        self.clock = clock

    def exemption(self, listener: str, authenticated: Optional[str], peer_ip: str
                  ) -> Optional[str]:
        return exemption(listener, authenticated, peer_ip, self.policy)

    def check(self, peer_ip: str, sender: str, recipient: str) -> "Deferred[Outcome]":
        """Decide one RCPT of a session that ``exemption`` did not exempt."""
        return Deferred.fromCoroutine(self._check(peer_ip, sender, recipient))

    async def _check(self, peer_ip: str, sender: str, recipient: str) -> Outcome:
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        triplet = triplet_key(self._key, peer_ip, sender, recipient)
        client = client_key(self._key, peer_ip)
        outcome: Optional[Outcome] = await self._runner.read(peek, triplet, client, now,
                                                             self.policy)
        if outcome is None:
            outcome = await self._runner.write(check, triplet, client, now, self.policy)
        assert outcome is not None
        return outcome
