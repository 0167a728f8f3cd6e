"""The web and admin ports of a test server, driven by ``requests`` in threads (so the
reactor keeps serving while a request blocks), and a real browser (Playwright with Debian's
Chromium) for the page tests."""

from __future__ import annotations

import re
from typing import Any, Optional

import requests
from twisted.internet import threads

from tests.support.mailserver import MailServer, MailServerTestCase
from tests.support.net import free_ports

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CHROMIUM = "/usr/bin/chromium"


def csrf_from(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "no csrf_token in the page"
    return found.group(1)


class WebClient:
    """A browser-like client: a cookie jar, and the Origin header a browser sends."""

    def __init__(self, base: str, verify: Any = True) -> None:
        self.base = base
        self.http = requests.Session()
        # Passed with each request: a Session's own ``verify`` loses to REQUESTS_CA_BUNDLE
        # (psf/requests#3829).
        self.verify = verify

    def get(self, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("allow_redirects", False)
        return threads.deferToThread(self.http.get, self.base + path, timeout=30,
                                     verify=self.verify, **kwargs)

    def post(self, path: str, data: Optional[dict[str, str]] = None,
             origin: Optional[str] = "same", **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if origin == "same":
            headers["Origin"] = self.base
        elif origin is not None:
            headers["Origin"] = origin
        kwargs.setdefault("allow_redirects", False)
        return threads.deferToThread(self.http.post, self.base + path, data=data,
                                     headers=headers, timeout=30, verify=self.verify,
                                     **kwargs)

    def sign_in(self, email: str, password: str) -> Any:
        """GET /login for the token, then POST it; the Deferred fires with the POST answer."""
        def post(page: Any) -> Any:
            return self.post("/login", {"csrf_token": csrf_from(page.text), "email": email,
                                        "password": password})
        return self.get("/login").addCallback(post)


class WebServerTestCase(MailServerTestCase):
    """A whole server with its web and admin ports on free loopback ports."""

    def setUp(self):  # type: ignore[no-untyped-def]
        web, admin = free_ports(2)
        self.settings = {**self.settings, "ports": {"WEB": web, "ADMIN": admin}}
        self.web_base = f"http://127.0.0.1:{web}"
        self.admin_base = f"http://127.0.0.1:{admin}"
        return super().setUp()

    def client(self, admin: bool = False) -> WebClient:
        made = WebClient(self.admin_base if admin else self.web_base)
        self.addCleanup(made.http.close)
        return made


class AdminServerTestCase(WebServerTestCase):
    """A WebServerTestCase whose ``ADMIN`` (root@example.com) is an administrator, beside
    the user alice@example.com; ``admin_client()`` signs in on the admin port."""

    ADMIN = "root@example.com"
    users = ("alice@example.com", ADMIN)

    def setUp(self):  # type: ignore[no-untyped-def]
        from mailgosend.db.runner import run_sync
        from mailgosend.store import accounts

        d = super().setUp()
        d.addCallback(lambda _: run_sync(self.server.engine, accounts.set_user_admin,
                                         self.ADMIN, True, write=True))
        return d

    def admin_client(self) -> Any:
        """A WebClient signed in as ADMIN on the admin port (password only: no MFA)."""
        from tests.support.mailserver import PASSWORD

        web = self.client(admin=True)

        def check(answer: Any) -> WebClient:
            assert answer.status_code == 303 and answer.headers["Location"] == "/", \
                answer.status_code
            return web
        return web.sign_in(self.ADMIN, PASSWORD).addCallback(check)


__all__ = ["AdminServerTestCase", "MailServer", "WebClient", "WebServerTestCase", "csrf_from",
           "CHROMIUM"]
