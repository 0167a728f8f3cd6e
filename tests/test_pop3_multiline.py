"""Dot-stuffing and TOP (RFC 1939 §3, §7): the result must not depend on where chunks are cut."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.pop3.multiline import DotStuffer, TopFilter

# (stored message, multi-line response body including the terminating ".")
STUFFING = [
    (b"", b".\r\n"),
    (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
    (b".a\r\n", b"..a\r\n.\r\n"),
    (b".", b"..\r\n.\r\n"),
    (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\r\n..b\r\n", b"a\r\n...b\r\n.\r\n"),
    (b"no line end", b"no line end\r\n.\r\n"),
    (b"lf\n.only\n", b"lf\r\n..only\r\n.\r\n"),
    (b"bare\rcr\r\n", b"bare\rcr\r\n.\r\n"),
    (b"cr at end\r", b"cr at end\r\r\n.\r\n"),
    (b"a\r\r\n.b", b"a\r\r\n..b\r\n.\r\n"),
    (b"x\r\n\r\n.\r\n", b"x\r\n\r\n..\r\n.\r\n"),
]


def stuff(chunks: list[bytes]) -> bytes:
    stuffer = DotStuffer()
    return b"".join(stuffer.feed(chunk) for chunk in chunks) + stuffer.finish()


def top(chunks: list[bytes], lines: int) -> tuple[bytes, bool]:
    wanted = TopFilter(lines)
    out = b"".join(wanted.feed(chunk) for chunk in chunks)
    return out, wanted.done


class DotStufferTests(unittest.TestCase):
    def test_whole_messages(self) -> None:
        for message, expected in STUFFING:
            self.assertEqual(stuff([message]), expected, message)

    def test_every_split_point_gives_the_same_bytes(self) -> None:
        for message, expected in STUFFING:
            for cut in range(len(message) + 1):
                self.assertEqual(stuff([message[:cut], message[cut:]]), expected, (message, cut))

    def test_byte_by_byte(self) -> None:
        for message, expected in STUFFING:
            self.assertEqual(stuff([message[i:i + 1] for i in range(len(message))]), expected)

    def test_dot_line_right_after_a_16k_chunk_boundary_is_stuffed(self) -> None:
        # twisted.mail.pop3's transformChunk sends this "." unstuffed, ending the message early.
        message = b"A" * 16382 + b"\r\n" + b".\r\nafter\r\n"
        chunks = [message[:16384], message[16384:]]
        self.assertEqual(stuff(chunks), b"A" * 16382 + b"\r\n..\r\nafter\r\n.\r\n")

    def test_crlf_is_not_doubled(self) -> None:
        # twisted.mail.pop3 sends "a\r\r\n" for "a\r\n".
        self.assertEqual(stuff([b"a\r\n", b"b\r", b"\nc\r\n"]), b"a\r\nb\r\nc\r\n.\r\n")


MESSAGE = b"Subject: x\r\nFrom: a@b\r\n\r\nline 1\r\n.line 2\r\nline 3\r\n"
TOP_CASES = [
    (MESSAGE, 0, b"Subject: x\r\nFrom: a@b\r\n\r\n", True),
    (MESSAGE, 2, b"Subject: x\r\nFrom: a@b\r\n\r\nline 1\r\n.line 2\r\n", True),
    (MESSAGE, 3, MESSAGE, True),
    (MESSAGE, 99, MESSAGE, False),
    (b"H: 1\n\nb1\nb2\n", 1, b"H: 1\n\nb1\n", True),
    (b"H: 1\r\nH: 2\r\n", 0, b"H: 1\r\nH: 2\r\n", False),  # no body at all
    (b"\r\nbody only\r\nmore\r\n", 1, b"\r\nbody only\r\n", True),
    (b"H: 1\r\n\r\nlast line without end", 5, b"H: 1\r\n\r\nlast line without end", False),
    (b"H: \r\n\r\n\r\n\r\nx\r\n", 1, b"H: \r\n\r\n\r\n", True),  # blank body lines count
]


class TopFilterTests(unittest.TestCase):
    def test_cases_at_every_split_point(self) -> None:
        for message, lines, expected, done in TOP_CASES:
            for cut in range(len(message) + 1):
                result = top([message[:cut], message[cut:]], lines)
                self.assertEqual(result, (expected, done), (message, lines, cut))

    def test_byte_by_byte(self) -> None:
        for message, lines, expected, done in TOP_CASES:
            chunks = [message[i:i + 1] for i in range(len(message))]
            self.assertEqual(top(chunks, lines), (expected, done), (message, lines))

    def test_nothing_after_done(self) -> None:
        wanted = TopFilter(0)
        self.assertEqual(wanted.feed(b"H: 1\r\n\r\nbody\r\n"), b"H: 1\r\n\r\n")
        self.assertEqual(wanted.feed(b"more body\r\n"), b"")

    def test_negative_line_count_is_refused(self) -> None:
        self.assertRaises(ValueError, TopFilter, -1)
