"""Domains, users and aliases.

Plain functions over a SQLAlchemy Connection, run synchronously by the CLI or
through ``DatabaseRunner.read/write`` (in a thread) by the server.  They keep
the data consistent (one owner per address, aliases to addresses that exist,
no domain removed under its users) and resolve recipients; changes made by
people go through mailgosend.admin, which holds the administration rules.  Each
function that changes data runs inside the caller's transaction and either does
all its work or raises before writing anything; refusals are AccountError with
the argument at fault.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional, Sequence

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from mailgosend.db.schema import aliases, dkim_keys, domain_admins, domains, messages, users
from mailgosend.store.addresses import (
    Address,
    AddressError,
    normalize_domain,
    parse_address,
    parse_alias_source,
)
from mailgosend.store.like import ESCAPE, escape_like

MAX_ALIAS_DEPTH = 10


class AccountError(ValueError):
    """A request that cannot be carried out; the message is for the operator, and
    ``argument`` names the input at fault (``"email"``, ``"domain"``, ``"source"``...), so a
    form can show the message beside its field; empty when no one input is to blame."""

    def __init__(self, message: str, argument: str = "") -> None:
        super().__init__(message)
        self.argument = argument


class UnknownDomain(AccountError):
    pass


class UnknownUser(AccountError):
    pass


class Duplicate(AccountError):
    pass


class InUse(AccountError):
    pass


@dataclass(frozen=True)
class Domain:
    id: int
    name: str
    enabled: bool
    users: int = 0
    aliases: int = 0


@dataclass(frozen=True)
class User:
    id: int
    uuid: str
    email: str
    domain: str
    password_hash: str
    quota_bytes: int
    used_bytes: int
    enabled: bool
    is_admin: bool
    domain_enabled: bool

    @property
    def can_log_in(self) -> bool:
        return self.enabled and self.domain_enabled


@dataclass(frozen=True)
class Alias:
    source: str
    destination: str
    enabled: bool


# --- domains -----------------------------------------------------------------

def get_domain(conn: Connection, name: str, argument: str = "domain") -> Domain:
    """The local domain ``name`` (any spelling), or UnknownDomain blaming ``argument``."""
    domain = normalize_domain(name)
    row = conn.execute(select(domains).where(domains.c.name == domain)).first()
    if row is None:
        raise UnknownDomain(f"unknown domain {domain}: add it first with "
                            f"'mailgosend domain add {domain}'", argument)
    return Domain(row.id, row.name, row.enabled)


def add_domain(conn: Connection, name: str, now: datetime) -> Domain:
    domain = normalize_domain(name)
    if conn.execute(select(domains.c.id).where(domains.c.name == domain)).first():
        raise Duplicate(f"domain {domain} already exists", "domain")
    result = conn.execute(insert(domains).values(name=domain, enabled=True, created_at=now))
    key = result.inserted_primary_key
    assert key is not None
    return Domain(int(key[0]), domain, True)


def list_domains(conn: Connection) -> list[Domain]:
    user_count = (select(func.count()).select_from(users)
                  .where(users.c.domain_id == domains.c.id).scalar_subquery())
    alias_count = (select(func.count()).select_from(aliases)
                   .where(aliases.c.domain_id == domains.c.id).scalar_subquery())
    rows = conn.execute(select(domains, user_count.label("n_users"),
                               alias_count.label("n_aliases")).order_by(domains.c.name))
    return [Domain(r.id, r.name, r.enabled, r.n_users, r.n_aliases) for r in rows]


def is_local_domain(conn: Connection, name: str) -> bool:
    return conn.execute(select(domains.c.id).where(domains.c.name == name)).first() is not None


def set_domain_enabled(conn: Connection, name: str, enabled: bool) -> Domain:
    domain = get_domain(conn, name)
    conn.execute(update(domains).where(domains.c.id == domain.id).values(enabled=enabled))
    return Domain(domain.id, domain.name, enabled)


@dataclass(frozen=True)
class DomainContents:
    """What removing a domain deletes (shown before the admin panel asks to confirm)."""

    domain: Domain
    users: list[str]
    aliases: int
    messages: int
    message_bytes: int
    dkim_keys: int


def domain_contents(conn: Connection, name: str) -> DomainContents:
    domain = get_domain(conn, name)
    emails: list[str] = list(conn.execute(select(users.c.email).where(users.c.domain_id == domain.id)
                               .order_by(users.c.email)).scalars())
    alias_count = conn.execute(select(func.count()).select_from(aliases)
                               .where(aliases.c.domain_id == domain.id)).scalar_one()
    count: Any
    size: Any
    count, size = conn.execute(
        select(func.count(), func.coalesce(func.sum(messages.c.size), 0))
        .select_from(messages.join(users, messages.c.user_id == users.c.id))
        .where(users.c.domain_id == domain.id, messages.c.deleted_at.is_(None))).one()
    keys = conn.execute(select(func.count()).select_from(dkim_keys)
                        .where(dkim_keys.c.domain_id == domain.id)).scalar_one()
    return DomainContents(domain, emails, int(alias_count), int(count), int(size), int(keys))


def remove_domain(conn: Connection, name: str, *, with_users: bool = False) -> Domain:
    """Remove a domain with its aliases (and DKIM keys); while users remain, refuse unless
    ``with_users`` (the admin panel, after showing domain_contents): then the users and
    all their mail go too."""
    domain = get_domain(conn, name)
    count = conn.execute(select(func.count()).select_from(users)
                         .where(users.c.domain_id == domain.id)).scalar_one()
    if count and not with_users:
        raise InUse(f"domain {domain.name} still has {count} user(s); delete them first "
                    f"('mailgosend user list --domain {domain.name}')", "domain")
    if count:
        conn.execute(delete(users).where(users.c.domain_id == domain.id))
    conn.execute(delete(aliases).where(aliases.c.domain_id == domain.id))
    conn.execute(delete(domains).where(domains.c.id == domain.id))
    return domain


# --- users -------------------------------------------------------------------

def _user_query():  # type: ignore[no-untyped-def]
    return select(users, domains.c.name.label("domain_name"),
                  domains.c.enabled.label("domain_enabled")).join(
        domains, users.c.domain_id == domains.c.id)


def _user(row: object) -> User:
    r = row  # a Row with the columns of _user_query
    return User(r.id, r.uuid, r.email, r.domain_name, r.password_hash,  # type: ignore[attr-defined]
                r.quota_bytes, r.used_bytes, r.enabled, r.is_admin,  # type: ignore[attr-defined]
                r.domain_enabled)  # type: ignore[attr-defined]


def add_user(conn: Connection, email: str, password_hash: str, now: datetime, *,
             quota_bytes: int = 0, is_admin: bool = False) -> User:
    address = parse_address(email)
    domain = get_domain(conn, address.domain, "email")
    ensure_address_free(conn, str(address))
    if quota_bytes < 0:
        raise AccountError("quota must not be negative", "quota")
    conn.execute(insert(users).values(
        uuid=secrets.token_hex(16), domain_id=domain.id, local_part=address.local,
        email=str(address), password_hash=password_hash, quota_bytes=quota_bytes,
        used_bytes=0, enabled=True, is_admin=is_admin, password_changed_at=now,
        created_at=now))
    return get_user(conn, str(address))


def ensure_address_free(conn: Connection, email: str, argument: str = "email") -> None:
    """Refuse (Duplicate) an address already taken by a user or an alias (``email`` is
    canonical: from parse_address)."""
    if conn.execute(select(users.c.id).where(users.c.email == email)).first():
        raise Duplicate(f"user {email} already exists", argument)
    if conn.execute(select(aliases.c.id).where(aliases.c.source == email)).first():
        raise Duplicate(f"{email} is already an alias; remove the alias first "
                        f"('mailgosend alias remove {email}')", argument)


def find_user(conn: Connection, email: str) -> Optional[User]:
    try:
        address = parse_address(email)
    except AddressError:
        return None
    row = conn.execute(_user_query().where(users.c.email == str(address))).first()
    return _user(row) if row is not None else None


def find_user_by_id(conn: Connection, user_id: int) -> Optional[User]:
    row = conn.execute(_user_query().where(users.c.id == user_id)).first()
    return _user(row) if row is not None else None


def get_user(conn: Connection, email: str) -> User:
    address = parse_address(email)
    user = find_user(conn, str(address))
    if user is None:
        raise UnknownUser(f"unknown user {address}", "email")
    return user


def list_users(conn: Connection, domain: Optional[str] = None) -> list[User]:
    query = _user_query().order_by(domains.c.name, users.c.local_part)
    if domain is not None:
        query = query.where(domains.c.id == get_domain(conn, domain).id)
    return [_user(row) for row in conn.execute(query)]


def search_users(conn: Connection, domain_names: Optional[Sequence[str]], text: str,
                 after: Optional[str], limit: int) -> list[User]:
    """A page of users ordered by address: of these domains (None: all), whose address
    contains ``text``, after the address ``after`` (the keyset cursor)."""
    query = _user_query().order_by(users.c.email).limit(limit)
    if domain_names is not None:
        query = query.where(domains.c.name.in_(list(domain_names)))
    if text:
        query = query.where(users.c.email.like(f"%{escape_like(text.lower())}%",
                                               escape=ESCAPE))
    if after:
        query = query.where(users.c.email > after)
    return [_user(row) for row in conn.execute(query)]


# --- per-domain administrators (admin panel) ---------------------------------

def domains_administered(conn: Connection, user_id: int) -> list[str]:
    """The domains whose users and aliases ``user_id`` may manage as a domain admin."""
    return list(conn.execute(
        select(domains.c.name).join(domain_admins, domain_admins.c.domain_id == domains.c.id)
        .where(domain_admins.c.user_id == user_id).order_by(domains.c.name)).scalars())


def domain_admins_of(conn: Connection, name: str) -> list[str]:
    domain = get_domain(conn, name)
    return list(conn.execute(
        select(users.c.email).join(domain_admins, domain_admins.c.user_id == users.c.id)
        .where(domain_admins.c.domain_id == domain.id).order_by(users.c.email)).scalars())


def add_domain_admin(conn: Connection, email: str, name: str, now: datetime) -> None:
    user = get_user(conn, email)
    domain = get_domain(conn, name)
    if conn.execute(select(domain_admins.c.user_id).where(
            domain_admins.c.user_id == user.id, domain_admins.c.domain_id == domain.id)).first():
        raise Duplicate(f"{user.email} already administers {domain.name}", "email")
    conn.execute(insert(domain_admins).values(user_id=user.id, domain_id=domain.id,
                                              created_at=now))


def remove_domain_admin(conn: Connection, email: str, name: str) -> None:
    user = get_user(conn, email)
    domain = get_domain(conn, name)
    if not conn.execute(delete(domain_admins).where(
            domain_admins.c.user_id == user.id, domain_admins.c.domain_id == domain.id)).rowcount:
        raise AccountError(f"{user.email} does not administer {domain.name}", "email")


def set_password(conn: Connection, email: str, password_hash: str, now: datetime) -> User:
    user = get_user(conn, email)
    conn.execute(update(users).where(users.c.id == user.id).values(
        password_hash=password_hash, password_changed_at=now))
    return get_user(conn, email)


def get_display_name(conn: Connection, user_id: int) -> str:
    """The user's display name, "" when none is set."""
    name = conn.execute(select(users.c.display_name).where(users.c.id == user_id)).scalar()
    return name or ""


