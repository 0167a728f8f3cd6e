"""Scripted SMTP servers for outbound client tests: real TCP listeners on
127.0.0.1 port 0 that speak canned replies and misbehave on request (421 in
the middle, silence after DATA, injected bytes after STARTTLS, ...).

They record what the client did, line by line, whether TLS was on when each
line came, and whether several commands arrived in one read (pipelining).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any, Optional

from twisted.internet import defer, reactor, ssl
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver

TERMINATOR = b"\r\n.\r\n"


@dataclass
class Received:
    """One mail transaction as the peer saw it; ``data`` is the raw (still dot-stuffed) DATA."""

    mail: str
    rcpts: list[str]
    data: bytes = b""
    size: int = 0
    sha256: str = ""

    @property
    def message(self) -> bytes:
        """The message with dot-stuffing undone (RFC 5321 §4.5.2), as a server stores it."""
        lines = self.data.split(b"\r\n")
        return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@dataclass
class PeerScript:
    """What the peer says.  Replies are bytes without CRLF; None for a reply means silence."""

    greeting: bytes = b"220 peer.test ESMTP scripted"
    extensions: list[str] = field(default_factory=lambda: [
        "PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES"])
    ehlo_reply: Optional[bytes] = None            # e.g. b"502 5.5.1 no EHLO" for HELO fallback
    tls_cert: Optional[tuple[str, str]] = None    # (cert, key) PEM paths: STARTTLS offered
    starttls_reply: bytes = b"220 2.0.0 Ready to start TLS"
    inject_after_starttls: bytes = b""
    fake_tls: bool = False                        # answer 220 to STARTTLS, then speak plain text
    auth: Optional[tuple[str, str]] = None        # accepted credentials; AUTH offered after TLS
    auth_in_clear: bool = False                   # also offer AUTH before TLS (a bad server)
    mail_reply: Optional[bytes] = b"250 2.1.0 Ok"
    rcpt_replies: dict[str, bytes] = field(default_factory=dict)  # by address
    data_reply: Optional[bytes] = b"354 End data with <CR><LF>.<CR><LF>"
    final_reply: Optional[bytes] = b"250 2.0.0 Ok: queued"
    keep_data: bool = True
    hold_until_data: bool = False                 # answer MAIL/RCPT only once DATA is in
    stop_reading_after: Optional[int] = None      # stop reading after this many DATA bytes


class ScriptedSMTP(LineReceiver):
    delimiter = b"\r\n"
    MAX_LENGTH = 100_000

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.script = peer.script
        self.tls = False
        self.current: Optional[Received] = None
        self.held: list[bytes] = []
        self._lines_this_read = 0
        self._tail = b""
        self._hash: Any = None
        self._data = bytearray()
        self._data_bytes = 0
        self.closed: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.peer.connections.append(self)
        self.reply(self.script.greeting)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(None)

    def reply(self, line: Optional[bytes]) -> None:
        if line is None:
            return
        self.transport.write(line + b"\r\n")
        if line.startswith(b"421"):
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        self._lines_this_read = 0
        super().dataReceived(data)

    def ehlo_lines(self) -> list[str]:
        extensions = list(self.script.extensions)
        if self.script.tls_cert and not self.tls:
            extensions.append("STARTTLS")
        if self.script.auth and (self.tls or self.script.auth_in_clear):
            extensions.append("AUTH PLAIN LOGIN")
        return ["peer.test greets you", *extensions]

    def lineReceived(self, line: bytes) -> None:
        self._lines_this_read += 1
        if self._lines_this_read > 1:
            self.peer.same_read_commands += 1
        text = line.decode("utf-8", "replace")
        self.peer.log.append((self.tls, text))
        verb = text.split(" ", 1)[0].upper()
        handler = getattr(self, f"do_{verb}", None)
        if handler is None:
            self.reply(b"502 5.5.2 unknown command")
        else:
            handler(text)

    # --- commands ---------------------------------------------------------------------
    def do_EHLO(self, text: str) -> None:
        if self.script.ehlo_reply is not None:
            self.reply(self.script.ehlo_reply)
            return
        lines = self.ehlo_lines()
        out = [f"250-{l}" for l in lines[:-1]] + [f"250 {lines[-1]}"]
        self.transport.write("".join(l + "\r\n" for l in out).encode())

    def do_HELO(self, text: str) -> None:
        self.reply(b"250 peer.test")

    def do_STARTTLS(self, text: str) -> None:
        assert self.script.tls_cert is not None
        self.transport.write(self.script.starttls_reply + b"\r\n" + self.script.inject_after_starttls)
        if not self.script.starttls_reply.startswith(b"220"):
            return
        if self.script.fake_tls:
            self.transport.write(b"this is not a TLS record\r\n" * 20)
            self.transport.loseConnection()
            return
        cert, key = self.script.tls_cert
        with open(cert, "rb") as c, open(key, "rb") as k:
            options = ssl.PrivateCertificate.loadPEM(c.read() + k.read()).options()
        self.clearLineBuffer()
        self.transport.startTLS(options)
        self.tls = True

    def do_AUTH(self, text: str) -> None:
        parts = text.split()
        assert self.script.auth is not None
        user, password = self.script.auth
        if parts[1].upper() == "PLAIN" and len(parts) == 3:
            ok = base64.b64decode(parts[2]) == f"\0{user}\0{password}".encode()
            self.reply(b"235 2.7.0 Authenticated" if ok else b"535 5.7.8 bad credentials")
        else:
            self.reply(b"504 5.5.4 only PLAIN here")

    def do_MAIL(self, text: str) -> None:
        self.current = Received(text, [])
        self._answer(self.script.mail_reply)

    def do_RCPT(self, text: str) -> None:
        address = text.split("<", 1)[1].split(">", 1)[0]
        reply = self.script.rcpt_replies.get(address, b"250 2.1.5 Ok")
        if self.current is not None and reply.startswith(b"2"):
            self.current.rcpts.append(address)
        self._answer(reply)

    def _answer(self, reply: Optional[bytes]) -> None:
        if self.script.hold_until_data:
            self.held.append(reply or b"")
        else:
            self.reply(reply)

    def do_DATA(self, text: str) -> None:
        for held in self.held:
            self.reply(held)
        self.held = []
        accepted = self.current is not None and self.current.rcpts
        if not accepted:
            self.reply(b"554 5.5.1 no valid recipients")
            return
        self.reply(self.script.data_reply)
        if self.script.data_reply and self.script.data_reply.startswith(b"354"):
            self._tail, self._hash, self._data, self._data_bytes = (
                b"\r\n", hashlib.sha256(), bytearray(), 0)
            self.setRawMode()

    def do_RSET(self, text: str) -> None:
        self.current = None
        self.reply(b"250 2.0.0 Ok")

    def do_NOOP(self, text: str) -> None:
        self.reply(b"250 2.0.0 Ok")

    def do_QUIT(self, text: str) -> None:
        self.reply(b"221 2.0.0 Bye")
        self.transport.loseConnection()

    # --- message data --------------------------------------------------------------------
    def rawDataReceived(self, data: bytes) -> None:
        window = self._tail + data
        end = window.find(TERMINATOR)
        if end >= 0:
            used = end + len(TERMINATOR) - len(self._tail)
            part, rest = data[:used], data[used:]
        else:
            part, rest = data, b""
        self._hash.update(part)
        self._data_bytes += len(part)
        if self.script.keep_data:
            self._data += part
        self.peer.data_bytes += len(part)
        self._tail = window[-4:]
        if end < 0:
            limit = self.script.stop_reading_after
            if limit is not None and self._data_bytes >= limit and not self.peer.was_stopped:
                self.peer.stopped, self.peer.was_stopped = self, True
                self.transport.pauseProducing()
            return
        received = self.current or Received("", [])
        data_bytes = bytes(self._data)
        # The leading CRLF of the terminator ends the last line of the message.
        received.data = data_bytes[:-3] if self.script.keep_data else b""
        received.size = self._data_bytes - 3
        received.sha256 = self._hash.hexdigest()
        self.peer.received.append(received)
        self.current = None
        self.reply(self.script.final_reply)
        self.setLineMode(rest)


class Peer:
    """A listening scripted server; ``await peer.start()`` then connect to ``peer.port``."""

    def __init__(self, script: Optional[PeerScript] = None) -> None:
        self.script = script or PeerScript()
        self.log: list[tuple[bool, str]] = []
        self.received: list[Received] = []
        self.connections: list[ScriptedSMTP] = []
        self.same_read_commands = 0
        self.data_bytes = 0
        self.stopped: Optional[ScriptedSMTP] = None
        self.was_stopped = False
        self.port = 0
        self._listener: Any = None

    def start(self) -> int:
        factory = Factory.forProtocol(lambda: ScriptedSMTP(self))
        self._listener = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore
        self.port = self._listener.getHost().port
        return self.port

    def resume_reading(self) -> None:
        stopped, self.stopped = self.stopped, None
        if stopped is not None:
            stopped.transport.resumeProducing()

    def commands(self) -> list[str]:
        return [line.split(" ", 1)[0].upper() for _, line in self.log]

    @defer.inlineCallbacks
    def stop(self) -> Any:
        if self._listener is not None:
            yield self._listener.stopListening()
        for connection in self.connections:
            if not connection.closed.called:
                connection.transport.abortConnection()
        yield defer.gatherResults([c.closed for c in self.connections])
