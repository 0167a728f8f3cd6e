"""Recently verified logins, so a mail client that opens several connections
(Thunderbird: one per folder) pays bcrypt once, not on every connection.

Dovecot's auth_cache does the same.  Nothing reversible is kept: an entry is
HMAC(process key, address, credential, stored hash, password) → expiry, the key is
random per process, and the stored hash is part of the entry, so a password change
(new hash) invalidates every entry for the old password at once.  ``credential`` names
what was checked: ``account`` or ``account+mfa`` for the account password (so turning MFA
on or off starts afresh), ``app:<id>`` for an app password.  An entry only says "this
password matches this hash"; the checker finds the hash afresh on every login, so a revoked
app password (its row gone) has no hash to match and is refused at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from typing import Any

DEFAULT_TTL_SECONDS = 300.0
DEFAULT_MAX_ENTRIES = 10_000


class VerifiedLogins:
    def __init__(self, clock: Any, ttl: float = DEFAULT_TTL_SECONDS,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._clock = clock
        self._ttl = ttl
        self._max = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, float] = OrderedDict()

    def _digest(self, email: str, credential: str, stored_hash: str, password: str) -> bytes:
        message = b"\0".join(part.encode("utf-8")
                             for part in (email, credential, stored_hash, password))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def hit(self, email: str, stored_hash: str, password: str, *,
            credential: str = "account") -> bool:
        key = self._digest(email, credential, stored_hash, password)
        expires = self._entries.get(key)
        if expires is None:
            return False
        if expires <= self._clock.seconds():
            del self._entries[key]
            return False
        return True

    def remember(self, email: str, stored_hash: str, password: str, *,
                 credential: str = "account") -> None:
        key = self._digest(email, credential, stored_hash, password)
        self._entries[key] = self._clock.seconds() + self._ttl
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
