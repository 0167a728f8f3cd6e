"""web/account.py and web/login.py with a Site built in the test: the second-step hook of the
sign-in state machine (how TOTP and passkeys plug in), and error pages without tracebacks."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import jinja2
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mailgosend import passwords
from mailgosend.auth.bans import BanCache
from mailgosend.auth.portal import build_portal
from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from mailgosend.store.security import SecurityStore
from mailgosend.web.assets import asset_dir
from mailgosend.web.site import build_site
from mailgosend.web.static import StaticFiles
from mailgosend.web.templates import make_environment
from mailgosend.workers import WorkerPool
from tests.support.db import SQLiteDatabaseMixin
from tests.support.web import WebClient, csrf_from
from tests.support.config import auth_settings
from tests.test_web_sessions import settings

ALICE = "alice@example.com"
PASSWORD = "pw-SECRET-web-account-3"

STEP_TEMPLATE = """{% extends "base.html" %}{% set title = "Code" %}{% block content %}
{% if error %}<p role="alert">{{ error }}</p>{% endif %}
<form method="post" action="/login/step">
<input type="hidden" name="csrf_token" value="{{ csrf_token }}">
<label for="code">Code</label><input id="code" name="code">
<button type="submit">Verify</button></form>{% endblock %}"""


class CodeStep:
    """A second step as the TOTP work will add one: required for some users only."""

    name = "code"
    template = "test/code.html"

    def __init__(self, users: set[str]) -> None:
        self.users = users

    def required(self, user: accounts.User) -> Any:
        return defer.succeed(user.email in self.users)

    def verify(self, user: accounts.User, form: dict[str, str], client_ip: str) -> Any:
        return defer.succeed(form.get("code") == "424242")


class BrokenPortal:
    """A portal whose database has gone away mid-request."""

    def login(self, *args: Any) -> Any:
        return defer.fail(RuntimeError("secret internals: connection to db-7 lost"))


class AccountPagesTests(SQLiteDatabaseMixin, unittest.TestCase):
    def setUp(self):  # type: ignore[no-untyped-def]
        d = super().setUp()
        now = datetime.now(timezone.utc)
        run_sync(self.engine, accounts.add_domain, "example.com", now, write=True)
        run_sync(self.engine, accounts.add_user, ALICE, passwords.hash_password(PASSWORD, 4),
                 now, write=True)
        config = auth_settings()
        self.security = SecurityStore(self.runner, config, reactor)
        self.bans = BanCache(self.security, reactor)
        workers = WorkerPool(reactor, 2)
        workers.startService()
        self.addCleanup(workers.stopService)
        self.portal = build_portal(self.runner, self.security, self.bans, workers, config)
        return d

    def serve(self, portal: Any = None, steps: tuple[Any, ...] = (),
              upload_prefixes: tuple[bytes, ...] = ()) -> WebClient:
        static = StaticFiles(asset_dir("static"))
        templates = make_environment(static)
        templates.loader = jinja2.ChoiceLoader([
            jinja2.DictLoader({"test/code.html": STEP_TEMPLATE}), templates.loader])
        site = build_site(settings=settings(hostnames=frozenset({"localhost"})),
                          runner=self.runner, portal=portal or self.portal,
                          security=self.security, bans=self.bans.for_service("web"),
                          clock=reactor, static=static, templates=templates, steps=steps,
                          upload_prefixes=upload_prefixes)
        self.addCleanup(self.close_channels, site)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = WebClient(f"http://127.0.0.1:{port.getHost().port}")
        self.addCleanup(client.http.close)
        return client

    def close_channels(self, site: Any) -> Any:
        for channel in site.open_connections():
            channel.transport.abortConnection()
        return task.deferLater(reactor, 0, lambda: None)

    @defer.inlineCallbacks
    def test_a_registered_second_step_is_asked_after_the_password(self) -> Any:
        web = self.serve(steps=(CodeStep({ALICE}),))
        response = yield web.sign_in(ALICE, PASSWORD)
        self.assertEqual(response.headers["Location"], "/login/step")
        pending = web.http.cookies.get("mailgosend-web-session")
        # Half signed in: the account page is not open yet.
        self.assertEqual((yield web.get("/")).headers["Location"], "/login/step")
        form = yield web.get("/login/step")
        self.assertIn('<label for="code">Code</label>', form.text)
        wrong = yield web.post("/login/step", {"csrf_token": csrf_from(form.text),
                                               "code": "000000"})
        self.assertEqual(wrong.status_code, 403)
        self.assertIn("That code is not correct.", wrong.text)
        right = yield web.post("/login/step", {"csrf_token": csrf_from(form.text),
                                               "code": "424242"})
        self.assertEqual(right.headers["Location"], "/")
        self.assertNotEqual(web.http.cookies.get("mailgosend-web-session"), pending)
        self.assertEqual((yield web.get("/")).status_code, 200)

    @defer.inlineCallbacks
    def test_users_without_the_step_sign_in_with_the_password_alone(self) -> Any:
        web = self.serve(steps=(CodeStep(set()),))
        response = yield web.sign_in(ALICE, PASSWORD)
        self.assertEqual(response.headers["Location"], "/")
        self.assertEqual((yield web.get("/login/step")).headers["Location"], "/")

    @defer.inlineCallbacks
    def test_an_internal_error_shows_a_page_without_the_traceback(self) -> Any:
        errors: list[Any] = []
        web = self.serve(portal=BrokenPortal())
        response = yield web.sign_in(ALICE, PASSWORD)
        self.assertEqual(response.status_code, 500)
        self.assertIn("Something went wrong", response.text)
        for leak in ("Traceback", "RuntimeError", "db-7", ".py"):
            self.assertNotIn(leak, response.text)
        self.assertIn("Content-Security-Policy", response.headers)
        errors.extend(self.flushLoggedErrors(RuntimeError))
        self.assertEqual(len(errors), 1)

    @defer.inlineCallbacks
    def test_upload_routes_take_bodies_up_to_max_message_size_and_forms_do_not(self) -> Any:
        web = self.serve(upload_prefixes=(b"/upload/",))   # MAX_MESSAGE_SIZE 1024 here
        big_form = yield web.post("/login", data={"email": "x" * 70_000})
        self.assertEqual(big_form.status_code, 413)
        upload = yield web.post("/upload/file", data={"part": "x" * 900})
        self.assertEqual(upload.status_code, 404)            # accepted, then routed
        too_big = yield web.post("/upload/file", data={"part": "x" * 2000})
        self.assertEqual(too_big.status_code, 413)
        # Chunked bodies (no Content-Length) are counted as they arrive.
        chunked = yield web.post("/login", data=iter([b"email=", b"x" * 70_000]))
        self.assertEqual(chunked.status_code, 413)
