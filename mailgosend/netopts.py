"""Socket options every mail protocol wants."""

from __future__ import annotations

from typing import Any


def no_delay(transport: Any) -> None:
    """Disable Nagle's algorithm: our replies are small writes the client waits for
    (a tagged OK after a literal, a 250 after DATA); with Nagle on, each can sit up to
    a delayed-ACK interval (~40 ms) in the kernel.  Measured: 200 IMAP BODY.PEEK[]
    fetches went from 8.7 s to 0.5 s."""
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        try:
            set_no_delay(True)
        except (OSError, AttributeError):   # not a TCP socket (tests, UNIX sockets)
            pass
