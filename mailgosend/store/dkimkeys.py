"""DKIM signing keys per domain (RFC 6376; ed25519-sha256 per RFC 8463), stored encrypted.

Plain functions over a SQLAlchemy Connection, like store/accounts.py: the CLI calls them
directly, the server through ``DatabaseRunner.read/write``.

The private key is a PEM document sealed with ``KeyRing.seal`` (purpose "dkim", owner the
domain name, context the selector), so a sealed key copied to another domain's or selector's
row does not open.  RSA keys are PKCS#1 PEM because that is what dkimpy parses; ed25519 keys
are PKCS#8 PEM and handed to dkimpy as the base64 seed it expects.  Neither form is ever
logged or printed: ``SigningKey`` keeps its key out of ``repr``.

Key life cycle (rotation without a window of failing signatures):

- ``generate_key`` on a domain without an active key of that algorithm makes the key active at
  once: a signature whose key is not yet in DNS is treated by verifiers like no signature
  (RFC 6376 §6.1.2 PERMFAIL), so signing early costs nothing.
- ``generate_key`` when an active key of that algorithm exists (rotation) stores the new key
  *pending* (inactive): switching at once would replace passing signatures by failing ones
  until the operator has published the new record.  ``activate_key`` then makes it the signing
  key and retires the previous one of the same algorithm.
- Retired and pending keys stay in the table, and in ``dns_records``, so their records stay
  published while mail signed with a retired key is still in transit; ``remove_key`` deletes a
  key for good (and the operator then removes its DNS record).

Signing uses the newest active key of each algorithm: one RSA and one ed25519 signature at
most (dual signing, RFC 8463 §1).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional, Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from mailgosend.crypto import KeyRing
from mailgosend.db.schema import dkim_keys, domains
from mailgosend.store.accounts import AccountError, Duplicate, get_domain
from mailgosend.store.addresses import AddressError, normalize_domain

__all__ = [
    "ALGORITHMS", "DKIMKey", "DKIMKeyError", "DuplicateSelector", "KeyMaterial", "SigningKey",
    "UnknownKey",
    "activate_key", "active_keys", "dns_records", "generate_key", "list_keys",
    "new_key_material", "remove_key", "validate_selector", "zone_file_record",
]

PURPOSE = "dkim"

# CLI spelling -> (a= tag value of RFC 6376 §3.5 / RFC 8463 §3, k= tag of the DNS record).
ALGORITHMS: dict[str, tuple[str, str]] = {
    "rsa2048": ("rsa-sha256", "rsa"),
    "ed25519": ("ed25519-sha256", "ed25519"),
}
_KEY_TYPE = {signing: k for signing, k in ALGORITHMS.values()}
RSA_BITS = 2048   # RFC 8301 §3.2: at least 1024, SHOULD 2048

# RFC 6376 §3.1: selector = sub-domain, i.e. dot-separated LDH labels.  The column holds 63.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
MAX_SELECTOR = 63
# Zone-file character-strings are at most 255 bytes each (RFC 1035 §3.3).
_CHARSTRING = 255


class DKIMKeyError(AccountError):
    """A DKIM key request that cannot be carried out; ``argument`` names the bad input."""


class UnknownKey(DKIMKeyError):
    pass


class DuplicateSelector(DKIMKeyError, Duplicate):
    pass


@dataclass(frozen=True)
class DKIMKey:
    """A stored key without its private half: what ``list`` and ``dns`` show."""

    id: int
    domain: str
    selector: str
    algorithm: str          # rsa-sha256 | ed25519-sha256
    public_key: str         # base64, the p= tag
    active: bool
    created_at: datetime

    @property
    def key_type(self) -> str:
        """The k= tag of the DNS record: ``rsa`` or ``ed25519``."""
        return _KEY_TYPE[self.algorithm]

    @property
    def record_name(self) -> str:
        """Where verifiers look the key up (RFC 6376 §3.6.2.1), without the final dot."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def txt_value(self) -> str:
        """The key record (RFC 6376 §3.6.1; k=ed25519 per RFC 8463 §4.2)."""
        return f"v=DKIM1; k={self.key_type}; p={self.public_key}"


@dataclass(frozen=True)
class SigningKey:
    """A decrypted key ready for dkimpy; ``repr`` never shows the private key."""

    domain: str
    selector: str
    algorithm: str                              # rsa-sha256 | ed25519-sha256
    private_key: bytes = field(repr=False)      # rsa: PKCS#1 PEM; ed25519: base64 32-byte seed


@dataclass(frozen=True)
class KeyMaterial:
    """A freshly generated key pair; built apart from the DB so the server can make it in a
    worker thread rather than hold the single SQLite writer during RSA key generation."""

    algorithm: str
    private_pem: bytes = field(repr=False)
    public_key: str


