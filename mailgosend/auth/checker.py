"""The one credentials checker every protocol uses (DESIGN.md §5).

Order of checks, and why:
1. banned IP → refused before any password work, so a ban really costs the
   attacker nothing and us nothing;
2. the account is looked up; an unknown account still pays one bcrypt so
   the response time does not reveal which addresses exist;
3. a suspended account refuses passwords except from the owner's known
   addresses (see bruteforce.py);
4. bcrypt runs in the worker pool, never on the reactor thread, and only once
   per address and password for a few minutes (cache.py).
Every outcome is recorded (login_attempts, security_events), never the password.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mailgosend import passwords
from mailgosend.auth.bans import BanCache
from mailgosend.auth.cache import VerifiedLogins
from mailgosend.auth.credentials import IClientCredentials, as_text
from mailgosend.db.runner import DatabaseRunner
from mailgosend.store import accounts
from mailgosend.store.addresses import AddressError, parse_address
from mailgosend.store.security import SecurityStore
from mailgosend.workers import WorkerPool

log = Logger()


class LoginRefused(UnauthorizedLogin):
    """Wrong password, unknown or disabled account: one answer for all of them."""


class LoginBanned(UnauthorizedLogin):
    """The client IP (or the account, from this IP) is banned; protocols may close."""

    def __init__(self, message: str, until: Any) -> None:
        super().__init__(message)
        self.until = until


def normalize_login(username: str, default_domain: str) -> Optional[str]:
    """A login name as users type it: full address, or a bare name in DEFAULT_DOMAIN."""
    name = username.strip()
    if "@" not in name:
        name = f"{name}@{default_domain}"
    try:
        return str(parse_address(name))
    except AddressError:
        return None


@implementer(ICredentialsChecker)
class AccountChecker:
    credentialInterfaces = (IClientCredentials, IUsernamePassword)

    def __init__(self, runner: DatabaseRunner, security: SecurityStore, bans: BanCache,
                 workers: WorkerPool, *, default_domain: str, bcrypt_cost: int,
                 verified: Optional[VerifiedLogins] = None) -> None:
        self._runner = runner
        self._security = security
        self._bans = bans
        self._workers = workers
        self._default_domain = default_domain
        self._cost = bcrypt_cost
        self._dummy_hash: Optional[str] = None
        self._verified = verified if verified is not None else VerifiedLogins(security.clock)

    @defer.inlineCallbacks
    def requestAvatarId(self, credentials: Any) -> Any:
        ip = getattr(credentials, "client_ip", None) or "unknown"
        service = getattr(credentials, "service", None) or "unknown"
        raw_name = as_text(credentials.username)
        password = as_text(credentials.password)
        username = normalize_login(raw_name, self._default_domain) or raw_name.strip().lower()

        until = self._bans.banned_until(ip)
        if until is None:
            until = yield self._security.ip_ban_for(ip)
            if until is not None:
                self._bans.note(ip, until)
        if until is not None:
            yield self._security.refused("login_refused_banned_ip", ip, username, service)
            raise LoginBanned("too many failed logins from this address", until)

        user = None
        if normalize_login(raw_name, self._default_domain) is not None:
            user = yield self._runner.read(accounts.find_user, username)
        if user is not None:
            account_until = yield self._security.account_ban_for(user.email, ip)
            if account_until is not None:
                yield self._security.refused("login_refused_account_suspended", ip, username,
                                             service)
                raise LoginBanned("password logins to this account are suspended",
                                  account_until)

        stored = user.password_hash if user is not None else (yield self._dummy())
        if user is not None and self._verified.hit(user.email, stored, password):
            ok = True
        else:
            ok = yield self._workers.run(passwords.verify_password, password, stored)
        if user is not None and ok and user.can_log_in:
            self._verified.remember(user.email, stored, password)
            yield self._security.login_succeeded(ip, user.email, service)
            if passwords.needs_rehash(stored, self._cost):
                yield self._rehash(user.email, password)
            return user.email

        reason = ("unknown account" if user is None else
                  "account disabled" if ok else "wrong password")
        outcome = yield self._security.login_failed(ip, username, service, reason)
        if outcome.ip_until is not None:
            self._bans.note(ip, outcome.ip_until)
            log.warn("banned {ip} until {until} after repeated failed logins", ip=ip,
                     until=outcome.ip_until.isoformat())
        if outcome.account_until is not None:
            log.warn("suspended password logins to {user} until {until} after repeated "
                     "failures", user=username, until=outcome.account_until.isoformat())
        raise LoginRefused("authentication failed")

    @defer.inlineCallbacks
    def _dummy(self) -> Any:
        if self._dummy_hash is None:
            self._dummy_hash = yield self._workers.run(
                passwords.hash_password, "mailgosend timing equaliser", self._cost)
        return self._dummy_hash

    @defer.inlineCallbacks
    def _rehash(self, email: str, password: str) -> Any:
        new_hash = yield self._workers.run(passwords.hash_password, password, self._cost)
        now = self._security.now()
        yield self._runner.write(accounts.set_password, email, new_hash, now)
