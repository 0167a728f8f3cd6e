"""One twisted.cred Portal for every protocol (DESIGN.md §5).

Each protocol package registers the avatar interface it needs (IMAP's
IAccount, SMTP submission's sender identity, the web's user) with the realm
when service.py wires it; the foundation registers IUser, the plain account
record that the web and admin use.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer
from zope.interface import Interface, implementer

from mailgosend.auth.bans import BanCache
from mailgosend.auth.checker import AccountChecker
from mailgosend.db.runner import DatabaseRunner
from mailgosend.store import accounts
from mailgosend.store.security import SecurityStore
from mailgosend.workers import WorkerPool


class IUser(Interface):
    """Avatar interface whose avatar is the logged-in accounts.User."""


class NoAvatar(Exception):
    """No protocol registered an avatar for the interfaces a login asked for."""


AvatarFactory = Callable[[str], Any]   # avatar id (email) -> avatar or Deferred of one


def _no_logout() -> None:
    return None


def _avatar_tuple(avatar: Any, interface: Any) -> tuple[Any, Any, Any]:
    return interface, avatar, getattr(avatar, "logout", _no_logout)


class MailPortal(Portal):
    """The Portal, plus the realm's registry so protocols can add their avatar interface."""

    def __init__(self, realm: "MailRealm", checkers: Any) -> None:
        super().__init__(realm, checkers)
        self.realm_registry = realm


@implementer(IRealm)
class MailRealm:
    """Dispatches avatar requests to the factory registered for the interface."""

    def __init__(self) -> None:
        self._factories: dict[Any, AvatarFactory] = {}

    def register(self, interface: Any, factory: AvatarFactory) -> None:
        self._factories[interface] = factory

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        email = avatarId.decode() if isinstance(avatarId, bytes) else avatarId
        for interface in interfaces:
            factory = self._factories.get(interface)
            if factory is not None:
                return defer.maybeDeferred(factory, email).addCallback(
                    _avatar_tuple, interface)
        return defer.fail(NoAvatar(
            f"no avatar for {', '.join(getattr(i, '__name__', str(i)) for i in interfaces)}"))


def build_portal(runner: DatabaseRunner, security: SecurityStore, bans: BanCache,
                 workers: WorkerPool, config: Any) -> MailPortal:
    realm = MailRealm()
    realm.register(IUser, lambda email: runner.read(accounts.get_user, email))
    checker = AccountChecker(runner, security, bans, workers,
                             default_domain=config["DEFAULT_DOMAIN"],
                             bcrypt_cost=config["BCRYPT_COST"],
                             mfa_protects_protocols=config["MFA_PROTECTS_PROTOCOLS"])
    return MailPortal(realm, [checker])
