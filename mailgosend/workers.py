"""A bounded thread pool for CPU-heavy work that must not run on the reactor
thread or take a database thread: bcrypt, RSA/ed25519, AES over large blobs,
and the blocking SPF/DKIM/DMARC libraries (DESIGN.md §2)."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

_T = TypeVar("_T")


class WorkerPool(Service):
    def __init__(self, reactor: Any, size: int = 2, name: str = "workers") -> None:
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=0, maxthreads=size, name=name)
        self.setName(name)

    def startService(self) -> None:
        super().startService()
        self._pool.start()

    def stopService(self) -> Any:
        super().stopService()
        if self._pool.started:
            # ThreadPool.stop joins the threads: not on the reactor thread.
            from twisted.internet.threads import deferToThread

            return deferToThread(self._pool.stop)
        return None

    def run(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> "Deferred[_T]":
        if not self._pool.started:
            # Usable before the service starts (tests, start-up code): start lazily.
            self._pool.start()
        return deferToThreadPool(self._reactor, self._pool, fn, *args, **kwargs)
