"""The outbound SMTP client: one session to one host, any number of transactions.

RFCs followed: 5321 (SMTP; §4.5.3.2 timeouts, §4.5.2 transparency, §3.8
421), 3207 (STARTTLS), 2920 (PIPELINING), 1870 (SIZE), 6152 (8BITMIME),
6531 (SMTPUTF8), 3461 (DSN parameters), 4954 (AUTH PLAIN/LOGIN), 2034/3463
(enhanced status codes).  Not implemented: CHUNKING/BDAT (RFC 3030),
BINARYMIME, 8-bit to 7-bit downgrade, REQUIRETLS (RFC 8689), DANE and
MTA-STS, LMTP.

Use::

    session = await connect(reactor, "192.0.2.25", 25, "mx.example.org", settings)
    result = await session.send(envelope, source)   # again for the next message
    await session.quit()

``connect`` fails with :class:`SessionFailed` (carrying a Reply, 4xx unless
the peer said 5xx in its greeting or to HELO) when no usable session could
be set up; ``send`` never fails for anything the peer does: refusals,
timeouts and lost connections come back inside the
:class:`TransactionResult`, per recipient.

This module opens sessions (greeting, EHLO/HELO, STARTTLS, AUTH); the rest
lives beside it: ``clientprotocol`` (lines, replies, timeouts, flow control),
``transaction`` (MAIL/RCPT/DATA), ``envelope`` (what to send, pre-flight
refusals), ``bodystream`` (the message source; ``mailgosend.dotstuff`` stuffs it),
``clienttls``, ``reply``.

Nothing here logs: the caller records results, so no message content and no
credential can reach a log through these modules.  A session that is
``lost`` answers every further ``send`` at once with temporary replies; the
caller should check ``session.lost`` and reconnect rather than send.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.error import ConnectionRefusedError, TimeoutError
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory

from mailgosend.delivery.bodystream import BytesSource, MessageSource
from mailgosend.delivery.clientprotocol import SessionLost, SMTPClientProtocol, Timeouts
from mailgosend.delivery.clienttls import TLSCheck, make_client_context
from mailgosend.delivery.envelope import Envelope, Recipient, RecipientResult, TransactionResult
from mailgosend.delivery.reply import Reply, local_reply, parse_ehlo
from mailgosend.delivery.transaction import Transactions

__all__ = ["BytesSource", "ClientSession", "ClientSettings", "Envelope", "MessageSource",
           "Recipient", "RecipientResult", "Reply", "SessionFailed", "Timeouts",
           "TransactionResult", "connect", "open_session"]

TLSPolicy = Literal["none", "may", "encrypt"]


@dataclass(frozen=True)
class ClientSettings:
    """How to talk to one kind of peer.

    ``tls``: ``may`` uses STARTTLS whenever offered and never fails over the
    certificate (RFC 7435; Postfix ``may``); ``encrypt`` refuses to go on in
    clear (smarthost); ``none`` never starts TLS (the retry after a failed
    handshake, as Postfix does for ``may``).  ``verify_hostname`` makes an
    unverified certificate fatal.  ``auth`` is sent only under TLS.
    """

    helo_name: str
    timeouts: Timeouts = Timeouts()
    tls: TLSPolicy = "may"
    verify_hostname: str | None = None
    ca_file: str | None = None
    auth: tuple[str, str] | None = field(default=None, repr=False)
    bind_address: str | None = None  # local address for outgoing connections


class SessionFailed(Exception):
    """No usable session.  ``tls_failed``: the TLS handshake itself broke the
    connection, so a retry with ``tls="none"`` may work where policy allows."""

    def __init__(self, reply: Reply, tls_failed: bool = False) -> None:
        super().__init__(str(reply))
        self.reply = reply
        self.tls_failed = tls_failed


class ClientSession:
    """An open SMTP session; create it with :func:`connect` or :func:`open_session`."""

    def __init__(self, protocol: SMTPClientProtocol, host_name: str, settings: ClientSettings
                 ) -> None:
        self._protocol = protocol
        self._settings = settings
        self._timeouts = settings.timeouts
        self._transactions = Transactions(protocol, settings.timeouts)
        self._busy = False
        self.host_name = host_name
        self.greeting: Reply | None = None
        self.extensions: dict[str, str] = {}
        self.esmtp = False
        self.tls_version: str | None = None
        self.tls_verified = False
        self.tls_note: str | None = None
        self.authenticated = False
        self.notes: list[str] = []

    @property
    def lost(self) -> bool:
        return self._protocol.lost is not None

    @property
    def write_pauses(self) -> int:
        """How often the transport paused the message stream (flow control at work)."""
        return self._protocol.write_pauses

    @property
    def transport(self) -> Any:
        return self._protocol.transport

    def abort(self) -> None:
        """Drop the connection now (shutdown); a transaction under way reports it lost."""
        self._protocol.fail(local_reply(421, "4.3.2", "delivery stopped: system shutting down"))

    # --- opening -------------------------------------------------------------------------
    async def _open(self) -> ClientSession:
        protocol = self._protocol
        try:
            try:
                self.greeting = await protocol.greeting
                if self.greeting.code != 220:
                    raise SessionFailed(self.greeting)  # RFC 5321 §3.1: 554 means no service
                await self._hello()
                if self._settings.tls != "none":
                    await self._starttls()
                if self._settings.auth is not None:
                    await self._authenticate(*self._settings.auth)
            except SessionLost as lost:
                raise SessionFailed(lost.reply, protocol.tls_started and not protocol.tls_done)
        except SessionFailed:
            await self.quit()
            raise
        return self

    async def _hello(self) -> None:
        name = self._settings.helo_name
        reply = await self._protocol.command(f"EHLO {name}", "EHLO", self._timeouts.helo)
        if reply.code == 250:
            self.extensions, self.esmtp = parse_ehlo(reply), True
            return
        if not reply.permanent:
            raise SessionFailed(reply)
        # RFC 5321 §3.2: a server that refuses EHLO gets HELO and no extensions.
        self.notes.append(f"EHLO refused ({reply.code}), fell back to HELO")
        reply = await self._protocol.command(f"HELO {name}", "HELO", self._timeouts.helo)
        if reply.code != 250:
            raise SessionFailed(reply)
        self.extensions, self.esmtp = {}, False

    async def _starttls(self) -> None:
        required = self._settings.tls == "encrypt"
        if "STARTTLS" not in self.extensions:
            if required:
                raise SessionFailed(local_reply(421, "4.7.4", "TLS is required, but was not "
                                                              "offered by the server"))
            self.notes.append("STARTTLS not offered")
            return
        check_name = self._settings.verify_hostname or self.host_name
        check = TLSCheck(make_client_context(self._settings.ca_file, required),
                         self.host_name, check_name)
        self._protocol.on_handshake = lambda: self._handshake_done(check)
        reply = await self._protocol.command("STARTTLS", "STARTTLS", self._timeouts.starttls,
                                             tls=check.creator())
        if reply.code != 220:
            if required:
                raise SessionFailed(local_reply(421, "4.7.4", f"TLS is required, but STARTTLS "
                                                              f"was refused: {reply}"))
            self.notes.append(f"STARTTLS refused: {reply}")
            return
        if self._protocol.discarded_after_starttls:
            self.notes.append(f"discarded {self._protocol.discarded_after_starttls} bytes sent "
                              "in clear after the STARTTLS reply")
        # RFC 3207 §4.2: forget what the server said before TLS and ask again.
        self.extensions, self.esmtp = {}, False
        await self._hello()  # its timeout also bounds the handshake

    def _handshake_done(self, check: TLSCheck) -> None:
        outcome = check.outcome()
        self.tls_version, self.tls_verified, self.tls_note = (
            outcome.version, outcome.verified, outcome.note)
        if self._settings.verify_hostname and not outcome.verified:
            self._protocol.fail(local_reply(421, "4.7.5", f"TLS certificate of "
                                            f"{self._settings.verify_hostname} not verified: "
                                            f"{outcome.note}"))

    async def _authenticate(self, user: str, password: str) -> None:
        if self.tls_version is None:
            raise SessionFailed(local_reply(421, "4.7.0", "credentials are never sent without "
                                                          "TLS, and TLS is not in use"))
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        command, timeout = self._protocol.command, self._timeouts.auth
        if "PLAIN" in mechanisms:  # RFC 4616, initial response per RFC 4954 §4
            reply = await command("AUTH PLAIN " + _b64(f"\0{user}\0{password}"), "AUTH", timeout)
        elif "LOGIN" in mechanisms:
            reply = await command("AUTH LOGIN", "AUTH", timeout)
            for secret in (user, password):
                if reply.code != 334:
                    break
                reply = await command(_b64(secret), "AUTH", timeout)
        else:
            raise SessionFailed(local_reply(421, "4.7.0", "no usable AUTH mechanism offered: "
                                            f"{self.extensions.get('AUTH') or 'none'}"))
        if reply.code == 334:
            reply = await command("*", "AUTH", timeout)  # RFC 4954 §4: cancel the exchange
        if reply.code != 235:
            # A refused login is a configuration problem to fix, not a reason to bounce mail
            # (Postfix smtp_sasl_auth_soft_bounce): always temporary.
            raise SessionFailed(local_reply(454, "4.7.0", f"authentication failed: {reply}"))
        self.authenticated = True

    # --- transactions -----------------------------------------------------------------------
    def send(self, envelope: Envelope, body: MessageSource) -> defer.Deferred[TransactionResult]:
        """One mail transaction; call again on the same session for the next message."""
        if self._busy:
            return defer.fail(RuntimeError("a transaction is already in progress"))
        self._busy = True

        def done(result: Any) -> Any:
            self._busy = False
            return result
        run = self._transactions.run(envelope, body, self.extensions)
        return defer.Deferred.fromCoroutine(run).addBoth(done)

    # --- ending -----------------------------------------------------------------------------
    def quit(self) -> defer.Deferred[None]:
        """QUIT and close; fires when the connection is gone, never fails."""
        return self._protocol.close(self._timeouts.quit)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def open_session(protocol: SMTPClientProtocol, host_name: str, settings: ClientSettings
                 ) -> defer.Deferred[ClientSession]:
    """Greeting, EHLO/HELO, STARTTLS, AUTH on a protocol already connected (tests use fakes)."""
    return defer.Deferred.fromCoroutine(ClientSession(protocol, host_name, settings)._open())


class _ClientFactory(Factory):
    noisy = False   # one factory per connection: no "Starting factory" line per message
    def __init__(self, clock: IReactorTime, greeting_timeout: float) -> None:
        self._clock = clock
        self._greeting_timeout = greeting_timeout

    def buildProtocol(self, addr: Any) -> SMTPClientProtocol:
        return SMTPClientProtocol(self._clock, self._greeting_timeout)


def connect(reactor: Any, address: str, port: int, host_name: str, settings: ClientSettings
            ) -> defer.Deferred[ClientSession]:
    """TCP connect to ``address`` (an IP literal), then :func:`open_session`.

    ``host_name`` is the MX name: SNI and certificate checks use it.
    ``reactor`` provides IReactorTCP and IReactorTime.
    """
    tcp: IReactorTCP = reactor
    timeout = settings.timeouts.connect
    bind = (settings.bind_address, 0) if settings.bind_address else None
    if isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address):
        endpoint: Any = TCP6ClientEndpoint(tcp, address, port, timeout=timeout, bindAddress=bind)
    else:
        endpoint = TCP4ClientEndpoint(tcp, address, port, timeout=timeout, bindAddress=bind)

    async def run() -> ClientSession:
        try:
            protocol = await endpoint.connect(_ClientFactory(reactor, settings.timeouts.greeting))
        except ConnectionRefusedError:
            why = "connection refused"
        except TimeoutError:
            why = "connection timed out"
        except Exception as error:
            why = " ".join(str(error).split()) or type(error).__name__
        else:
            return await open_session(protocol, host_name, settings)
        raise SessionFailed(local_reply(421, "4.4.1", f"cannot connect to {host_name} "
                                                      f"[{address}]:{port}: {why}"))
    return defer.Deferred.fromCoroutine(run())
