"""store/passkeys.py on SQLite and PostgreSQL: challenges are used once, by their own
session, before they expire; passkey names are unique per user; a user removes only their
own passkeys."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.store import accounts
from mailgosend.store import passkeys as store
from mailgosend.store import sessions
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(minutes=5)


class PasskeyStoreMixin(DatabaseTestBase):
    def setUp(self):  # type: ignore[no-untyped-def]
        result = super().setUp()
        self.write(accounts.add_domain, "example.com", NOW)
        self.alice = self.write(accounts.add_user, "alice@example.com", "x", NOW).id
        self.bob = self.write(accounts.add_user, "bob@example.com", "x", NOW).id
        self.session = self.new_session(self.alice)
        return result

    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=True, **kwargs)

    def new_session(self, user_id: int) -> int:
        return self.write(sessions.create_session, token=secrets.token_bytes(32),  # type: ignore[no-any-return]
                          user_id=user_id, kind="web", csrf_secret=secrets.token_bytes(32),
                          now=NOW, expires_at=LATER, ip="127.0.0.1", user_agent="",
                          pending_step="passkey")

    def challenge(self, session_id: int, user_id: int) -> bytes:
        value = secrets.token_bytes(32)
        self.write(store.put_challenge, value, session_id, user_id, "login", "localhost",
                   "http://localhost", LATER, NOW)
        return value

    def take(self, value: bytes, at: datetime = NOW, **kwargs: Any) -> Any:
        kwargs.setdefault("user_id", self.alice)
        return self.write(store.take_challenge, value, "login", at, **kwargs)

    def test_a_challenge_is_taken_once(self) -> None:
        value = self.challenge(self.session, self.alice)
        self.assertEqual(self.take(value, session_id=self.session),
                         store.Challenge(self.alice, "localhost", "http://localhost"))
        self.assertIsNone(self.take(value, session_id=self.session))

    def test_a_challenge_belongs_to_its_session_and_user(self) -> None:
        value = self.challenge(self.session, self.alice)
        self.assertIsNone(self.take(value, session_id=self.new_session(self.alice)))
        self.assertIsNone(self.take(value, user_id=self.bob))
        self.assertIsNotNone(self.take(value, session_id=self.session))

    def test_an_expired_challenge_is_refused_and_gone(self) -> None:
        value = self.challenge(self.session, self.alice)
        self.assertIsNone(self.take(value, at=LATER))
        self.assertIsNone(self.take(value))

    def test_a_new_challenge_replaces_the_sessions_previous_one(self) -> None:
        first = self.challenge(self.session, self.alice)
        second = self.challenge(self.session, self.alice)
        self.assertIsNone(self.take(first))
        self.assertIsNotNone(self.take(second))

    def test_names_are_unique_per_user_and_removal_is_per_user(self) -> None:
        made = self.write(store.add, self.alice, "Key", b"id-1", b"pk", 0, ("usb",),
                          "localhost", NOW)
        with self.assertRaises(store.NameTaken):
            self.write(store.add, self.alice, "Key", b"id-2", b"pk", 0, (), "localhost", NOW)
        self.write(store.add, self.bob, "Key", b"id-3", b"pk", 0, (), "localhost", NOW)
        self.assertFalse(self.write(store.remove, self.bob, made))
        self.assertEqual([p.transports for p in self.write(store.list_for, self.alice)],
                         [("usb",)])
        self.assertTrue(self.write(store.remove, self.alice, made))
        self.assertFalse(self.write(store.has_any, self.alice))
        self.assertTrue(self.write(store.has_any, self.bob))


class PasskeyStoreSQLiteTests(SQLiteDatabaseMixin, PasskeyStoreMixin, unittest.TestCase):
    pass


class PasskeyStorePostgresTests(PostgresDatabaseMixin, PasskeyStoreMixin, unittest.TestCase):
    pass
