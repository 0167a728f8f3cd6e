"""Tests for mailgosend.passwords: stored format, verification, rehash policy, strength rules."""

from __future__ import annotations

import base64
import hashlib
import hmac

import bcrypt
from twisted.trial.unittest import SynchronousTestCase

from mailgosend.passwords import (
    check_password_strength,
    hash_password,
    needs_rehash,
    verify_password,
)

PREFIX = "$bcrypt-sha256$v=1$"


class HashPasswordTests(SynchronousTestCase):
    def test_right_password_verifies(self) -> None:
        stored = hash_password("correct horse battery", rounds=4)
        self.assertTrue(verify_password("correct horse battery", stored))

    def test_wrong_password_does_not_verify(self) -> None:
        stored = hash_password("correct horse battery", rounds=4)
        self.assertFalse(verify_password("correct horse battery!", stored))
        self.assertFalse(verify_password("", stored))

    def test_hashes_are_salted(self) -> None:
        first = hash_password("same password", rounds=4)
        self.assertNotEqual(first, hash_password("same password", rounds=4))

    def test_stored_format_is_prefixed_bcrypt_of_hmac_prehash(self) -> None:
        stored = hash_password("über secret", rounds=4)
        self.assertTrue(stored.startswith(PREFIX + "$2b$04$"))
        digest = hmac.new(b"mailgosend-bcrypt-v1", "über secret".encode(), hashlib.sha256).digest()
        inner = stored[len(PREFIX) :].encode("ascii")
        self.assertTrue(bcrypt.checkpw(base64.b64encode(digest), inner))

    def test_default_cost_is_12(self) -> None:
        stored = hash_password("default cost password")
        cost = int(stored[len(PREFIX) :].split("$")[2])
        self.assertEqual(cost, 12)

    def test_rounds_outside_bcrypt_range_are_refused(self) -> None:
        self.assertRaises(ValueError, hash_password, "password here", rounds=3)
        self.assertRaises(ValueError, hash_password, "password here", rounds=32)

    def test_passwords_sharing_a_72_byte_prefix_do_not_match(self) -> None:
        first = "x" * 72 + "first"
        second = "x" * 72 + "second"
        stored = hash_password(first, rounds=4)
        self.assertTrue(verify_password(first, stored))
        self.assertFalse(verify_password(second, stored))
        self.assertFalse(verify_password("x" * 72, stored))

    def test_long_multibyte_password_verifies(self) -> None:
        password = "пароль-" * 20  # well over 72 UTF-8 bytes
        self.assertTrue(verify_password(password, hash_password(password, rounds=4)))

    def test_password_with_nul_character_verifies(self) -> None:
        stored = hash_password("before\x00after", rounds=4)
        self.assertTrue(verify_password("before\x00after", stored))
        self.assertFalse(verify_password("before", stored))

    def test_composed_and_decomposed_accents_match(self) -> None:
        composed = "caf\u00e9 au lait"
        decomposed = "cafe\u0301 au lait"
        self.assertTrue(verify_password(decomposed, hash_password(composed, rounds=4)))


class ImportedHashTests(SynchronousTestCase):
    def test_plain_2b_hash_verifies(self) -> None:
        stored = bcrypt.hashpw(b"imported pw", bcrypt.gensalt(4)).decode()
        self.assertTrue(verify_password("imported pw", stored))
        self.assertFalse(verify_password("imported px", stored))

    def test_plain_2a_and_2y_hashes_verify(self) -> None:
        stored_2a = bcrypt.hashpw(b"imported pw", bcrypt.gensalt(4, prefix=b"2a")).decode()
        stored_2y = "$2y$" + bcrypt.hashpw(b"imported pw", bcrypt.gensalt(4)).decode()[4:]
        for stored in (stored_2a, stored_2y):
            self.assertTrue(verify_password("imported pw", stored), stored[:4])
            self.assertFalse(verify_password("imported pX", stored), stored[:4])

    def test_plain_hash_with_over_72_byte_password_is_false_not_an_error(self) -> None:
        stored = bcrypt.hashpw(b"y" * 72, bcrypt.gensalt(4)).decode()
        self.assertTrue(verify_password("y" * 72, stored))
        self.assertFalse(verify_password("y" * 73, stored))


