"""Tokenizer and argument readers (RFC 3501 §4, §9)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from twisted.trial import unittest

from mailgosend.imap.errors import ImapError
from mailgosend.imap.tokens import (Args, Atom, Quoted, mailbox_name, parse_date,
                                    parse_datetime, tokenize)


class TokenizerTests(unittest.TestCase):
    def test_atoms_strings_and_nested_lists(self) -> None:
        tokens = tokenize([b'a1 FETCH 1:* (FLAGS (X "y z")) "q\\"uo\\\\te"'])
        self.assertEqual(tokens, ["a1", "FETCH", "1:*", ["FLAGS", ["X", b"y z"]], b'q"uo\\te'])
        self.assertIsInstance(tokens[0], Atom)
        self.assertIsInstance(tokens[4], Quoted)

    def test_brackets_keep_spaces_inside_an_atom(self) -> None:
        tokens = tokenize([b'a FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM "To")]<0.10> UID)'])
        self.assertEqual(tokens[3], ['BODY.PEEK[HEADER.FIELDS (FROM "To")]<0.10>', "UID"])

    def test_open_bracket_is_an_atom_char_outside_fetch_sections(self) -> None:
        # RFC 3501 §9: only "]" is a resp-special; "[" is an ATOM-CHAR
        self.assertEqual(tokenize([b"a SELECT foo[bar"]), ["a", "SELECT", "foo[bar"])
        self.assertEqual(tokenize([b"a RENAME a[b c]d"]), ["a", "RENAME", "a[b", "c]d"])
        self.assertEqual(tokenize([b"a LIST \"\" [Gmail]/%"]), ["a", "LIST", b"", "[Gmail]/%"])
        self.assertEqual(tokenize([b"a FETCH 1 BODY[HEADER.FIELDS (A B)]"])[3],
                         "BODY[HEADER.FIELDS (A B)]")
        self.assertEqual(tokenize([b"a FETCH 1 (body.peek[1.MIME] BINARY[1 2] X[a b])"])[3],
                         ["body.peek[1.MIME]", "BINARY[1 2]", "X[a", "b]"])

    def test_bad_syntax_is_bad(self) -> None:
        for text in [b"a (b", b"a b)", b'a "open', b'a "bad \\x escape"',
                     b"a \x01", b"a (" * 40 + b")" * 40, b"a caf\xe9"]:
            error = self.assertRaises(ImapError, tokenize, [text])
            self.assertEqual(error.status, "BAD", text)

    def test_args_readers(self) -> None:
        args = Args(tokenize([b'x "two words" (a) 42']))
        self.assertEqual(args.astring(), b"x")
        self.assertEqual(args.astring(), b"two words")
        self.assertEqual(args.parenthesized(), ["a"])
        self.assertEqual(args.number(), 42)
        args.end()
        self.assertRaises(ImapError, Args([]).astring)
        self.assertRaises(ImapError, Args(tokenize([b"x y"])).end)

    def test_mailbox_names_decode_modified_utf7_and_inbox_any_case(self) -> None:
        self.assertEqual(mailbox_name(b"inbox"), "INBOX")
        self.assertEqual(mailbox_name(b"Inbox/Sub"), "INBOX/Sub")
        self.assertEqual(mailbox_name(b"Entw&APw-rfe"), "Entwürfe")
        self.assertEqual(mailbox_name(b"Inboxes"), "Inboxes")
        error = self.assertRaises(ImapError, mailbox_name, b"caf\xc3\xa9")
        self.assertEqual(error.status, "NO")

    def test_dates(self) -> None:
        self.assertEqual(parse_date(b"1-Feb-1994"), datetime(1994, 2, 1))
        self.assertEqual(parse_datetime(b" 5-Jul-2024 10:11:12 -0230"),
                         datetime(2024, 7, 5, 10, 11, 12,
                                  tzinfo=timezone(-timedelta(hours=2, minutes=30))))
        for bad in [b"31-Foo-2020", b"2020-01-01", b"x"]:
            self.assertRaises(ImapError, parse_date, bad)
        for bad in [b"05-Jul-2024 10:11 +0000", b"05-Jul-2024 10:11:12 0000", b"05-Jul-2024"]:
            self.assertRaises(ImapError, parse_datetime, bad)
