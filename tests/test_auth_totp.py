"""TOTP codes and recovery codes (auth/totp.py): tables over an injected time."""

from __future__ import annotations

import base64

import pyotp
from twisted.trial import unittest

from mailgosend.auth import totp

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = 1_795_000_015.0          # 15 s into its 30 s step
STEP = int(NOW) // 30


def code(step: int) -> str:
    return pyotp.TOTP(SECRET).generate_otp(step)


class MatchingStepTests(unittest.TestCase):
    def test_table(self) -> None:
        cases = [
            # (what, code, last accepted step, expected step or None)
            ("current step", code(STEP), None, STEP),
            ("one step late (clock or typing delay)", code(STEP - 1), None, STEP - 1),
            ("one step early (phone clock ahead)", code(STEP + 1), None, STEP + 1),
            ("two steps late is outside the window", code(STEP - 2), None, None),
            ("two steps early is outside the window", code(STEP + 2), None, None),
            ("replay of the step just accepted", code(STEP), STEP, None),
            ("an older step after a newer one was used", code(STEP - 1), STEP, None),
            ("the next step after one was used", code(STEP + 1), STEP, STEP + 1),
            ("current step after an old one was used", code(STEP), STEP - 5, STEP),
            ("spaces are ignored", code(STEP)[:3] + " " + code(STEP)[3:], None, STEP),
            ("five digits", code(STEP)[:5], None, None),
            ("letters", "12a456", None, None),
            ("empty", "", None, None),
        ]
        for what, given, last, expected in cases:
            with self.subTest(what):
                self.assertEqual(totp.matching_step(SECRET, given, NOW, last), expected, what)

    def test_step_follows_rfc_6238_test_vector(self) -> None:
        # RFC 6238 Appendix B: T = 59 s -> 0x1 with X = 30; 8-digit SHA-1 code 94287082.
        b32 = base64.b32encode(b"12345678901234567890").decode()
        self.assertEqual(totp.time_step(59), 1)
        self.assertEqual(pyotp.TOTP(b32, digits=8).generate_otp(totp.time_step(59)), "94287082")


class SecretTests(unittest.TestCase):
    def test_secret_is_160_bits_of_base32(self) -> None:
        secret = totp.new_secret()
        self.assertEqual(len(secret), 32)
        self.assertEqual(len(base64.b32decode(secret)), 20)
        self.assertNotEqual(secret, totp.new_secret())

    def test_provisioning_uri_names_issuer_and_account(self) -> None:
        uri = totp.provisioning_uri(SECRET, "alice@example.com", "mail.example.com")
        self.assertTrue(uri.startswith("otpauth://totp/mail.example.com:alice%40example.com?"),
                        uri)
        self.assertIn(f"secret={SECRET}", uri)

    def test_qr_code_is_svg_without_style_or_script(self) -> None:
        svg = totp.qr_svg(totp.provisioning_uri(SECRET, "alice@example.com", "x"))
        self.assertTrue(svg.startswith("<svg"), svg[:40])
        for forbidden in ("<script", "style=", "<style", "href"):
            self.assertNotIn(forbidden, svg)


class RecoveryCodeTests(unittest.TestCase):
    def test_ten_distinct_codes_shown_with_a_dash(self) -> None:
        codes = totp.new_recovery_codes()
        self.assertEqual(len(set(codes)), 10)
        for item in codes:
            self.assertRegex(item, r"^[a-z2-9]{5}-[a-z2-9]{5}$")

    def test_normalisation_table(self) -> None:
        cases = [("abcde-fghjk", "abcdefghjk"), ("ABCDE FGHJK", "abcdefghjk"),
                 (" abcdefghjk ", "abcdefghjk"), ("abcde-fghj", None),
                 ("abcde-fghj0", None),   # 0 is not in the alphabet
                 ("123456", None), ("", None)]
        for given, expected in cases:
            with self.subTest(given):
                self.assertEqual(totp.normalize_recovery_code(given), expected)

    def test_hash_depends_on_the_user_key(self) -> None:
        self.assertNotEqual(totp.recovery_code_hash(b"k" * 32, "abcdefghjk"),
                            totp.recovery_code_hash(b"j" * 32, "abcdefghjk"))
