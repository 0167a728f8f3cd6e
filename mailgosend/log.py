"""Log observers for the server: LOG_LEVEL, LOG_FILE, and a last line of
defence that keeps configured secrets out of the log.

Code must never log a password, token, key or message content in the first
place; the redacting observer only catches mistakes with the secrets the
configuration knows (ENCRYPTION_KEY, SESSION_SECRET, old keys, RELAY_PASSWORD).
"""

from __future__ import annotations

import os
import sys
from typing import IO, Iterable

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    textFileLogObserver,
)
from twisted.python.logfile import LogFile
from zope.interface import implementer

from mailgosend.config import Config

ROTATE_BYTES = 10 * 1024 * 1024
ROTATED_FILES = 10


@implementer(ILogObserver)
class RedactingObserver:
    """Replaces any known secret in a formatted event before it is written."""

    def __init__(self, observer: ILogObserver, secrets: Iterable[str],
                 stream: IO[str] | None = None,
                 levels: LogLevelFilterPredicate | None = None) -> None:
        self._observer = observer
        self._levels = levels
        self._secrets = tuple(s for s in secrets if len(s) >= 6)
        self._stream = stream

    def reload(self) -> None:
        """SIGHUP: reopen LOG_FILE, so logrotate's move-and-HUP works."""
        reopen = getattr(self._stream, "reopen", None)
        if reopen is not None:
            reopen()

    def apply_config(self, config: Config) -> None:
        """LOG_LEVEL changed on the admin panel's settings page: applies at once."""
        if self._levels is not None:
            level = LogLevel.levelWithName(config["LOG_LEVEL"])
            self._levels.defaultLogLevel = level
            self._levels.setLogLevelForNamespace("", level)

    def __call__(self, event: LogEvent) -> None:
        if self._secrets:
            text = formatEvent(event)
            if any(secret in text for secret in self._secrets):
                for secret in self._secrets:
                    text = text.replace(secret, "[redacted]")
                event = dict(event)
                event["log_format"] = "{log_redacted_text}"
                event["log_redacted_text"] = text
                event.pop("log_failure", None)
        self._observer(event)


def config_secrets(config: Config) -> list[str]:
    secrets = [config["ENCRYPTION_KEY"].hex(), config["SESSION_SECRET"].hex()]
    secrets += [key.hex() for key in config["ENCRYPTION_KEYS_OLD"]]
    secrets += [config[name] for name in ("RELAY_PASSWORD", "METRICS_TOKEN") if config[name]]
    # Upper-case spellings of the hex keys too.
    return secrets + [s.upper() for s in secrets]


def open_log_file(path: str) -> IO[str]:
    directory, name = os.path.split(path)
    os.makedirs(directory or ".", exist_ok=True)
    return LogFile(name, directory or ".", rotateLength=ROTATE_BYTES,
                   maxRotatedFiles=ROTATED_FILES, defaultMode=0o640)  # type: ignore[return-value]


def make_observer(config: Config, stream: IO[str] | None = None) -> ILogObserver:
    """The observer twistd installs for the application (see service.py)."""
    if stream is None:
        stream = open_log_file(config["LOG_FILE"]) if config["LOG_FILE"] else sys.stdout
    level = LogLevel.levelWithName(config["LOG_LEVEL"])
    text = textFileLogObserver(stream)
    levels = LogLevelFilterPredicate(defaultLogLevel=level)
    filtered = FilteringLogObserver(text, [levels])
    return RedactingObserver(filtered, config_secrets(config), stream, levels)
