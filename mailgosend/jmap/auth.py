# -*- test-case-name: tests.test_jmap_core_auth -*-
"""Who is calling the JMAP endpoint (RFC 8620 §1.7 leaves the scheme to the server).

- ``Authorization: Basic`` (address and password): through the one Portal as service
  "jmap", so bans, brute-force counters, security events and the verified-login cache of
  auth/checker.py apply, and MFA users must use an app password with the "jmap" scope,
  as on IMAP, POP3 and SMTP.
- ``Authorization: Bearer <app password>``: the same check; the owner is found by the
  password's stored prefix (store/apppasswords.py ``owners_with_prefix``).
- No Authorization header: the web port's session cookie (the webmail page), with the web
  layer's CSRF rule (web/forms.py ``change_allowed``) for every POST, so another site
  cannot make a signed-in browser call the API.

A refusal is ``Unauthorized`` (401 with ``WWW-Authenticate: Basic``) or ``Forbidden``
(403: the CSRF rule).  Every request is checked afresh: a revoked app password or an ended
session stops working at once; bcrypt is paid once per few minutes (auth/cache.py).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Optional

from twisted.cred.error import UnauthorizedLogin

from mailgosend.auth.apppasswords import PREFIX_LENGTH, normalize_app_password
from mailgosend.auth.checker import LoginBanned, refusal_text
from mailgosend.auth.credentials import ClientCredentials
from mailgosend.auth.portal import IUser
from mailgosend.store import apppasswords
from mailgosend.web.forms import change_allowed
from mailgosend.web.request import SAFE_METHODS, WebRequest

__all__ = ["Authenticator", "Caller", "Unauthorized", "Forbidden", "SERVICE", "account_id_of"]

SERVICE = "jmap"


class Unauthorized(Exception):
    """401: no credentials, or wrong ones; ``detail`` is safe to show."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Forbidden(Exception):
    """403: a cookie-authenticated POST without our Origin and CSRF token."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def account_id_of(user: Any) -> str:
    """The JMAP account id of a user (RFC 8620 §1.6.2): stable for the account's life and
    never reused, because users.uuid is random and never reused (a re-created account with
    the same address gets a new id, as its data is new)."""
    return "A" + user.uuid


@dataclass(frozen=True)
class Caller:
    """An authenticated request: the user, their mail, and how they signed in."""

    user: Any          # store.accounts.User
    mail: Any          # mail.UserMail
    account_id: str
    scheme: str        # "cookie", "basic" or "bearer"


class Authenticator:
    def __init__(self, *, portal: Any, sessions: Any, mail: Any, runner: Any) -> None:
        self._portal = portal
        self._sessions = sessions        # web/sessions.py SessionManager of the web port
        self._mail = mail                # mail.MailService
        self._runner = runner

    async def caller(self, request: WebRequest) -> Caller:
        header = (request.getHeader("authorization") or "").strip()
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            username, password = _basic(value.strip())
            email = await self._login(username, password, request.client_ip)
        elif scheme == "bearer":
            email = await self._bearer(value.strip(), request.client_ip)
        elif header:
            raise Unauthorized("use HTTP Basic or Bearer authentication")
        else:
            email = await self._cookie(request)
        mail = await self._mail.open_account(email)
        return Caller(mail.user, mail, account_id_of(mail.user),
                      scheme if header else "cookie")

    async def _cookie(self, request: WebRequest) -> str:
        session = await self._sessions.load(request)
        if session is None or not session.signed_in:
            raise Unauthorized("sign in, or authenticate with an app password")
        if request.method not in SAFE_METHODS and not change_allowed(self._sessions, request,
                                                                     session):
            raise Forbidden("this request did not come from this site's own pages "
                            "(Origin and X-CSRF-Token are checked)")
        return session.email  # type: ignore[no-any-return]

    async def _login(self, username: str, password: str, client_ip: str) -> str:
        credentials = ClientCredentials(username, password, client_ip, SERVICE)
        try:
            _iface, user, _logout = await self._portal.login(credentials, None, IUser)
        except LoginBanned:
            raise Unauthorized("too many failed sign-ins from your address; wait a while")
        except UnauthorizedLogin as exc:
            raise Unauthorized(refusal_text(exc, "the address or password is not correct"))
        return user.email  # type: ignore[no-any-return]

    async def _bearer(self, token: str, client_ip: str) -> str:
        normalized = normalize_app_password(token)
        owners: list[str] = []
        if normalized is not None:
            owners = await self._runner.read(apppasswords.owners_with_prefix,
                                             normalized[:PREFIX_LENGTH])
        # Several owners share a prefix only by chance; with none, one failed login is
        # still recorded (and costs its bcrypt), so tokens cannot be guessed for free.
        refusal: Optional[Unauthorized] = None
        for email in owners or [""]:
            try:
                return await self._login(email, token, client_ip)
            except Unauthorized as exc:
                refusal = exc
        assert refusal is not None
        raise refusal


def _basic(value: str) -> tuple[str, str]:
    """RFC 7617: base64 of "user-id:password", UTF-8 (we announce charset="UTF-8")."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise Unauthorized("the Basic credentials are not base64 of address:password") \
            from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("the Basic credentials are not base64 of address:password")
    return username, password
