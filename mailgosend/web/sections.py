# -*- test-case-name: tests.test_web_settings -*-
"""Page groups with their own Klein app mounted beside the account pages (web/account.py) on
one listener: ``/settings`` (web/settings_pages.py), ``/setup`` (web/setup.py).  Each group's
app sees the full path, so its routes read as the URLs they serve."""

from __future__ import annotations

from typing import Any, Mapping

from twisted.web.resource import Resource


class Sections(Resource):
    """Send a request to the resource of its first path segment, else to ``default``."""

    def __init__(self, default: Any, sections: Mapping[bytes, Any]) -> None:
        super().__init__()
        self._default = default
        self._sections = dict(sections)

    def getChildWithDefault(self, name: bytes, request: Any) -> Any:
        # Undo the traversal step: the chosen Klein resource routes on the whole path.
        request.postpath.insert(0, request.prepath.pop())
        return self._sections.get(name, self._default)

    def render(self, request: Any) -> Any:   # no segment at all: the default's "/"
        return self._default.render(request)


class ExactPaths(Resource):
    """Send a request whose whole path is one of ``paths`` to its resource, any other to
    ``default``: /.well-known/ holds several owners' names (jmap, autoconfig, mta-sts)."""

    isLeaf = True

    def __init__(self, default: Any, paths: Mapping[bytes, Any]) -> None:
        super().__init__()
        self._default = default
        self._paths = dict(paths)

    def render(self, request: Any) -> Any:
        return self._paths.get(request.path, self._default).render(request)


class PathPrefixes(Resource):
    """Send a request whose path starts with one of ``prefixes`` (at a segment boundary) to
    its resource, any other to ``default``: /mail/ holds the webmail's feature modules
    (web/webmail_contacts.py) beside the page itself."""

    isLeaf = True

    def __init__(self, default: Any, prefixes: Mapping[bytes, Any]) -> None:
        super().__init__()
        self._default = default
        self._prefixes = dict(prefixes)

    def render(self, request: Any) -> Any:
        path = request.path
        for prefix, resource in self._prefixes.items():
            if path == prefix or path.startswith(prefix + b"/") or \
                    path.startswith(prefix + b"."):
                return resource.render(request)
        return self._default.render(request)
