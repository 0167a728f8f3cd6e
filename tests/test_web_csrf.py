"""web/csrf.py: tokens bound to their session, and the Origin rule."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.web.csrf import csrf_token, csrf_valid, origin_allowed

SECRET = bytes(range(32))
OWN = ["https://mail.example.com"]


class CSRFTokenTests(unittest.TestCase):
    def test_token_verifies_for_its_own_binding_only(self) -> None:
        token = csrf_token(SECRET, b"session:one")
        self.assertTrue(csrf_valid(SECRET, b"session:one", token))
        for binding, secret, given in [(b"session:two", SECRET, token),
                                       (b"session:one", bytes(32), token),
                                       (b"session:one", SECRET, ""),
                                       (b"session:one", SECRET, None),
                                       (b"session:one", SECRET, token[:-1]),
                                       (b"session:one", SECRET, token + "x"),
                                       (b"session:one", SECRET, "é" * 43)]:
            with self.subTest(binding=binding, given=given):
                self.assertFalse(csrf_valid(secret, binding, given))


class OriginTests(unittest.TestCase):
    def test_table(self) -> None:
        cases = [
            ("https://mail.example.com", None, True),
            ("HTTPS://MAIL.EXAMPLE.COM", None, True),
            ("https://evil.example", None, False),
            ("http://mail.example.com", None, False),      # another scheme, another origin
            ("https://mail.example.com:8443", None, False),
            ("null", None, False),                         # Referrer-Policy: no-referrer trap
            (None, "https://mail.example.com/login", True),
            (None, "https://mail.example.com", True),
            (None, "https://mail.example.com.evil.example/", False),
            (None, "https://evil.example/", False),
            (None, None, True),                            # a script: the token decides
        ]
        for origin, referer, expected in cases:
            with self.subTest(origin=origin, referer=referer):
                self.assertEqual(origin_allowed(origin, referer, OWN), expected)
