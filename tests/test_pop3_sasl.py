"""SASL PLAIN responses (RFC 4616 §2, RFC 5034 §4)."""

from __future__ import annotations

import base64

from twisted.trial import unittest

from mailgosend.pop3.sasl import InvalidSASLResponse, PlainCredentials, decode_plain


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


class DecodePlainTests(unittest.TestCase):
    def test_valid_responses(self) -> None:
        cases = [
            (b"\0alice@example.com\0pw with spaces", ("", "alice@example.com", "pw with spaces")),
            (b"alice\0alice\0pw", ("alice", "alice", "pw")),
            ("\0jos\u00e9\0p\u00e4ss".encode("utf-8"), ("", "jos\u00e9", "p\u00e4ss")),
        ]
        for raw, expected in cases:
            self.assertEqual(decode_plain(b64(raw)), PlainCredentials(*expected))

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
            self.assertRaises(InvalidSASLResponse, decode_plain, response)

    def test_repr_never_shows_the_password(self) -> None:
        credentials = decode_plain(b64(b"\0alice\0hunter2-SECRET"))
        self.assertNotIn("SECRET", repr(credentials))

    def test_refusal_carries_an_err_reply_without_code(self) -> None:
        refusal = self.assertRaises(InvalidSASLResponse, decode_plain, b"!!")
        self.assertTrue(refusal.reply.encode().startswith(b"-ERR Invalid SASL response"))
