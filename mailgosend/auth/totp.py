# -*- test-case-name: tests.test_auth_totp -*-
"""TOTP second factor (RFC 6238) and recovery codes: pure functions, tested with tables.

Implementation notes:

1. A code is checked against the time steps ``T - 1 .. T + 1`` (RFC 6238 §5.2 recommends at
   most one step of network delay either way) and is accepted only if its step is newer than
   the last step accepted for the user: pyotp's ``verify()`` remembers nothing, so the caller
   stores that step (store/mfa.py) and a code, once used, cannot be replayed in its window
   (RFC 6238 §5.2: "the verifier MUST NOT accept the second attempt of the same OTP").
2. The secret is 160 random bits (RFC 4226 §4 R6), base32 as authenticator apps expect; it is
   sealed at rest (DESIGN.md §4) by the caller.
3. Recovery codes are 50 random bits each, shown once, stored as HMAC-SHA256 under a per-user
   key (purpose "recovery"), never in the clear; spaces, dashes and case do not matter.
4. Time is the caller's (an injected clock), never read here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Optional

import pyotp

__all__ = ["DIGITS", "RECOVERY_CODE_COUNT", "STEP_SECONDS", "WINDOW", "code_at",
           "matching_step", "new_recovery_codes", "new_secret", "normalize_recovery_code",
           "provisioning_uri", "qr_svg", "recovery_code_hash", "time_step"]

STEP_SECONDS = 30      # RFC 6238 §5.2 recommended X
DIGITS = 6
WINDOW = 1             # steps accepted either side of the current one
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"   # no 0/o, 1/l/i: read from paper
_RECOVERY_LENGTH = 10


def new_secret() -> str:
    """A fresh shared secret: 160 bits, base32 (32 characters)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI authenticator apps read from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as an SVG QR code made here (no image request leaves the page; segno makes
    plain SVG paths, no inline style, so the page's CSP allows it)."""
    import segno

    return str(segno.make(uri, error="m", micro=False).svg_inline(scale=4, title="TOTP QR code"))


def time_step(now: float) -> int:
    """T of RFC 6238 §4.2 for a Unix time."""
    return int(now) // STEP_SECONDS


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def matching_step(secret: str, code: str, now: float, last_step: Optional[int],
                  window: int = WINDOW) -> Optional[int]:
    """The time step ``code`` belongs to, if it is valid at ``now`` (± ``window`` steps) and
    newer than ``last_step``, the last step accepted for this user; else None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = time_step(now)
    found = None
    for step in range(current - window, current + window + 1):
        # Every candidate is computed and compared, so the time taken says nothing.
        if hmac.compare_digest(code_at(secret, step), code) and found is None:
            found = step
    if found is None or (last_step is not None and found <= last_step):
        return None
    return found


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Fresh recovery codes as shown to the user: ``xxxxx-xxxxx``."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def normalize_recovery_code(text: str) -> Optional[str]:
    """The code without spaces, dashes or case; None if it cannot be a recovery code."""
    code = "".join(text.split()).replace("-", "").lower()
    if len(code) != _RECOVERY_LENGTH or any(c not in _RECOVERY_ALPHABET for c in code):
        return None
    return code


def recovery_code_hash(user_key: bytes, code: str) -> bytes:
    """What is stored for a normalised recovery code (see note 3)."""
    return hmac.new(user_key, code.encode("ascii"), hashlib.sha256).digest()
