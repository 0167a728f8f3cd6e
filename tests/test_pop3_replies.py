"""Status lines with RFC 2449 §8 response codes."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.pop3.replies import AUTH, SYS_TEMP, NoSuchMessage, POP3Refusal, err, ok


class ReplyTests(unittest.TestCase):
    def test_encodings(self) -> None:
        cases = [
            (ok(), b"+OK\r\n"),
            (ok("2 320"), b"+OK 2 320\r\n"),
            (err("Authentication failed", AUTH), b"-ERR [AUTH] Authentication failed\r\n"),
            (err("later", SYS_TEMP), b"-ERR [SYS/TEMP] later\r\n"),
            (NoSuchMessage(7).reply, b"-ERR No such message 7\r\n"),
        ]
        for reply, wire in cases:
            self.assertEqual(reply.encode(), wire)

    def test_lines_stay_within_512_octets(self) -> None:
        # RFC 2449 §4: responses are at most 512 octets including CRLF.
        self.assertLessEqual(len(err("x" * 2000, SYS_TEMP).encode()), 512)

    def test_refusal_close_flag(self) -> None:
        self.assertFalse(POP3Refusal("no").close)
        self.assertTrue(POP3Refusal("no", close=True).close)
