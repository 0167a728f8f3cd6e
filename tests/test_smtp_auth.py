"""mailgosend.smtp.auth: SASL PLAIN and LOGIN state machines."""

from __future__ import annotations

import base64

from twisted.trial.unittest import TestCase

from mailgosend.smtp.auth import (
    CANCELLED,
    MALFORMED,
    Challenge,
    Credentials,
    LoginMechanism,
    PlainMechanism,
    SASLError,
    decode_response,
    encode_challenge,
    parse_auth_command,
)


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


class PlainTests(TestCase):
    def test_initial_response(self) -> None:
        result = PlainMechanism().start(b64(b"\0user\0pass"))
        self.assertEqual(result, Credentials("user", "pass", ""))

    def test_authzid(self) -> None:
        self.assertEqual(PlainMechanism().start(b64(b"admin\0user\0pass")), Credentials("user", "pass", "admin"))

    def test_challenge_first(self) -> None:
        mechanism = PlainMechanism()
        self.assertEqual(mechanism.start(None), Challenge(b""))
        self.assertEqual(mechanism.respond(b64(b"\0user\0pass")), Credentials("user", "pass"))

    def test_malformed(self) -> None:
        for response in (b64(b"userpass"), b64(b"\0user"), b64(b"\0\0pass"), b64(b"a\0b\0c\0d"), b"!!", b64(b"\0\xff\0p")):
            with self.assertRaises(SASLError, msg=response) as caught:
                PlainMechanism().start(response)
            self.assertEqual(caught.exception.reply, MALFORMED)

    def test_cancel_after_the_challenge(self) -> None:
        mechanism = PlainMechanism()
        mechanism.start(None)
        with self.assertRaises(SASLError) as caught:
            mechanism.respond(b"*")
        self.assertEqual(caught.exception.reply, CANCELLED)

    def test_password_not_in_repr(self) -> None:
        self.assertNotIn("hunter2", repr(Credentials("user", "hunter2")))


class LoginTests(TestCase):
    def test_exchange(self) -> None:
        mechanism = LoginMechanism()
        self.assertEqual(mechanism.start(None), Challenge(b"Username:"))
        self.assertEqual(mechanism.respond(b64(b"user")), Challenge(b"Password:"))
        self.assertEqual(mechanism.respond(b64("pässword".encode())), Credentials("user", "pässword"))

    def test_initial_username(self) -> None:
        mechanism = LoginMechanism()
        self.assertEqual(mechanism.start(b64(b"user")), Challenge(b"Password:"))

    def test_empty_username_is_malformed(self) -> None:
        self.assertRaises(SASLError, LoginMechanism().start, b"=")


class ResponseTests(TestCase):
    def test_cancel(self) -> None:
        with self.assertRaises(SASLError) as caught:
            decode_response(b"*")
        self.assertEqual(caught.exception.reply, CANCELLED)

    def test_empty_initial_response(self) -> None:
        self.assertEqual(decode_response(b"="), b"")

    def test_strict_base64(self) -> None:
        for bad in (b"abc", b"ab c=", b"a=bc", b"\xff"):
            self.assertRaises(SASLError, decode_response, bad)

    def test_encode_challenge(self) -> None:
        self.assertEqual(encode_challenge(Challenge(b"Username:")), "VXNlcm5hbWU6")
        self.assertEqual(encode_challenge(Challenge(b"")), "")


class CommandTests(TestCase):
    def test_parse(self) -> None:
        mechanism, initial = parse_auth_command("plain AGEAYg==")
        self.assertIsInstance(mechanism, PlainMechanism)
        self.assertEqual(initial, b"AGEAYg==")
        mechanism, initial = parse_auth_command("LOGIN")
        self.assertIsInstance(mechanism, LoginMechanism)
        self.assertIsNone(initial)

    def test_errors(self) -> None:
        for argument, code in (("", 501), ("PLAIN a b", 501), ("CRAM-MD5", 504), ("GSSAPI", 504)):
            with self.assertRaises(SASLError, msg=argument) as caught:
                parse_auth_command(argument)
            self.assertEqual(caught.exception.reply.code, code)
