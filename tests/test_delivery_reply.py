"""Reply parsing for the outbound client: tables of lines in, replies out."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.delivery.reply import (
    MAX_TEXT,
    Reply,
    ReplyError,
    ReplyParser,
    local_reply,
    parse_ehlo,
)


def parse(*lines: bytes) -> list[Reply]:
    parser = ReplyParser()
    return [r for r in (parser.feed(line) for line in lines) if r is not None]


class ReplyParserTests(unittest.TestCase):
    def test_table(self) -> None:
        cases = [
            ([b"250 ok"], 250, None, "ok"),
            ([b"250 2.1.0 Sender ok"], 250, "2.1.0", "Sender ok"),
            ([b"550-5.1.1 No such user", b"550 5.1.1 see https://x"], 550, "5.1.1",
             "No such user; see https://x"),
            ([b"354"], 354, None, ""),
            ([b"451 4.3.0"], 451, "4.3.0", ""),
            # class digit disagreeing with the code: not an enhanced code (RFC 3463 §2)
            ([b"550 2.1.0 odd"], 550, None, "2.1.0 odd"),
            # continuation codes that disagree: the last line decides, as in Postfix
            ([b"250-first", b"550 last"], 550, None, "first; last"),
            # garbage between lines is skipped
            ([b"hello there", b"220 mx ESMTP"], 220, None, "mx ESMTP"),
            ([b"220 tab\tand \x1b[31mescape"], 220, None, "tab and [31mescape"),
            ([b"250 caf\xe9 \xff"], 250, None, "caf\ufffd \ufffd"),
        ]
        for lines, code, enhanced, text in cases:
            [reply] = parse(*lines)
            self.assertEqual((reply.code, reply.enhanced, reply.text), (code, enhanced, text),
                             lines)

    def test_reply_classes(self) -> None:
        self.assertTrue(Reply(250, None, "").positive)
        self.assertTrue(Reply(354, None, "").positive)
        self.assertTrue(Reply(451, None, "").temporary)
        self.assertTrue(Reply(554, None, "").permanent)
        self.assertFalse(Reply(554, None, "").temporary)

    def test_code_out_of_range_is_a_protocol_error(self) -> None:
        self.assertRaises(ReplyError, parse, b"199 hmm")
        self.assertRaises(ReplyError, parse, b"600 hmm")

    def test_endless_reply_is_a_protocol_error(self) -> None:
        parser = ReplyParser()
        with self.assertRaises(ReplyError):
            for _ in range(100_000):
                parser.feed(b"250-more")

    def test_endless_garbage_is_a_protocol_error(self) -> None:
        parser = ReplyParser()
        with self.assertRaises(ReplyError):
            for _ in range(100_000):
                parser.feed(b"not smtp")

    def test_text_is_capped(self) -> None:
        lines = [b"550-" + b"x" * 400] * 50 + [b"550 end"]
        [reply] = parse(*lines)
        self.assertLessEqual(len(reply.text), MAX_TEXT)

    def test_reset_forgets_a_partial_reply(self) -> None:
        parser = ReplyParser()
        parser.feed(b"250-injected")
        parser.reset()
        reply = parser.feed(b"220 real")
        assert reply is not None
        self.assertEqual(reply.text, "real")

    def test_str_and_local(self) -> None:
        self.assertEqual(str(Reply(550, "5.1.1", "no")), "550 5.1.1 no")
        reply = local_reply(421, "4.4.2", "timeout\r\nwaiting")
        self.assertTrue(reply.local)
        self.assertEqual(reply.text, "timeout waiting")


class EhloTests(unittest.TestCase):
    def test_keywords_and_parameters(self) -> None:
        [reply] = parse(b"250-mx.example greets you", b"250-PIPELINING", b"250-SIZE 1000",
                        b"250-auth PLAIN LOGIN", b"250-X-WEIRD_ONE", b"250 8BITMIME")
        self.assertEqual(parse_ehlo(reply), {"PIPELINING": "", "SIZE": "1000",
                                             "AUTH": "PLAIN LOGIN", "8BITMIME": ""})

    def test_single_line_ehlo_has_no_extensions(self) -> None:
        [reply] = parse(b"250 mx.example")
        self.assertEqual(parse_ehlo(reply), {})
