"""New-mail and flag-change notifications inside one server process.

The SMTP pipeline publishes after a delivery commits; IMAP IDLE sessions and
(later) webmail live updates subscribe per user.  Subscribers are called in
the reactor thread and must not block.  Across several nodes sharing one
PostgreSQL database this becomes LISTEN/NOTIFY (DESIGN.md §9); that is not
built yet, so a node only sees its own deliveries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from twisted.logger import Logger

log = Logger()


@dataclass(frozen=True)
class NewMail:
    user_id: int
    mailbox_id: int
    uid: int


Subscriber = Callable[[NewMail], None]


class Events:
    def __init__(self) -> None:
        self._subscribers: dict[int, list[Subscriber]] = defaultdict(list)
        self._queue_watchers: list[Callable[[], None]] = []

    def watch_queue(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs after every commit that added outbound queue rows, so the
        queue worker attempts a new message at once instead of at its next poll."""
        self._queue_watchers.append(callback)

    def publish_queued(self) -> None:
        for callback in list(self._queue_watchers):
            try:
                callback()
            except Exception:
                log.failure("queue watcher failed")

    def subscribe(self, user_id: int, callback: Subscriber) -> Callable[[], None]:
        """Returns the function that unsubscribes (call it when the session ends)."""
        self._subscribers[user_id].append(callback)

        def unsubscribe() -> None:
            callbacks = self._subscribers.get(user_id, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._subscribers.pop(user_id, None)
        return unsubscribe

    def publish(self, event: NewMail) -> None:
        for callback in list(self._subscribers.get(event.user_id, ())):
            try:
                callback(event)
            except Exception:
                log.failure("new-mail subscriber failed")

    def subscriber_count(self, user_id: int) -> int:
        return len(self._subscribers.get(user_id, ()))
