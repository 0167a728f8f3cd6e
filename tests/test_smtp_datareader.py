"""mailgosend.smtp.datareader: the DATA chunk scanner, against a line-based reference."""

from __future__ import annotations

import random

from twisted.trial.unittest import TestCase

from mailgosend.smtp.datareader import DataReader


def reference(stream: bytes) -> tuple[bytes, bytes]:
    """Unstuffed content and the rest, the slow obvious way (RFC 5321 §4.5.2)."""
    wire = b"\r\n" + stream
    end = wire.index(b"\r\n.\r\n")
    lines = wire[2 : end + 2].split(b"\r\n")
    content = b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)
    return content, wire[end + 5 :]


def run(reader: DataReader, stream: bytes, sizes: list[int]) -> tuple[bytes, bytes, int]:
    """Feed ``stream`` in pieces of the given sizes; return (stored, rest, writes)."""
    stored, writes, pos = [], 0, 0
    for size in sizes:
        feed = reader.feed(stream[pos : pos + size])
        pos += size
        if feed.body:
            stored.append(feed.body)
            writes += 1
        if feed.done:
            return b"".join(stored), feed.rest + stream[pos:], writes
    raise AssertionError("terminator not found")


class ScannerTests(TestCase):
    def test_simple_message(self) -> None:
        reader = DataReader(1000)
        feed = reader.feed(b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        self.assertEqual((feed.body, feed.done, feed.rest), (b"Subject: x\r\n\r\nbody\r\n", True, b"QUIT\r\n"))
        self.assertEqual(reader.size, len(feed.body))

    def test_empty_message(self) -> None:
        feed = DataReader(1000).feed(b".\r\n")
        self.assertEqual((feed.body, feed.done), (b"", True))

    def test_leading_dots(self) -> None:
        feed = DataReader(1000).feed(b"..a\r\n...\r\n.\r\n")
        self.assertEqual(feed.body, b".a\r\n..\r\n")

    def test_not_terminators(self) -> None:
        # CVE-2023-51764: only CRLF.CRLF ends the data.
        for fake in (b"a\n.\nb\r\n", b"a\r\n.\nb\r\n", b"a\n.\r\nb\r\n", b"a\r.\r\nb\r\n"):
            reader = DataReader(1000)
            feed = reader.feed(fake)
            self.assertFalse(feed.done, fake)
            self.assertTrue(reader.feed(b".\r\n").done)
            self.assertTrue(reader.bare_newline, fake)

    def test_random_splits_match_the_reference(self) -> None:
        rng = random.Random(5321)
        pieces = [b"\r", b"\n", b".", b"a", b"\r\n", b"\r\n.", b"..", b"\x00", b"\xc3\xa9"]
        for _ in range(3000):
            body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
            stream = body + b"\r\n.\r\nNEXT"
            content, rest = reference(stream)
            region = (b"\r\n" + stream)[2 : (b"\r\n" + stream).index(b"\r\n.\r\n") + 2]
            bare = region.count(b"\n") != region.count(b"\r\n") or region.count(b"\r") != region.count(b"\r\n")
            sizes = [rng.randint(1, 6) for _ in range(len(stream))]
            reader = DataReader(10**9)
            stored, got_rest, _ = run(reader, stream, sizes)
            self.assertEqual(got_rest, rest, stream)
            self.assertEqual(reader.bare_newline, bare, stream)
            self.assertEqual(reader.nul, b"\x00" in region, stream)
            self.assertEqual(reader.eight_bit, not region.isascii(), stream)
            if not (bare or reader.nul):
                self.assertEqual(stored, content, stream)

    def test_one_write_per_chunk(self) -> None:
        body = b"".join(b"line %d\r\n" % n for n in range(10000))
        stored, rest, writes = run(DataReader(10**9), body + b".\r\n", [65536] * 20)
        self.assertEqual(stored, body)
        self.assertLessEqual(writes, len(body) // 65536 + 2)

    def test_size_limit_stops_output(self) -> None:
        reader = DataReader(100)
        self.assertEqual(len(reader.feed(b"a" * 98 + b"\r\n").body), 98)
        self.assertEqual(reader.feed(b"b\r\n").body, b"")
        self.assertTrue(reader.oversize)
        self.assertTrue(reader.feed(b".\r\n").done)
        self.assertTrue(reader.rejected)

    def test_discard_keeps_scanning(self) -> None:
        reader = DataReader(1000)
        reader.feed(b"a\r\n")
        reader.discard()
        feed = reader.feed(b"b\r\n.\r\nX")
        self.assertEqual((feed.body, feed.done, feed.rest), (b"", True, b"X"))

    def test_8bit_is_noted_not_refused(self) -> None:
        reader = DataReader(1000)
        feed = reader.feed("é\r\n.\r\n".encode())
        self.assertEqual(feed.body, "é\r\n".encode())
        self.assertTrue(reader.eight_bit)
        self.assertFalse(reader.rejected)


class HeaderSizeTests(TestCase):
    """The header section is measured as it streams, whatever the chunking (issue 9)."""

    CASES = [
        # (message, header size incl. the empty line)
        (b"Subject: x\r\n\r\nbody\r\n", 14),
        (b"\r\nno header at all\r\n", 2),
        (b"A: 1\r\n folded\r\n\r\n\r\n\r\n", 17),
        (b"Only: header, no body\r\n", 23),
    ]

    def test_sizes_for_every_chunking(self) -> None:
        for message, expected in self.CASES:
            stream = message + b".\r\n"
            for step in (1, 2, 3, 5, len(stream)):
                reader = DataReader(10_000, 10_000)
                run(reader, stream, [step] * (len(stream) // step + 1))
                self.assertEqual(reader.header_size, expected, (message, step))
                self.assertFalse(reader.header_oversize)

    def test_a_header_over_the_limit_is_refused_and_not_stored(self) -> None:
        header = b"X-Big: " + b"a" * 50 + b"\r\n" + b" " + b"b" * 200 + b"\r\n"
        stream = header + b"\r\n" + b"body " * 1000 + b"\r\n.\r\n"
        reader = DataReader(100_000, 200)
        stored, rest, _ = run(reader, stream, [64] * (len(stream) // 64 + 1))
        self.assertTrue(reader.header_oversize)
        self.assertTrue(reader.rejected)
        self.assertLess(len(stored), 260)   # nothing kept once the limit is passed
        self.assertEqual(rest, b"")

    def test_a_large_body_under_a_small_header_is_fine(self) -> None:
        stream = b"Subject: x\r\n\r\n" + b"x" * 100_000 + b"\r\n.\r\n"
        reader = DataReader(1_000_000, 1024)
        stored, _, _ = run(reader, stream, [4096] * 30)
        self.assertFalse(reader.header_oversize)
        self.assertEqual(len(stored), len(stream) - 3)
