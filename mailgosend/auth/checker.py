"""The one credentials checker every protocol uses (DESIGN.md §5).

Order of checks, and why:
1. banned IP → refused before any password work, so a ban really costs the
   attacker nothing and us nothing;
2. the account is looked up; an unknown account still pays one bcrypt so
   the response time does not reveal which addresses exist;
3. a suspended account refuses passwords except from the owner's known
   addresses (see bruteforce.py);
4. a password shaped like an app password (auth/apppasswords.py) on IMAP, POP3,
   submission or DAV is checked against the user's app passwords with its prefix
   (one bcrypt), and accepted only on the protocols it was made for;
5. the account password is checked; once the user has MFA on, it is refused on those
   protocols (MFA_PROTECTS_PROTOCOLS) with a reply telling them to use an app password;
6. bcrypt runs in the worker pool, never on the reactor thread, and only once
   per address and password for a few minutes (cache.py).
Every outcome is recorded (login_attempts, security_events), never the password.

Which refusals count toward bans: a wrong password, an unknown account and a revoked (so
unknown) app password count like any failure.  The right account password refused because
of MFA, and a real app password used on a protocol outside its scope, are recorded as
security events but do not count: they come from the owner's misconfigured client, and
banning the owner's address for them is what users of other servers complain about.  Every
login to an MFA account on those protocols gets the same app-password reply whether the
password was right or wrong, so the reply is no password oracle.
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
from mailgosend.auth.apppasswords import (
    PREFIX_LENGTH,
    normalize_app_password,
    protocol_of_service,
)
from mailgosend.auth.bans import BanCache
from mailgosend.auth.cache import VerifiedLogins
from mailgosend.auth.credentials import IClientCredentials, as_text
from mailgosend.db.runner import DatabaseRunner
from mailgosend.store import accounts, apppasswords
from mailgosend.store.addresses import AddressError, parse_address
from mailgosend.store.security import SecurityStore
from mailgosend.workers import WorkerPool

log = Logger()


class LoginRefused(UnauthorizedLogin):
    """Wrong password, unknown or disabled account: one answer for all of them."""


class AppPasswordRequired(LoginRefused):
    """The account has MFA on: mail protocols take app passwords only.  ``client_text`` is
    the reply's human text (IMAP NO [AUTHENTICATIONFAILED], SMTP 535 5.7.8, POP3 -ERR [AUTH])."""

    client_text = ("This account uses two-factor authentication: sign in with an app "
                   "password (create one in your account settings or ask your administrator)")

    def __init__(self) -> None:
        super().__init__(self.client_text)


class AppPasswordOutOfScope(LoginRefused):
    """A real app password, used on a protocol it was not made for."""

    def __init__(self, protocol: str) -> None:
        self.client_text = (f"This app password is not allowed for {_PROTOCOL_NAMES[protocol]}; "
                            "create one that is")
        super().__init__(self.client_text)


_PROTOCOL_NAMES = {"imap": "IMAP", "pop3": "POP3", "submission": "SMTP", "dav": "DAV",
                   "jmap": "JMAP"}


def refusal_text(failure: UnauthorizedLogin, default: str) -> str:
    """The human text of a refused login's reply: the protocol's own, unless the refusal
    tells the user what to do instead (app passwords)."""
    return getattr(failure, "client_text", None) or default


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


@defer.inlineCallbacks
def ip_ban(security: SecurityStore, bans: BanCache, ip: str) -> Any:
    """When ``ip`` is banned, the end of its ban (the cache first, then the database)."""
    until = bans.banned_until(ip)
    if until is None:
        until = yield security.ip_ban_for(ip)
        if until is not None:
            bans.note(ip, until)
    return until


@defer.inlineCallbacks
def record_failure(security: SecurityStore, bans: BanCache, ip: str, username: str,
                   service: str, reason: str) -> Any:
    """Count a failed login (or a wrong second-factor code); ban the address or suspend
    the account when it is one too many (bruteforce.py)."""
    outcome = yield security.login_failed(ip, username, service, reason)
    if outcome.ip_until is not None:
        bans.note(ip, outcome.ip_until)
        log.warn("banned {ip} until {until} after repeated failed logins", ip=ip,
                 until=outcome.ip_until.isoformat())
    if outcome.account_until is not None:
        log.warn("suspended password logins to {user} until {until} after repeated "
                 "failures", user=username, until=outcome.account_until.isoformat())


