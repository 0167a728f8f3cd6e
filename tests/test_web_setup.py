"""The first administrator from the admin port (web/setup.py), over raw HTTP against a whole
server started without an administrator: the token comes from the server's log; a wrong
token, a missing CSRF token or a foreign Origin is refused and creates nothing; the page is
gone (404) once an administrator exists, made here or by ``mailgosend create-admin``."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher

from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from tests.support.web import WebClient, WebServerTestCase, csrf_from

ROOT = "root@setup.example"
ROOT_PASSWORD = "first admin passphrase"
TOKEN = re.compile(r"setup token (\S+) ")


class SetupTestBase(WebServerTestCase):
    users = ()

    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        self.logged: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            self.logged.append(formatEvent(event))
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        # Not super(): a browser subclass must not get BrowserTestCase's administrator.
        yield WebServerTestCase.setUp(self)
        yield self.server.root.components["first_admin_setup"].announced

    def token_from_log(self) -> str:
        found = [m.group(1) for line in self.logged for m in [TOKEN.search(line)] if m]
        self.assertEqual(len(found), 1, self.logged)
        self.assertTrue(any("/setup" in line for line in self.logged))
        return found[0]

    @defer.inlineCallbacks
    def submit(self, web: WebClient, token: str, **fields: str) -> Any:
        page = yield web.get("/setup")
        self.assertEqual(page.status_code, 200)
        form = {"csrf_token": csrf_from(page.text), "setup_token": token, "email": ROOT,
                "password": ROOT_PASSWORD, "password_again": ROOT_PASSWORD, **fields}
        response = yield web.post("/setup", form)
        return response

    def users_now(self) -> list[str]:
        return [u.email for u in run_sync(self.server.engine, accounts.list_users,
                                          write=False)]


class SetupTests(SetupTestBase):
    @defer.inlineCallbacks
    def test_the_token_from_the_log_creates_the_first_admin_once(self) -> Any:
        token = self.token_from_log()
        web = self.client(admin=True)
        self.assertEqual((yield self.client().get("/setup")).status_code, 404)  # web port
        wrong = yield self.submit(web, "not-the-token")
        self.assertEqual(wrong.status_code, 403)
        self.assertIn("The setup token is not correct.", wrong.text)
        weak = yield self.submit(web, token, password="password", password_again="password")
        self.assertEqual(weak.status_code, 400)
        self.assertIn("commonly used", weak.text)
        self.assertEqual(self.users_now(), [])
        created = yield self.submit(web, token)
        self.assertEqual((created.status_code, created.headers["Location"]), (303, "/login"))
        self.assertEqual(self.users_now(), [ROOT])
        self.assertEqual((yield self.client(admin=True).sign_in(ROOT, ROOT_PASSWORD)
                          ).headers["Location"], "/")
        # Gone, and the token useless.
        self.assertEqual((yield web.get("/setup")).status_code, 404)
        again = yield web.post("/setup", {"csrf_token": "x", "setup_token": token,
                                          "email": "two@setup.example",
                                          "password": ROOT_PASSWORD,
                                          "password_again": ROOT_PASSWORD})
        self.assertIn(again.status_code, (403, 404))
        self.assertEqual(self.users_now(), [ROOT])

    @defer.inlineCallbacks
    def test_csrf_refusals_create_nothing(self) -> Any:
        token = self.token_from_log()
        web = self.client(admin=True)
        page = yield web.get("/setup")
        good = csrf_from(page.text)
        form = {"setup_token": token, "email": ROOT, "password": ROOT_PASSWORD,
                "password_again": ROOT_PASSWORD}
        for fields, origin in (({}, "same"), ({"csrf_token": "forged"}, "same"),
                               ({"csrf_token": good}, "https://evil.example")):
            response = yield web.post("/setup", {**form, **fields}, origin=origin)
            self.assertEqual(response.status_code, 403, (fields, origin))
        self.assertEqual(self.users_now(), [])

    @defer.inlineCallbacks
    def test_an_admin_made_by_the_cli_closes_the_page(self) -> Any:
        token = self.token_from_log()
        web = self.client(admin=True)
        self.assertEqual((yield web.get("/setup")).status_code, 200)
        self.server.add_user("cli@example.com")
        run_sync(self.server.engine, accounts.set_user_admin, "cli@example.com", True,
                 write=True)
        self.assertEqual((yield web.get("/setup")).status_code, 404)
        self.assertIn("Page not found", (yield web.get("/setup")).text)
        late = yield web.post("/setup", {"setup_token": token, "email": ROOT})
        self.assertIn(late.status_code, (403, 404))
        self.assertEqual(self.users_now(), ["cli@example.com"])


class SetupWithAnAdminTests(WebServerTestCase):
    users = ("root@example.com",)

    @defer.inlineCallbacks
    def test_no_token_and_no_page_when_an_admin_exists_at_start(self) -> Any:
        yield self.server.stop()
        run_sync(self.server.engine, accounts.set_user_admin, "root@example.com", True,
                 write=True)
        logged: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            logged.append(formatEvent(event))
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        yield self.server.start()
        yield self.server.root.components["first_admin_setup"].announced
        self.assertFalse([line for line in logged if "setup token" in line])
        self.assertEqual((yield self.client(admin=True).get("/setup")).status_code, 404)
