# -*- test-case-name: tests.test_web_csrf -*-
"""CSRF tokens bound to a session by HMAC (SESSION_SECRET), and the Origin check.

Every state-changing request carries ``csrf_token`` (a form field or the ``X-CSRF-Token``
header for JSON) equal to HMAC(SESSION_SECRET, binding), where the binding is the session's
own random CSRF secret, or, before sign-in, the random value of the pre-session cookie.
A token of another session, or from before a sign-in, does not verify.  The ``Origin``
header, when a browser sends one, must be this site's own origin (Fetch standard §3.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Iterable, Optional


def csrf_token(secret: bytes, binding: bytes) -> str:
    mac = hmac.new(secret, b"mailgosend csrf\x00" + binding, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def csrf_valid(secret: bytes, binding: bytes, given: Optional[str]) -> bool:
    if not given:
        return False
    return hmac.compare_digest(csrf_token(secret, binding).encode(),
                               given.encode("utf-8", "replace"))


def origin_allowed(origin: Optional[str], referer: Optional[str],
                   own_origins: Iterable[str]) -> bool:
    """Origin must be ours when present; without it a Referer, when present, must be ours.
    Neither header (a script, not a browser) leaves the decision to the token alone."""
    own = {o.lower() for o in own_origins}
    if origin is not None:
        return origin.strip().lower() in own
    if referer:
        low = referer.strip().lower()
        return any(low == o or low.startswith(o + "/") for o in own)
    return True
