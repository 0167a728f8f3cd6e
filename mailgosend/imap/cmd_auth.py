"""Commands of the not-authenticated state (RFC 3501 §6.2): STARTTLS, LOGIN, AUTHENTICATE.

Password logins need TLS, or ``allow_plaintext_loopback`` and a loopback peer; otherwise
LOGINDISABLED is advertised and they get NO [PRIVACYREQUIRED] (RFC 5530).  Credentials go to
the shared Portal as ClientCredentials(service="imap"), so the brute-force rules and bans of
every other protocol apply; a banned address gets BYE.  AUTHENTICATE supports PLAIN (RFC 4616)
with an initial response (SASL-IR, RFC 4959) or after a continuation.  Three failed logins on
one connection end it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.cred.error import UnauthorizedLogin
from twisted.logger import Logger

from mailgosend.auth.checker import LoginBanned, refusal_text
from mailgosend.auth.credentials import ClientCredentials
from mailgosend.auth.saslplain import MalformedPlain, NotBase64, decode_plain
from mailgosend.imap.errors import bad, no
from mailgosend.imap.interfaces import IIMAPAccount
from mailgosend.imap.server import Reply
from mailgosend.imap.tokens import Args

__all__ = ["AuthCommands"]

log = Logger()

MAX_AUTH_FAILURES = 3


if TYPE_CHECKING:
    from mailgosend.imap.server import SessionCore

    _Session = SessionCore
else:
    _Session = object


class AuthCommands(_Session):
    """Mixin for the session class (factory.IMAPServerProtocol)."""

    async def cmd_STARTTLS(self, tag: bytes, args: Args) -> Reply:
        args.end()
        if self.secure:
            raise bad("TLS is already active")
        if self.factory.tls is None:
            raise no("TLS is not available")
        self.send_tagged(tag, "OK", "Begin TLS negotiation now")
        self.reader.drop_buffer()  # plaintext sent behind STARTTLS is never executed
        self.transport.startTLS(self.factory.tls)
        self.secure = True
        return Reply(None)

    async def cmd_LOGIN(self, tag: bytes, args: Args) -> Reply:
        username, password = args.astring("user name"), args.astring("password")
        args.end()
        return await self._login(tag, username, password, "LOGIN")

    async def cmd_AUTHENTICATE(self, tag: bytes, args: Args) -> Reply:
        """RFC 3501 §6.2.2 with RFC 4959 SASL-IR; PLAIN only (RFC 4616)."""
        mechanism = args.atom("mechanism").upper()
        initial = args.astring("initial response") if not args.at_end() else None
        args.end()
        if mechanism != "PLAIN":
            raise no("Unsupported authentication mechanism")
        if not self.password_allowed():
            raise no("Authentication needs TLS first", "PRIVACYREQUIRED")
        if initial is None:
            self.send_continuation(b"")
            initial = (await self.next_line()).strip()
        if initial == b"*":
            raise bad("Authentication cancelled")
        try:
            plain = decode_plain(initial)
        except NotBase64:
            raise bad("Invalid base64 in authentication response") from None
        except MalformedPlain:
            raise bad("Malformed PLAIN response") from None
        if plain.acts_for_another:
            raise no("Authorization identity must be empty or the user", "AUTHORIZATIONFAILED")
        return await self._login(tag, plain.authcid.encode(), plain.password.encode(), "PLAIN")

    def _log_login_failed(self, user: str, method: str, why: str) -> None:
        # The name as given (an operator looks for guessed names), cut short; never the password
        log.info("imap {sid} login failed for {user!r} from {ip} ({method}): {why}",
                 sid=self.session_id, user=user[:64], ip=self.peer_ip, method=method, why=why)

    async def _login(self, tag: bytes, username: bytes, password: bytes, method: str) -> Reply:
        user = username.decode("utf-8", "replace")
        if not self.password_allowed():
            self._log_login_failed(user, method, "plaintext without TLS")
            raise no("Plaintext authentication disallowed without TLS", "PRIVACYREQUIRED")
        credentials = ClientCredentials(user, password.decode("utf-8", "replace"),
                                        self.peer_ip, "imap")
        try:
            _, avatar, logout = await self.factory.portal.login(credentials, None, IIMAPAccount)
        except LoginBanned:
            self._log_login_failed(user, method, "banned")
            self.end_reason = "banned after failed logins"
            self.send_tagged(tag, "NO", "Too many failed logins; try later", "UNAVAILABLE")
            self.send_untagged(b"BYE Too many failed logins")
            self.close()
            return Reply(None)
        except UnauthorizedLogin as refused:
            self._auth_failures += 1
            self._log_login_failed(user, method, "authentication failed")
            text = refusal_text(refused, "Authentication failed")
            if self._auth_failures >= MAX_AUTH_FAILURES:
                self.end_reason = "too many failed logins"
                self.send_tagged(tag, "NO", text, "AUTHENTICATIONFAILED")
                self.send_untagged(b"BYE Too many failed logins on this connection")
                self.close()
                return Reply(None)
            raise no(text, "AUTHENTICATIONFAILED") from None
        self.account = avatar.for_access(self.access)
        log.info("imap {sid} login {user} from {ip} ({method}{tls})", sid=self.session_id,
                 user=avatar.user.email, ip=self.peer_ip, method=method,
                 tls=", TLS" if self.secure else "")
        self._onLogout = logout
        self.state = "auth"
        self._unsubscribe = self.factory.events.subscribe(avatar.user.id, self.new_mail)
        return Reply("Logged in", "CAPABILITY " + " ".join(self.capability_names()))

