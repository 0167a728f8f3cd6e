"""TOP (RFC 1939 §7): the result must not depend on where chunks are cut (dot-stuffing:
tests/test_dotstuff.py)."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.pop3.multiline import TopFilter


def top(chunks: list[bytes], lines: int) -> tuple[bytes, bool]:
    wanted = TopFilter(lines)
    out = b"".join(wanted.feed(chunk) for chunk in chunks)
    return out, wanted.done


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
