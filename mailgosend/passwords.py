"""Password hashing and strength policy (DESIGN.md §5: bcrypt, cost 12).

Stored format, version 1::

    $bcrypt-sha256$v=1$<bcrypt hash, e.g. $2b$12$<22 salt chars><31 hash chars>>

where the bcrypt input is base64(HMAC-SHA256(key=b"mailgosend-bcrypt-v1", NFC(password) as
UTF-8)). bcrypt reads at most 72 bytes (bcrypt 5 refuses longer input) and plain truncation
would let two passwords sharing a 72-byte prefix match; the pre-hash gives every password a
44-byte input of base64 characters, which also keeps NUL bytes out of bcrypt. Passwords are
normalised to NFC as RFC 8265 §4.2 (OpaqueString) asks, so the same password typed on systems
that compose accents differently still matches.

Plain `$2a$`, `$2b$` and `$2y$` hashes imported from other servers verify too (for passwords of
at most 72 bytes, as they were hashed) and are reported by needs_rehash, so they are upgraded on
the next successful login.

Hashing costs ~0.25 s at cost 12: callers run these functions in the thread pool.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata

import bcrypt

from mailgosend.common_passwords import COMMON_PASSWORDS

DEFAULT_ROUNDS = 12
# NIST SP 800-63B §3.1.1.2: at least 8 characters, no composition rules, refuse known-common
# passwords (the rule, the same for the CLI and the web pages).
MIN_LENGTH = 8
_PREFIX = "$bcrypt-sha256$v=1$"
_PREHASH_KEY = b"mailgosend-bcrypt-v1"
# Modular crypt bcrypt: $2a$/$2b$/$2y$, two-digit cost, 22 salt + 31 hash characters. $2x$ is
# refused: it marks crypt_blowfish hashes made with its 8-bit bug, which the bcrypt package does
# not reproduce, so those accounts need a password reset rather than a silent mismatch.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_MIN_ROUNDS, _MAX_ROUNDS = 4, 31
# Local parts shorter than this are too common as substrings to refuse ("containing" check).
_MIN_LOCAL_PART_MATCH = 3

# Passwords of at least MIN_LENGTH characters from public breach top lists, compared
# case-insensitively: the shipped list (common_passwords.py) and a few variants it lacks.
_COMMON_PASSWORDS = COMMON_PASSWORDS | frozenset(
    {
        "password123", "password1234", "password12", "password1!", "passw0rd123",
        "p@ssw0rd123", "p@ssword123", "passwordpassword", "1234567890", "0987654321",
        "12345678910", "123456789a", "a123456789", "1234567890a", "1234512345",
        "1231231231", "123123123123", "1122334455", "1111122222", "abcdefghij",
        "abc1234567", "abcdef123456", "qwertyuiop", "qwerty1234", "qwerty123456",
        "qwertyqwerty", "qwertyuiop123", "1q2w3e4r5t", "1q2w3e4r5t6y", "q1w2e3r4t5",
        "1qaz2wsx3edc", "qazwsxedcrfv", "123qweasdzxc", "1234qwerasdf", "asdfasdfasdf",
        "asdfghjkl1", "zxcvbnm123", "letmein123", "letmeinnow", "iloveyou12",
        "iloveyou123", "welcome123", "welcome1234", "changeme123", "administrator",
        "adminadmin", "admin12345", "sunshine123", "football123", "baseball123",
        "princess123", "superman123", "starwars123", "monkey12345", "dragon1234",
        "computer123", "whatever123", "trustno1234",
    }
)


def _prehash(password: str) -> bytes:
    normalised = unicodedata.normalize("NFC", password).encode("utf-8")
    digest = hmac.new(_PREHASH_KEY, normalised, hashlib.sha256).digest()
    return base64.b64encode(digest)


def _bcrypt_cost(bcrypt_hash: str) -> int | None:
    match = _BCRYPT_HASH.fullmatch(bcrypt_hash)
    return int(match.group(1)) if match else None


def hash_password(password: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """Hash a password for storage in the version 1 format above; slow on purpose."""
    if not _MIN_ROUNDS <= rounds <= _MAX_ROUNDS:
        raise ValueError(f"bcrypt rounds must be between {_MIN_ROUNDS} and {_MAX_ROUNDS}")
    hashed = bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds))
    return _PREFIX + hashed.decode("ascii")


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`; False, never an exception, for a malformed stored
    value, so a corrupt row refuses the login instead of failing the protocol session.
    bcrypt compares its output in constant time."""
    if not isinstance(stored, str) or not isinstance(password, str):
        return False
    if stored.startswith(_PREFIX):
        bcrypt_hash = stored[len(_PREFIX) :]
        candidate = _prehash(password)
    else:
        bcrypt_hash = stored
        candidate = password.encode("utf-8")
    if _bcrypt_cost(bcrypt_hash) is None:
        return False
    try:
        return bcrypt.checkpw(candidate, bcrypt_hash.encode("ascii"))
    except ValueError:
        # bcrypt 5 refuses input over 72 bytes: such a password cannot match an imported hash.
        return False


def needs_rehash(stored: str, rounds: int = DEFAULT_ROUNDS) -> bool:
    """Whether to re-hash after a successful login: imported plain bcrypt (72-byte limit) and
    hashes cheaper than `rounds` are upgraded. A higher cost is kept, as it is only stronger."""
    if not isinstance(stored, str) or not stored.startswith(_PREFIX):
        return True
    cost = _bcrypt_cost(stored[len(_PREFIX) :])
    return cost is None or cost < rounds


def check_password_strength(password: str, *, email: str = "") -> str | None:
    """None if `password` is acceptable, else the reason shown to the user (CLI and web), as a
    clause the caller embeds: "password refused: <reason>; nothing was changed".

    These rules refuse what guessing attacks try first; they do not pretend to measure entropy.
    """
    if not password:
        return "the password must not be empty"
    if len(password) < MIN_LENGTH:
        return f"the password must be at least {MIN_LENGTH} characters long"
    lowered = password.casefold()
    address = email.strip().casefold()
    if "@" in address and lowered == address:
        return "the password must not be the email address"
    local_part = address.rpartition("@")[0] if "@" in address else address
    if local_part and (
        lowered == local_part
        or (len(local_part) >= _MIN_LOCAL_PART_MATCH and local_part in lowered)
    ):
        return "the password must not contain the mailbox name"
    if len(set(password)) == 1:
        return "the password must not be one repeated character"
    if lowered in _COMMON_PASSWORDS:
        return "the password is one of the most commonly used passwords"
    return None
