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


__all__ = ["MailServer", "WebClient", "WebServerTestCase", "csrf_from", "CHROMIUM"]
