"""SQL LIKE patterns from user text (the admin panel's searches): the text matched
literally, its ``%``, ``_`` and ``\\`` escaped, for ``.like(pattern, escape="\\\\")``."""

from __future__ import annotations

ESCAPE = "\\"


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
