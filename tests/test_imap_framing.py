"""Command framing: literals decided before they are read, LITERAL+, long lines, pausing."""

from __future__ import annotations

import os
from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.trial import unittest

from mailgosend.imap.errors import ImapError
from mailgosend.imap.framing import CommandReader, Literal


class Recorder:
    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self.commands: list[list[Any]] = []
        self.refused: list[tuple[list[Any], ImapError]] = []
        self.continuations = 0
        self.asked: list[tuple[int, bool]] = []
        self.pending: Optional[Deferred[Any]] = None

    def command_received(self, frame: list[Any]) -> None:
        self.commands.append([s.read_bytes() if isinstance(s, Literal) else s for s in frame])

    def literal_requested(self, frame: list[Any], size: int, sync: bool) -> Any:
        self.asked.append((size, sync))
        if self.pending is not None:
            return self.pending
        return None if size <= self.limit else ImapError("NO", "too big", "TOOBIG")

    def command_refused(self, frame: list[Any], error: ImapError) -> None:
        self.refused.append((frame, error))

    def send_continuation(self) -> None:
        self.continuations += 1


class FramingTests(unittest.TestCase):
    def setUp(self) -> None:
        self.handler = Recorder()
        self.reader = CommandReader(self.handler, max_line=1000, memory_limit=16,
                                    spool_dir=self.mktemp())
        os.makedirs(self.reader._spool_dir)  # type: ignore[arg-type]

    def test_lines_become_commands_and_lf_alone_is_accepted(self) -> None:
        self.reader.feed(b"a NOOP\r\nb CAPABILITY\n")
        self.assertEqual(self.handler.commands, [[b"a NOOP"], [b"b CAPABILITY"]])

    def test_a_command_split_across_reads_is_assembled(self) -> None:
        for piece in (b"a LO", b"GIN x ", b"y\r", b"\n"):
            self.reader.feed(piece)
        self.assertEqual(self.handler.commands, [[b"a LOGIN x y"]])

    def test_synchronizing_literal_gets_a_continuation_and_its_bytes(self) -> None:
        self.reader.feed(b"a LOGIN {5}\r\n")
        self.assertEqual(self.handler.continuations, 1)
        self.reader.feed(b"alice {3}\r\n")
        self.assertEqual(self.handler.continuations, 2)
        self.reader.feed(b"p w\r\n")
        self.assertEqual(self.handler.commands, [[b"a LOGIN ", b"alice", b" ", b"p w", b""]])

    def test_literal_plus_needs_no_continuation(self) -> None:
        self.reader.feed(b"a LOGIN {5+}\r\nalice {3+}\r\np\r\n\r\n")
        self.assertEqual(self.handler.continuations, 0)
        self.assertEqual(self.handler.commands, [[b"a LOGIN ", b"alice", b" ", b"p\r\n", b""]])

    def test_large_literals_are_spooled_to_a_file(self) -> None:
        seen: list[Literal] = []
        self.handler.command_received = lambda frame: seen.extend(  # type: ignore[method-assign]
            s for s in frame if isinstance(s, Literal))
        self.reader.feed(b"a APPEND INBOX {40+}\r\n" + b"x" * 40 + b"\r\n")
        self.assertIsNotNone(seen[0].path)
        self.assertEqual(seen[0].read_bytes(), b"x" * 40)
        path = seen[0].path
        seen[0].discard()
        self.assertFalse(os.path.exists(path))  # type: ignore[arg-type]

    def test_refused_synchronizing_literal_is_never_read(self) -> None:
        self.reader.feed(b"a APPEND INBOX {500}\r\nb NOOP\r\n")
        self.assertEqual(self.handler.continuations, 0)
        self.assertEqual(self.handler.refused[0][1].code, "TOOBIG")
        self.assertEqual(self.handler.commands, [[b"b NOOP"]])

    def test_refused_non_synchronizing_literal_is_discarded_with_its_command(self) -> None:
        self.reader.feed(b"a APPEND INBOX {200+}\r\n" + b"y" * 200 + b" {3+}\r\nabc\r\n"
                         b"b NOOP\r\n")
        self.assertEqual([frame[0] for frame, _ in self.handler.refused], [b"a APPEND INBOX "])
        self.assertEqual(self.handler.commands, [[b"b NOOP"]])

    def test_an_asynchronous_decision_holds_the_input(self) -> None:
        self.handler.pending = Deferred()
        self.reader.feed(b"a APPEND INBOX {4}\r\n")
        self.assertEqual(self.handler.continuations, 0)
        self.handler.pending.callback(None)
        self.assertEqual(self.handler.continuations, 1)
        self.reader.feed(b"abcd\r\n")
        self.assertEqual(self.handler.commands, [[b"a APPEND INBOX ", b"abcd", b""]])

    def test_overlong_line_is_reported_and_the_next_command_still_works(self) -> None:
        self.reader.feed(b"a NOOP " + b"x" * 5000)
        self.reader.feed(b"y" * 5000 + b"\r\nb NOOP\r\n")
        self.assertEqual(self.handler.refused[0][1].text, "Command line too long")
        self.assertTrue(self.handler.refused[0][0][0].startswith(b"a NOOP"))
        self.assertEqual(self.handler.commands, [[b"b NOOP"]])

    def test_paused_reader_buffers_and_resumes(self) -> None:
        self.reader.pause()
        self.reader.feed(b"a NOOP\r\n")
        self.assertEqual(self.handler.commands, [])
        self.reader.resume()
        self.assertEqual(self.handler.commands, [[b"a NOOP"]])

    def test_dropped_buffer_is_never_executed(self) -> None:
        self.reader.pause()
        self.reader.feed(b"b CAPABILITY\r\n")
        self.reader.drop_buffer()
        self.reader.resume()
        self.assertEqual(self.handler.commands, [])

    def test_line_mode_delivers_raw_lines(self) -> None:
        lines: list[bytes] = []
        self.reader.take_lines(lines.append)
        self.reader.feed(b"DONE\r\n{5}\r\n")
        self.assertEqual(lines, [b"DONE", b"{5}"])

    def test_zero_length_literal(self) -> None:
        self.reader.feed(b"a LOGIN {0+}\r\n {0+}\r\n\r\n")
        self.assertEqual(self.handler.commands, [[b"a LOGIN ", b"", b" ", b"", b""]])

    def test_commands_that_finish_at_once_do_not_nest(self) -> None:
        def instant(frame: list[Any]) -> None:  # pause, run, resume: as a synchronous NOOP
            self.reader.pause()
            self.handler.commands.append(frame)
            self.reader.resume()

        self.handler.command_received = instant  # type: ignore[method-assign]
        self.reader.feed(b"a NOOP\r\n" * 5000)
        self.assertEqual(len(self.handler.commands), 5000)

    def test_absurd_literal_size_is_refused(self) -> None:
        self.reader.feed(b"a LOGIN {99999999999}\r\nb NOOP\r\n")
        self.assertEqual(self.handler.refused[0][1].status, "BAD")
        self.assertEqual(self.handler.commands, [[b"b NOOP"]])
