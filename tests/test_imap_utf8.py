"""UTF8=ACCEPT (RFC 6855) through imaplib, which implements the client side (ENABLE switches
it to UTF-8 commands and responses), and a line-level client for APPEND UTF8: imaplib's
``append`` puts the ``UTF8 (`` marker inside the literal after ENABLE (CPython gh-78319),
which no server can take as RFC 6855 §4 syntax."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.imap.wireformat import mailbox
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import ALICE, PASSWORD, IMAPFixture, message

# RFC 6532: UTF-8 in header fields, addresses included.
INTERNATIONAL = ("From: Jürgen <jürgen@bücher.example>\r\nTo: alice@example.com\r\n"
                 "Subject: Grüße aus Köln\r\nMessage-ID: <utf8@bücher.example>\r\n"
                 "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Transfer-Encoding: 8bit\r\n\r\nschöne Grüße\r\n").encode("utf-8")


class WireFormatTests(unittest.TestCase):
    def test_mailbox_names(self) -> None:
        self.assertEqual(mailbox("Entwürfe"), b'"Entw&APw-rfe"')
        self.assertEqual(mailbox("Entwürfe", utf8=True), '"Entwürfe"'.encode("utf-8"))
        self.assertEqual(mailbox('Tom & "Jerry"', utf8=True), b'"Tom & \\"Jerry\\""')
        self.assertEqual(mailbox("a\r\nb", utf8=True), b"{4}\r\na\r\nb")


class Utf8AcceptTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_names_are_utf8_after_enable(self) -> Any:
        yield self.deliver(message("Grüße", "hallo\r\n"))
        yield self.listen()

        def scenario() -> dict[str, Any]:
            out: dict[str, Any] = {}
            before = self.imaplib_client()
            try:
                out["caps"] = before.capability()[1][0].split()
                before.create('"Entw&APw-rfe"')
                out["before"] = before.list('""', '"Entw*"')
            finally:
                before.logout()
            client = self.imaplib_client()
            try:
                out["enabled"] = client.enable("UTF8=ACCEPT")
                out["list"] = client.list('""', '"Entw*"')
                assert client.create('"Tom & Jerry/日本語"')[0] == "OK"
                out["tree"] = client.list('""', '"Tom & Jerry*"')
                out["status"] = client.status('"Entwürfe"', "(MESSAGES UIDNEXT)")
                out["rename"] = client.rename('"Entwürfe"', '"Entwürfe 2026"')
                out["select"] = client.select('"INBOX"')
                out["search"] = client.search(None, "SUBJECT", '"Grüße"')
                try:  # imaplib refuses this itself; send it anyway
                    client._simple_command("SEARCH", "CHARSET", "UTF-8", "SUBJECT", '"Grüße"')
                except client.error as exc:
                    out["charset"] = str(exc)
                out["copy"] = client.copy("1", '"Entwürfe 2026"')
                client.subscribe('"Entwürfe 2026"')
                out["lsub"] = client.lsub('""', '"Entw*"')
            finally:
                client.logout()
            return out

        out = yield self.in_thread(scenario)
        self.assertIn(b"UTF8=ACCEPT", out["caps"])
        self.assertEqual(out["before"][1], [b'(\\HasNoChildren) "/" "Entw&APw-rfe"'])
        self.assertEqual(out["enabled"], ("OK", [b"ENABLE completed"]))
        self.assertEqual(out["list"][1], ['(\\HasNoChildren) "/" "Entwürfe"'.encode()])
        # "&" is an ordinary character once names are UTF-8.
        self.assertEqual(out["tree"][1], [b'(\\HasChildren) "/" "Tom & Jerry"',
                                          '(\\HasNoChildren) "/" "Tom & Jerry/日本語"'.encode()])
        self.assertEqual(out["status"][1], ['"Entwürfe" (MESSAGES 0 UIDNEXT 1)'.encode()])
        self.assertEqual(out["rename"][0], "OK")
        self.assertEqual(out["search"], ("OK", [b"1"]))
        # RFC 6855 §3 (erratum 4029): no CHARSET once UTF-8 is enabled.
        self.assertIn("SEARCH CHARSET is not allowed after ENABLE UTF8=ACCEPT", out["charset"])
        self.assertEqual(out["copy"][0], "OK")
        self.assertEqual(out["lsub"][1], ['() "/" "Entwürfe 2026"'.encode()])
        self.assertIsNotNone(self.mailbox("Tom & Jerry/日本語"))
        self.assertEqual(len(self.rows("Entwürfe 2026")), 1)

    @defer.inlineCallbacks
    def test_append_utf8_data_item(self) -> Any:
        yield self.listen()

        def scenario() -> Any:
            client = self.raw()
            try:
                client.command(b"l", b'LOGIN "%s" "%s"' % (ALICE.encode(), PASSWORD.encode()))
                early = client.command(b"a", b"APPEND INBOX UTF8 (~{%d+}\r\n" % len(INTERNATIONAL)
                                       + INTERNATIONAL + b")")
                enabled = client.command(b"b", b"ENABLE UTF8=ACCEPT")
                # As Thunderbird sends it: flags, then a synchronizing literal8 in UTF8 (...).
                client.send(b'c APPEND "Sent" (\\Seen) UTF8 (~{%d}\r\n' % len(INTERNATIONAL))
                cont = client.line()
                client.send(INTERNATIONAL + b")\r\n")
                appended = client.until(b"c")
                big = INTERNATIONAL + b"x" * 100_000 + b"\r\n"  # past the 64 KiB command limit
                client.send(b"d APPEND INBOX UTF8 (~{%d}\r\n" % len(big))
                cont_big = client.line()
                client.send(big + b")\r\n")
                appended_big = client.until(b"d")
                wrong = client.command(b"e", b"APPEND INBOX UTF8 {%d+}\r\n" % len(INTERNATIONAL)
                                       + INTERNATIONAL)
                listed = client.command(b"f", "LIST \"\" \"Sent\"".encode())
                return early, enabled, cont, appended, cont_big, appended_big, wrong, listed
            finally:
                client.close()

        early, enabled, cont, appended, cont_big, appended_big, wrong, listed = \
            yield self.in_thread(scenario)
        self.assertEqual(early[-1], b"a BAD APPEND UTF8 needs ENABLE UTF8=ACCEPT first\r\n")
        self.assertEqual(enabled[0], b"* ENABLED UTF8=ACCEPT\r\n")
        self.assertTrue(cont.startswith(b"+ "), cont)
        self.assertTrue(appended[-1].startswith(b"c OK [APPENDUID "), appended)
        self.assertTrue(cont_big.startswith(b"+ "), cont_big)
        self.assertTrue(appended_big[-1].startswith(b"d OK [APPENDUID "), appended_big)
        self.assertEqual(wrong[-1], b"e BAD Expected UTF8 (literal8)\r\n")
        self.assertIn(b'"Sent"', listed[0])

        def fetch() -> Any:
            client = self.imaplib_client()
            try:
                client.enable("UTF8=ACCEPT")
                client.select('"Sent"')
                return (client.fetch("1", "(FLAGS BODY.PEEK[])"),
                        client.search(None, "FROM", '"jürgen"'))
            finally:
                client.logout()

        (typ, data), found = yield self.in_thread(fetch)
        self.assertEqual(data[0][1], INTERNATIONAL)  # stored as sent
        self.assertIn(b"\\Seen", data[0][0])
        self.assertEqual(found, ("OK", [b"1"]))
