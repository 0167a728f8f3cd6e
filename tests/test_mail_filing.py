"""The spam-filing rule (mail/filing.py): what a copy or move teaches, by mailbox roles."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.mail.filing import training_verdict

# (source role, target role, same mailbox) -> True spam, False ham, None nothing
CASES = [
    ("inbox", "junk", False, True),
    (None, "junk", False, True),  # a user's own folder into Junk
    ("archive", "junk", False, True),
    ("junk", "inbox", False, False),
    ("junk", None, False, False),
    ("junk", "archive", False, False),
    ("junk", "trash", False, None),  # deleting spam is not "this is good mail"
    ("junk", "junk", False, None),
    ("junk", "junk", True, None),  # a copy within Junk
    ("inbox", "archive", False, None),
    ("inbox", "trash", False, None),
    (None, None, False, None),
    ("inbox", "inbox", True, None),
    ("trash", "junk", False, True),
    ("sent", "junk", False, True),
]


class TrainingVerdictTests(unittest.TestCase):
    def test_table(self) -> None:
        for source, target, same, expected in CASES:
            with self.subTest(source=source, target=target, same=same):
                self.assertIs(training_verdict(source, target, same_mailbox=same), expected)
