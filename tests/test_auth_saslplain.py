"""The one SASL PLAIN decoder (RFC 4616 §2) of SMTP, IMAP and POP3."""

from __future__ import annotations

import base64

from twisted.trial import unittest

from mailgosend.auth.saslplain import MalformedPlain, NotBase64, PlainCredentials, decode_plain


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


class DecodePlainTests(unittest.TestCase):
    def test_valid_responses(self) -> None:
        cases = [
            (b"\0alice@example.com\0pw with spaces", ("", "alice@example.com", "pw with spaces")),
            (b"alice\0alice\0pw", ("alice", "alice", "pw")),
            (b"admin\0user\0pass", ("admin", "user", "pass")),
            ("\0jos\u00e9\0p\u00e4ss".encode("utf-8"), ("", "jos\u00e9", "p\u00e4ss")),
            ("\u7528\u6237\0\u7528\u6237\0\u5bc6".encode("utf-8"), ("\u7528\u6237", "\u7528\u6237", "\u5bc6")),
            (b"\0" + b"u" * 255 + b"\0" + b"p" * 255, ("", "u" * 255, "p" * 255)),
        ]
        for raw, expected in cases:
            self.assertEqual(decode_plain(b64(raw)), PlainCredentials(*expected), raw)

    def test_malformed_responses_say_why(self) -> None:
        cases = [
            (b"=", "empty"),  # the empty response of RFC 4954/4959/5034
            (b"", "not a PLAIN message"),
            (b"not base64!", "not base64"),
            (b"!!", "not base64"),
            (b"abc", "not base64"),  # bad padding
            (b"ab c=", "not base64"),
            (b"a=bc", "not base64"),
            (b64(b"\0a\0b") + b"\r\n", "not base64"),
            (b"\xff", "not base64"),
            (b64(b"no separators"), "not a PLAIN message"),
            (b64(b"userpass"), "not a PLAIN message"),
            (b64(b"\0only-user"), "not a PLAIN message"),
            (b64(b"a\0b\0c\0d"), "not a PLAIN message"),
            (b64(b"\0\0password-without-user"), "empty user name or password"),
            (b64(b"\0user\0"), "empty user name or password"),
            (b64(b"\0\0"), "empty user name or password"),
            (b64(b"\0user\0\xff\xfe"), "not UTF-8"),
            (b64(b"\0\xff\0p"), "not UTF-8"),
            (b64(b"\xc3\0u\0p"), "not UTF-8"),
            (b64(b"\0" + b"u" * 256 + b"\0pw"), "field too long"),
            (b64(b"\0u\0" + b"p" * 256), "field too long"),
            (b64(b"z" * 256 + b"\0u\0pw"), "field too long"),
        ]
        for response, why in cases:
            error = self.assertRaises(MalformedPlain, decode_plain, response)
            self.assertEqual(error.why, why, response)

    def test_not_base64_is_told_apart(self) -> None:
        self.assertRaises(NotBase64, decode_plain, b"!!")
        error = self.assertRaises(MalformedPlain, decode_plain, b64(b"no-nuls"))
        self.assertNotIsInstance(error, NotBase64)

    def test_authzid_other_than_the_user_acts_for_another(self) -> None:
        cases = [(b"\0alice\0pw", False), (b"alice\0alice\0pw", False),
                 (b"bob\0alice\0pw", True), (b"Alice\0alice\0pw", True)]
        for raw, acts in cases:
            self.assertEqual(decode_plain(b64(raw)).acts_for_another, acts, raw)

    def test_repr_never_shows_the_password(self) -> None:
        credentials = decode_plain(b64(b"\0alice\0hunter2-SECRET"))
        self.assertNotIn("SECRET", repr(credentials))
