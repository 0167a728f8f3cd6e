"""web/sessions.py over store/sessions.py, on SQLite and PostgreSQL, with an injected clock:
lifetime, idle timeout, last-seen updates, rotation at each privilege change, and the
session list."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from mailgosend.store import sessions as store
from mailgosend.web.sessions import SessionManager
from mailgosend.web.settings import WebSettings
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

START = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc).timestamp()


def settings(**changes: Any) -> WebSettings:
    values: dict[str, Any] = dict(
        kind="web", secret=bytes(32), hostnames=frozenset({"localhost"}), trusted_proxies=(),
        tls=False, secure_cookie=False, max_age=3600, idle_timeout=600, rate_per_min=60,
        max_upload=1024)
    values.update(changes)
    return WebSettings(**values)


class Browser:
    """The few Request methods SessionManager uses, with a cookie jar like a browser's."""

    web_session_loaded = False
    web_session: Any = None

    def __init__(self, ip: str = "192.0.2.1", agent: str = "Firefox/128.0") -> None:
        self.client_ip = ip
        self.agent = agent
        self.jar: dict[bytes, bytes] = {}
        self.set_cookies: list[tuple[bytes, bytes, dict[str, Any]]] = []

    def next_request(self) -> "Browser":
        fresh = Browser(self.client_ip, self.agent)
        fresh.jar = self.jar
        return fresh

    def isSecure(self) -> bool:
        return False

    def getCookie(self, name: bytes) -> Optional[bytes]:
        return self.jar.get(name)

    def addCookie(self, name: bytes, value: bytes, **attributes: Any) -> None:
        self.set_cookies.append((name, value, attributes))
        if attributes.get("max_age") == b"0":
            self.jar.pop(name, None)
        else:
            self.jar[name] = value

    def getHeader(self, name: str) -> Optional[str]:
        return self.agent if name == "user-agent" else None