class MalformedStoredValueTests(SynchronousTestCase):
    def test_malformed_stored_values_return_false(self) -> None:
        valid_inner = bcrypt.hashpw(b"anything", bcrypt.gensalt(4)).decode()
        cases = [
            "",
            "anything",
            "$1$abc$def",
            PREFIX,
            PREFIX + "garbage",
            PREFIX + valid_inner[:-1],
            PREFIX + valid_inner + "x",
            "$bcrypt-sha256$v=2$" + valid_inner,
            "$2b$04$short",
            "$2b$4$" + valid_inner[7:],
            "$2c$04$" + valid_inner[7:],
            "$2x$04$" + valid_inner[7:],
            "$2b$04$" + "!" * 53,
            "$2b$04$" + "é" * 53,
            "$2b$99$" + valid_inner[7:],
        ]
        for stored in cases:
            self.assertFalse(verify_password("anything", stored), repr(stored))


class NeedsRehashTests(SynchronousTestCase):
    def test_lower_cost_needs_rehash(self) -> None:
        self.assertTrue(needs_rehash(hash_password("a password!", rounds=4), rounds=5))

    def test_same_cost_does_not_need_rehash(self) -> None:
        self.assertFalse(needs_rehash(hash_password("a password!", rounds=4), rounds=4))

    def test_higher_cost_is_kept(self) -> None:
        self.assertFalse(needs_rehash(hash_password("a password!", rounds=5), rounds=4))

    def test_default_target_is_12(self) -> None:
        # Only the cost field is read, so relabelling a cheap hash stands in for real ones.
        stored = hash_password("a password!", rounds=4)
        self.assertTrue(needs_rehash(stored.replace("$2b$04$", "$2b$11$")))
        self.assertFalse(needs_rehash(stored.replace("$2b$04$", "$2b$12$")))

    def test_plain_bcrypt_needs_rehash_into_our_format(self) -> None:
        stored = bcrypt.hashpw(b"imported pw", bcrypt.gensalt(4)).decode()
        self.assertTrue(needs_rehash(stored, rounds=4))

    def test_malformed_needs_rehash(self) -> None:
        self.assertTrue(needs_rehash(PREFIX + "garbage"))
        self.assertTrue(needs_rehash(""))


class PasswordStrengthTests(SynchronousTestCase):
    def test_strength_rules(self) -> None:
        # (password, email, expected reason fragment or None when acceptable)
        cases: list[tuple[str, str, str | None]] = [
            ("", "", "empty"),
            ("short", "", "at least 8"),
            ("7 chars", "", "at least 8"),
            ("8 chars!", "", None),
            ("lowercaseonly", "", None),          # no composition rules
            ("password", "", "commonly used"),    # the shipped list (common_passwords.py)
            ("Sunshine", "", "commonly used"),
            ("trustno1", "", "commonly used"),
            ("correct horse battery staple", "", None),
            ("aaaaaaaaaaaa", "", "repeated"),
            ("############", "", "repeated"),
            ("password123", "", "commonly used"),
            ("PassWord123", "", "commonly used"),
            ("qwertyuiop", "", "commonly used"),
            ("1234567890", "", "commonly used"),
            ("letmein123", "", "commonly used"),
            ("alice@example.org", "alice@example.org", "email address"),
            ("Alice@Example.org", "alice@example.org", "email address"),
            ("alicealice", "alice@example.org", "mailbox name"),
            ("my-alice-secret-2024", "alice@example.org", "mailbox name"),
            ("secret-ALICE-2024", "alice@example.org", "mailbox name"),
            ("a totally different one", "alice@example.org", None),
            ("jo is my long password", "jo@example.org", None),
            ("postmaster", "postmaster", "mailbox name"),
        ]
        for password, email, expected in cases:
            reason = check_password_strength(password, email=email)
            if expected is None:
                self.assertIsNone(reason, (password, email))
            else:
                self.assertIsNotNone(reason, (password, email))
                assert reason is not None
                self.assertIn(expected, reason, (password, email))
                # A clause the caller embeds ("password refused: <reason>; nothing was
                # changed"): no capital to start, no full stop to end.
                self.assertFalse(reason.endswith("."), reason)
                self.assertEqual(reason[0], reason[0].lower(), reason)