@implementer(ICredentialsChecker)
class AccountChecker:
    credentialInterfaces = (IClientCredentials, IUsernamePassword)

    def __init__(self, runner: DatabaseRunner, security: SecurityStore, bans: BanCache,
                 workers: WorkerPool, *, default_domain: str, bcrypt_cost: int,
                 verified: Optional[VerifiedLogins] = None,
                 mfa_protects_protocols: bool = True) -> None:
        self._runner = runner
        self._security = security
        self._bans = bans
        self._workers = workers
        self._default_domain = default_domain
        self._cost = bcrypt_cost
        self._dummy_hash: Optional[str] = None
        self._verified = verified if verified is not None else VerifiedLogins(security.clock)
        self._mfa_protects = mfa_protects_protocols

    @defer.inlineCallbacks
    def requestAvatarId(self, credentials: Any) -> Any:
        ip = getattr(credentials, "client_ip", None) or "unknown"
        service = getattr(credentials, "service", None) or "unknown"
        raw_name = as_text(credentials.username)
        password = as_text(credentials.password)
        username = normalize_login(raw_name, self._default_domain) or raw_name.strip().lower()

        until = yield ip_ban(self._security, self._bans, ip)
        if until is not None:
            yield self._security.refused("login_refused_banned_ip", ip, username, service)
            raise LoginBanned("too many failed logins from this address", until)

        protocol = protocol_of_service(service)
        app_password = normalize_app_password(password) if protocol is not None else None
        facts = None
        if normalize_login(raw_name, self._default_domain) is not None:
            prefix = app_password[:PREFIX_LENGTH] if app_password is not None else None
            facts = yield self._runner.read(apppasswords.login_facts, username, prefix)
        user = facts.user if facts is not None else None
        if user is not None:
            account_until = yield self._security.account_ban_for(user.email, ip)
            if account_until is not None:
                yield self._security.refused("login_refused_account_suspended", ip, username,
                                             service)
                raise LoginBanned("password logins to this account are suspended",
                                  account_until)

        if facts is not None and app_password is not None and protocol is not None:
            matched = yield self._app_password(facts, app_password)
            if matched is not None and not facts.user.can_log_in:
                yield self._failed(ip, username, service, "account disabled")
                raise LoginRefused("authentication failed")
            if matched is not None:
                if protocol not in matched.protocols:
                    yield self._security.refused("login_refused_app_password_scope", ip,
                                                 username, service,
                                                 f"app password {matched.name!r}")
                    raise AppPasswordOutOfScope(protocol)
                self._verified.remember(facts.user.email, matched.password_hash, app_password,
                                        credential=f"app:{matched.id}")
                yield self._runner.write(apppasswords.note_use, matched.id, ip,
                                         self._security.now())
                yield self._security.login_succeeded(ip, facts.user.email, service)
                return facts.user.email

        mfa_blocks = (facts is not None and facts.mfa_enabled and protocol is not None
                      and self._mfa_protects)
        credential = "account+mfa" if facts is not None and facts.mfa_enabled else "account"
        stored = user.password_hash if user is not None else (yield self._dummy())
        if user is not None and self._verified.hit(user.email, stored, password,
                                                   credential=credential):
            ok = True
        else:
            ok = yield self._workers.run(passwords.verify_password, password, stored)
        if user is not None and ok and user.can_log_in:
            self._verified.remember(user.email, stored, password, credential=credential)
            if mfa_blocks:
                yield self._security.refused("login_refused_mfa_password", ip,
                                             username, service)
                raise AppPasswordRequired()
            yield self._security.login_succeeded(ip, user.email, service)
            if passwords.needs_rehash(stored, self._cost):
                yield self._rehash(user.email, password)
            return user.email

        reason = ("unknown account" if user is None else
                  "account disabled" if ok else "wrong password")
        yield self._failed(ip, username, service, reason)
        if mfa_blocks:
            raise AppPasswordRequired()
        raise LoginRefused("authentication failed")

    def _failed(self, ip: str, username: str, service: str, reason: str) -> Any:
        return record_failure(self._security, self._bans, ip, username, service, reason)

    @defer.inlineCallbacks
    def _app_password(self, facts: apppasswords.LoginFacts, app_password: str) -> Any:
        """The app password among ``facts.candidates`` that ``app_password`` is, or None."""
        for candidate in facts.candidates:
            if self._verified.hit(facts.user.email, candidate.password_hash, app_password,
                                  credential=f"app:{candidate.id}"):
                return candidate
            ok = yield self._workers.run(passwords.verify_password, app_password,
                                         candidate.password_hash)
            if ok:
                return candidate
        return None

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