def set_display_name(conn: Connection, user_id: int, name: str) -> None:
    """Store the display name (checked by admin.AccountAdmin); "" clears it."""
    conn.execute(update(users).where(users.c.id == user_id).values(display_name=name or None))


def has_admin(conn: Connection) -> bool:
    """Whether any administrator account exists (enabled or not): the first-administrator
    setup page is offered only while none does."""
    return conn.execute(select(users.c.id).where(users.c.is_admin.is_(True)).limit(1)
                        ).first() is not None


def aliases_to(conn: Connection, email: str) -> list[str]:
    """The enabled alias sources (addresses and ``@domain`` catch-alls) that deliver
    straight to ``email``, sorted."""
    rows = conn.execute(select(aliases.c.source).where(
        aliases.c.destination == email, aliases.c.enabled.is_(True))
        .order_by(aliases.c.source))
    return [r.source for r in rows]


def set_user_enabled(conn: Connection, email: str, enabled: bool) -> User:
    user = get_user(conn, email)
    conn.execute(update(users).where(users.c.id == user.id).values(enabled=enabled))
    return get_user(conn, email)


def set_user_admin(conn: Connection, email: str, is_admin: bool) -> User:
    user = get_user(conn, email)
    conn.execute(update(users).where(users.c.id == user.id).values(is_admin=is_admin))
    return get_user(conn, email)