def new_key_material(algo: str) -> KeyMaterial:
    """Generate a key pair for ``algo`` (``rsa2048`` or ``ed25519``); CPU-bound for RSA."""
    if algo not in ALGORITHMS:
        raise DKIMKeyError(f"unknown algo {algo!r}: choose one of {', '.join(ALGORITHMS)}",
                           "algo")
    signing_algorithm = ALGORITHMS[algo][0]
    if algo == "ed25519":
        ed_key = ed25519.Ed25519PrivateKey.generate()
        pem = ed_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
        # RFC 8463 §4.2: p= is the bare 32-byte public key, not an SPKI structure.
        public = ed_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
    else:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        pem = rsa_key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        # RFC 6376 §3.6.1: p= is base64 DER SubjectPublicKeyInfo for k=rsa.
        public = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyMaterial(signing_algorithm, pem, base64.b64encode(public).decode("ascii"))


def validate_selector(selector: str) -> str:
    """The selector in lower case, or ``DKIMKeyError`` naming the argument.

    RFC 6376 §3.1 allows a dotted sub-domain; each label is letters, digits and hyphens.
    """
    text = selector.strip().lower()
    if not text or len(text) > MAX_SELECTOR or not all(
            _LABEL.fullmatch(label) for label in text.split(".")):
        raise DKIMKeyError(
            f"invalid selector {selector!r}: use DNS labels of letters, digits and hyphens "
            f"(no leading or trailing hyphen), dot-separated, at most {MAX_SELECTOR} "
            "characters, e.g. mg202601", "selector")
    return text


def _domain(conn: Connection, name: str) -> tuple[int, str]:
    domain = get_domain(conn, name)
    return domain.id, domain.name


def _default_selector(conn: Connection, domain_id: int, algo: str, now: datetime) -> str:
    # mg<yyyymm> (rsa) / mg<yyyymm>e (ed25519); a second rotation in one month adds -2, -3...
    base = f"mg{now:%Y%m}" + ("e" if algo == "ed25519" else "")
    taken = {row.selector for row in conn.execute(
        select(dkim_keys.c.selector).where(dkim_keys.c.domain_id == domain_id))}
    selector, n = base, 1
    while selector in taken:
        n += 1
        selector = f"{base}-{n}"
    return selector


def _context(selector: str) -> bytes:
    return selector.encode("ascii")


def generate_key(conn: Connection, keyring: KeyRing, domain: str, algo: str = "rsa2048",
                 selector: Optional[str] = None, *, now: datetime,
                 material: Optional[KeyMaterial] = None) -> DKIMKey:
    """Create and store a key for a local domain; see the module docstring for when it is
    active at once and when it waits (pending) for ``activate_key``.

    ``material`` lets a server caller generate the key pair in a worker thread first.
    """
    if algo not in ALGORITHMS:
        raise DKIMKeyError(f"unknown algo {algo!r}: choose one of {', '.join(ALGORITHMS)}",
                           "algo")
    chosen = validate_selector(selector) if selector is not None else None
    domain_id, name = _domain(conn, domain)
    if chosen is None:
        chosen = _default_selector(conn, domain_id, algo, now)
    elif conn.execute(select(dkim_keys.c.id).where(
            dkim_keys.c.domain_id == domain_id, dkim_keys.c.selector == chosen)).first():
        raise DuplicateSelector(f"selector {chosen} already exists for {name}; choose another "
                                "or remove it first", "selector")
    if material is None:
        material = new_key_material(algo)
    elif material.algorithm != ALGORITHMS[algo][0]:
        raise DKIMKeyError(f"key material is {material.algorithm}, not {algo}", "algo")
    has_active = conn.execute(select(dkim_keys.c.id).where(
        dkim_keys.c.domain_id == domain_id, dkim_keys.c.algorithm == material.algorithm,
        dkim_keys.c.active.is_(True))).first() is not None
    sealed = keyring.seal(material.private_pem, purpose=PURPOSE, owner=name,
                          context=_context(chosen))
    result = conn.execute(insert(dkim_keys).values(
        domain_id=domain_id, selector=chosen, algorithm=material.algorithm,
        private_key=sealed, public_key=material.public_key, active=not has_active,
        created_at=now))
    key_id = result.inserted_primary_key
    assert key_id is not None
    return DKIMKey(int(key_id[0]), name, chosen, material.algorithm, material.public_key,
                   not has_active, now)


def _key_query():  # type: ignore[no-untyped-def]
    return select(dkim_keys, domains.c.name.label("domain_name")).join(
        domains, dkim_keys.c.domain_id == domains.c.id)


def _key(row: object) -> DKIMKey:
    r = row  # a Row of _key_query
    return DKIMKey(r.id, r.domain_name, r.selector, r.algorithm,  # type: ignore[attr-defined]
                   r.public_key, bool(r.active), r.created_at)  # type: ignore[attr-defined]


def list_keys(conn: Connection, domain: Optional[str] = None) -> list[DKIMKey]:
    """Keys of one domain, or of all domains, by domain then age (oldest first)."""
    query = _key_query().order_by(domains.c.name, dkim_keys.c.created_at, dkim_keys.c.id)
    if domain is not None:
        query = query.where(dkim_keys.c.domain_id == _domain(conn, domain)[0])
    return [_key(row) for row in conn.execute(query)]


