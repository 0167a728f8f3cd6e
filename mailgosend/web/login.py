# -*- test-case-name: tests.test_web_account -*-
"""Sign-in as a small state machine, the same on the web and admin ports:

    anonymous --password (Portal)--> [pending: step] --step passed--> signed in

The password goes through the one Portal (``ClientCredentials(service="web"|"admin")``), so
bans, the brute-force counters, security events and the equal-time answer for unknown
accounts are the checker's (auth/checker.py), shared with SMTP, IMAP and POP3.

Second steps (TOTP, passkeys) plug in as ``SecondStep`` objects given to ``LoginFlow``:
after the password, the first step whose ``required(user)`` is true becomes the session's
``pending_step``; the pages then show that step's form and call its ``verify``; when it
passes, the next required step follows, and after the last the session is signed in.  Each
transition issues a new session token (web/sessions.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import Logger

from mailgosend.auth.checker import LoginBanned
from mailgosend.auth.credentials import ClientCredentials
from mailgosend.auth.portal import IUser
from mailgosend.store.accounts import User

log = Logger()

# One message for every refusal, so the page does not reveal which accounts exist.
SIGN_IN_FAILED = "The email address or password is not correct."
SIGN_IN_BANNED = ("Too many failed sign-ins from your address. Wait a while, then try "
                  "again.")


class SecondStep(Protocol):
    """A step after the password (the ``mfa`` work adds TOTP and passkeys as these)."""

    name: str          # stored in sessions.pending_step (at most 16 characters)
    template: str      # the form shown for this step (templates/account/...)

    def required(self, user: User) -> "defer.Deferred[bool]": ...

    def verify(self, user: User, form: dict[str, str],
               client_ip: str) -> "defer.Deferred[bool]": ...


@dataclass(frozen=True)
class Outcome:
    user: Optional[User]
    next_step: Optional[str]     # None with a user: signed in
    error: str = ""


class LoginFlow:
    def __init__(self, portal: Any, security: Any, kind: str,
                 steps: Sequence[SecondStep] = ()) -> None:
        self._portal = portal
        self._security = security
        self.kind = kind
        self.steps = {step.name: step for step in steps}
        self._order = [step.name for step in steps]
        # The admin port's hook (web/admin_guard.py): user id -> Deferred[Actor or None],
        # AccountAdmin.rights; without it only ``is_admin`` users may sign in there.
        self.admin_rights: Optional[Callable[[int], Any]] = None

    @defer.inlineCallbacks
    def _may_administer(self, user: User) -> Any:
        if self.admin_rights is None:
            return user.is_admin
        actor = yield self.admin_rights(user.id)
        return actor is not None

    @defer.inlineCallbacks
    def password(self, email: str, password: str, client_ip: str) -> Any:
        credentials = ClientCredentials(email, password, client_ip, self.kind)
        try:
            _iface, user, _logout = yield self._portal.login(credentials, None, IUser)
        except LoginBanned:
            return Outcome(None, None, SIGN_IN_BANNED)
        except UnauthorizedLogin:
            return Outcome(None, None, SIGN_IN_FAILED)
        if self.kind == "admin" and not (yield self._may_administer(user)):
            # The password was right, but this port is for administrators only; the same
            # answer as a wrong password, and a security event for the operator.
            yield self._security.refused("login_refused_not_admin", client_ip, user.email,
                                         self.kind)
            return Outcome(None, None, SIGN_IN_FAILED)
        next_step = yield self._next_step(user, after=None)
        return Outcome(user, next_step)

    @defer.inlineCallbacks
    def step(self, user: User, name: str, form: dict[str, str], client_ip: str) -> Any:
        """Verify the pending step ``name``; the outcome names the following one."""
        ok = yield self.steps[name].verify(user, form, client_ip)
        if not ok:
            return Outcome(None, name, "That code is not correct.")
        next_step = yield self._next_step(user, after=name)
        return Outcome(user, next_step)

    @defer.inlineCallbacks
    def _next_step(self, user: User, after: Optional[str]) -> Any:
        start = 0 if after is None else self._order.index(after) + 1
        for name in self._order[start:]:
            needed = yield self.steps[name].required(user)
            if needed:
                return name
        return None
