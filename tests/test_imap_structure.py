"""ENVELOPE and BODYSTRUCTURE from the stored structure (RFC 3501 §7.4.2)."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.imap.structure import body_structure, envelope
from mailgosend.mail.addresses import MISSING_HOST, parse_address_list
from mailgosend.store.mimeinfo import analyse

MULTIPART = (
    b"From: \"Doe, Jane\" <jane@example.org>\r\nTo: undisclosed-recipients:;\r\n"
    b"Cc: a@x.org, Bob (the builder) <@relay.net:bob@y.org>\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <m1@example.org>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
    b"preamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\nworld\r\n"
    b"--XX\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\nAAAA\r\n"
    b"--XX\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@z.org\r\nSubject: inner\r\n\r\nbody\r\n"
    b"--XX--\r\n")


class AddressTests(unittest.TestCase):
    def test_address_lists(self) -> None:
        cases = [
            ("a@b.c", [(None, None, "a", "b.c")]),
            ('"Doe, Jane" <j@x.org>, b@y.org', [("Doe, Jane", None, "j", "x.org"),
                                                  (None, None, "b", "y.org")]),
            ("Jane Doe <j@x.org>", [("Jane Doe", None, "j", "x.org")]),
            ("j@x.org (Jane)", [("Jane", None, "j", "x.org")]),
            ("<@r1,@r2:j@x.org>", [(None, "@r1,@r2", "j", "x.org")]),
            ("team: a@x.org, b@y.org;", [(None, None, "team", None), (None, None, "a", "x.org"),
                                         (None, None, "b", "y.org"), (None, None, None, None)]),
            ("undisclosed-recipients:;", [(None, None, "undisclosed-recipients", None),
                                          (None, None, None, None)]),
            ("root", [(None, None, "root", MISSING_HOST)]),
            ("=?utf-8?q?J=C3=B6rg?= <j@x.org>", [("=?utf-8?q?J=C3=B6rg?=", None, "j", "x.org")]),
            ("", []),
            # RFC 5322 §3.2.2: comments and folding whitespace inside the angle are CFWS
            ("<user-from (comment)@ (comment) domain.org>",
             [(None, None, "user-from", "domain.org")]),
            ("Jo <jo\r\n (a) @ (b\r\n c) x.org (c)>, d@y.org",
             [("Jo", None, "jo", "x.org"), (None, None, "d", "y.org")]),
            ('<"a >b"@x.org>', [(None, None, '"a >b"', "x.org")]),
        ]
        for text, expected in cases:
            self.assertEqual(parse_address_list(text), expected, text)


class StructureTests(unittest.TestCase):
    def test_envelope_of_a_multipart_message(self) -> None:
        info = analyse(MULTIPART)
        self.assertEqual(
            envelope(info.envelope),
            b'(NIL "=?utf-8?q?caf=C3=A9?=" (("Doe, Jane" NIL "jane" "example.org")) '
            b'(("Doe, Jane" NIL "jane" "example.org")) (("Doe, Jane" NIL "jane" "example.org")) '
            b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
            b'((NIL NIL "a" "x.org")("Bob" "@relay.net" "bob" "y.org")) NIL NIL '
            b'"<m1@example.org>")')

    def test_bodystructure_of_a_multipart_message(self) -> None:
        info = analyse(MULTIPART)
        self.assertEqual(
            body_structure(info),
            b'(("text" "plain" ("charset" "utf-8") NIL NIL "7BIT" 12 2 NIL NIL NIL NIL)'
            b'("application" "pdf" ("name" "a.pdf") NIL NIL "BASE64" 4 NIL '
            b'("attachment" ("filename" "a.pdf")) NIL NIL)'
            b'("message" "rfc822" NIL NIL NIL "7BIT" 37 (NIL "inner" ((NIL NIL "x" "z.org")) '
            b'((NIL NIL "x" "z.org")) ((NIL NIL "x" "z.org")) NIL NIL NIL NIL NIL) '
            b'("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 4 1 NIL NIL NIL NIL) 4 '
            b'NIL NIL NIL NIL) "mixed" ("boundary" "XX") NIL NIL NIL)')
        self.assertEqual(
            body_structure(info, extended=False),
            b'(("text" "plain" ("charset" "utf-8") NIL NIL "7BIT" 12 2)'
            b'("application" "pdf" ("name" "a.pdf") NIL NIL "BASE64" 4)'
            b'("message" "rfc822" NIL NIL NIL "7BIT" 37 (NIL "inner" ((NIL NIL "x" "z.org")) '
            b'((NIL NIL "x" "z.org")) ((NIL NIL "x" "z.org")) NIL NIL NIL NIL NIL) '
            b'("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 4 1) 4) "mixed")')

    def test_eight_bit_header_values_are_sent_as_literals(self) -> None:
        info = analyse("From: Jörg <j@x.org>\r\nSubject: café\r\n\r\nx\r\n".encode("utf-8"))
        encoded = envelope(info.envelope)
        self.assertIn("{5}\r\ncafé".encode("utf-8"), encoded)
        self.assertIn("{5}\r\nJörg".encode("utf-8"), encoded)
