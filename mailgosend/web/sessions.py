# -*- test-case-name: tests.test_web_sessions -*-
"""Web sessions: cookies, expiry and rotation over store/sessions.py (DESIGN.md §5).

Implementation notes:
1. The cookie carries a 32-byte token from ``secrets``; the database has its SHA-256 only.
2. Cookies: HttpOnly, SameSite=Strict, Secure under HTTPS (or SECURE_COOKIE), and the
   ``__Host-`` prefix under HTTPS (no Domain, Path=/, Secure: a sibling host cannot plant
   one).  Cookies ignore ports, so each port has its own cookie name and each session row
   its ``kind``: a webmail session never opens the admin port.
3. A session lasts SESSION_MAX_AGE from sign-in and ends after SESSION_IDLE_TIMEOUT unused.
4. Every privilege change (password accepted, second step passed) issues a new token, so a
   token planted or seen before it is worthless (no session fixation).
5. Before sign-in a random pre-session cookie binds the sign-in form's CSRF token.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from twisted.internet import defer

from mailgosend.db.runner import DatabaseRunner
from mailgosend.store import sessions as store
from mailgosend.web.request import WebRequest
from mailgosend.web.settings import WebSettings

# last_seen_at is written at most this often per session (the session list's precision).
TOUCH_SECONDS = 60


@dataclass(frozen=True)
class Session:
    id: int
    user_id: int
    email: str
    csrf_secret: bytes
    pending_step: Optional[str]

    @property
    def signed_in(self) -> bool:
        return self.pending_step is None


class SessionManager:
    def __init__(self, runner: DatabaseRunner, settings: WebSettings, clock: Any) -> None:
        self._runner = runner
        self.settings = settings
        self._clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), timezone.utc)

    # --- cookies -------------------------------------------------------------
    def _secure(self, request: WebRequest) -> bool:
        return request.isSecure() or self.settings.secure_cookie

    def cookie_name(self, request: WebRequest, what: str = "session") -> bytes:
        # "__Host-" requires Secure; browsers refuse such a cookie without it.
        prefix = "__Host-" if self._secure(request) else ""
        return f"{prefix}mailgosend-{self.settings.kind}-{what}".encode()

    def _set_cookie(self, request: WebRequest, what: str, value: str, max_age: int) -> None:
        request.addCookie(self.cookie_name(request, what), value.encode(), path=b"/",
                          max_age=str(max_age).encode(), secure=self._secure(request),
                          httpOnly=True, sameSite="strict")

    def _cookie(self, request: WebRequest, what: str) -> Optional[bytes]:
        return request.getCookie(self.cookie_name(request, what))

    def pre_session(self, request: WebRequest) -> bytes:
        """The random value that binds CSRF tokens before sign-in (set when missing)."""
        value = self._cookie(request, "pre")
        if value is None or len(value) != 64:
            value = secrets.token_hex(32).encode()
            self._set_cookie(request, "pre", value.decode(), self.settings.max_age)
        return b"pre:" + value

    # --- sessions ------------------------------------------------------------
    @defer.inlineCallbacks
    def load(self, request: WebRequest) -> Any:
        """The request's live session, or None; cached on the request."""
        if request.web_session_loaded:
            return request.web_session
        request.web_session_loaded = True
        request.web_session = None
        raw = self._cookie(request, "session")
        token = _decode_token(raw)
        if token is None:
            return None
        row = yield self._runner.read(store.find_session, token, self.settings.kind)
        if row is None:
            return None
        now = self.now()
        idle_end = row.last_seen_at + timedelta(seconds=self.settings.idle_timeout)
        if now >= row.expires_at or now >= idle_end:
            yield self._runner.write(store.end_session, row.id)
            return None
        if (now - row.last_seen_at).total_seconds() >= TOUCH_SECONDS \
                or row.ip != request.client_ip:
            yield self._runner.write(store.touch_session, row.id, now, request.client_ip)
        request.web_session = Session(row.id, row.user_id, row.email, row.csrf_secret,
                                      row.pending_step)
        return request.web_session

    @defer.inlineCallbacks
    def start(self, request: WebRequest, user_id: int, email: str,
              pending_step: Optional[str]) -> Any:
        """A privilege change: the password was accepted (``pending_step`` names the step
        still owed, or None), or a pending session passed its step.  Always a new token."""
        token = secrets.token_bytes(32)
        csrf_secret = secrets.token_bytes(32)
        now = self.now()
        current = yield self.load(request)
        if current is not None and current.user_id == user_id and not current.signed_in:
            yield self._runner.write(store.rotate_session, current.id, token=token,
                                     csrf_secret=csrf_secret, pending_step=pending_step,
                                     now=now)
            session_id = current.id
        else:
            if current is not None:
                yield self._runner.write(store.end_session, current.id)
            agent = request.getHeader("user-agent") or ""
            session_id = yield self._runner.write(
                store.create_session, token=token, user_id=user_id, kind=self.settings.kind,
                csrf_secret=csrf_secret, now=now,
                expires_at=now + timedelta(seconds=self.settings.max_age),
                ip=request.client_ip, user_agent=agent, pending_step=pending_step)
        self._set_cookie(request, "session", token.hex(), self.settings.max_age)
        request.web_session = Session(session_id, user_id, email, csrf_secret, pending_step)
        return request.web_session

    @defer.inlineCallbacks
    def end(self, request: WebRequest) -> Any:
        """Sign out: the session is deleted on the server, the cookie emptied."""
        current = yield self.load(request)
        if current is not None:
            yield self._runner.write(store.end_session, current.id)
        self._set_cookie(request, "session", "", 0)
        request.web_session = None

    def list_for(self, session: Session) -> Any:
        return self._runner.read(store.list_user_sessions, session.user_id,
                                 self.settings.kind, self.now())

    def end_other(self, session: Session, session_id: int) -> Any:
        """A user ends one of their own sessions (never someone else's)."""
        return self._runner.write(store.end_session, session_id, session.user_id)

    def csrf_binding(self, request: WebRequest, session: Optional[Session]) -> bytes:
        if session is not None:
            return b"session:" + session.csrf_secret
        return self.pre_session(request)


def _decode_token(raw: Optional[bytes]) -> Optional[bytes]:
    if raw is None or len(raw) != 64:
        return None
    try:
        return bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
