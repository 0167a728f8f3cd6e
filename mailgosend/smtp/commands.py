"""SMTP command semantics (RFC 5321 §4.1.1, RFC 3207, RFC 4954) as ``do_<CMD>`` handlers.

A mixin for :class:`mailgosend.smtp.protocol.SMTPServerProtocol`, which owns framing, reply
ordering and I/O. A handler either raises :class:`SMTPReply`, calls ``self.reply``, or hands a
backend Deferred to ``self._wait_for``; exactly one reply per command either way.

Enhanced status codes (RFC 2034) on every reply except those RFC 2034 §3 exempts: the greeting
and the replies to HELO/EHLO; 3xx replies (334, 354) carry none either.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from twisted.logger import Logger
from twisted.python.failure import Failure

from mailgosend.smtp.address import (
    AddressError,
    NonASCIIAddress,
    parse_forward_path,
    parse_reverse_path,
    split_path,
)
from mailgosend.smtp.auth import (
    Challenge,
    Credentials,
    Mechanism,
    SASLError,
    encode_challenge,
    parse_auth_command,
)
from mailgosend.mail.submission import ReleaseRefused, future_release_keyword, release_time
from mailgosend.smtp.params import RcptParams, parse_mail_params, parse_rcpt_params
from mailgosend.smtp.replies import (
    BAD_SEQUENCE_HELO,
    OK,
    UNKNOWN_COMMAND,
    SMTPReply,
    printable,
)
from mailgosend.smtp.session import new_id

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from mailgosend.smtp.factory import SMTPLimits, SMTPServerFactory
    from mailgosend.smtp.interfaces import IMessageSink, ISMTPBackend
    from mailgosend.smtp.session import SMTPSession

log = Logger()

# Commands this server knows, and the handler of each (``ext_`` for extensions, as in Twisted).
COMMANDS = {
    "HELO": "do_HELO",
    "EHLO": "do_EHLO",
    "MAIL": "do_MAIL",
    "RCPT": "do_RCPT",
    "DATA": "do_DATA",
    "RSET": "do_RSET",
    "NOOP": "do_NOOP",
    "QUIT": "do_QUIT",
    "HELP": "do_HELP",
    "VRFY": "do_VRFY",
    "EXPN": "do_EXPN",
    "STARTTLS": "ext_STARTTLS",
    "AUTH": "ext_AUTH",
}

NON_ASCII_SENDER = SMTPReply(553, "5.6.7", "Non-ASCII addresses require SMTPUTF8")
NON_ASCII_RECIPIENT = NON_ASCII_SENDER
BAD_SENDER = SMTPReply(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT = SMTPReply(501, "5.1.3", "Bad recipient address syntax")
ENCRYPTION_REQUIRED = SMTPReply(
    538, "5.7.11", "Encryption required for requested authentication mechanism"
)
AUTH_FAILED = SMTPReply(535, "5.7.8", "Authentication credentials invalid")
AUTH_TEMPFAIL = SMTPReply(454, "4.7.0", "Temporary authentication failure")


def _syntax(usage: str) -> SMTPReply:
    return SMTPReply(501, "5.5.4", f"Syntax: {usage}")


class CommandsMixin:
    """The command handlers; see the module docstring."""

    if TYPE_CHECKING:
        # Provided by SMTPServerProtocol (type declarations only).
        factory: SMTPServerFactory
        limits: SMTPLimits
        backend: ISMTPBackend
        session: SMTPSession | None
        sasl: Mechanism | None
        transport: Any
        canStartTLS: bool

        def reply(self, reply: SMTPReply) -> None: ...
        def _wait_for(self, d: Deferred[Any], handle: Callable[[object], SMTPReply]) -> None: ...
        def _call(self, func: Callable[..., Any], *args: Any) -> Deferred[Any]: ...
        def _failure_reply(self, failure: Failure, what: str) -> SMTPReply: ...
        def _send_and_close(self, reply: SMTPReply) -> None: ...
        def _close(self) -> None: ...
        def start_data(self, sink: IMessageSink) -> None: ...
        def begin_auth(self) -> None: ...
        def end_auth(self) -> None: ...
        def start_tls(self) -> None: ...
        def listExtensions(self) -> bytes: ...

    _auth_failures = 0

    @property
    def _session(self) -> SMTPSession:
        assert self.session is not None
        return self.session

    @property
    def _hostname(self) -> str:
        return self.factory.hostname

    @property
    def _tls_available(self) -> bool:
        return self.factory.tls is not None and self.canStartTLS and not self._session.tls

    @property
    def _auth_available(self) -> bool:
        # Never on port 25 (inbound); on submission/smtps only under TLS (RFC 4954 §4, §14).
        return self._session.listener != "inbound" and self._session.tls

    @property
    def _dsn(self) -> bool:
        # RFC 3461 on submission and smtps only: inbound mail's reports would be ours to
        # send for local delivery, which port 25 does not offer.
        return self._session.listener != "inbound"

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.factory.clock.seconds(), timezone.utc)

    def lookupMethod(self, command: str) -> Callable[[str], None]:
        """Only the commands in :data:`COMMANDS`; never an inherited ``do_*``."""
        name = COMMANDS.get(command.upper()) if command.isascii() else None
        return getattr(self, name) if name else self.do_UNKNOWN

    def extensions(self) -> dict[bytes, list[bytes] | None]:
        """The EHLO keywords (Twisted's format): CHUNKING and VRFY deliberately absent, DSN
        only on submission and smtps."""
        ext: dict[bytes, list[bytes] | None] = {
            b"PIPELINING": None,
            b"SIZE": [str(self.limits.max_message_size).encode("ascii")],
        }
        if self._tls_available:
            ext[b"STARTTLS"] = None
        if self._auth_available:
            ext[b"AUTH"] = [b"PLAIN", b"LOGIN"]
        ext[b"ENHANCEDSTATUSCODES"] = None
        ext[b"8BITMIME"] = None
        ext[b"SMTPUTF8"] = None
        if self._dsn:
            ext[b"DSN"] = None  # RFC 3461: the queue honours NOTIFY/RET/ENVID/ORCPT
        hold = self.factory.future_release_seconds
        if hold > 0:  # RFC 4865 §3: FUTURERELEASE <max-interval> <max-date-time>
            ext[b"FUTURERELEASE"] = future_release_keyword(self._now(), hold).encode().split()
        return ext

    # -- session -----------------------------------------------------------------------------

    def do_UNKNOWN(self, rest: str) -> None:
        self.reply(UNKNOWN_COMMAND)

    def do_HELO(self, rest: str) -> None:
        if not rest:
            raise SMTPReply(501, None, "Syntax: HELO hostname")
        self._greet(rest, esmtp=False)
        self.reply(SMTPReply(250, None, self._hostname))

    def do_EHLO(self, rest: str) -> None:
        if not rest:
            raise SMTPReply(501, None, "Syntax: EHLO hostname")
        self._greet(rest, esmtp=True)
        keywords = self.listExtensions().decode("ascii")
        self.reply(SMTPReply(250, None, f"{self._hostname}\n{keywords}"))

    def _greet(self, name: str, esmtp: bool) -> None:
        # RFC 5321 §4.1.4: HELO/EHLO also resets any transaction. The name is only recorded
        # (for Received), sanitised; checking it against DNS is policy, not protocol.
        session = self._session
        session.reset_transaction()
        session.helo = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")[:255]
        session.esmtp = esmtp

    def do_NOOP(self, rest: str) -> None:
        self.reply(OK)  # RFC 5321 §4.1.1.9: the argument, if any, is ignored

    def do_RSET(self, rest: str) -> None:
        if rest:
            raise _syntax("RSET")
        self._session.reset_transaction()
        self.reply(OK)

    def do_QUIT(self, rest: str) -> None:
        self._send_and_close(SMTPReply(221, "2.0.0", f"{self._hostname} closing connection"))

    def do_HELP(self, rest: str) -> None:
        names = " ".join(sorted(COMMANDS))
        self.reply(SMTPReply(214, "2.0.0", f"Commands: {names}; see RFC 5321"))

    def do_VRFY(self, rest: str) -> None:
        if not rest:
            raise _syntax("VRFY address")
        # RFC 5321 §3.5.3: 252 says "not verified, but RCPT may work" without disclosing users.
        self.reply(SMTPReply(252, "2.0.0", "Cannot VRFY user; try RCPT to attempt delivery"))

    def do_EXPN(self, rest: str) -> None:
        self.reply(SMTPReply(502, "5.5.1", "Error: EXPN not available"))

    # -- STARTTLS (RFC 3207) --------------------------------------------------------------

    def ext_STARTTLS(self, rest: str) -> None:
        session = self._session
        if rest:
            raise _syntax("STARTTLS")
        if session.tls:
            raise SMTPReply(503, "5.5.1", "Error: TLS already active")
        if not self._tls_available:
            raise SMTPReply(502, "5.5.1", "Error: command not implemented")
        if session.helo is None:
            raise BAD_SEQUENCE_HELO
        if session.in_transaction:
            raise SMTPReply(503, "5.5.1", "Error: MAIL transaction in progress")
        self.reply(SMTPReply(220, "2.0.0", "Ready to start TLS"))
        self.start_tls()

    # -- transaction ------------------------------------------------------------------------

    def _check_may_send(self) -> None:
        session = self._session
        if session.helo is None:
            raise BAD_SEQUENCE_HELO  # RFC 5321 §4.1.4: HELO/EHLO first
        if session.listener != "inbound":
            if not session.tls:
                raise SMTPReply(530, "5.7.0", "Must issue a STARTTLS command first")
            if session.authenticated is None:
                raise SMTPReply(530, "5.7.0", "Authentication required")  # RFC 4954 §6

    def do_MAIL(self, rest: str) -> None:
        session = self._session
        self._check_may_send()
        if session.in_transaction:
            raise SMTPReply(503, "5.5.1", "Error: nested MAIL command")
        if rest[:5].upper() != "FROM:":
            raise _syntax("MAIL FROM:<address>")
        try:
            path, param_text = split_path(rest[5:])
        except AddressError:
            raise BAD_SENDER from None
        hold = self.factory.future_release_seconds
        params = parse_mail_params(param_text, self.limits.max_message_size, dsn=self._dsn,
                                   future_release=hold > 0)
        if params.hold:
            try:
                params = replace(params, release_at=release_time(params.hold, self._now(), hold))
            except ReleaseRefused as refused:
                # RFC 4865 §4: a bad value 501 5.5.4, beyond the limits 554 5.3.4
                raise (SMTPReply(554, "5.3.4", refused.detail) if refused.over_limit
                       else SMTPReply(501, "5.5.4", refused.detail)) from None
        try:
            mailbox = parse_reverse_path(path, allow_utf8=params.smtputf8)
        except NonASCIIAddress:
            raise NON_ASCII_SENDER from None
        except AddressError:
            raise BAD_SENDER from None
        address = mailbox.address if mailbox is not None else ""

        def handle(result: object) -> SMTPReply:
            if isinstance(result, Failure):
                return self._failure_reply(result, "validate_sender")
            session.mail_from = address
            session.mail_params = params
            session.recipients = []
            session.rcpt_params = {}
            session.transaction_id = new_id()
            return SMTPReply(250, "2.1.0", "Sender OK")

        validated = self._call(self.backend.validate_sender, session, address, params)
        self._wait_for(validated, handle)

    def do_RCPT(self, rest: str) -> None:
        session = self._session
        if not session.in_transaction:
            raise SMTPReply(503, "5.5.1", "Error: need MAIL command")
        if rest[:3].upper() != "TO:":
            raise _syntax("RCPT TO:<address>")
        try:
            path, param_text = split_path(rest[3:])
        except AddressError:
            raise BAD_RECIPIENT from None
        params: RcptParams = parse_rcpt_params(param_text, dsn=self._dsn)
        try:
            mailbox = parse_forward_path(path, allow_utf8=session.mail_params.smtputf8)
        except NonASCIIAddress:
            raise NON_ASCII_RECIPIENT from None
        except AddressError:
            raise BAD_RECIPIENT from None
        if len(session.recipients) >= self.limits.max_recipients:
            # RFC 5321 §4.5.3.1.10: 452, the client sends the rest in another transaction.
            raise SMTPReply(452, "4.5.3", "Error: too many recipients")
        address = mailbox.address

        def handle(result: object) -> SMTPReply:
            if isinstance(result, Failure):
                return self._failure_reply(result, "validate_recipient")
            if address not in session.recipients:
                session.recipients.append(address)
            if params != RcptParams():
                session.rcpt_params[address] = params
            return SMTPReply(250, "2.1.5", "Recipient OK")

        validated = self._call(self.backend.validate_recipient, session, address, params)
        self._wait_for(validated, handle)

    def do_DATA(self, rest: str) -> None:
        session = self._session
        if rest:
            raise _syntax("DATA")
        if not session.in_transaction:
            raise SMTPReply(503, "5.5.1", "Error: need MAIL command")
        if not session.recipients:
            raise SMTPReply(503, "5.5.1", "Error: need RCPT command")
        sink = self.backend.begin_message(session)
        self.reply(SMTPReply(354, None, "End data with <CR><LF>.<CR><LF>"))
        self.start_data(sink)

    # -- AUTH (RFC 4954) ------------------------------------------------------------------

    def ext_AUTH(self, rest: str) -> None:
        session = self._session
        if session.listener == "inbound":
            raise SMTPReply(503, "5.5.1", "Error: authentication not enabled")
        if session.helo is None:
            raise BAD_SEQUENCE_HELO
        if not session.tls:
            raise ENCRYPTION_REQUIRED
        if session.authenticated is not None:
            # Also covers RFC 4954 §4 "not during a transaction": MAIL needs AUTH first here.
            raise SMTPReply(503, "5.5.1", "Error: already authenticated")
        try:
            mechanism, initial = parse_auth_command(rest)
        except SASLError as exc:
            raise exc.reply from None
        self.sasl = mechanism
        self._sasl_step(lambda: mechanism.start(initial))

    def auth_line(self, line: bytes) -> None:
        """A client response inside an AUTH exchange."""
        mechanism = self.sasl
        assert mechanism is not None
        self._sasl_step(lambda: mechanism.respond(line))

    def _sasl_step(self, step: Callable[[], Challenge | Credentials]) -> None:
        try:
            result = step()
        except SASLError as exc:
            self.end_auth()
            if exc.reply.code == 501 and exc.reply.status == "5.5.2":
                self._auth_failed(exc.reply)
            else:
                self.reply(exc.reply)
            return
        if isinstance(result, Challenge):
            self.begin_auth()
            self.reply(SMTPReply(334, None, encode_challenge(result)))
            return
        self.end_auth()
        if result.authzid and result.authzid != result.username:
            self._auth_failed(AUTH_FAILED)  # acting for someone else is not offered
            return
        session = self._session

        def handle(outcome: object) -> SMTPReply:
            if isinstance(outcome, Failure):
                if isinstance(outcome.value, SMTPReply):
                    reply = outcome.value
                else:
                    log.error("smtp {sid} authenticate failed: {t}", sid=session.session_id,
                              t=outcome.type.__name__ if outcome.type else "?")
                    reply = AUTH_TEMPFAIL
                # The user name only, never the password (auth data is never logged).
                log.info("smtp {sid} login failed for {user} from {ip}: {code} {status}",
                         sid=session.session_id, user=printable(username, 100),
                         ip=session.peer_ip, code=reply.code, status=reply.status or "")
                return self._count_failure(reply)
            if not isinstance(outcome, str) or not outcome:
                log.error("smtp {sid} authenticate returned no identity", sid=session.session_id)
                return AUTH_TEMPFAIL
            session.authenticated = outcome
            log.info("smtp {sid} login succeeded: authenticated as {who} from {ip}",
                     sid=session.session_id, who=outcome, ip=session.peer_ip)
            return SMTPReply(235, "2.7.0", "Authentication successful")

        username, password = result.username, result.password
        self._wait_for(self._call(self.backend.authenticate, session, username, password), handle)

    def _auth_failed(self, reply: SMTPReply) -> None:
        self.reply(self._count_failure(reply))

    def _count_failure(self, reply: SMTPReply) -> SMTPReply:
        """Permanent failures count; at the limit the session ends with 421 instead."""
        if reply.code >= 500:
            self._auth_failures += 1
            if self._auth_failures >= self.limits.max_auth_failures:
                sid = self._session.session_id
                log.info("smtp {sid} too many authentication failures", sid=sid)
                text = f"{self._hostname} Error: too many authentication failures"
                return SMTPReply(421, "4.7.0", text)
        return reply
