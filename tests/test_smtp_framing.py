"""mailgosend.smtp.framing: command lines, their limits and their line endings."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from mailgosend.smtp.framing import (
    BARE_NEWLINE_COMMAND,
    MAX_COMMAND_LINE,
    MAX_MAIL_LINE,
    NUL_COMMAND,
    LineBuffer,
)
from mailgosend.smtp.replies import AUTH_LINE_TOO_LONG, LINE_TOO_LONG


def lines(buffer: LineBuffer, in_auth: bool = False) -> list[object]:
    out: list[object] = []
    while (item := buffer.next_line(in_auth)) is not None:
        out.append(item)
    return out


class LineBufferTests(TestCase):
    def test_lines_are_cut_at_crlf(self) -> None:
        buffer = LineBuffer()
        buffer.append(b"NOOP\r\nRSET\r\nQU")
        self.assertEqual(lines(buffer), [b"NOOP", b"RSET"])
        buffer.append(b"IT\r\n")
        self.assertEqual(lines(buffer), [b"QUIT"])
        self.assertEqual(len(buffer), 0)

    def test_bad_line_endings_and_nul(self) -> None:
        buffer = LineBuffer()
        buffer.append(b"A\nB\rC\r\nD\x00\r\n\r\r\nE\r\n")
        self.assertEqual(lines(buffer), [BARE_NEWLINE_COMMAND, BARE_NEWLINE_COMMAND, NUL_COMMAND, BARE_NEWLINE_COMMAND, b"E"])

    def test_limits(self) -> None:
        cases = [
            (b"NOOP " + b"a" * (MAX_COMMAND_LINE - 7), False, True),
            (b"NOOP " + b"a" * (MAX_COMMAND_LINE - 6), False, False),
            (b"MAIL " + b"a" * (MAX_MAIL_LINE - 7), False, True),
            (b"MAIL " + b"a" * (MAX_MAIL_LINE - 6), False, False),
            (b"AUTH PLAIN " + b"a" * 12000, False, True),
            (b"a" * 12000, True, True),
            (b"a" * 13000, True, False),
        ]
        for line, in_auth, fits in cases:
            buffer = LineBuffer()
            buffer.append(line + b"\r\n")
            expected = line if fits else (AUTH_LINE_TOO_LONG if in_auth or line.startswith(b"AUTH") else LINE_TOO_LONG)
            self.assertEqual(lines(buffer, in_auth), [expected], (len(line), in_auth))

    def test_over_long_line_is_dropped_while_it_streams(self) -> None:
        buffer = LineBuffer()
        for _ in range(50):
            buffer.append(b"x" * 4096)
            self.assertEqual(lines(buffer), [])
            self.assertEqual(len(buffer), 0)
        buffer.append(b"tail\r\nNOOP\r\n")
        self.assertEqual(lines(buffer), [LINE_TOO_LONG, b"NOOP"])

    def test_push_front_take_all_clear(self) -> None:
        buffer = LineBuffer()
        buffer.append(b"RSET\r\n")
        buffer.push_front(b"NOOP\r\n")
        self.assertEqual(buffer.take_all(), b"NOOP\r\nRSET\r\n")
        buffer.append(b"x" * 600)
        self.assertEqual(lines(buffer), [])
        buffer.clear()
        buffer.append(b"NOOP\r\n")
        self.assertEqual(lines(buffer), [b"NOOP"])  # not swallowed by the discarded line
