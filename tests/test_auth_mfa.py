"""TOTP enrolment and verification (auth/mfa.py) on SQLite and PostgreSQL, with an injected
clock: single use, the ±1 step window, recovery codes used once, the secret sealed."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

import pyotp
from sqlalchemy import select
from twisted.trial import unittest

from mailgosend import passwords
from mailgosend.admin import AccountAdmin, AccountPolicy
from mailgosend.auth.mfa import MFAError, SecondFactor, WrongCode
from mailgosend.crypto import DecryptionError, KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import recovery_codes, users
from mailgosend.store import accounts
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

PASSWORD = "pw-SECRET-mfa-horse-7"
START = datetime(2026, 12, 5, 12, 0, 15, tzinfo=timezone.utc)   # 15 s into a step
ALICE = "alice@example.com"


class MFATestsMixin(DatabaseTestBase):
    def setUp(self):  # type: ignore[no-untyped-def]
        result = super().setUp()
        self.keyring = KeyRing(secrets.token_bytes(32))
        self.mfa = SecondFactor(self.keyring, issuer="mail.example.com")
        self.now = START
        self.write(accounts.add_domain, "example.com", START)
        self.write(accounts.add_user, ALICE, passwords.hash_password(PASSWORD, 4), START)
        return result

    def write(self, fn: Any, *args: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=True)

    def read(self, fn: Any, *args: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=False)

    def code(self, secret: str, at: datetime, steps: int = 0) -> str:
        return pyotp.TOTP(secret).at(at, counter_offset=steps)

    def enrolled(self) -> tuple[str, list[str]]:
        """Alice with MFA on: her secret and recovery codes; the clock moves one step on."""
        enrolment = self.write(self.mfa.start_enrolment, ALICE)
        codes = self.write(self.mfa.confirm_enrolment, ALICE,
                           self.code(enrolment.secret, self.now), self.now)
        self.now += timedelta(seconds=30)
        return enrolment.secret, codes

    def verify(self, given: str, at: datetime | None = None) -> Any:
        return self.write(self.mfa.verify, ALICE, given, at or self.now)

    # --- enrolment -------------------------------------------------------------------

    def test_enrolment_shows_uri_qr_and_secret_and_needs_confirming(self) -> None:
        enrolment = self.write(self.mfa.start_enrolment, ALICE)
        self.assertIn(f"secret={enrolment.secret}", enrolment.uri)
        self.assertTrue(enrolment.qr_svg.startswith("<svg"))
        self.assertFalse(self.read(self.mfa.is_enabled, ALICE))
        self.assertRaises(WrongCode, self.write, self.mfa.confirm_enrolment, ALICE, "000000",
                          self.now)
        self.assertFalse(self.read(self.mfa.is_enabled, ALICE))
        codes = self.write(self.mfa.confirm_enrolment, ALICE,
                           self.code(enrolment.secret, self.now), self.now)
        self.assertTrue(self.read(self.mfa.is_enabled, ALICE))
        self.assertEqual(len(codes), 10)
        self.assertEqual(self.read(self.mfa.recovery_codes_left, ALICE), 10)

    def test_pending_enrolment_shows_the_same_secret_until_confirmed(self) -> None:
        self.assertIsNone(self.read(self.mfa.pending_enrolment, ALICE))
        enrolment = self.write(self.mfa.start_enrolment, ALICE)
        again = self.read(self.mfa.pending_enrolment, ALICE)
        self.assertEqual((again.secret, again.uri, again.qr_svg),
                         (enrolment.secret, enrolment.uri, enrolment.qr_svg))
        self.write(self.mfa.confirm_enrolment, ALICE, self.code(enrolment.secret, self.now),
                   self.now)
        self.assertIsNone(self.read(self.mfa.pending_enrolment, ALICE))

    def test_secret_is_sealed_for_its_owner_and_codes_are_stored_hashed(self) -> None:
        secret, codes = self.enrolled()
        stored = self.read(lambda c: c.execute(select(users.c.totp_secret)).scalar_one())
        self.assertNotIn(secret.encode(), stored)
        user = self.read(accounts.get_user, ALICE)
        context = f"users:{user.id}:totp_secret".encode()
        self.assertEqual(self.keyring.open(stored, purpose="totp", owner=user.uuid,
                                           context=context), secret.encode())
        self.assertRaises(DecryptionError, self.keyring.open, stored, purpose="totp",
                          owner="0" * 32, context=context)
        hashes = self.read(lambda c: [r.code_hash for r in c.execute(select(recovery_codes))])
        self.assertEqual(len(hashes), 10)
        for item in codes:
            for form in (item, item.replace("-", "")):
                self.assertFalse(any(form.encode() in h for h in hashes))

    def test_enrolment_refused_while_mfa_is_on(self) -> None:
        self.enrolled()
        self.assertRaises(MFAError, self.write, self.mfa.start_enrolment, ALICE)

    # --- verification: a table over the injected clock -------------------------------

    def test_verification_table(self) -> None:
        secret, _ = self.enrolled()
        t = self.now
        cases = [
            # (what, code, at, accepted)
            ("current code", self.code(secret, t), t, True),
            ("the same code again in its window (replay)", self.code(secret, t), t, False),
            ("replay a few seconds later", self.code(secret, t), t + timedelta(seconds=10),
             False),
            ("previous step's code after a newer one was used", self.code(secret, t, -1),
             t, False),
            ("next step's code, one step early", self.code(secret, t, 1), t, True),
            ("a code two steps old", self.code(secret, t + timedelta(minutes=5), -2),
             t + timedelta(minutes=5), False),
            ("a code one step old", self.code(secret, t + timedelta(minutes=5), -1),
             t + timedelta(minutes=5), True),
            ("a code two steps ahead", self.code(secret, t + timedelta(minutes=10), 2),
             t + timedelta(minutes=10), False),
            ("the current code then", self.code(secret, t + timedelta(minutes=10)),
             t + timedelta(minutes=10), True),
            ("garbage", "12345x", t + timedelta(minutes=11), False),
        ]
        for what, given, at, accepted in cases:
            with self.subTest(what):
                if accepted:
                    self.assertEqual(self.verify(given, at), "totp", what)
                else:
                    self.assertRaises(WrongCode, self.verify, given, at)

    def test_recovery_code_is_accepted_once(self) -> None:
        _, codes = self.enrolled()
        self.assertEqual(self.verify(codes[3].upper()), "recovery")
        self.assertRaises(WrongCode, self.verify, codes[3])
        self.assertEqual(self.read(self.mfa.recovery_codes_left, ALICE), 9)
        self.assertEqual(self.verify(codes[4].replace("-", " ")), "recovery")
        self.assertRaises(WrongCode, self.verify, "abcde-fghjk")

    def test_new_recovery_codes_void_the_old_ones(self) -> None:
        secret, old = self.enrolled()
        new = self.write(self.mfa.new_recovery_codes, ALICE, self.code(secret, self.now),
                         self.now)
        self.assertRaises(WrongCode, self.verify, old[0])
        self.assertEqual(self.verify(new[0]), "recovery")

    def test_verify_refuses_everything_while_mfa_is_off(self) -> None:
        enrolment = self.write(self.mfa.start_enrolment, ALICE)   # not confirmed
        self.assertRaises(WrongCode, self.verify, self.code(enrolment.secret, self.now))

    # --- disabling -------------------------------------------------------------------

    def test_disabling_needs_the_password_and_a_code(self) -> None:
        secret, _ = self.enrolled()
        user = self.read(accounts.get_user, ALICE)
        self.assertRaises(MFAError, self.mfa.prove_password, user, "wrong password")
        proof = self.mfa.prove_password(user, PASSWORD)
        self.assertRaises(WrongCode, self.write, self.mfa.disable, proof, "000000", self.now)
        self.assertTrue(self.read(self.mfa.is_enabled, ALICE))
        self.write(self.mfa.disable, proof, self.code(secret, self.now), self.now)
        self.assertFalse(self.read(self.mfa.is_enabled, ALICE))
        self.assertEqual(self.read(self.mfa.recovery_codes_left, ALICE), 0)

    def test_a_password_proof_is_void_after_a_password_change(self) -> None:
        secret, _ = self.enrolled()
        proof = self.mfa.prove_password(self.read(accounts.get_user, ALICE), PASSWORD)
        self.write(accounts.set_password, ALICE, passwords.hash_password("other pw", 4),
                   self.now)
        self.assertRaises(MFAError, self.write, self.mfa.disable, proof,
                          self.code(secret, self.now), self.now)
        self.assertTrue(self.read(self.mfa.is_enabled, ALICE))

    def test_admin_reset_turns_mfa_off_for_a_locked_out_user(self) -> None:
        self.enrolled()
        admin = AccountAdmin(AccountPolicy(bcrypt_cost=4))
        self.assertTrue(self.write(admin.reset_mfa, ALICE))
        self.assertFalse(self.read(self.mfa.is_enabled, ALICE))
        self.assertFalse(self.write(admin.reset_mfa, ALICE))
        # And she can enrol again from scratch.
        self.enrolled()


class MFASQLiteTests(SQLiteDatabaseMixin, MFATestsMixin, unittest.TestCase):
    pass


class MFAPostgresTests(PostgresDatabaseMixin, MFATestsMixin, unittest.TestCase):
    pass
