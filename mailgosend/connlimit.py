# -*- test-case-name: tests.test_connlimit -*-
"""Connection limits of one listener: MAX_CONNECTIONS in all and MAX_CONNECTIONS_PER_IP from
one client address, the same rule for SMTP, IMAP and POP3 (and any later listener).

The factory asks :meth:`ConnectionLimiter.admit` when a connection is made and answers a
refusal in its protocol's words (SMTP ``421 4.7.0``, RFC 5321 §3.8; IMAP ``* BYE``,
RFC 3501 §7.1.5; POP3 ``-ERR [SYS/TEMP]``, RFC 3206 §4), then closes; it calls
:meth:`~ConnectionLimiter.release` when the connection is lost.  The limiter also knows which
connections are open, so the listener can drain them at shutdown (listeners.IDrainable).
Postfix (smtpd_client_connection_count_limit) and Dovecot (mail_max_userip_connections)
apply such limits per service, as here: each listener counts its own connections.
"""

from __future__ import annotations

from typing import Generic, Hashable, TypeVar

__all__ = ["ConnectionLimiter"]

C = TypeVar("C", bound=Hashable)


class ConnectionLimiter(Generic[C]):
    """The open connections of one listener and the client address of each."""

    def __init__(self, max_connections: int, max_per_ip: int) -> None:
        if max_connections <= 0 or max_per_ip <= 0:
            raise ValueError("connection limits must be positive")
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self._ip_of: dict[C, str] = {}
        self._per_ip: dict[str, int] = {}

    def admit(self, connection: C, ip: str) -> bool:
        """Count ``connection`` from ``ip`` in, or False (nothing counted) at a limit."""
        if connection in self._ip_of:
            return True
        if (len(self._ip_of) >= self.max_connections
                or self._per_ip.get(ip, 0) >= self.max_per_ip):
            return False
        self._ip_of[connection] = ip
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        return True

    def release(self, connection: C) -> None:
        """The connection is gone; a connection never admitted is ignored."""
        ip = self._ip_of.pop(connection, None)
        if ip is None:
            return
        remaining = self._per_ip[ip] - 1
        if remaining:
            self._per_ip[ip] = remaining
        else:
            del self._per_ip[ip]

    def open(self) -> set[C]:
        """The admitted connections not yet released (a copy)."""
        return set(self._ip_of)

    def count(self, ip: str) -> int:
        """How many admitted connections come from ``ip``."""
        return self._per_ip.get(ip, 0)