def _signing_key(keyring: KeyRing, domain: str, selector: str, algorithm: str,
                 sealed: bytes) -> SigningKey:
    pem = keyring.open(bytes(sealed), purpose=PURPOSE, owner=domain, context=_context(selector))
    if algorithm == "ed25519-sha256":
        loaded = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(loaded, ed25519.Ed25519PrivateKey)
        seed = loaded.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
        return SigningKey(domain, selector, algorithm, base64.b64encode(seed))
    return SigningKey(domain, selector, algorithm, pem)


def active_keys(conn: Connection, keyring: KeyRing, domain: str) -> list[SigningKey]:
    """The decrypted signing keys of a domain: the newest active key of each algorithm,
    RSA first.  Empty for a domain that is not local or has no key (no error: the caller
    simply does not sign).  ``DecryptionError`` if a key does not open."""
    try:
        name = normalize_domain(domain)
    except AddressError:
        return []
    rows = conn.execute(
        _key_query().where(domains.c.name == name, dkim_keys.c.active.is_(True))
        .order_by(dkim_keys.c.created_at.desc(), dkim_keys.c.id.desc())).all()
    newest: dict[str, Any] = {}
    for row in rows:
        newest.setdefault(row.algorithm, row)
    return [_signing_key(keyring, r.domain_name, r.selector, r.algorithm, r.private_key)
            for algorithm in ("rsa-sha256", "ed25519-sha256")
            if (r := newest.get(algorithm)) is not None]


def signing_domains(conn: Connection) -> frozenset[str]:
    """Domains with at least one active key: mail from any other domain is not signed, so
    the queue worker need not even parse its From field."""
    return frozenset(conn.execute(select(domains.c.name).join(
        dkim_keys, dkim_keys.c.domain_id == domains.c.id)
        .where(dkim_keys.c.active.is_(True)).distinct()).scalars())


def _find(conn: Connection, domain: str, selector: str) -> DKIMKey:
    domain_id, name = _domain(conn, domain)
    chosen = validate_selector(selector)
    row = conn.execute(_key_query().where(dkim_keys.c.domain_id == domain_id,
                                          dkim_keys.c.selector == chosen)).first()
    if row is None:
        raise UnknownKey(f"unknown selector {chosen} for {name} "
                         f"(see 'mailgosend dkim list {name}')", "selector")
    return _key(row)


def activate_key(conn: Connection, domain: str, selector: str) -> tuple[DKIMKey, list[DKIMKey]]:
    """Sign with this key from now on; the other active keys of its algorithm are retired
    (kept inactive, records still published).  Returns the key and the retired ones."""
    key = _find(conn, domain, selector)
    retired = [k for k in list_keys(conn, domain)
               if k.active and k.algorithm == key.algorithm and k.id != key.id]
    if retired:
        conn.execute(update(dkim_keys).where(
            dkim_keys.c.id.in_([k.id for k in retired])).values(active=False))
    conn.execute(update(dkim_keys).where(dkim_keys.c.id == key.id).values(active=True))
    return _replace_active(key, True), [_replace_active(k, False) for k in retired]


def key_state(key: DKIMKey, keys: Sequence[DKIMKey]) -> str:
    """``active``, ``pending`` (newer than its algorithm's active key: waiting for
    activation) or ``retired`` (older: kept so its record can stay published)."""
    if key.active:
        return "active"
    newer_active = [k for k in keys if k.active and k.algorithm == key.algorithm
                    and k.domain == key.domain
                    and (k.created_at, k.id) > (key.created_at, key.id)]
    return "retired" if newer_active else "pending"


def _replace_active(key: DKIMKey, active: bool) -> DKIMKey:
    return DKIMKey(key.id, key.domain, key.selector, key.algorithm, key.public_key, active,
                   key.created_at)


def remove_key(conn: Connection, domain: str, selector: str) -> DKIMKey:
    """Delete a key for good; mail is no longer signed with it."""
    key = _find(conn, domain, selector)
    conn.execute(delete(dkim_keys).where(dkim_keys.c.id == key.id))
    return key


def dns_records(conn: Connection, domain: str) -> list[tuple[str, str]]:
    """``(name, TXT value)`` for every stored key of a domain, active, pending and retired:
    a pending key must be published before it is activated, and a retired one stays
    published while mail it signed is still being verified."""
    return [(key.record_name, key.txt_value) for key in list_keys(conn, domain)]


def _charstrings(text: str) -> list[str]:
    data = text.encode("ascii")
    return [data[i:i + _CHARSTRING].decode("ascii") for i in range(0, len(data), _CHARSTRING)]


def zone_file_record(name: str, txt_value: str) -> str:
    """A BIND zone-file line for a key record, the value cut into character-strings of at most
    255 bytes (RFC 1035 §3.3; RFC 6376 §3.6.2.2 joins them back without spaces).  The tags
    part stays a string of its own and ``p=`` starts a new one, which keeps it readable."""
    head, sep, key = txt_value.partition("p=")
    parts = [head, *_charstrings(sep + key)] if head and sep else _charstrings(txt_value)
    quoted = "\n\t".join(f'"{part}"' for part in parts)
    return f"{name}. IN TXT ( {quoted} )"
