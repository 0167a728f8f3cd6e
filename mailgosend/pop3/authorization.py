"""AUTHORIZATION state commands: CAPA, STLS, USER, PASS and AUTH (RFC 1939 §4, §7;
RFC 2449 §5; RFC 2595 §4; RFC 5034).

Every login goes through the shared Portal with ``ClientCredentials(service="pop3")`` so the
brute-force counters and bans apply (DESIGN §5).  Replies follow RFC 3206: wrong credentials
and policy refusals get ``[AUTH]`` (the client may ask the user for a new password), bans and
server trouble get ``[SYS/TEMP]`` (it must not).  USER, PASS and AUTH are refused before TLS,
so a password never crosses the network in clear; CAPA then omits USER and SASL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailgosend.auth.checker import LoginBanned, refusal_text
from mailgosend.auth.credentials import ClientCredentials, as_text
from mailgosend.pop3.maildrop import IPOP3Maildrop, Maildrop
from mailgosend.pop3.replies import (AUTH, SYS_PERM, SYS_TEMP, BadArguments, POP3Refusal, Reply,
                                     ok)
from mailgosend.pop3.sasl import CANCEL, MECHANISMS, plain_credentials

if TYPE_CHECKING:
    from mailgosend.pop3.protocol import POP3Server

log = Logger()

# Capabilities (RFC 2449 §6) offered in every state; USER, SASL and STLS depend on the session.
# No IMPLEMENTATION (it would only tell attackers the version), EXPIRE or LOGIN-DELAY.
BASE_CAPABILITIES = ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING")


class AuthorizationCommands:
    """The handlers, and what a login in progress remembers, for one session."""

    def __init__(self, session: POP3Server) -> None:
        self.session = session
        self._user: Optional[str] = None  # the USER argument waiting for PASS
        self._auth_failures = 0
        self.sasl_pending = False  # "+ " was sent: the next line is the client's response

    def capabilities(self) -> list[str]:
        """RFC 2449 §5: what works on this connection now.  USER/SASL are announced in both
        states when they work, as §5 requires; STLS only where it is accepted (RFC 2595 §4)."""
        caps = list(BASE_CAPABILITIES)
        if self.session.login_permitted:
            caps += ["USER", "SASL " + " ".join(MECHANISMS)]
        if self.session.maildrop is None and self.session.can_start_tls:  # AUTHORIZATION
            caps.append("STLS")
        return caps

    def cmd_CAPA(self, arguments: bytes) -> None:
        if arguments.strip():
            raise BadArguments("CAPA")
        self.session.send_lines(ok("Capability list follows"), self.capabilities())

    def cmd_STLS(self, arguments: bytes) -> None:
        if arguments.strip():
            raise BadArguments("STLS")
        if self.session.tls_active:
            raise POP3Refusal("Already using TLS")
        if not self.session.can_start_tls:
            raise POP3Refusal("TLS is not available on this port")
        self.session.send(ok("Begin TLS negotiation"))
        self.session.start_tls()

    def _require_login_permitted(self) -> None:
        if self.session.login_permitted:
            return
        if self.session.can_start_tls:
            raise POP3Refusal("Plaintext authentication disallowed on non-secure connections; "
                              "use STLS first", AUTH)
        raise POP3Refusal("Logins need TLS, which is not available on this port", SYS_PERM)

    def forget_user(self) -> None:
        self._user = None
        self.sasl_pending = False

    def cmd_USER(self, arguments: bytes) -> Reply:
        self._require_login_permitted()
        name = as_text(arguments).strip()
        if not name:
            raise BadArguments("USER name")
        self._user = name
        return ok("Send PASS")

    def cmd_PASS(self, arguments: bytes) -> Deferred[Optional[Reply]]:
        self._require_login_permitted()
        user, self._user = self._user, None
        if user is None:
            raise POP3Refusal("USER first")
        if not arguments:
            raise BadArguments("PASS password")
        # The rest of the line verbatim: passwords may contain spaces (RFC 1939 §7).
        return self._login(user, as_text(arguments))

    def cmd_AUTH(self, arguments: bytes) -> Optional[Deferred[Optional[Reply]]]:
        mechanism, _, initial = as_text(arguments).strip().partition(" ")
        if not mechanism:
            # Not in RFC 5034, but Outlook asks this way (Dovecot answers it too).
            self._require_login_permitted()
            self.session.send_lines(ok("Mechanisms follow"), list(MECHANISMS))
            return None
        if mechanism.upper() not in MECHANISMS:
            raise POP3Refusal("Unsupported authentication mechanism")
        self._require_login_permitted()
        self._user = None
        if initial:  # RFC 5034 §4 initial response
            return self._plain(initial.encode("ascii", "replace"))
        self.sasl_pending = True
        self.session.send_raw(b"+ \r\n")  # RFC 5034 §4: an empty challenge
        return None

    def sasl_response(self, line: bytes) -> Deferred[Optional[Reply]]:
        self.sasl_pending = False
        if line.strip() == CANCEL:
            raise POP3Refusal("Authentication cancelled")  # RFC 5034 §4
        return self._plain(line.strip())

    def cancel_sasl(self) -> None:
        self.sasl_pending = False

    def _plain(self, response: bytes) -> Deferred[Optional[Reply]]:
        credentials = plain_credentials(response)
        if credentials.acts_for_another:
            raise POP3Refusal("Logging in as another user is not supported", AUTH)
        return self._login(credentials.authcid, credentials.password)

    def _login(self, username: str, password: str) -> Deferred[Optional[Reply]]:
        credentials = ClientCredentials(username, password, self.session.peer_ip, "pop3")
        d = self.session.factory.portal.login(credentials, None, IPOP3Maildrop)
        return d.addCallbacks(self._logged_in, self._login_failed)

    def _logged_in(self, result: tuple[Any, Maildrop, Any]) -> Reply:
        _, maildrop, logout = result
        if self.session.ended:
            logout()
            return ok()
        self.session.logged_in(maildrop, logout)
        count, octets = maildrop.stat()
        return ok(f"Logged in, {count} messages ({octets} octets)")

    def _login_failed(self, failure: Failure) -> Reply:
        if failure.check(LoginBanned):
            raise POP3Refusal("Too many failed logins; try again later", SYS_TEMP, close=True)
        if failure.check(UnauthorizedLogin):
            self._auth_failures += 1
            log.info("pop3 {sid} login failed from {ip}", sid=self.session.session_id,
                     ip=self.session.peer_ip)
            raise POP3Refusal(refusal_text(failure.value, "Authentication failed"), AUTH,
                              close=self._auth_failures >= self.session.limits.max_auth_failures)
        failure.raiseException()
        raise AssertionError("unreachable")
