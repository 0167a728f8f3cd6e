# -*- test-case-name: tests.test_admin -*-
"""Account administration: the rules every front end applies to domains, users and aliases.

The CLI (``mailgosend.cli``) and the admin panel call this module, never ``store.accounts``
directly for a change, so a rule lives once: which checks come before a password is asked
for, creating the domain with the first administrator, the default quota, the password policy
and its bcrypt cost, where postmaster@ mail goes, which inputs are refused and why.

Implementation notes:

1. Functions that touch the database take a SQLAlchemy Connection first, like ``store/``:
   the CLI runs them with ``db.sync.run_sync``, the server with ``DatabaseRunner.read/write``
   (in its database thread).  Each change is one transaction: a refusal writes nothing.
2. Hashing a password is slow (bcrypt, DESIGN.md §5) and is never done inside a
   transaction: :meth:`AccountAdmin.hash_password` is a separate step (the server runs it in
   its worker pool), between :meth:`AccountAdmin.check_new_user` and
   :meth:`AccountAdmin.add_user`, which checks again inside its transaction.
3. Every refusal is an :class:`~mailgosend.store.accounts.AccountError` whose message is a
   sentence for people and whose ``argument`` names the input at fault (``email``,
   ``domain``, ``quota``, ``password``, ``source``, ``destination``), so a form shows it
   beside its field and the CLI prints it as it is.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Optional, Protocol, Sequence

from sqlalchemy.engine import Connection

from mailgosend import passwords
from mailgosend.auth import apppasswords as app_rules
from mailgosend.store import accounts, apppasswords, jmapdata
from mailgosend.store import sessions as session_store
from mailgosend.store import mfa as mfa_store
from mailgosend.store import passkeys as passkey_store
from mailgosend.store.accounts import AccountError, Alias, Domain, User
from mailgosend.store.addresses import (
    AddressError,
    normalize_domain,
    parse_address,
    parse_alias_source,
)

if TYPE_CHECKING:  # events.py loads Twisted, which the CLI does without (tests/test_cli.py)
    from mailgosend.events import Events

__all__ = ["AccountAdmin", "AccountPolicy", "Actor", "AdminExists", "BadInput", "DomainAdded",
           "NewAppPassword", "NotPermitted", "PasswordRefused", "UnknownAppPassword"]

MAX_APP_PASSWORD_NAME = 64
MAX_DISPLAY_NAME = 100


class BadInput(AccountError):
    """An input that is not what it must be (an address, a domain, a size)."""


class PasswordRefused(AccountError):
    """The password policy refused a password; the message says which rule."""


class UnknownAppPassword(AccountError):
    pass


class NotPermitted(AccountError):
    """An administrator acted outside their rights (a domain admin on another domain)."""


class AdminExists(AccountError):
    """The first-administrator setup is over: an administrator exists."""


@dataclass(frozen=True)
class NewAppPassword:
    """An app password made by :meth:`AccountAdmin.make_app_password`: ``password`` is shown
    to the user once (formatted ``xxxx-xxxx-...``) and never stored."""

    name: str
    protocols: tuple[str, ...]
    password: str = field(repr=False)
    password_hash: str = field(repr=False)

    @property
    def prefix(self) -> str:
        return self.password[:app_rules.PREFIX_LENGTH]

    @property
    def shown(self) -> str:
        return app_rules.format_app_password(self.password)


class _Settings(Protocol):
    """A Config, or any mapping of setting names (tests)."""

    def __getitem__(self, key: str) -> Any: ...


@dataclass(frozen=True)
class AccountPolicy:
    """What the rules take from the configuration."""

    default_quota: int = 0                        # DEFAULT_QUOTA, bytes; 0 is unlimited
    bcrypt_cost: int = passwords.DEFAULT_ROUNDS   # BCRYPT_COST

    @classmethod
    def from_config(cls, config: _Settings) -> AccountPolicy:
        return cls(default_quota=config["DEFAULT_QUOTA"], bcrypt_cost=config["BCRYPT_COST"])


@dataclass(frozen=True)
class DomainAdded:
    domain: Domain
    postmaster: str   # where mail for postmaster@ the domain goes, in words (RFC 5321 §4.5.1)


def _address(text: str, argument: str) -> str:
    try:
        return str(parse_address(text))
    except AddressError as exc:
        raise BadInput(str(exc), argument) from None


def _quota(quota: int) -> int:
    if isinstance(quota, bool) or not isinstance(quota, int):
        raise BadInput(f"invalid quota {quota!r}: a number of bytes, 0 for unlimited", "quota")
    if quota < 0:
        raise BadInput("quota must not be negative", "quota")
    return quota


@dataclass(frozen=True)
class Actor:
    """Who acts in the admin panel and what they may manage: a full administrator
    (``full``) manages everything; a domain administrator only ``domains``."""

    user_id: int
    email: str
    full: bool
    domains: frozenset[str] = frozenset()

    def may_manage(self, domain: str) -> bool:
        return self.full or domain.lower() in self.domains

    def require(self, domain: str) -> None:
        """Refuse (403 in the panel) an action on a domain this actor does not manage."""
        if not self.may_manage(domain):
            raise NotPermitted(f"you do not administer the domain {domain}", "domain")


class AccountAdmin:
    """The account rules under one configuration; one per process, shared by front ends."""

    def __init__(self, policy: AccountPolicy, events: Optional["Events"] = None) -> None:
        self.policy = policy
        self.events = events

    # --- JMAP identities follow display names and aliases --------------------------------

    @staticmethod
    def _identities_follow(conn: Connection, emails: Sequence[str], now: Optional[datetime],
                           moved: Optional[set[int]], *, renamed: bool = False) -> None:
        """Advance the JMAP identity state of the local users among ``emails`` whose
        identities the change touched (store/jmapdata.py ``follow_account``: a display
        name renames their identities, an alias removed destroys one, one added creates
        one) and add their ids to ``moved``, for :meth:`announce` after the commit."""
        for email in emails:
            user = accounts.find_user(conn, email)
            if user is not None and jmapdata.follow_account(conn, user.id, user.email, now,
                                                            renamed=renamed):
                if moved is not None:
                    moved.add(user.id)

    def announce(self, moved: Iterable[int]) -> None:
        """After the commit of a change that moved the identities of the users ``moved``
        (collected by the change's ``moved`` argument): publish ``IdentityChanged`` on the
        change feed, so JMAP push tells their clients (RFC 8620 §7.1).  Without a feed (the
        CLI, another process) the state has moved all the same: clients see it at their next
        Identity/changes."""
        if self.events is not None:
            from mailgosend.events import ChangeBatch, IdentityChanged

            self.events.publish_all(ChangeBatch(user_id, (IdentityChanged(),))
                                    for user_id in sorted(set(moved)))

    # --- domains ---------------------------------------------------------------------

    def add_domain(self, conn: Connection, name: str, now: datetime) -> DomainAdded:
        """Add a mail domain and say where its postmaster@ mail goes (the address RFC 5321
        §4.5.1 requires; without a postmaster user or alias it reaches the first
        administrator)."""
        domain = accounts.add_domain(conn, self._domain(name), now)
        return DomainAdded(domain, accounts.postmaster_route(conn, domain.name))

    def list_domains(self, conn: Connection) -> list[Domain]:
        return accounts.list_domains(conn)

    def get_domain(self, conn: Connection, name: str) -> Domain:
        """A local domain by any spelling (``UnknownDomain`` naming ``domain``)."""
        return accounts.get_domain(conn, self._domain(name))

    def set_domain_enabled(self, conn: Connection, name: str, enabled: bool) -> Domain:
        """A disabled domain receives nothing and its users cannot log in; nothing is lost."""
        return accounts.set_domain_enabled(conn, self._domain(name), enabled)

    def remove_domain(self, conn: Connection, name: str, *,
                      with_users: bool = False) -> Domain:
        """Remove a domain with its aliases and DKIM keys; refused while it has users
        unless ``with_users`` (the admin panel, once :meth:`domain_contents` was shown and
        confirmed): then its users and all their mail go too."""
        return accounts.remove_domain(conn, self._domain(name), with_users=with_users)

    def domain_contents(self, conn: Connection, name: str) -> accounts.DomainContents:
        """What removing the domain would delete: users, aliases, messages, DKIM keys."""
        return accounts.domain_contents(conn, self._domain(name))

    # --- per-domain administrators (seed plan decision 3) ----------------------------

    def add_domain_admin(self, conn: Connection, email: str, domain: str,
                         now: datetime) -> None:
        """Let a user of any domain manage ``domain``'s users and aliases in the panel."""
        accounts.add_domain_admin(conn, _address(email, "email"), self._domain(domain), now)

    def remove_domain_admin(self, conn: Connection, email: str, domain: str) -> None:
        accounts.remove_domain_admin(conn, _address(email, "email"), self._domain(domain))

    def domain_admins(self, conn: Connection, domain: str) -> list[str]:
        return accounts.domain_admins_of(conn, self._domain(domain))

    def serves_domain(self, conn: Connection, name: str) -> Optional[str]:
        """The canonical name of ``name`` if it is a local, enabled domain, else None: the
        public client-setup and MTA-STS answers are given for those only."""
        try:
            domain = accounts.get_domain(conn, name)
        except AccountError:
            return None
        return domain.name if domain.enabled else None

    @staticmethod
    def _domain(name: str) -> str:
        try:
            return normalize_domain(name)
        except AddressError as exc:
            raise BadInput(str(exc), "domain") from None

    # --- users -----------------------------------------------------------------------

    def check_new_user(self, conn: Connection, email: str, *,
                       create_domain: bool = False) -> str:
        """The canonical address of a user about to be added, or the refusal, before anyone
        is asked for a password: the address is free and, unless ``create_domain``, its
        domain is ours.  Read only; :meth:`add_user` checks again in its transaction."""
        address = _address(email, "email")
        accounts.ensure_address_free(conn, address)
        if not create_domain:
            accounts.get_domain(conn, address.rpartition("@")[2], "email")
        return address

    @staticmethod
    def check_password(password: str, email: str) -> None:
        """The password policy (passwords.check_password_strength) for ``email``'s password."""
        problem = passwords.check_password_strength(password, email=email)
        if problem:
            raise PasswordRefused(f"password refused: {problem}", "password")

    def hash_password(self, password: str) -> str:
        """The stored form of an accepted password, at the configured cost.  Slow (about
        0.25 s at cost 12): not in a transaction, not on the reactor thread."""
        return passwords.hash_password(password, self.policy.bcrypt_cost)

    def add_user(self, conn: Connection, email: str, password_hash: str, now: datetime, *,
                 quota: Optional[int] = None, is_admin: bool = False,
                 create_domain: bool = False) -> User:
        """Add a user; ``quota`` None means DEFAULT_QUOTA.  With ``create_domain`` (the first
        administrator: ``mailgosend create-admin``) the address's domain is added too when it
        is not ours yet, in the same transaction."""
        address = _address(email, "email")
        quota_bytes = self.policy.default_quota if quota is None else _quota(quota)
        domain = address.rpartition("@")[2]
        if create_domain and not accounts.is_local_domain(conn, domain):
            accounts.add_domain(conn, domain, now)
        # Refuses, as check_new_user does, a taken address or a domain that is not ours.
        return accounts.add_user(conn, address, password_hash, now, quota_bytes=quota_bytes,
                                 is_admin=is_admin)

    def get_user(self, conn: Connection, email: str) -> User:
        return accounts.get_user(conn, _address(email, "email"))

    def search_users(self, conn: Connection, domains: Optional[Sequence[str]], text: str = "",
                     after: Optional[str] = None, limit: int = 50) -> list[User]:
        """A page of users by address (keyset ``after``), of ``domains`` (None: all)."""
        return accounts.search_users(conn, None if domains is None else
                                     [self._domain(d) for d in domains],
                                     text.strip(), after, limit)

    @staticmethod
    def random_password() -> str:
        """A password an administrator hands over once (the user changes it): 4 groups of
        5 letters and digits, about 103 bits; passes the password policy."""
        alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
        return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))

    def list_users(self, conn: Connection, domain: Optional[str] = None) -> list[User]:
        return accounts.list_users(conn, None if domain is None else self._domain(domain))

    def set_password(self, conn: Connection, email: str, password_hash: str,
                     now: datetime) -> User:
        """Store a new password hash (checked with :meth:`check_password`, made with
        :meth:`hash_password`)."""
        return accounts.set_password(conn, _address(email, "email"), password_hash, now)

    @staticmethod
    def clean_display_name(name: str) -> str:
        """The display name as stored: spaces collapsed, at most MAX_DISPLAY_NAME printable
        characters (it ends up in From: headers, so no control characters); "" for none."""
        clean = " ".join(name.split())
        if len(clean) > MAX_DISPLAY_NAME or not clean.isprintable():
            raise BadInput(f"a display name is at most {MAX_DISPLAY_NAME} printable "
                           "characters", "display_name")
        return clean

    def set_display_name(self, conn: Connection, email: str, name: str,
                         moved: Optional[set[int]] = None) -> str:
        """Set (or with "" clear) the user's display name; returns it as stored.  It is the
        name of their JMAP identities that have none of their own (RFC 8621 §6)."""
        clean = self.clean_display_name(name)
        user = self.get_user(conn, email)
        if clean != accounts.get_display_name(conn, user.id):
            accounts.set_display_name(conn, user.id, clean)
            self._identities_follow(conn, [user.email], None, moved, renamed=True)
        return clean

    def display_name(self, conn: Connection, email: str) -> str:
        return accounts.get_display_name(conn, self.get_user(conn, email).id)

    def has_admin(self, conn: Connection) -> bool:
        return accounts.has_admin(conn)

    def rights(self, conn: Connection, user_id: int) -> Optional[Actor]:
        """What the user may do on the admin port, or None (not an administrator, disabled
        or gone).  Asked at sign-in and on every admin request, so a demotion or a
        disabled account takes effect on the next click."""
        user = accounts.find_user_by_id(conn, user_id)
        if user is None or not user.can_log_in:
            return None
        if user.is_admin:
            return Actor(user.id, user.email, True)
        managed = accounts.domains_administered(conn, user.id)
        if managed:
            return Actor(user.id, user.email, False, frozenset(managed))
        return None

    def aliases_of(self, conn: Connection, email: str) -> list[str]:
        """The aliases that deliver to the user (read-only on the settings page)."""
        return accounts.aliases_to(conn, self.get_user(conn, email).email)

    def change_password(self, conn: Connection, email: str, password_hash: str,
                        now: datetime, *, keep_session: Optional[int] = None) -> User:
        """A user changed their own password: store the new hash and end every other web
        session of theirs (a thief's included), keeping ``keep_session`` (the one that made
        the change).  Verified-login cache entries name the old hash, so they stop
        matching at once (auth/cache.py)."""
        user = self.set_password(conn, email, password_hash, now)
        session_store.end_user_sessions(conn, user.id, keep=keep_session)
        return user

    def add_first_admin(self, conn: Connection, email: str, password_hash: str,
                        now: datetime) -> User:
        """The first administrator, from the admin port's setup page: like ``mailgosend
        create-admin`` (the domain is created when needed), refused once any administrator
        exists, checked in the same transaction so two setups cannot both succeed."""
        if accounts.has_admin(conn):
            raise AdminExists("an administrator already exists", "email")
        return self.add_user(conn, email, password_hash, now, is_admin=True,
                             create_domain=True)

    def set_user_enabled(self, conn: Connection, email: str, enabled: bool) -> User:
        """A disabled user receives nothing and cannot log in; its mail is kept."""
        return accounts.set_user_enabled(conn, _address(email, "email"), enabled)

    def set_user_admin(self, conn: Connection, email: str, is_admin: bool) -> User:
        """Administrators may use the admin panel; the oldest enabled one receives the
        postmaster@ mail of domains without a postmaster user or alias."""
        return accounts.set_user_admin(conn, _address(email, "email"), is_admin)

    def set_quota(self, conn: Connection, email: str, quota: int) -> User:
        """Set the quota in bytes; 0 is unlimited."""
        return accounts.set_quota(conn, _address(email, "email"), _quota(quota))

    def delete_user(self, conn: Connection, email: str) -> User:
        """Delete a user with all of its mail (front ends ask for a confirmation first)."""
        return accounts.delete_user(conn, _address(email, "email"))

    # --- second factor and app passwords (auth/mfa.py, auth/apppasswords.py) ----------

    def reset_mfa(self, conn: Connection, email: str) -> bool:
        """Turn two-factor authentication off for a locked-out user (``mailgosend user
        mfa-reset``): secret, recovery codes and passkeys go; True if any was there.
        Their app passwords stay."""
        user = self.get_user(conn, email)
        totp_was_on = mfa_store.clear(conn, user.id)
        return passkey_store.remove_all(conn, user.id) > 0 or totp_was_on

    def make_app_password(self, name: str, protocols: Sequence[str]) -> NewAppPassword:
        """A new app password for the protocols named, hashed (slow, like
        :meth:`hash_password`: not in a transaction); store it with :meth:`add_app_password`."""
        clean = " ".join(name.split())
        if not clean:
            raise BadInput("an app password needs a name (e.g. the device it is for)", "name")
        if len(clean) > MAX_APP_PASSWORD_NAME or not clean.isprintable():
            raise BadInput(f"app password names are at most {MAX_APP_PASSWORD_NAME} "
                           "printable characters", "name")
        try:
            scope = app_rules.parse_protocols(protocols)
        except ValueError as exc:
            raise BadInput(str(exc), "protocols") from None
        password = app_rules.new_app_password()
        return NewAppPassword(clean, scope, password,
                              passwords.hash_password(password, self.policy.bcrypt_cost))

    def add_app_password(self, conn: Connection, email: str, new: NewAppPassword,
                         now: datetime) -> apppasswords.AppPassword:
        user = self.get_user(conn, email)
        return apppasswords.add(conn, user.id, new.name, new.prefix, new.password_hash,
                                new.protocols, now)

    def list_app_passwords(self, conn: Connection, email: str) -> list[apppasswords.AppPassword]:
        """Name, prefix, protocols, created, last used and from where; never the hash."""
        user = self.get_user(conn, email)
        return apppasswords.list_for_user(conn, user.id)

    def revoke_app_password(self, conn: Connection, email: str, name: str) -> None:
        """Delete one app password: the next login with it fails, cached or not."""
        user = self.get_user(conn, email)
        if not apppasswords.revoke(conn, user.id, " ".join(name.split())):
            raise UnknownAppPassword(f"{user.email} has no app password named {name!r}",
                                     "name")

    # --- aliases ---------------------------------------------------------------------

    def add_alias(self, conn: Connection, source: str, destination: str,
                  now: datetime, moved: Optional[set[int]] = None) -> Alias:
        """``source`` is ``name@domain`` in a local domain, or ``@domain`` for a catch-all;
        ``destination`` is any address, and must exist when it is in a local domain.  A
        user it delivers to gets a JMAP identity for it (``moved``: see :meth:`announce`)."""
        alias = accounts.add_alias(conn, self._alias_source(source),
                                   _address(destination, "destination"), now)
        self._identities_follow(conn, [alias.destination], now, moved)
        return alias

    def list_aliases(self, conn: Connection, domain: Optional[str] = None) -> list[Alias]:
        return accounts.list_aliases(conn, None if domain is None else self._domain(domain))

    def remove_alias(self, conn: Connection, source: str,
                     destination: Optional[str] = None,
                     moved: Optional[set[int]] = None) -> int:
        """Remove one destination of an alias, or all of them; returns how many.  The
        JMAP identity a user had for it is destroyed (``moved``: see :meth:`announce`)."""
        target = None if destination is None else _address(destination, "destination")
        clean = self._alias_source(source)
        targets = [target] if target is not None else accounts.alias_targets(conn, clean)
        removed = accounts.remove_alias(conn, clean, target)
        self._identities_follow(conn, targets, None, moved)
        return removed

    @staticmethod
    def _alias_source(source: str) -> str:
        try:
            return parse_alias_source(source)[0]
        except AddressError as exc:
            raise BadInput(str(exc), "source") from None
