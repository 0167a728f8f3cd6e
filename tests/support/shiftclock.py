"""A reactor whose clock can be moved forward: everything else is the real reactor.

A whole server (listeners, threads, database) needs the real reactor, while a test of
something due in an hour needs an injected clock.  ``ShiftedReactor`` delegates every
attribute to the reactor it wraps, but ``seconds()`` adds an offset, and ``advance(n)``
moves the offset and brings every pending ``callLater`` n seconds closer, so timers,
``LoopingCall``s and ``clock.seconds()`` all see the same jump.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import reactor as default_reactor


class ShiftedReactor:
    def __init__(self, real: Any = default_reactor) -> None:
        self._real = real
        self.offset = 0.0
        self._calls: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def seconds(self) -> float:
        return float(self._real.seconds()) + self.offset

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        call = self._real.callLater(delay, f, *args, **kw)
        self._calls = [c for c in self._calls if c.active()]
        self._calls.append(call)
        return call

    def advance(self, amount: float) -> None:
        """Move the clock ``amount`` seconds forward: what was due by then runs soon."""
        self.offset += amount
        now = self._real.seconds()
        for call in self._calls:
            if call.active():
                call.reset(max(0.0, call.getTime() - now - amount))
