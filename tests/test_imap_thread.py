"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (imap/thread.py), from RFC 5256 §3 and §4,
as tables of messages and the thread-list they give."""

from __future__ import annotations

from typing import Optional

from twisted.trial import unittest

from mailgosend.mail.sortkeys import base_subject, unicode_casemap
from mailgosend.imap.thread import (Forest, ThreadItem, format_threads, ordered_subject,
                                    references)


def item(n: int, subject: str = "x", msgid: Optional[str] = None, refs: str = "",
         date: Optional[float] = None) -> ThreadItem:
    base, reply = base_subject(subject)
    return ThreadItem(n, (float(n) if date is None else date, n), unicode_casemap(base), reply,
                      msgid, tuple(refs.split()))


def render(threads: Forest) -> str:
    return format_threads(threads).decode()


ORDERED_SUBJECT = [
    ("one message", [item(1, "a")], "(1)"),
    ("same subject: root and children",
     [item(1, "a"), item(2, "b"), item(3, "Re: a"), item(4, "c"), item(5, "A")],
     "(1 (3)(5))(2)(4)"),
    ("single child is written flat", [item(1, "a"), item(2, "Fwd: a")], "(1 2)"),
    ("threads by their first sent date; children by date",
     [item(1, "b", date=50), item(2, "a", date=10), item(3, "b", date=5), item(4, "b", date=7)],
     "(3 (4)(1))(2)"),
    ("equal dates: sequence order", [item(2, "a", date=1), item(1, "a", date=1)], "(1 2)"),
]

REFERENCES = [
    ("chain", [item(1, "a", "a"), item(2, "Re: a", "b", "a"), item(3, "Re: a", "c", "a b")],
     "(1 2 3)"),
    ("two replies", [item(1, "a", "a"), item(2, "Re: a", "b", "a"), item(3, "Re: a", "c", "a")],
     "(1 (2)(3))"),
    ("RFC 5256 §4 example shape",
     [item(2, "p", "p2"), item(3, "q", "q3"), item(6, "Re: q", "q6", "q3"),
      item(4, "Re: q", "q4", "q3 q6"), item(23, "Re: q", "q23", "q3 q6 q4"),
      item(44, "Re: q", "q44", "q3 q6"), item(7, "Re: q", "q7", "q3 q6 q44"),
      item(96, "Re: q", "q96", "q3 q6 q44 q7")],
     "(2)(3 6 (4 23)(44 7 96))"),
    ("missing parent of two: a dummy keeps them together",
     [item(1, "a", "m1", "gone"), item(2, "b", "m2", "gone")], "((1)(2))"),
    ("missing parent of one: promoted", [item(1, "a", "m1", "gone")], "(1)"),
    ("missing middle of a chain is spliced out",
     [item(1, "a", "m1"), item(2, "b", "m2", "m1 gone")], "(1 2)"),
    ("truncated References: the last reference is the parent",
     [item(1, "a", "a"), item(2, "Re: a", "b", "a"), item(3, "Re: a", "c", "b")], "(1 2 3)"),
    ("a reply with the same subject joins its original",
     [item(1, "hello", "m1"), item(2, "Re: hello", "m2")], "(1 2)"),
    ("two originals with one subject share a dummy",
     [item(1, "hello", "m1"), item(2, "hello", "m2")], "((1)(2))"),
    ("two dummies with one subject pool their children",
     [item(1, "a", "m1", "x"), item(2, "a", "m2", "x"), item(3, "a", "m3", "y"),
      item(4, "Re: a", "m4", "y")], "((1)(2)(3)(4))"),
    ("a message joins a dummy of its subject",
     [item(1, "a", "m1", "x"), item(2, "a", "m2", "x"), item(3, "Re: a", "m3")],
     "((1)(2)(3))"),
    ("a reply's thread goes under the original's",
     [item(1, "a", "m1"), item(2, "Re: a", "m2", "gone"), item(3, "Re: a", "m3", "m2")],
     "(1 2 3)"),
    ("empty subjects are not gathered", [item(1, "", "m1"), item(2, "", "m2")], "(1)(2)"),
    ("reference loop: no link that closes it",
     [item(1, "a", "a", "b"), item(2, "b", "b", "a")], "(2 1)"),
    ("duplicate Message-ID: a message of its own",
     [item(1, "a", "same"), item(2, "b", "same")], "(1)(2)"),
    ("self reference is ignored", [item(1, "a", "a", "a")], "(1)"),
    ("siblings by sent date",
     [item(1, "a", "r"), item(2, "Re: a", "s", "r", date=30), item(3, "Re: a", "t", "r", date=20)],
     "(1 (3)(2))"),
    ("roots by sent date, a dummy by its first child",
     [item(1, "a", "m1", date=40), item(2, "b", "m2", "gone", date=30),
      item(3, "c", "m3", "gone", date=50)], "((2)(3))(1)"),
]


class ThreadTests(unittest.TestCase):
    def test_ordered_subject_table(self) -> None:
        for name, items, expected in ORDERED_SUBJECT:
            self.assertEqual(render(ordered_subject(items)), expected, name)

    def test_references_table(self) -> None:
        for name, items, expected in REFERENCES:
            self.assertEqual(render(references(items)), expected, name)

    def test_no_messages(self) -> None:
        self.assertEqual(render(references([])), "")
        self.assertEqual(render(ordered_subject([])), "")

    def test_long_reply_chain_needs_no_recursion(self) -> None:
        count = 20_000
        items = [item(1, "a", "m1")] + [
            item(n, "Re: a", f"m{n}", f"m{n - 1}") for n in range(2, count + 1)]
        text = render(references(items))
        self.assertEqual(text, "(" + " ".join(str(n) for n in range(1, count + 1)) + ")")

    def test_deeply_branching_thread_needs_no_recursion(self) -> None:
        # every message has two replies; the second one continues the chain
        items, parent = [item(1, "a", "m1")], "m1"
        for n in range(2, 6001, 2):
            items += [item(n, "Re: a", f"m{n}", parent), item(n + 1, "Re: a", f"m{n + 1}", parent)]
            parent = f"m{n + 1}"
        text = render(references(items))
        self.assertTrue(text.startswith("(1 (2)(3 (4)(5 (6)(7 "), text[:40])
        self.assertEqual(text.count("("), text.count(")"))
