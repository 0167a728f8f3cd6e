"""DATA transparency and line endings, fed in every possible chunking."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.delivery.bodystream import BytesSource, DotStuffer, source_prefix

CASES = [
    (b"", b".\r\n"),
    (b"a\r\n", b"a\r\n.\r\n"),
    (b"a", b"a\r\n.\r\n"),
    (b".\r\n", b"..\r\n.\r\n"),
    (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"..x\r\n", b"...x\r\n.\r\n"),
    (b"a\nb\n", b"a\r\nb\r\n.\r\n"),
    (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
    # SMTP smuggling shapes: bare LF / bare CR around a dot become a stuffed line
    (b"a\n.\r\nMAIL FROM:<x>", b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"),
    (b"a\r.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\r\r\n", b"a\r\n\r\n.\r\n"),
    (b"a\r", b"a\r\n.\r\n"),
    (b"x.y\r\n .\r\n", b"x.y\r\n .\r\n.\r\n"),
    ("caf\u00e9\r\n".encode(), "caf\u00e9\r\n.\r\n".encode()),
]


def stuff(chunks: list[bytes]) -> bytes:
    stuffer = DotStuffer()
    return b"".join(stuffer.feed(c) for c in chunks) + stuffer.finish()


class DotStufferTests(unittest.TestCase):
    def test_whole(self) -> None:
        for data, wire in CASES:
            self.assertEqual(stuff([data]), wire, data)

    def test_every_split_in_two_gives_the_same_bytes(self) -> None:
        for data, wire in CASES:
            for cut in range(len(data) + 1):
                self.assertEqual(stuff([data[:cut], data[cut:]]), wire, (data, cut))

    def test_byte_at_a_time(self) -> None:
        for data, wire in CASES:
            self.assertEqual(stuff([data[i:i + 1] for i in range(len(data))]), wire, data)


class BytesSourceTests(unittest.TestCase):
    def test_chunks_then_empty(self) -> None:
        source = BytesSource(b"abcdefg", chunk_size=3, prefix=b"P")
        chunks = []
        while True:
            chunk = self.successResultOf(source.read_chunk())
            if not chunk:
                break
            chunks.append(chunk)
        self.assertEqual(chunks, [b"abc", b"def", b"g"])
        self.assertEqual(source_prefix(source), b"P")

    def test_prefix_is_optional(self) -> None:
        class Plain:
            def read_chunk(self):  # type: ignore[no-untyped-def]
                raise NotImplementedError
        self.assertEqual(source_prefix(Plain()), b"")
