"""The second step of a sign-in: codes accepted once, wrong codes counted toward bans."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

import pyotp
from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.auth.checker import LoginBanned
from mailgosend.auth.mfa import SecondFactor, WrongCode
from mailgosend.auth.secondstep import SecondStep
from mailgosend.crypto import KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import security_events
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.test_auth import PortalFixture, settings

ALICE = "alice@example.com"


class SecondStepTestsMixin(PortalFixture):
    def setUp(self):  # type: ignore[no-untyped-def]
        result = super().setUp()
        self.mfa = SecondFactor(KeyRing(secrets.token_bytes(32)))
        enrolment = run_sync(self.engine, self.mfa.start_enrolment, ALICE, write=True)
        self.secret = enrolment.secret
        self.codes = run_sync(self.engine, self.mfa.confirm_enrolment, ALICE,
                              self.code(-1), self.now(), write=True)
        self.step = SecondStep(self.runner, self.security, self.bans, self.mfa)
        return result

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    def code(self, offset: int = 0) -> str:
        return pyotp.TOTP(self.secret).at(self.now(), counter_offset=offset)

    def check(self, code: str, ip: str = "192.0.2.1") -> defer.Deferred:
        return self.step.check(ALICE, code, ip, "web")

    @defer.inlineCallbacks
    def test_code_accepted_once(self):  # type: ignore[no-untyped-def]
        self.assertEqual((yield self.check(self.code())), "totp")
        yield self.assertFailure(self.check(self.code()), WrongCode)

    @defer.inlineCallbacks
    def test_recovery_code_accepted_once_and_recorded(self):  # type: ignore[no-untyped-def]
        self.assertEqual((yield self.check(self.codes[0])), "recovery")
        yield self.assertFailure(self.check(self.codes[0]), WrongCode)
        kinds = [r.kind for r in self.rows(security_events)]
        self.assertIn("mfa_recovery_code_used", kinds)

    @defer.inlineCallbacks
    def test_wrong_codes_ban_the_address(self):  # type: ignore[no-untyped-def]
        for _ in range(settings()["BRUTE_MAX_TRIES"]):
            yield self.assertFailure(self.check("000000"), WrongCode)
        # Even the right code is refused from a banned address; another address may try.
        yield self.assertFailure(self.check(self.code()), LoginBanned)
        self.assertEqual((yield self.check(self.code(), ip="198.51.100.9")), "totp")


class SecondStepSQLiteTests(SQLiteDatabaseMixin, SecondStepTestsMixin, unittest.TestCase):
    pass


class SecondStepPostgresTests(PostgresDatabaseMixin, SecondStepTestsMixin, unittest.TestCase):
    pass
