"""In-memory view of the IP bans, so every listener can refuse a banned
address at connect time without a database round trip.

The database is the truth (several nodes share it, DESIGN.md §9): the cache
reloads it every REFRESH_SECONDS and learns this node's new bans at once.

A ban is earned by failed logins, so by default it closes only the listeners that accept a
login (BAN_SCOPE): a banned address still delivers inbound mail on port 25, where nobody
logs in, unless the operator adds "smtp" to the scope.  Logins themselves are refused to
a banned address everywhere (auth/checker.py), whatever the scope.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Optional, Protocol

from twisted.application.service import Service
from twisted.internet import task
from twisted.logger import Logger

from mailgosend.store.security import SecurityStore

log = Logger()

REFRESH_SECONDS = 30.0
PURGE_SECONDS = 3600.0

# The listeners a ban can close at connect time (config key BAN_SCOPE): "smtp" is inbound
# port 25, "submission" both 587 and 465.
BAN_SCOPES = ("smtp", "submission", "imap", "pop3", "web", "dav")
DEFAULT_BAN_SCOPE = ("submission", "imap", "pop3", "web", "dav")


class BanCheck(Protocol):
    """What a listener asks of the bans (a BanCache, or its per-listener ListenerBans)."""

    def is_banned(self, ip: str) -> bool: ...


class ListenerBans:
    """What one listener sees of the bans: ``is_banned`` is False for every address when
    the listener is outside BAN_SCOPE."""

    def __init__(self, cache: "BanCache", service: str) -> None:
        self._cache = cache
        self.service = service

    def is_banned(self, ip: str) -> bool:
        return self._cache.refuses(ip, self.service)


class BanCache(Service):
    def __init__(self, security: SecurityStore, clock: Any,
                 scope: Iterable[str] = DEFAULT_BAN_SCOPE) -> None:
        scope = frozenset(scope)
        unknown = scope - set(BAN_SCOPES)
        if unknown:
            raise ValueError(f"unknown ban scope {', '.join(sorted(unknown))}: use "
                             f"{', '.join(BAN_SCOPES)}")
        self.scope = scope
        self.setName("bans")
        self._security = security
        self._clock = clock
        self._bans: dict[str, datetime] = {}     # as last read from the database
        self._noted: dict[str, datetime] = {}    # decided here; a reload must not lose them
        self._refresh: Optional[task.LoopingCall] = None
        self._purge: Optional[task.LoopingCall] = None

    def startService(self) -> None:
        super().startService()
        self._refresh = task.LoopingCall(self.refresh)
        self._refresh.clock = self._clock
        self._refresh.start(REFRESH_SECONDS, now=True)
        self._purge = task.LoopingCall(self._purge_old)
        self._purge.clock = self._clock
        self._purge.start(PURGE_SECONDS, now=False)

    def stopService(self) -> None:
        super().stopService()
        for loop in (self._refresh, self._purge):
            if loop is not None and loop.running:
                loop.stop()

    def refresh(self) -> Any:
        def loaded(bans: dict[str, datetime]) -> None:
            self._bans = bans

        def failed(failure: Any) -> None:
            log.warn("could not reload IP bans (keeping the old list): {error}",
                     error=failure.getErrorMessage())
        return self._security.active_ip_bans().addCallbacks(loaded, failed)

    def _purge_old(self) -> Any:
        return self._security.purge_old().addErrback(
            lambda f: log.warn("could not purge old login attempts: {error}",
                               error=f.getErrorMessage()))

    def note(self, ip: str, until: datetime) -> None:
        """A ban this node just decided: effective immediately, even if a reload that
        started before it was written finishes after it."""
        self._noted[ip] = max(until, self._noted.get(ip, until))

    def forget(self, ip: str) -> None:
        self._bans.pop(ip, None)
        self._noted.pop(ip, None)

    def banned_until(self, ip: str) -> Optional[datetime]:
        now = datetime.fromtimestamp(self._clock.seconds(), timezone.utc)
        found = [until for until in (self._bans.get(ip), self._noted.get(ip))
                 if until is not None and until > now]
        if not found:
            self._noted.pop(ip, None)
            return None
        return max(found)

    def is_banned(self, ip: str) -> bool:
        return self.banned_until(ip) is not None

    def refuses(self, ip: str, service: str) -> bool:
        """Whether the listener ``service`` (one of BAN_SCOPES) closes on ``ip`` at once."""
        return service in self.scope and self.is_banned(ip)

    def for_service(self, service: str) -> ListenerBans:
        if service not in BAN_SCOPES:
            raise ValueError(f"unknown ban scope {service!r}")
        return ListenerBans(self, service)
