"""A whole server with its web port and DAV_PORT on free loopback ports, and raw DAV
requests through ``requests`` in threads (the reactor keeps serving)."""

from __future__ import annotations

import os
from typing import Any, Optional

import requests
from sqlalchemy import select
from twisted.internet import threads

from mailgosend.db.runner import run_sync
from tests.support.mailserver import PASSWORD, MailServerTestCase
from tests.support.net import free_ports
from tests.support.web import WebServerTestCase

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "dav")

__all__ = ["DavServerTestCase", "PASSWORD", "DATA", "transcript"]


def transcript(name: str) -> bytes:
    with open(os.path.join(DATA, name), "rb") as handle:
        return handle.read()


class DavServerTestCase(WebServerTestCase):
    users: tuple[str, ...] = ("alice@example.com", "bob@example.com")

    def setUp(self):  # type: ignore[no-untyped-def]
        # The three web ports in one call, so none of them is chosen twice.
        web, admin, dav = free_ports(3)
        self.settings = {**self.settings, "ports": {"WEB": web, "ADMIN": admin},
                         "DAV_PORT": str(dav)}
        self.web_base = f"http://127.0.0.1:{web}"
        self.admin_base = f"http://127.0.0.1:{admin}"
        self.dav_base = f"http://127.0.0.1:{dav}"
        return MailServerTestCase.setUp(self)

    def dav(self, method: str, path: str, body: bytes | str = b"", *,
            user: Optional[str] = "alice@example.com", password: str = PASSWORD,
            base: Optional[str] = None, **headers: str) -> Any:
        """One raw request in a thread; headers with ``_`` for ``-``."""
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        if body and "Content-Type" not in sent:
            sent["Content-Type"] = "application/xml; charset=utf-8"
        auth = (user, password) if user is not None else None
        data = body.encode() if isinstance(body, str) else body
        return threads.deferToThread(requests.request, method, (base or self.web_base) + path,
                                     data=data, headers=sent, auth=auth, timeout=60,
                                     allow_redirects=False)

    def database_file_bytes(self) -> bytes:
        """The SQLite database file and its WAL, raw: free pages and journal included."""
        path = self.server.engine.url.database
        out = b""
        for name in (path, path + "-wal"):
            if os.path.exists(name):
                with open(name, "rb") as handle:
                    out += handle.read()
        return out

    def table_bytes(self) -> bytes:
        """Everything the DAV tables hold, concatenated, for plaintext checks."""
        from mailgosend.db.schema import dav_collections, dav_objects, dav_tombstones

        def read(conn: Any) -> bytes:
            out = []
            for table in (dav_collections, dav_objects, dav_tombstones):
                for row in conn.execute(select(table)):
                    for value in row:
                        out.append(value if isinstance(value, bytes) else
                                   str(value).encode())
            return b"\n".join(out)

        return run_sync(self.server.engine, read, write=False)  # type: ignore[no-any-return]