class SessionManagerTestsMixin(DatabaseTestBase):
    def setUp(self):  # type: ignore[no-untyped-def]
        d = super().setUp()
        now = datetime.fromtimestamp(START, timezone.utc)
        run_sync(self.engine, accounts.add_domain, "example.com", now, write=True)
        self.alice = run_sync(self.engine, accounts.add_user, "alice@example.com", "hash", now,
                              write=True)
        self.clock = Clock()
        self.clock.advance(START)
        self.manager = SessionManager(self.runner, settings(), self.clock)
        return d

    def sign_in(self, browser: Browser, pending: Optional[str] = None) -> Any:
        return self.manager.start(browser.next_request(), self.alice.id, self.alice.email,
                                  pending)

    def load(self, browser: Browser) -> Any:
        return self.manager.load(browser.next_request())

    @defer.inlineCallbacks
    def test_cookie_is_httponly_strict_and_the_database_keeps_only_a_hash(self) -> Any:
        browser = Browser()
        request = browser.next_request()
        yield self.manager.start(request, self.alice.id, self.alice.email, None)
        name, value, attributes = request.set_cookies[-1]
        self.assertEqual(name, b"mailgosend-web-session")
        self.assertEqual(attributes, {"path": b"/", "max_age": b"3600", "secure": False,
                                      "httpOnly": True, "sameSite": "strict"})
        token = bytes.fromhex(value.decode())
        self.assertEqual(len(token), 32)
        row = run_sync(self.engine, store.find_session, token, "web", write=False)
        self.assertIsNotNone(row)
        from sqlalchemy import select

        from mailgosend.db.schema import sessions
        stored = run_sync(self.engine, lambda c: c.execute(
            select(sessions.c.token_hash)).scalar_one(), write=False)
        self.assertEqual(stored, store.token_hash(token))
        self.assertNotEqual(stored, token)

    @defer.inlineCallbacks
    def test_a_session_ends_after_the_idle_timeout(self) -> Any:
        browser = Browser()
        yield self.sign_in(browser)
        self.clock.advance(599)
        self.assertIsNotNone((yield self.load(browser)))
        self.clock.advance(599)        # last seen was refreshed by the load above
        self.assertIsNotNone((yield self.load(browser)))
        self.clock.advance(600)
        self.assertIsNone((yield self.load(browser)))

    @defer.inlineCallbacks
    def test_a_session_ends_at_its_maximum_age_however_active(self) -> Any:
        browser = Browser()
        yield self.sign_in(browser)
        for _ in range(11):
            self.clock.advance(300)
            self.assertIsNotNone((yield self.load(browser)))
        self.clock.advance(300)
        self.assertIsNone((yield self.load(browser)))

    @defer.inlineCallbacks
    def test_passing_a_pending_step_rotates_the_token_of_the_same_session(self) -> Any:
        browser = Browser()
        pending = yield self.sign_in(browser, pending="totp")
        self.assertFalse(pending.signed_in)
        old_token = browser.jar[b"mailgosend-web-session"]
        request = browser.next_request()
        yield self.manager.load(request)
        done = yield self.manager.start(request, self.alice.id, self.alice.email, None)
        self.assertEqual(done.id, pending.id)
        self.assertTrue(done.signed_in)
        self.assertNotEqual(done.csrf_secret, pending.csrf_secret)
        self.assertNotEqual(browser.jar[b"mailgosend-web-session"], old_token)
        thief = Browser()
        thief.jar[b"mailgosend-web-session"] = old_token
        self.assertIsNone((yield self.load(thief)))

    @defer.inlineCallbacks
    def test_pending_sessions_are_not_listed(self) -> Any:
        laptop, phone = Browser("192.0.2.1"), Browser("192.0.2.2")
        signed = yield self.sign_in(laptop)
        yield self.sign_in(phone, pending="totp")
        rows = yield self.manager.list_for(signed)
        self.assertEqual([r.ip for r in rows], ["192.0.2.1"])

    @defer.inlineCallbacks
    def test_last_seen_and_address_follow_use(self) -> Any:
        browser = Browser("192.0.2.1")
        session = yield self.sign_in(browser)
        self.clock.advance(120)
        moved = browser.next_request()
        moved.client_ip = "198.51.100.4"
        yield self.manager.load(moved)
        rows = yield self.manager.list_for(session)
        self.assertEqual(rows[0].ip, "198.51.100.4")
        self.assertEqual(rows[0].last_seen_at.timestamp(), START + 120)

    @defer.inlineCallbacks
    def test_end_user_sessions_keeps_only_the_one_asked(self) -> Any:
        a, b, c = Browser(), Browser(), Browser()
        keep = yield self.sign_in(a)
        yield self.sign_in(b)
        yield self.sign_in(c)
        ended = run_sync(self.engine, store.end_user_sessions, self.alice.id, keep=keep.id,
                         write=True)
        self.assertEqual(ended, 2)
        self.assertIsNotNone((yield self.load(a)))
        self.assertIsNone((yield self.load(b)))

    @defer.inlineCallbacks
    def test_maintenance_removes_sessions_past_their_lifetime(self) -> Any:
        from mailgosend.maintenance import MaintenanceService
        from mailgosend.store.blobs import DatabaseBlobs

        old, recent = Browser(), Browser()
        yield self.sign_in(old)
        self.clock.advance(1800)
        yield self.sign_in(recent)
        self.clock.advance(1800)                       # the first is now 3600 s old
        yield MaintenanceService(self.runner, DatabaseBlobs(self.mktemp()),
                                 self.clock).run_once()
        count = run_sync(self.engine, lambda c: len(c.execute(
            store.sessions.select()).all()), write=False)
        self.assertEqual(count, 1)                     # the recent one is kept

    @defer.inlineCallbacks
    def test_a_web_session_does_not_open_the_admin_port(self) -> Any:
        browser = Browser()
        yield self.sign_in(browser)
        admin = SessionManager(self.runner, settings(kind="admin"), self.clock)
        request = browser.next_request()
        request.jar[b"mailgosend-admin-session"] = browser.jar[b"mailgosend-web-session"]
        self.assertIsNone((yield admin.load(request)))


class SQLiteSessionTests(SQLiteDatabaseMixin, SessionManagerTestsMixin, unittest.TestCase):
    pass


class PostgresSessionTests(PostgresDatabaseMixin, SessionManagerTestsMixin,
                           unittest.TestCase):
    pass
