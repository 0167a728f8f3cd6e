"""BINARY (RFC 3516): the pure part (item syntax, decoding, literal8) as tables, then FETCH
BINARY/BINARY.PEEK/BINARY.SIZE and APPEND with a literal8 through imaplib and IMAPClient."""

from __future__ import annotations

import base64
import quopri
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.imap.binary import binary_literal, decode_content, parse_binary
from mailgosend.imap.errors import ImapError
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import ALICE, MULTIPART, PASSWORD, IMAPFixture, message


class PureTests(unittest.TestCase):
    def test_parse(self) -> None:
        cases = [
            ("BINARY[1]", ("1", False, False, None, b"BINARY[1]")),
            ("binary.peek[1.2]<10.20>", ("1.2", True, False, (10, 20), b"BINARY[1.2]<10>")),
            ("BINARY.SIZE[3]", ("3", True, True, None, b"BINARY.SIZE[3]")),
            ("BINARY[]", ("", False, False, None, b"BINARY[]")),
            ("BINARY.SIZE[]", ("", True, True, None, b"BINARY.SIZE[]")),
        ]
        for text, expected in cases:
            spec = parse_binary(text)
            assert spec is not None
            self.assertEqual((spec.section, spec.peek, spec.size_only, spec.partial,
                              spec.label), expected, text)
        self.assertIsNone(parse_binary("BODY[1]"))
        for text in ("BINARY[HEADER]", "BINARY[1.MIME]", "BINARY[0]", "BINARY[1]<0.0>",
                     "BINARY.SIZE[1]<0.5>", "BINARY[TEXT]", "BINARYX[1]"):
            with self.assertRaises(ImapError, msg=text) as caught:
                parse_binary(text)
            self.assertEqual(caught.exception.status, "BAD", text)

    def test_decode(self) -> None:
        raw = bytes(range(256)) * 3
        cases = [
            (base64.encodebytes(raw).replace(b"\n", b"\r\n"), "base64", raw),
            (base64.b64encode(raw), "BASE64", raw),
            (base64.b64encode(b"abcde")[:-2], "base64", b"abc"),  # truncated: whole groups
            (quopri.encodestring(raw), "quoted-printable", raw),
            (b"caf=C3=A9 =\r\nna=C3=AFve\r\n", "Quoted-Printable", "café naïve\r\n".encode()),
            (b"as is\x80\r\n", "8bit", b"as is\x80\r\n"),
            (b"as is\r\n", "7bit", b"as is\r\n"),
            (b"\x00\x01", "binary", b"\x00\x01"),
            (b"plain", "", b"plain"),
        ]
        for data, encoding, expected in cases:
            self.assertEqual(decode_content(data, encoding), expected, encoding)
        with self.assertRaises(ImapError) as caught:
            decode_content(b"begin 644 x\r\n", "x-uuencode")
        self.assertEqual((caught.exception.status, caught.exception.code), ("NO", "UNKNOWN-CTE"))

    def test_literal(self) -> None:
        self.assertEqual(binary_literal(b"a\x00b"), b"~{3}\r\na\x00b")
        self.assertEqual(binary_literal(b"ab\xff"), b"{3}\r\nab\xff")


PDF = base64.b64decode(b"JVBERi0xLjQK")  # MULTIPART's part 2
TEXT = "naïve façade, quarterly figures".encode("utf-8")  # its part 1, quoted-printable
UUENCODED = message("uu", "begin 644 x\r\n#86)C\r\n`\r\nend\r\n",
                    extra="Content-Transfer-Encoding: x-uuencode\r\n")


class BinaryFetchTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_fetch_binary_with_imaplib(self) -> Any:
        yield self.deliver(MULTIPART)
        yield self.deliver(UUENCODED)
        yield self.listen()

        def scenario() -> Any:
            client = self.imaplib_client()
            try:
                out = {"caps": client.capability()[1][0].split()}
                client.select("INBOX")
                out["peek"] = client.fetch(
                    "1", "(BINARY.PEEK[1] BINARY.SIZE[1] BINARY.PEEK[2] BINARY.SIZE[2] "
                    "BINARY.PEEK[2]<1.3> BINARY.SIZE[9])")
                out["flags_after_peek"] = client.fetch("1", "(FLAGS)")
                out["read"] = client.fetch("1", "(BINARY[1])")
                out["whole"] = client.fetch("1", "(BINARY.PEEK[] BINARY.SIZE[])")
                out["nested"] = client.fetch("1", "(BINARY.PEEK[3.1])")
                out["unknown"] = client.fetch("2", "(BINARY.PEEK[1])")
                out["bad"] = client._simple_command("NOOP")
                try:
                    client.fetch("1", "(BINARY[1.MIME])")
                except client.error as exc:
                    out["mime"] = str(exc)
                return out
            finally:
                client.logout()

        out = yield self.in_thread(scenario)
        self.assertIn(b"BINARY", out["caps"])
        typ, data = out["peek"]
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0][0], b"1 (BINARY[1] {%d}" % len(TEXT))
        self.assertEqual(data[0][1], TEXT)
        self.assertEqual(data[1][0], b" BINARY.SIZE[1] %d BINARY[2] {%d}" % (len(TEXT), len(PDF)))
        self.assertEqual(data[1][1], PDF)
        self.assertEqual(data[2][0], b" BINARY.SIZE[2] %d BINARY[2]<1> {3}" % len(PDF))
        self.assertEqual(data[2][1], PDF[1:4])
        self.assertEqual(data[3], b" BINARY.SIZE[9] 0)")
        self.assertNotIn(b"\\Seen", out["flags_after_peek"][1][0])
        typ, data = out["read"]  # BINARY (not PEEK) sets \Seen, and says so
        self.assertEqual(data[0][1], TEXT)
        self.assertIn(b"\\Seen", data[1])
        typ, data = out["whole"]
        self.assertEqual(data[0][1], MULTIPART)
        self.assertEqual(data[1], b" BINARY.SIZE[] %d)" % len(MULTIPART))
        self.assertEqual(out["nested"][1][0][1], b"inner body")  # the inner message's body
        typ, data = out["unknown"]
        self.assertEqual(typ, "NO")
        self.assertIn(b"[UNKNOWN-CTE]", data[0])
        self.assertEqual(out["bad"][0], "OK")
        self.assertIn("BINARY sections are part numbers only", out["mime"])

    @defer.inlineCallbacks
    def test_append_literal8_and_fetch_binary_back(self) -> Any:
        payload = bytes(range(256)) * 4  # NUL included: only a literal8 may carry it
        raw = (b"From: a@example.org\r\nTo: alice@example.com\r\nSubject: bin\r\n"
               b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Transfer-Encoding: binary\r\n\r\n" + payload)
        yield self.listen()

        def scenario() -> Any:
            client = self.raw()
            try:
                client.command(b"l", b'LOGIN "%s" "%s"' % (ALICE.encode(), PASSWORD.encode()))
                client.send(b"a APPEND INBOX (\\Seen) ~{%d}\r\n" % len(raw))
                cont = client.line()
                client.send(raw + b"\r\n")
                appended = client.until(b"a")
                client.send(b"b APPEND INBOX ~{%d+}\r\n" % len(raw) + raw + b"\r\n")
                appended_plus = client.until(b"b")
                return cont, appended, appended_plus
            finally:
                client.close()

        cont, appended, appended_plus = yield self.in_thread(scenario)
        self.assertTrue(cont.startswith(b"+ "))
        self.assertTrue(appended[-1].startswith(b"a OK [APPENDUID "), appended)
        self.assertTrue(appended_plus[-1].startswith(b"b OK [APPENDUID "), appended_plus)

        def fetch() -> Any:
            client = self.imaplib_client()
            try:
                client.select("INBOX")
                return (client.fetch("1:2", "(BINARY.PEEK[1] BINARY.SIZE[1] FLAGS)"),
                        client.fetch("1", "(BINARY.PEEK[])"))
            finally:
                client.logout()

        (typ, data), (_, whole) = yield self.in_thread(fetch)
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0][0], b"1 (BINARY[1] ~{%d}" % len(payload))
        self.assertEqual(data[0][1], payload)
        # RFC 3501 §2.3.2: the first session to select the mailbox sees the APPENDed as \Recent
        self.assertEqual(data[1], b" BINARY.SIZE[1] %d FLAGS (\\Seen \\Recent))" % len(payload))
        self.assertEqual(data[2][1], payload)
        self.assertEqual(whole[0][1], raw)  # stored byte for byte

    @defer.inlineCallbacks
    def test_imapclient_reads_decoded_parts(self) -> Any:
        delivered = yield self.deliver(MULTIPART)
        yield self.listen()
        client = yield self.in_thread(self.imapclient_client)
        self.addCleanup(self.in_thread, client.logout)
        self.assertTrue((yield self.in_thread(client.has_capability, "BINARY")))
        yield self.in_thread(client.select_folder, "INBOX")
        fetched = yield self.in_thread(client.fetch, [delivered.uid],
                                       ["BINARY.PEEK[1]", "BINARY.PEEK[2]", "BINARY.SIZE[2]"])
        got = fetched[delivered.uid]
        self.assertEqual(got[b"BINARY[1]"], TEXT)
        self.assertEqual(got[b"BINARY[2]"], PDF)
        self.assertEqual(got[b"BINARY.SIZE[2]"], len(PDF))
