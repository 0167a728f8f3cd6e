"""Command-line framing: CRLF/LF, split input, over-long lines, STLS clearing."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.pop3.framing import TOO_LONG, LineReader


def drain(reader: LineReader) -> list[object]:
    items: list[object] = []
    while (item := reader.next_line()) is not None:
        items.append(item)
    return items


class LineReaderTests(unittest.TestCase):
    def test_crlf_and_bare_lf_end_lines(self) -> None:
        reader = LineReader(100)
        reader.feed(b"USER a\r\nPASS b c\nSTAT")
        self.assertEqual(drain(reader), [b"USER a", b"PASS b c"])
        reader.feed(b"\r\n")
        self.assertEqual(drain(reader), [b"STAT"])

    def test_any_split_gives_the_same_lines(self) -> None:
        data = b"CAPA\r\nUSER x\r\n\r\nQUIT\r\n"
        for cut in range(len(data) + 1):
            reader = LineReader(100)
            reader.feed(data[:cut])
            reader.feed(data[cut:])
            self.assertEqual(drain(reader), [b"CAPA", b"USER x", b"", b"QUIT"], cut)

    def test_limit_is_inclusive(self) -> None:
        reader = LineReader(10)
        reader.feed(b"x" * 10 + b"\r\n" + b"y" * 11 + b"\r\n")
        self.assertEqual(drain(reader), [b"x" * 10, TOO_LONG])

    def test_long_line_in_one_segment_is_reported_in_order(self) -> None:
        reader = LineReader(100)
        reader.feed(b"NOOP\r\n" + b"x" * 50_000 + b"\r\nSTAT\r\n")
        self.assertEqual(drain(reader), [b"NOOP", TOO_LONG, b"STAT"])

    def test_long_line_in_pieces_is_never_buffered_whole(self) -> None:
        reader = LineReader(100)
        reader.feed(b"NOOP\r\n")
        for _ in range(50):
            reader.feed(b"x" * 1000)
            self.assertLessEqual(reader.buffered, 100 + 10)
        reader.feed(b"\r\nSTAT\r\n")
        self.assertEqual(drain(reader), [b"NOOP", TOO_LONG, b"STAT"])

    def test_clear_drops_queued_lines_and_the_partial_line(self) -> None:
        reader = LineReader(100)
        reader.feed(b"STLS\r\nUSER injected\r\nPASS inj")
        self.assertEqual(reader.next_line(), b"STLS")
        reader.clear()
        reader.feed(b"ected\r\nCAPA\r\n")
        self.assertEqual(drain(reader), [b"ected", b"CAPA"])
        self.assertEqual(reader.buffered, 0)

    def test_zero_limit_is_refused(self) -> None:
        self.assertRaises(ValueError, LineReader, 0)