def set_quota(conn: Connection, email: str, quota_bytes: int) -> User:
    if quota_bytes < 0:
        raise AccountError("quota must not be negative", "quota")
    user = get_user(conn, email)
    conn.execute(update(users).where(users.c.id == user.id).values(quota_bytes=quota_bytes))
    return get_user(conn, email)


def delete_user(conn: Connection, email: str) -> User:
    """Delete a user and, through ON DELETE CASCADE, their mailboxes and messages."""
    user = get_user(conn, email)
    conn.execute(delete(users).where(users.c.id == user.id))
    return user


# --- aliases -----------------------------------------------------------------

def add_alias(conn: Connection, source: str, destination: str, now: datetime) -> Alias:
    """``source`` is ``local@domain`` or ``@domain`` (catch-all for a local domain)."""
    source_text, source_domain = parse_alias_source(source)
    domain = get_domain(conn, source_domain, "source")
    target = parse_address(destination)
    if conn.execute(select(users.c.id).where(users.c.email == source_text)).first():
        raise Duplicate(f"{source_text} is a user; an alias with the same address would "
                        "never be used", "source")
    if str(target) == source_text:
        raise AccountError(f"alias {source_text} cannot point to itself", "destination")
    if is_local_domain(conn, target.domain) and not _local_target_exists(conn, target):
        raise UnknownUser(f"destination {target} is in a local domain but is neither a user "
                          "nor an alias", "destination")
    if conn.execute(select(aliases.c.id).where(aliases.c.source == source_text,
                                               aliases.c.destination == str(target))).first():
        raise Duplicate(f"alias {source_text} -> {target} already exists", "destination")
    conn.execute(insert(aliases).values(domain_id=domain.id, source=source_text,
                                        destination=str(target), enabled=True,
                                        created_at=now))
    return Alias(source_text, str(target), True)


