"""mailgosend.smtp.replies: the one place replies become octets."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from mailgosend.smtp.replies import SMTPReply, default_status, format_reply


class FormatReplyTests(TestCase):
    def test_single_line_with_enhanced_code(self) -> None:
        self.assertEqual(format_reply(SMTPReply(250, "2.1.0", "Sender OK")), b"250 2.1.0 Sender OK\r\n")

    def test_without_enhanced_code(self) -> None:
        self.assertEqual(format_reply(SMTPReply(220, None, "mx ESMTP")), b"220 mx ESMTP\r\n")

    def test_empty_334_keeps_its_space(self) -> None:
        # RFC 4954 §4: an empty challenge is "334 " followed by CRLF.
        self.assertEqual(format_reply(SMTPReply(334, None, "")), b"334 \r\n")

    def test_multi_line_repeats_the_enhanced_code(self) -> None:
        # RFC 5321 §4.2.1 continuation lines; RFC 2034 §3 code on each line.
        reply = SMTPReply(550, "5.7.1", "first\nsecond")
        self.assertEqual(format_reply(reply), b"550-5.7.1 first\r\n550 5.7.1 second\r\n")

    def test_cr_in_text_cannot_inject_a_reply(self) -> None:
        wire = format_reply(SMTPReply(550, "5.1.1", "bad\r\n250 2.0.0 OK"))
        self.assertEqual(wire.count(b"\r\n"), 3)
        self.assertTrue(all(line.startswith(b"550") for line in wire.split(b"\r\n")[:-1]))

    def test_utf8_text(self) -> None:
        self.assertEqual(format_reply(SMTPReply(250, "2.0.0", "é")), "250 2.0.0 é\r\n".encode())


class SMTPReplyTests(TestCase):
    def test_enhanced_class_must_match(self) -> None:
        self.assertRaises(ValueError, SMTPReply, 250, "5.0.0", "x")
        self.assertRaises(ValueError, SMTPReply, 250, "2.0", "x")
        self.assertRaises(ValueError, SMTPReply, 199, None, "x")

    def test_is_an_exception_with_value_equality(self) -> None:
        reply = SMTPReply(535, "5.7.8", "no")
        self.assertIsInstance(reply, Exception)
        self.assertEqual(reply, SMTPReply(535, "5.7.8", "no"))
        self.assertTrue(reply.is_permanent)
        self.assertFalse(reply.is_success)
        self.assertEqual(str(reply), "535 5.7.8 no")

    def test_default_status(self) -> None:
        self.assertEqual([default_status(c) for c in (250, 451, 554, 354)], ["2.0.0", "4.0.0", "5.0.0", None])
