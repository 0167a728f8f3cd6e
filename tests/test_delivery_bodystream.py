"""The message sources the SMTP client reads (dot-stuffing: tests/test_dotstuff.py)."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.delivery.bodystream import BytesSource, source_prefix


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
