"""The one dot-stuffer of SMTP DATA (RFC 5321 §4.5.2) and POP3 RETR/TOP (RFC 1939 §3): the
result must not depend on where chunks are cut, and every line end is sent as CRLF."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.delivery import transaction
from mailgosend.dotstuff import DotStuffer
from mailgosend.pop3 import streaming

# (message octets, what goes on the wire including the terminating ".")
CASES = [
    (b"", b".\r\n"),
    (b"a\r\n", b"a\r\n.\r\n"),
    (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
    (b"a", b"a\r\n.\r\n"),
    (b"no line end", b"no line end\r\n.\r\n"),
    # a dot at the start of the body, and at the start of later lines
    (b".", b"..\r\n.\r\n"),
    (b".a\r\n", b"..a\r\n.\r\n"),
    (b".\r\n", b"..\r\n.\r\n"),
    (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\r\n..b\r\n", b"a\r\n...b\r\n.\r\n"),
    (b"..x\r\n", b"...x\r\n.\r\n"),
    (b"x\r\n\r\n.\r\n", b"x\r\n\r\n..\r\n.\r\n"),
    (b"x.y\r\n .\r\n", b"x.y\r\n .\r\n.\r\n"),
    # bare LF ends a line
    (b"a\nb\n", b"a\r\nb\r\n.\r\n"),
    (b"lf\n.only\n", b"lf\r\n..only\r\n.\r\n"),
    (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
    # bare CR ends a line too (SMTP smuggling shapes become a stuffed line)
    (b"bare\rcr\r\n", b"bare\r\ncr\r\n.\r\n"),
    (b"a\n.\r\nMAIL FROM:<x>", b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"),
    (b"a\r.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\r.\rb", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\r\r\n", b"a\r\n\r\n.\r\n"),
    (b"a\r\r\n.b", b"a\r\n\r\n..b\r\n.\r\n"),
    (b"a\r", b"a\r\n.\r\n"),
    (b"cr at end\r", b"cr at end\r\n.\r\n"),
    (b"a\r\n\r", b"a\r\n\r\n.\r\n"),
    ("caf\u00e9\r\n".encode(), "caf\u00e9\r\n.\r\n".encode()),
]


def stuff(chunks: list[bytes]) -> bytes:
    stuffer = DotStuffer()
    return b"".join(stuffer.feed(chunk) for chunk in chunks) + stuffer.finish()


class DotStufferTests(unittest.TestCase):
    def test_whole_messages(self) -> None:
        for message, wire in CASES:
            self.assertEqual(stuff([message]), wire, message)

    def test_every_split_point_gives_the_same_bytes(self) -> None:
        for message, wire in CASES:
            for cut in range(len(message) + 1):
                self.assertEqual(stuff([message[:cut], message[cut:]]), wire, (message, cut))

    def test_byte_by_byte(self) -> None:
        for message, wire in CASES:
            self.assertEqual(stuff([message[i:i + 1] for i in range(len(message))]), wire, message)

    def test_dot_line_right_after_a_16k_chunk_boundary_is_stuffed(self) -> None:
        # twisted.mail.pop3's transformChunk sends this "." unstuffed, ending the message early.
        message = b"A" * 16382 + b"\r\n" + b".\r\nafter\r\n"
        chunks = [message[:16384], message[16384:]]
        self.assertEqual(stuff(chunks), b"A" * 16382 + b"\r\n..\r\nafter\r\n.\r\n")

    def test_cr_at_a_chunk_end_and_lf_at_the_next_start_are_one_line_end(self) -> None:
        # twisted.mail.pop3 sends "a\r\r\n" for "a\r\n".
        self.assertEqual(stuff([b"a\r\n", b"b\r", b"\nc\r\n"]), b"a\r\nb\r\nc\r\n.\r\n")
        self.assertEqual(stuff([b"a\r", b".b"]), b"a\r\n..b\r\n.\r\n")

    def test_smtp_client_and_pop3_use_this_stuffer(self) -> None:
        # Regression: they had one each, and POP3's sent a bare CR through unchanged.
        self.assertIs(transaction.DotStuffer, DotStuffer)
        self.assertIs(streaming.DotStuffer, DotStuffer)
