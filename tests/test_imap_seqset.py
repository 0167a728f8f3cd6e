"""Sequence sets (RFC 3501 §9) and UID set compression for UIDPLUS."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.imap.errors import ImapError
from mailgosend.imap.seqset import SequenceSet, compress


class SequenceSetTests(unittest.TestCase):
    def test_sequence_numbers(self) -> None:
        cases = [("1", 5, [1]), ("1:3", 5, [1, 2, 3]), ("3:1", 5, [1, 2, 3]),
                 ("2,4:*", 5, [2, 4, 5]), ("*", 5, [5]), ("*:4", 5, [4, 5]),
                 ("1,1,2", 3, [1, 2])]
        for text, count, expected in cases:
            self.assertEqual(SequenceSet.parse(text).sequence_numbers(count), expected, text)

    def test_sequence_numbers_beyond_the_mailbox_are_bad(self) -> None:
        for text, count in [("6", 5), ("1:9", 5), ("*", 0), ("1:*", 0)]:
            error = self.assertRaises(ImapError, SequenceSet.parse(text).sequence_numbers, count)
            self.assertEqual(error.status, "BAD")

    def test_uids_name_only_existing_messages_and_star_is_the_largest(self) -> None:
        known = [3, 7, 9, 20]
        cases = [("1:*", [3, 7, 9, 20]), ("8:10", [9]), ("21:*", [20]), ("100", []),
                 ("4:6", []), ("*", [20]), ("3,20", [3, 20])]
        for text, expected in cases:
            self.assertEqual(SequenceSet.parse(text).uids(known), expected, text)
        self.assertEqual(SequenceSet.parse("1:*").uids([]), [])

    def test_invalid_sets_are_bad(self) -> None:
        for text in ["", "0", "1:", ":2", "a", "1,,2", "1:2:3", "-1", "4294967296", "1.5"]:
            error = self.assertRaises(ImapError, SequenceSet.parse, text)
            self.assertEqual(error.status, "BAD", text)

    def test_contains_uses_star_as_the_largest(self) -> None:
        seqset = SequenceSet.parse("2:3,10:*")
        self.assertTrue(seqset.contains(3, 12))
        self.assertTrue(seqset.contains(12, 12))
        self.assertFalse(seqset.contains(5, 12))

    def test_compress_keeps_order_and_makes_ranges(self) -> None:
        self.assertEqual(compress([1, 2, 3, 7, 9, 10]), "1:3,7,9:10")
        self.assertEqual(compress([5]), "5")
        self.assertEqual(compress([]), "")