def _local_target_exists(conn: Connection, target: Address) -> bool:
    for candidate in {str(target), f"{target.base_local}@{target.domain}"}:
        if conn.execute(select(users.c.id).where(users.c.email == candidate)).first():
            return True
        if conn.execute(select(aliases.c.id).where(aliases.c.source == candidate)).first():
            return True
    return False


def list_aliases(conn: Connection, domain: Optional[str] = None) -> list[Alias]:
    query = select(aliases).order_by(aliases.c.source, aliases.c.destination)
    if domain is not None:
        query = query.where(aliases.c.domain_id == get_domain(conn, domain).id)
    return [Alias(r.source, r.destination, r.enabled) for r in conn.execute(query)]


def remove_alias(conn: Connection, source: str, destination: Optional[str] = None) -> int:
    """Remove one destination of an alias, or all of them; returns how many."""
    source_text, _ = parse_alias_source(source)
    condition = aliases.c.source == source_text
    if destination is not None:
        condition = condition & (aliases.c.destination == str(parse_address(destination)))
    removed = conn.execute(delete(aliases).where(condition)).rowcount
    if not removed:
        what = f"{source_text} -> {destination}" if destination else source_text
        raise AccountError(f"no alias {what}", "destination" if destination else "source")
    return int(removed)


# --- recipient resolution (SMTP RCPT, RFC 5321 §3.3) ---------------------------

@dataclass(frozen=True)
class Resolution:
    """Where mail for one address goes: local users (emails) and remote addresses."""

    local: tuple[str, ...]
    remote: tuple[str, ...]
    users: tuple[User, ...] = ()        # the local users' records, in ``local`` order
    local_domain: bool = False          # the address itself is in a local domain

    @property
    def deliverable(self) -> bool:
        return bool(self.local or self.remote)


POSTMASTER = "postmaster"


def postmaster_admin(conn: Connection) -> Optional[User]:
    """Who receives postmaster@ mail of a domain without a postmaster user or alias: the
    oldest enabled administrator account (lowest id, normally the one ``create-admin``
    made) whose domain is enabled; None when there is none."""
    row = conn.execute(_user_query().where(
        users.c.is_admin.is_(True), users.c.enabled.is_(True),
        domains.c.enabled.is_(True)).order_by(users.c.id).limit(1)).first()
    return _user(row) if row is not None else None


