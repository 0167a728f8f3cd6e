# -*- test-case-name: tests.test_admin_dash_logs -*-
"""The last log events in memory, for the admin panel's Logs page and its live tail
(issue 14 item 10).

A twisted.logger observer on the global publisher while the service runs.  It keeps the
newest ``size`` events at LOG_LEVEL or above (the same level as the log file; a change on
the settings page applies at once), formatted as the log file formats them, after the
same secret redaction (log.RedactingObserver): what the panel shows is what the log file
holds, and the code never logs passwords, tokens or content in the first place.
Subscribers (the live tail's open streams) are called with each new line.  Bounded: a
deque of ``size`` lines; a subscriber is a callable, never a buffer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional

from twisted.application.service import Service
from twisted.logger import LogEvent, LogLevel, formatEvent, globalLogPublisher

from mailgosend.log import RedactingObserver, config_secrets

RING_SIZE = 2000
LEVELS = ("debug", "info", "warn", "error", "critical")


@dataclass(frozen=True)
class LogLine:
    seq: int
    at: datetime
    level: str
    namespace: str
    text: str

    def shown(self) -> str:
        return (f"{self.at:%Y-%m-%d %H:%M:%S}Z [{self.namespace}#{self.level}] "
                f"{self.text}")

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at.strftime("%Y-%m-%d %H:%M:%S"),
                "level": self.level, "namespace": self.namespace, "text": self.text}

    def matches(self, level: str, text: str) -> bool:
        """At ``level`` or above, containing ``text`` (case-insensitive)."""
        if level in LEVELS and LEVELS.index(self.level) < LEVELS.index(level):
            return False
        return not text or text.lower() in self.shown().lower()


def _level_name(level: Optional[LogLevel]) -> str:
    return level.name if level is not None and level.name in LEVELS else "info"


class LogRing(Service):
    def __init__(self, config: Any, size: int = RING_SIZE, publisher: Any = None) -> None:
        self.setName("log_ring")
        self._lines: deque[LogLine] = deque(maxlen=size)
        self._seq = 0
        self._minimum = LEVELS.index(config["LOG_LEVEL"])
        self._publisher = publisher if publisher is not None else globalLogPublisher
        self._observer = RedactingObserver(self._store,  # type: ignore[arg-type]
                                           config_secrets(config))
        self.subscribers: set[Callable[[LogLine], None]] = set()

    def startService(self) -> None:
        super().startService()
        self._publisher.addObserver(self._observer)

    def stopService(self) -> Any:
        self._publisher.removeObserver(self._observer)
        return super().stopService()

    def apply_config(self, config: Any) -> None:
        """LOG_LEVEL saved on the settings page: kept from now on."""
        self._minimum = LEVELS.index(config["LOG_LEVEL"])

    def _store(self, event: LogEvent) -> None:
        level = _level_name(event.get("log_level"))
        if LEVELS.index(level) < self._minimum:
            return
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}: {failure.getErrorMessage()}"
        when = datetime.fromtimestamp(event.get("log_time") or 0.0, timezone.utc)
        self._seq += 1
        line = LogLine(self._seq, when, level, event.get("log_namespace", "-"), text)
        self._lines.append(line)
        for subscriber in list(self.subscribers):
            try:
                subscriber(line)
            except Exception:   # a broken stream must not break logging
                self.subscribers.discard(subscriber)

    def lines(self, level: str = "debug", text: str = "", limit: int = 200,
              after: int = 0) -> list[LogLine]:
        """The newest ``limit`` lines matching, oldest first (``after``: a sequence number:
        only newer lines, for a live tail that reconnects)."""
        found: Iterable[LogLine] = (line for line in reversed(self._lines)
                                    if line.seq > after and line.matches(level, text))
        picked = []
        for line in found:
            picked.append(line)
            if len(picked) >= limit:
                break
        return picked[::-1]
