# -*- test-case-name: tests.test_dav_discovery -*-
"""Where DAV resources live on a listener (DESIGN.md §8): the web port serves calendars under
``/caldav/<user>/`` and contacts under ``/carddav/<user>/``; DAV_PORT under
``/dav/calendars/<user>/`` and ``/dav/contacts/<user>/``.  Both reach the same data.

A user's home of each kind doubles as their principal (current-user-principal answers it),
and every home answers both home sets, so a client that finds one finds both.  ``@`` in the
user segment may come percent-encoded or not (iOS sends both); hrefs we make carry it
plain, hrefs of the requested resource echo what the client sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote, unquote

__all__ = ["Mount", "Target", "WEB_MOUNT", "DAV_PORT_MOUNT"]


@dataclass(frozen=True)
class Target:
    """What a request path names.  ``level``: root, home, collection or object."""

    level: str
    kind: Optional[str] = None          # calendar | addressbook
    user: Optional[str] = None          # the user segment, decoded
    collection: Optional[str] = None
    name: Optional[str] = None


@dataclass(frozen=True)
class Mount:
    calendars: str       # "/caldav/"
    contacts: str        # "/carddav/"

    def prefix(self, kind: str) -> str:
        return self.calendars if kind == "calendar" else self.contacts

    def home(self, kind: str, email: str) -> str:
        return f"{self.prefix(kind)}{quote(email, safe='@')}/"

    def principal(self, email: str) -> str:
        return self.home("calendar", email)

    def roots(self) -> set[str]:
        """Paths that are answered as the server root (PROPFIND current-user-principal)."""
        found = {"/"}
        for prefix in (self.calendars, self.contacts):
            parts = prefix.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                found.add("/" + "/".join(parts[:i]) + "/")
        return found

    def target(self, raw_path: str) -> Optional[Target]:
        """The resource a request path names, or None when it is none of ours."""
        path = raw_path.split("?", 1)[0]
        if path.rstrip("/") + "/" in self.roots() and (path.endswith("/") or path == ""):
            return Target("root")
        if (path + "/") in self.roots():
            return Target("root")
        for kind in ("calendar", "addressbook"):
            prefix = self.prefix(kind)
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            segments = [unquote(s) for s in rest.split("/")]
            trailing = rest.endswith("/")
            if trailing:
                segments = segments[:-1]
            if not segments or any(s in ("", ".", "..") for s in segments) \
                    or len(segments) > 3:
                return None
            if len(segments) == 1:
                return Target("home", kind, segments[0])
            if len(segments) == 2:
                return Target("collection", kind, segments[0], segments[1])
            return Target("object", kind, segments[0], segments[1], segments[2])
        return None


WEB_MOUNT = Mount(calendars="/caldav/", contacts="/carddav/")
DAV_PORT_MOUNT = Mount(calendars="/dav/calendars/", contacts="/dav/contacts/")