def postmaster_route(conn: Connection, domain: str) -> str:
    """Where mail for postmaster@``domain`` goes, in words (for ``domain add``)."""
    source = f"{POSTMASTER}@{normalize_domain(domain)}"
    resolution = resolve_recipient(conn, source)
    if not resolution.deliverable:
        return (f"{source} has no destination: add an administrator "
                f"('mailgosend create-admin') or an alias "
                f"('mailgosend alias add {source} you@example.com')")
    if conn.execute(select(users.c.id).where(users.c.email == source)).first() or \
            alias_targets(conn, source):
        how = "its own mailbox or alias"
    else:
        how = "the first administrator, as it has no postmaster alias"
    return f"mail for {source} goes to {', '.join(resolution.local + resolution.remote)} ({how})"


def resolve_recipient(conn: Connection, address: str) -> Resolution:
    """Expand users, ``user+tag`` sub-addresses, aliases and catch-alls.

    An exact user or alias wins over a sub-address, which wins over the
    domain's catch-all.  Alias chains are followed to MAX_ALIAS_DEPTH; loops
    end without delivering twice.  Disabled users, aliases and domains do not
    receive.

    ``postmaster@`` every enabled local domain is always deliverable when the server has an
    administrator (RFC 5321 §4.5.1: it MUST be accepted): to the domain's own postmaster
    user or alias when there is one, else to :func:`postmaster_admin` (never to the
    catch-all, whose owner may be anyone).
    """
    local: list[str] = []
    records: list[User] = []
    remote: list[str] = []
    seen: set[str] = set()
    top_is_local = [False]

    def visit(text: str, depth: int) -> None:
        if text in seen or depth > MAX_ALIAS_DEPTH:
            return
        seen.add(text)
        addr = parse_address(text)
        row = conn.execute(select(domains.c.enabled).where(domains.c.name == addr.domain)).first()
        if row is None:
            remote.append(text)
            return
        if depth == 0:
            top_is_local[0] = True
        if not row.enabled:
            return
        for candidate in _candidates(addr):
            found = conn.execute(_user_query().where(users.c.email == candidate)).first()
            user = _user(found) if found is not None else None
            targets = alias_targets(conn, candidate)
            if user is not None or targets:
                if user is not None and user.enabled and user.email not in local:
                    local.append(user.email)
                    records.append(user)
                for target in targets:
                    visit(target, depth + 1)
                return
        if addr.local == POSTMASTER:
            admin = postmaster_admin(conn)
            if admin is not None and admin.email not in local:
                local.append(admin.email)
                records.append(admin)
            return
        for target in alias_targets(conn, "@" + addr.domain):
            visit(target, depth + 1)

    visit(str(parse_address(address)), 0)
    return Resolution(tuple(local), tuple(remote), tuple(records), top_is_local[0])


def _candidates(addr: Address) -> Sequence[str]:
    exact = str(addr)
    base = f"{addr.base_local}@{addr.domain}"
    return (exact,) if base == exact else (exact, base)


def alias_targets(conn: Connection, source: str) -> list[str]:
    """The destinations an enabled alias ``source`` delivers to."""
    rows = conn.execute(select(aliases.c.destination).where(
        aliases.c.source == source, aliases.c.enabled.is_(True)).order_by(aliases.c.id))
    return [r.destination for r in rows]


def first_not_owned(conn: Connection, user_email: str, addresses: Sequence[str]
                    ) -> Optional[str]:
    """The first of ``addresses`` the user may not send as (``may_send_as``), or None."""
    return next((a for a in addresses if not may_send_as(conn, user_email, a)), None)


def may_send_as(conn: Connection, user_email: str, address: str) -> bool:
    """Whether a logged-in user may use ``address`` as sender (MAIL FROM or From:).

    Their own address, its ``+tag`` sub-addresses, and aliases that deliver to
    them directly.  A catch-all does not count: receiving for ``*@domain`` is
    not a licence to impersonate every address in it.
    """
    try:
        addr = parse_address(address)
    except AddressError:
        return False
    owner = str(parse_address(user_email))
    base = f"{addr.base_local}@{addr.domain}"
    if owner in (str(addr), base):
        return True
    rows = conn.execute(select(aliases.c.id).where(
        aliases.c.source.in_([str(addr), base]), aliases.c.destination == owner,
        aliases.c.enabled.is_(True)))
    return rows.first() is not None
