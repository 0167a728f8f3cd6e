"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3): canonical form only."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.imap import mutf7

ROUND_TRIPS = [
    ("INBOX", b"INBOX"),
    ("Entwürfe", b"Entw&APw-rfe"),
    ("a&b", b"a&-b"),
    ("日本語", b"&ZeVnLIqe-"),
    ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 §5.1.3 example
    ("☺ x", b"&Jjo- x"),
]

REFUSED = [
    b"&",            # unterminated
    b"&Jjo",         # unterminated base64
    b"&AGE-",        # "a" encoded: printable ASCII must be direct
    b"&AOk-&AOk-",   # two adjacent encoded runs must be one
    b"caf\xc3\xa9",  # raw UTF-8 is not modified UTF-7
    b"&A-",          # not a whole UTF-16 unit
    b"a\x01b",       # control character
]


class ModifiedUTF7Tests(unittest.TestCase):
    def test_names_round_trip_in_canonical_form(self) -> None:
        for name, wire in ROUND_TRIPS:
            self.assertEqual(mutf7.encode(name), wire, name)
            self.assertEqual(mutf7.decode(wire), name, wire)

    def test_non_canonical_or_malformed_names_are_refused(self) -> None:
        for wire in REFUSED:
            self.assertRaises(mutf7.InvalidModifiedUTF7, mutf7.decode, wire)

    def test_astral_characters_use_surrogate_pairs(self) -> None:
        self.assertEqual(mutf7.decode(mutf7.encode("mail 📬")), "mail 📬")
