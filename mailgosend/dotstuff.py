# -*- test-case-name: tests.test_dotstuff -*-
"""Dot-stuffing of a message sent as a multi-line body: SMTP DATA (RFC 5321 §4.5.2) and
POP3 RETR/TOP (RFC 1939 §3) use the same transparency rule, so they use this one stuffer.

Pure and incremental: a message is never whole in memory, each chunk is line-ending
normalised and stuffed as it passes, and the result never depends on where the chunks were
cut (a "." right after a chunk boundary is stuffed; a CR at the end of a chunk waits for the
LF that may start the next one).

Line ends: CRLF, a bare LF and a bare CR all end a line and are sent as CRLF.  Both
protocols are made of CRLF-terminated lines, and a message may not hold a bare CR or LF
(RFC 5322 §2.3, RFC 5321 §2.3.8); passing one through lets a peer that splits lines
differently read ``<CR>.<CR><LF>`` or ``<LF>.<CR><LF>`` as the end of the data, so an SMTP
next hop would see a second message smuggled inside ours (CVE-2023-51764 and relatives) and
a POP3 client would read the rest of the message as server replies.  Messages arrive with
CRLF over SMTP, so normally nothing changes; a stored bare CR or LF makes the response a few
octets longer than the size LIST announced.
"""

from __future__ import annotations

__all__ = ["DotStuffer", "TERMINATOR"]

TERMINATOR = b".\r\n"  # on a line of its own: the end of the data or of the response


class DotStuffer:
    """Incremental CRLF normalisation and dot-stuffing; :meth:`finish` adds the terminator."""

    def __init__(self) -> None:
        self._line_start = True   # the output so far ends with CRLF (or is empty)
        self._held_cr = False     # the last input byte was CR; its LF may come next

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to send for ``chunk`` (possibly fewer: a trailing CR waits)."""
        if self._held_cr:
            chunk = b"\r" + chunk
            self._held_cr = False
        if chunk.endswith(b"\r"):
            self._held_cr = True
            chunk = chunk[:-1]
        if not chunk:
            return b""
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        # RFC 5321 §4.5.2, RFC 1939 §3: a line that starts with "." gets another "." in front.
        data = chunk.replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
        if self._line_start and data.startswith(b"."):
            data = b"." + data
        self._line_start = data.endswith(b"\r\n")
        return data

    def finish(self) -> bytes:
        """What ends the data: a held CR's line end or a missing final CRLF, then ``.CRLF``
        (RFC 5321 §4.1.1.4: the terminator is on a line of its own)."""
        tail = b"" if self._line_start and not self._held_cr else b"\r\n"
        self._held_cr, self._line_start = False, True
        return tail + TERMINATOR
