"""POP3's answer to a bad SASL PLAIN response (RFC 5034 §4); the decoding itself is
tests/test_auth_saslplain.py."""

from __future__ import annotations

import base64

from twisted.trial import unittest

from mailgosend.auth.saslplain import PlainCredentials
from mailgosend.pop3.sasl import InvalidSASLResponse, plain_credentials


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


class PlainCredentialsTests(unittest.TestCase):
    def test_valid_response(self) -> None:
        self.assertEqual(plain_credentials(b64(b"\0alice\0pw")), PlainCredentials("", "alice", "pw"))

    def test_invalid_responses(self) -> None:
        cases = [
            b"=",  # the empty response
            b"not base64!",
            b64(b"no separators"),
            b64(b"\0only-user"),
            b64(b"\0\0password-without-user"),
            b64(b"\0user\0"),
            b64(b"a\0b\0c\0d"),
            b64(b"\0user\0\xff\xfe"),
            b64(b"\0" + b"u" * 256 + b"\0pw"),
        ]
        for response in cases:
            self.assertRaises(InvalidSASLResponse, plain_credentials, response)

    def test_refusal_carries_an_err_reply_without_code(self) -> None:
        refusal = self.assertRaises(InvalidSASLResponse, plain_credentials, b"!!")
        self.assertTrue(refusal.reply.encode().startswith(b"-ERR Invalid SASL response"))

    def test_refusal_says_why(self) -> None:
        refusal = self.assertRaises(InvalidSASLResponse, plain_credentials, b"=")
        self.assertEqual(refusal.reply.encode(), b"-ERR Invalid SASL response: empty\r\n")
