"""IMAP SEARCH BODY/TEXT through the blind substring index (mail/substring.py) returns exactly
what the plain scan returns (RFC 3501 §6.4.4: substring, case-insensitive), for every text
criterion, over a corpus of random words, mid-word substrings, non-ASCII text, RFC 2047
headers, HTML and encoded bodies, with indexed and not yet indexed messages side by side."""

from __future__ import annotations

import base64
import quopri
import random
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mailgosend.imap import search as imap_search
from mailgosend.mail import substring
from mailgosend.mail.service import MailService
from mailgosend.store.mimeinfo import analyse
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import KEYRING, IMAPFixture

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sto", "pha", "qui", "zer", "bel", "ünd", "ße",
             "çà", "λό", "γος", "東", "京", "wx", "yo", "tan"]
CRITERIA = ["BODY", "TEXT", "FROM", "TO", "CC", "BCC", "SUBJECT"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


def _encoded_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def corpus(rng: random.Random, count: int) -> tuple[list[bytes], list[str]]:
    """``count`` messages and the words they use."""
    vocabulary = [_word(rng) for _ in range(60)]
    out = []
    for n in range(count):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(3, 25))]
        text = " ".join(w.capitalize() if rng.random() < 0.3 else w for w in words)
        subject = " ".join(rng.choice(vocabulary) for _ in range(3))
        sender = rng.choice(vocabulary)
        shape = n % 5
        headers = (f"From: {_encoded_word(sender.title()) if shape == 1 else sender}"
                   f" <{sender.encode('ascii', 'ignore').decode() or 'x'}{n}@example.org>\r\n"
                   f"To: {rng.choice(vocabulary)} <to{n}@example.com>\r\n"
                   f"Cc: {rng.choice(vocabulary)} <cc@example.net>\r\n"
                   f"Subject: {_encoded_word(subject) if shape in (1, 3) else subject}\r\n"
                   f"X-Note: {rng.choice(vocabulary)}\r\nMIME-Version: 1.0\r\n")
        if shape == 0:
            body = (f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n")
        elif shape == 1:
            body = ("Content-Type: text/plain; charset=utf-8\r\n"
                    "Content-Transfer-Encoding: base64\r\n\r\n"
                    + base64.encodebytes(text.encode("utf-8")).decode("ascii"))
        elif shape == 2:
            html = (f"<html><body><div class=\"{rng.choice(vocabulary)}\">{text}"
                    f" &amp; <b>mo</b>re</div><a href=\"http://x.org/{words[0]}\">l</a>"
                    f"</body></html>")
            body = ("Content-Type: text/html; charset=utf-8\r\n"
                    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                    + quopri.encodestring(html.encode("utf-8")).decode("ascii") + "\r\n")
        elif shape == 3:
            body = ("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
                    "Content-Type: text/plain; charset=iso-8859-1\r\n\r\n"
                    + text.encode("latin-1", "replace").decode("latin-1") + "\r\n--b\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n"
                    "Content-Disposition: attachment; filename=\"n.txt\"\r\n\r\n"
                    + " ".join(rng.choice(vocabulary) for _ in range(5)) + "\r\n--b--\r\n")
        else:
            body = ("Content-Type: text/plain; charset=utf-8\r\n\r\n"
                    + "-".join(words) + "\r\n")
        raw = headers + body
        out.append(raw.encode("utf-8"))
    return out, vocabulary


def needles(rng: random.Random, vocabulary: list[str]) -> list[str]:
    """Whole words, prefixes, mid-word pieces, pieces across words, case variants, markup,
    strings too short to look up, and strings found nowhere."""
    found = ["&amp", "href", "div", "mo", "x.org/", "@example", "e", "ka lo", "Ünd",
             "STO", "ß", "ss", "東京", "λόγος", "zzzqqq", "<b>", "=?utf-8", "no such words"]
    for word in rng.sample(vocabulary, 12):
        found += [word, word[:3], word[1:4], word[2:], word.upper(), word[-2:] + " "]
    for _ in range(6):
        a, b = rng.sample(vocabulary, 2)
        found.append(a[-3:] + " " + b[:3])
    return found


class IndexedSearchTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def populate(self) -> Any:
        rng = random.Random(3501)
        messages, self.vocabulary = corpus(rng, 45)
        for raw in messages[:35]:
            yield self.deliver(raw)
        mail = MailService(runner=self.runner, keyring=KEYRING, blob_store=self.blobs,
                           workers=self.workers, clock=reactor, events=self.events)
        indexed = yield mail.for_user(self.alice).index_backlog()
        self.assertEqual(indexed, 35)
        for raw in messages[35:]:  # stored after: not indexed yet, scanned
            yield self.deliver(raw)
        self.needles = needles(rng, self.vocabulary)
        yield self.listen()

    def watch_index(self) -> list[set[str]]:
        """The indexed messages the index lets through, one set per lookup it could
        serve (once per needle and command)."""
        allowed: list[set[str]] = []
        real = substring.candidate_blobs

        def watched(*args: Any) -> Any:
            found = real(*args)
            if found is not None:
                allowed.append(set(found[1]))
            return found

        self.patch(substring, "candidate_blobs", watched)
        return allowed

    @defer.inlineCallbacks
    def inbox_client(self) -> Any:
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        return client

    def search(self, client: Any, criterion: str, needle: str) -> list[int]:
        client.literal = needle.encode("utf-8")
        typ, data = client.uid("SEARCH", "CHARSET", "UTF-8", criterion)
        assert typ == "OK", (criterion, needle, data)
        return [int(n) for n in data[0].split()]

    @defer.inlineCallbacks
    def test_indexed_and_scanned_results_are_the_same(self) -> Any:
        yield self.populate()
        narrowed = self.watch_index()
        client = yield self.inbox_client()
        indexed, hits = {}, 0
        for criterion in CRITERIA:
            for needle in self.needles:
                indexed[criterion, needle] = yield self.in_thread(
                    self.search, client, criterion, needle)
                hits += bool(indexed[criterion, needle])
        self.assertTrue(narrowed)
        self.assertLess(min(map(len, narrowed)), 45)  # the index did drop messages
        self.assertGreater(hits, len(indexed) // 4)  # the corpus is not all misses
        self.patch(imap_search, "USE_INDEX", False)
        narrowed.clear()
        for (criterion, needle), found in indexed.items():
            scanned = yield self.in_thread(self.search, client, criterion, needle)
            self.assertEqual(found, scanned, (criterion, needle))
        self.assertEqual(narrowed, [])

    @defer.inlineCallbacks
    def test_a_rare_word_reads_only_its_message(self) -> Any:
        yield self.populate()
        yield self.deliver(b"From: a@example.org\r\nSubject: s\r\n\r\nthe zygomorphic one\r\n")
        mail = MailService(runner=self.runner, keyring=KEYRING, blob_store=self.blobs,
                           workers=self.workers, clock=reactor, events=self.events)
        yield mail.for_user(self.alice).index_backlog()
        allowed = self.watch_index()
        client = yield self.inbox_client()
        for criterion in ("BODY", "TEXT"):
            found = yield self.in_thread(self.search, client, criterion, "GOMORPH")
            self.assertEqual(found, [46])
        self.assertEqual([len(a) for a in allowed], [1, 1])


    @defer.inlineCallbacks
    def test_mail_stored_through_the_service_is_indexed_at_once(self) -> Any:
        mail = MailService(runner=self.runner, keyring=KEYRING, blob_store=self.blobs,
                           workers=self.workers, clock=reactor, events=self.events)
        user_mail = yield mail.open_account(self.alice.email)
        inbox = yield user_mail.get_mailbox("INBOX")
        for body in ("plain words", "a zygomorphic flower", "more plain words"):
            yield user_mail.append(inbox.id, f"Subject: s\r\n\r\n{body}\r\n".encode(), (),
                                   None)
        yield self.listen()
        allowed = self.watch_index()
        client = yield self.inbox_client()
        self.assertEqual((yield self.in_thread(self.search, client, "BODY", "omorph")), [2])
        self.assertEqual((yield self.in_thread(self.search, client, "BODY", "ain wor")),
                         [1, 3])
        self.assertEqual([len(a) for a in allowed], [1, 2])


class SubstringTokenTests(unittest.TestCase):
    def test_every_trigram_of_every_word_and_a_marker(self) -> None:
        raw = (b"From: a@b.c\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
               b"Content-Type: text/html\r\n\r\n<p>Hello&nbsp;w\xc3\xb6rld</p>\r\n")
        body, headers, complete = substring.imap_grams(
            analyse(raw), lambda s, e: raw[s:e], len(raw))
        self.assertTrue(complete)
        self.assertTrue({"hel", "ell", "llo", "nbs", "bsp", "wör", "örl", "rld"} <= body)
        self.assertIn("üss", headers)  # "grüße" case-folds to "grüsse"
        self.assertEqual(substring.needle_tokens(b"k", "B", "a."), [])
        self.assertEqual(len(substring.needle_tokens(b"k", "B", "xllo w")), 2)
