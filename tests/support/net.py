"""Small networking helpers for tests that start real listeners.

Ports are chosen below the kernel's ephemeral range (net.ipv4.ip_local_port_range,
32768-60999 by default): a port the kernel hands out with bind(0) is also handed out
to outgoing client connections, so between choosing it and the server binding it a
client socket of a parallel test could take it.  Below that range only another
test's choice can collide: within one call the chosen ports are held while choosing, and
each ``trial -j`` worker chooses from its own slice (``worker_range``).
"""

from __future__ import annotations

import os
import random
import socket

LOW, HIGH = 20000, 32000
_random = random.SystemRandom()
WORKER_SPAN = 3000  # ports of one `trial -j` worker: 4 workers fit below the ephemeral range


def worker_range(cwd: str | None = None) -> tuple[int, int]:
    """The ports this process chooses from.  ``trial -jN`` runs worker k in
    ``_trial_temp/k``: each worker gets its own slice, so two workers never race for one
    port between choosing and binding it (seen as "port already in use" flakes)."""
    name = os.path.basename(cwd if cwd is not None else os.getcwd())
    if not name.isdigit():
        return LOW, HIGH
    start = LOW + (int(name) % ((HIGH - LOW) // WORKER_SPAN)) * WORKER_SPAN
    return start, start + WORKER_SPAN


def free_ports(count: int, host: str = "127.0.0.1", *, also: tuple[str, ...] = (),
               exclude: frozenset[int] | set[int] = frozenset()) -> list[int]:
    """``count`` distinct ports that were free a moment ago on ``host`` and on every address
    in ``also`` (all held while chosen), none of them in ``exclude`` (ports already handed to
    other services of the same server).  Check the address the server will bind: a port
    free on 127.0.0.1 may be taken on 127.0.0.2 by a parallel test's server."""
    held: list[socket.socket] = []
    ports: list[int] = []
    low, high = worker_range()
    try:
        for _ in range(200 * count):
            if len(ports) == count:
                break
            port = _random.randrange(low, high)
            if port in ports or port in exclude:
                continue
            sockets = []
            try:
                for address in (host, *also):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sockets.append(sock)
                    sock.bind((address, port))
            except OSError:
                for sock in sockets:
                    sock.close()
                continue
            held.extend(sockets)
            ports.append(port)
        if len(ports) != count:
            raise RuntimeError(f"could not find {count} free ports in {low}-{high}")
        return ports
    finally:
        for sock in held:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, for configs where 0 means 'disabled'."""
    return free_ports(1, host)[0]
