"""The Bayesian classifier (spam/bayes.py): tokenizer, keyed hashes, the maths on hand-made
tables, the points mapping, the shipped corpus, and the trainer and lookup on both back ends.

The corpus test prints precision and recall (trial shows stdout): it is the figure to watch
when the tokenizer or the maths change.
"""

from __future__ import annotations

import base64
import glob
import math
import mailbox
import os
from collections import defaultdict
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any, Optional

from sqlalchemy import select
from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mailgosend.crypto import KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import bayes_seen, bayes_tokens
from mailgosend.imap.interfaces import ISpamTrainer, MessageRef
from mailgosend.spam import bayes
from mailgosend.store import accounts
from mailgosend.store import bayes as stats
from mailgosend.store import messages as ms
from mailgosend.store.blobs import DatabaseBlobs
from mailgosend.store.mimeinfo import analyse
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
KEYRING = KeyRing(bytes(range(32)))
KEY = bytes(range(100, 132))
CORPUS = os.path.join(os.path.dirname(__file__), "data", "spam_corpus")
SECRET_WORD = "zanzibarite"  # appears nowhere but in the trained message


def known(probability: Optional[float]) -> float:
    """The probability of a classifier that was expected to have an opinion."""
    if probability is None:
        raise AssertionError("the classifier gave no opinion")
    return probability


def message(subject: str = "Hello", body: str = "", *, sender: str = "Ann <ann@a.example>",
            to: str = "bob@b.example", subtype: str = "plain", charset: str = "utf-8",
            cte: Optional[str] = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content(body, subtype=subtype, charset=charset, cte=cte)
    return bytes(msg)


class TokenizerTests(unittest.TestCase):
    def test_header_tokens_are_prefixed_and_come_first(self) -> None:
        raw = message("Cheap =?utf-8?q?caf=C3=A9?= offer", "offer inside",
                      sender='"Best Deals" <Promo@Deals.Example>',
                      to="x@one.example, Y <y@two.example>")
        tokens = bayes.tokenize(raw)
        self.assertEqual(tokens[:9], [
            "subject:cheap", "subject:café", "subject:offer", "from:promo@deals.example",
            "from-domain:deals.example", "from-name:best", "from-name:deals",
            "to-domain:one.example", "to-domain:two.example"])
        self.assertIn("offer", tokens)
        self.assertIn("ctype:text/plain", tokens)
        self.assertIn("charset:utf-8", tokens)

    def test_words_are_lower_case_with_edge_punctuation_stripped(self) -> None:
        tokens = bayes.tokenize(message(body='"Hello," said FREDERICK. (Really?) ok no'))
        self.assertTrue({"hello", "said", "frederick", "really"} <= set(tokens))
        self.assertNotIn("ok", tokens)  # shorter than three characters
        self.assertNotIn("no", tokens)

    def test_numbers_are_bucketed_by_digits(self) -> None:
        cases = {"2025": "num:4", "$1,000,000": "num:$7", "50%": "num:2%",
                 "555-1234.": "num:7", "12/03/2025": "num:8", "€99": "num:€2"}
        for text, expected in cases.items():
            self.assertIn(expected, bayes.tokenize(message(body=text)), text)

    def test_long_words_become_their_shape(self) -> None:
        tokens = bayes.tokenize(message(body="a" * 25 + " " + "b" * 21))
        self.assertIn("long:a:20", tokens)
        self.assertFalse(any(t.startswith("aaaa") for t in tokens))

    def test_urls_become_host_and_parent_domain_tokens(self) -> None:
        tokens = bayes.tokenize(message(
            body="see https://user:pw@Shop.Deals.Example.com/x?y=1 or www.other.test now, "
                 "and http://192.0.2.1/login"))
        for expected in ("url:shop.deals.example.com", "url:deals.example.com",
                         "url:example.com", "url-tld:com", "url:www.other.test",
                         "url:other.test", "url:ip"):
            self.assertIn(expected, tokens)
        self.assertFalse(any("user" in t or "192" in t or "://" in t for t in tokens), tokens)

    def test_html_is_stripped_but_its_link_domains_are_kept(self) -> None:
        raw = message(body='<html><head><title>t</title><style>p {color: red}</style></head>'
                           '<body><script>var tracker = 1;</script><p>Hello&nbsp;<b>friend'
                           '</b>!</p><a href="http://click.example/x">here</a></body></html>',
                      subtype="html")
        tokens = bayes.tokenize(raw)
        self.assertTrue({"hello", "friend", "here", "url:click.example",
                         "ctype:text/html"} <= set(tokens))
        for leaked in ("tracker", "color", "red", "html", "body", "href", "nbsp"):
            self.assertNotIn(leaked, tokens)

    def test_transfer_encoded_bodies_are_decoded(self) -> None:
        for cte in ("base64", "quoted-printable"):
            raw = message(body="Entschuldigung für die Verspätung\n", cte=cte)
            self.assertIn(b"Content-Transfer-Encoding: " + cte.encode(), raw)
            self.assertIn("verspätung", bayes.tokenize(raw), cte)

    def test_unknown_charsets_and_attachments(self) -> None:
        raw = (b"From: a@a.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
               b"Content-Type: text/plain; charset=no-such-charset\r\n\r\ncaf\xe9 latte\r\n--b\r\n"
               b"Content-Type: application/octet-stream\r\n"
               b"Content-Disposition: attachment; filename=\"invoice.PDF.exe\"\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n"
               + base64.b64encode(b"MZ secretpayloadword") + b"\r\n--b--\r\n")
        tokens = bayes.tokenize(raw)
        self.assertTrue({"café", "latte", "charset:no-such-charset", "attach-ext:exe",
                         "ctype:multipart/mixed", "ctype:application/octet-stream"}
                        <= set(tokens), tokens)
        self.assertNotIn("secretpayloadword", tokens)

    def test_tokens_are_distinct_and_capped_headers_first(self) -> None:
        body = " ".join(f"word{i}x" for i in range(5000)) + " word1x" * 3
        tokens = bayes.tokenize(message("capped subject", body))
        self.assertEqual(len(tokens), bayes.MAX_TOKENS)
        self.assertEqual(len(set(tokens)), len(tokens))
        self.assertEqual(tokens[:2], ["subject:capped", "subject:subject"])
        self.assertEqual(len(bayes.tokenize(message(body=body), max_tokens=10)), 10)

    def test_only_the_first_bytes_are_read(self) -> None:
        raw = message(body="early " + "x " * (bayes.MAX_SCAN // 2) + "lateword")
        self.assertIn("early", bayes.tokenize(raw))
        self.assertNotIn("lateword", bayes.tokenize(raw))
        self.assertIn("lateword", bayes.tokenize(raw, max_scan=len(raw)))

    def test_pathologically_nested_mime_still_yields_headers_and_text(self) -> None:
        # Deep enough to exhaust the email parser's recursion: the tokenizer falls back to the
        # header block plus the raw body text, and says so.
        raw = (b"Subject: deep nesting\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
               b"hidden pharmacy\r\n")
        raw += b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n"
                        % (i, i + 1) for i in range(3000))
        tokens = bayes.tokenize(raw, max_scan=len(raw))
        self.assertEqual(tokens[:5],
                         ["subject:deep", "subject:nesting", "parse:failed", "hidden", "pharmacy"])
        self.assertEqual(len(tokens), bayes.MAX_TOKENS)

    def test_garbage_input_does_not_raise(self) -> None:
        for raw in (b"", b"\x00\xff" * 100, b"Subject: =?bogus?x?zz?=\r\n\r\n\xff\xfe",
                    b"Content-Type: multipart/alternative\r\n\r\nno boundary",
                    b"From: <<<@@@>>>\r\nTo: ,,,;\r\n\r\nbody",
                    b"From: =?utf-8?b?!!?= <a@b.example>\r\nSubject: =?utf-8?b?x?=\r\n\r\n",
                    b"Content-Type: text/plain; charset=\"utf\x008\"\r\n\r\nbody",
                    b"Subject: caf\xe9 \xff\r\nFrom: J\xf6rg <j@x.example>\r\n\r\nhi"):
            self.assertIsInstance(bayes.tokenize(raw), list)


class HashingTests(unittest.TestCase):
    def test_hashes_are_eight_bytes_deterministic_and_distinct_per_token(self) -> None:
        tokens = ["hello", "subject:hello", "url:example.com", "hello"]
        hashed = bayes.hash_tokens(KEY, tokens)
        self.assertEqual(hashed, bayes.hash_tokens(KEY, tokens))
        self.assertEqual(len(hashed), 3)  # duplicates collapse
        self.assertEqual({len(h) for h in hashed}, {stats.TOKEN_SIZE})
        self.assertNotIn(b"hello", b"".join(hashed))

    def test_users_get_different_keys_and_so_different_hashes(self) -> None:
        alice = bayes.user_key(KEYRING, "a" * 32)
        bob = bayes.user_key(KEYRING, "b" * 32)
        self.assertEqual(alice, KEYRING.derive("bayes-token", "a" * 32))
        self.assertEqual(alice, bayes.user_key(KEYRING, "a" * 32))
        self.assertNotEqual(bayes.hash_tokens(alice, ["viagra"]),
                            bayes.hash_tokens(bob, ["viagra"]))
        raw = message(body="same message")
        self.assertNotEqual(bayes.message_digest(alice, raw), bayes.message_digest(bob, raw))

    def test_message_digest_identifies_the_scanned_content(self) -> None:
        raw = message(body="one message")
        digest = bayes.message_digest(KEY, raw)
        self.assertEqual(len(digest), stats.DIGEST_SIZE)
        self.assertEqual(digest, bayes.message_digest(KEY, bytearray(raw)))
        self.assertNotEqual(digest, bayes.message_digest(KEY, raw + b"x"))
        self.assertNotEqual(digest, bayes.hash_tokens(KEY, [raw.decode()])[0])


class ClassifierTests(unittest.TestCase):
    def test_token_probability(self) -> None:
        # (ham, spam, ham messages, spam messages) -> expected f(w)
        cases = [
            ((0, 1, 10, 10), 0.75),            # once, only in spam: (0.5 + 1) / 2
            ((0, 9, 10, 10), 0.95),            # (0.5 + 9) / 10
            ((3, 0, 10, 10), 0.125),           # (0.5 + 0) / 4
            ((5, 5, 10, 10), 0.5),
            ((10, 1, 100, 10), 0.5),           # equal frequencies: 10% of each class
            ((0, 0, 10, 10), 0.5),             # never seen: the prior
            ((2, 0, 10, 0), 0.5 / 3),          # no spam trained yet
        ]
        for args, expected in cases:
            self.assertAlmostEqual(bayes.token_probability(*args), expected, 9, args)
        self.assertAlmostEqual(bayes.token_probability(0, 1, 10, 10, strength=0.0), 1.0)
        self.assertLess(bayes.token_probability(0, 1, 10, 10),
                        bayes.token_probability(0, 2, 10, 10))

    def test_chi2q(self) -> None:
        self.assertEqual(bayes.chi2q(0.0, 4), 1.0)
        for x2 in (0.5, 3.0, 20.0):  # two degrees of freedom: exp(-x2 / 2)
            self.assertAlmostEqual(bayes.chi2q(x2, 2), math.exp(-x2 / 2), 12)
        self.assertAlmostEqual(bayes.chi2q(4.0, 4), math.exp(-2) * 3, 12)
        self.assertEqual(bayes.chi2q(1e6, 300), 0.0)  # no overflow or underflow error
        self.assertGreater(bayes.chi2q(2000.0, 300), 0.0)
        self.assertRaises(ValueError, bayes.chi2q, 1.0, 3)
        self.assertRaises(ValueError, bayes.chi2q, 1.0, 0)

    def test_fisher_combine(self) -> None:
        self.assertEqual(bayes.fisher_combine([]), 0.5)
        self.assertGreater(bayes.fisher_combine([0.99] * 20), 0.999)
        self.assertLess(bayes.fisher_combine([0.01] * 20), 0.001)
        self.assertAlmostEqual(bayes.fisher_combine([0.9, 0.1]), 0.5, 12)
        self.assertAlmostEqual(bayes.fisher_combine([0.8, 0.3, 0.6]),
                               1 - bayes.fisher_combine([0.2, 0.7, 0.4]), 12)
        self.assertGreater(bayes.fisher_combine([0.9] * 3 + [0.2]), 0.5)

    def table(self) -> dict[bytes, tuple[int, int]]:
        """A hand-made table: 300 ham and 300 spam trained."""
        return {b"spamonly": (0, 120), b"spammy01": (2, 80), b"hamonly0": (150, 0),
                b"neutral0": (100, 100), b"rarespam": (0, 1)}

    def test_tokens_seen_only_in_spam_give_a_high_probability(self) -> None:
        t = self.table()
        p = bayes.classify({k: t[k] for k in (b"spamonly", b"spammy01", b"rarespam")}, 300, 300)
        self.assertGreater(known(p), 0.99)

    def test_tokens_seen_only_in_ham_give_a_low_probability(self) -> None:
        t = self.table()
        p = bayes.classify({b"hamonly0": t[b"hamonly0"], b"neutral0": t[b"neutral0"]}, 300, 300)
        self.assertLess(known(p), 0.01)

    def test_no_known_or_only_neutral_tokens_give_one_half(self) -> None:
        self.assertEqual(bayes.classify({}, 300, 300), 0.5)
        self.assertEqual(bayes.classify({b"neutral0": (100, 100), b"x": (2, 2)}, 300, 300), 0.5)

    def test_too_little_training_gives_no_opinion(self) -> None:
        t = self.table()
        self.assertIsNone(bayes.classify(t, 199, 5000))
        self.assertIsNone(bayes.classify(t, 5000, 199))
        self.assertIsNotNone(bayes.classify(t, 200, 200))
        self.assertIsNotNone(bayes.classify(t, 3, 3, min_messages=3))
        self.assertIsNone(bayes.classify(t, 0, 500, min_messages=0))  # no ham: no opinion

    def test_only_the_strongest_tokens_decide(self) -> None:
        # 3 strong ham tokens against 40 mildly spammy ones: all count, spam wins; the 3
        # strongest only, ham wins.
        counts = {f"ham{i}".encode(): (290, 0) for i in range(3)}
        counts.update({f"spam{i:02}".encode(): (0, 1) for i in range(40)})
        self.assertGreater(known(bayes.classify(counts, 300, 300)), 0.9)
        self.assertLess(known(bayes.classify(counts, 300, 300, max_discriminators=3)), 0.01)

    def test_result_does_not_depend_on_token_order(self) -> None:
        counts = {f"t{i}".encode(): (i % 7, (i * 3) % 11) for i in range(400)}
        reversed_counts = dict(reversed(list(counts.items())))
        self.assertEqual(bayes.classify(counts, 300, 300),
                         bayes.classify(reversed_counts, 300, 300))


class PointsTests(unittest.TestCase):
    def test_points_table(self) -> None:
        cases = [(None, 0.0), (1.0, 3.0), (0.999, 3.0), (0.99, 3.0), (0.745, 1.5), (0.5, 0.0),
                 (0.35, 0.0), (0.2, 0.0), (0.105, -0.75), (0.01, -1.5), (0.0, -1.5)]
        for probability, expected in cases:
            self.assertAlmostEqual(bayes.points(probability), expected, 2, probability)

    def test_points_are_bounded_and_scale_with_max_points(self) -> None:
        for i in range(101):
            p = i / 100
            self.assertTrue(-5.0 <= bayes.points(p, 10.0) <= 10.0)
            self.assertEqual(bayes.points(p, 0.0), 0.0)
        self.assertEqual(bayes.points(0.99, 5.0), 5.0)
        self.assertEqual(bayes.points(0.0, 5.0), -2.5)

    def test_points_rise_with_the_probability(self) -> None:
        values = [bayes.points(i / 200) for i in range(201)]
        self.assertEqual(values, sorted(values))

    def test_invalid_input_is_refused(self) -> None:
        for bad in (-0.01, 1.01, math.nan, math.inf):
            self.assertRaises(ValueError, bayes.points, bad)
        for bad_max in (-1.0, math.nan, math.inf):
            self.assertRaises(ValueError, bayes.points, 0.9, bad_max)


class BayesHitBoundTests(unittest.TestCase):
    """What one recipient's classifier can add: within [-max/2, +max], whatever p is."""

    def test_points_per_probability(self) -> None:
        cases = [
            # (probability, max points, hit name, points)
            (None, 3.0, None, None),
            (1.0, 3.0, "BAYES_99", 3.0),
            (0.999, 3.0, "BAYES_99", 3.0),
            (0.99, 3.0, "BAYES_99", 3.0),
            (0.745, 3.0, "BAYES_74", 1.5),
            (0.5, 3.0, "BAYES_50", 0.0),
            (0.3, 3.0, "BAYES_30", 0.0),
            (0.2, 3.0, "BAYES_20", 0.0),
            (0.01, 3.0, "BAYES_01", -1.5),
            (0.0, 3.0, "BAYES_00", -1.5),
            (1.0, 5.0, "BAYES_99", 5.0),
            (0.0, 5.0, "BAYES_00", -2.5),
            (1.0, 0.0, "BAYES_99", 0.0),
        ]
        for probability, max_points, name, points in cases:
            hit = bayes.bayes_hit(probability, max_points)
            if name is None:
                self.assertIsNone(hit)
                continue
            assert hit is not None
            self.assertEqual((hit.name, hit.points), (name, points), probability)

    def test_bound_holds_over_the_whole_range(self) -> None:
        for max_points in (0.0, 1.0, 3.0, 7.5):
            for i in range(1001):
                hit = bayes.bayes_hit(i / 1000, max_points)
                assert hit is not None
                self.assertGreaterEqual(hit.points, -max_points / 2)
                self.assertLessEqual(hit.points, max_points)


def load_corpus(label: str) -> list[bytes]:
    box = mailbox.mbox(os.path.join(CORPUS, f"{label}.mbox"), create=False)
    try:
        return [box.get_bytes(key) for key in box.keys()]
    finally:
        box.close()


def split(messages: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Every third message is held out: a fixed split, so the figures are reproducible."""
    return ([m for i, m in enumerate(messages) if i % 3 != 2],
            [m for i, m in enumerate(messages) if i % 3 == 2])


class CorpusTests(unittest.TestCase):
    """Train on two thirds of the shipped corpus, classify the other third."""

    SPAM_CUTOFF = 0.9  # SpamBayes' default spam cutoff

    def test_corpus_is_what_the_split_expects(self) -> None:
        self.assertEqual(sorted(os.path.basename(p) for p in glob.glob(f"{CORPUS}/*.mbox")),
                         ["ham.mbox", "spam.mbox"])
        ham, spam = load_corpus("ham"), load_corpus("spam")
        self.assertEqual((len(ham), len(spam)), (120, 120))
        self.assertEqual(len(set(ham + spam)), 240)

    def test_held_out_messages_are_classified_well(self) -> None:
        ham_train, ham_test = split(load_corpus("ham"))
        spam_train, spam_test = split(load_corpus("spam"))
        counts: defaultdict[bytes, list[int]] = defaultdict(lambda: [0, 0])
        for raw, column in [(m, 0) for m in ham_train] + [(m, 1) for m in spam_train]:
            for token in bayes.hash_tokens(KEY, bayes.tokenize(raw)):
                counts[token][column] += 1

        def probability(raw: bytes) -> float:
            tokens = bayes.hash_tokens(KEY, bayes.tokenize(raw))
            found = {t: (counts[t][0], counts[t][1]) for t in tokens if t in counts}
            return known(bayes.classify(found, len(ham_train), len(spam_train),
                                        min_messages=len(ham_train)))

        ham_p = [probability(m) for m in ham_test]
        spam_p = [probability(m) for m in spam_test]
        report = {}
        for cutoff in (0.5, self.SPAM_CUTOFF):
            caught = sum(p >= cutoff for p in spam_p)
            wrong = sum(p >= cutoff for p in ham_p)
            report[cutoff] = (caught / (caught + wrong), caught / len(spam_p))
        auc = sum((s > h) + 0.5 * (s == h) for s in spam_p for h in ham_p) / (
            len(spam_p) * len(ham_p))
        mean_points = [sum(map(bayes.points, ps)) / len(ps) for ps in (ham_p, spam_p)]
        print(f"\nBayes corpus: trained {len(ham_train)} ham + {len(spam_train)} spam, "
              f"tested {len(ham_test)} + {len(spam_test)}; ROC AUC {auc:.3f}")
        for cutoff, (precision, recall) in report.items():
            print(f"  spam at p >= {cutoff}: precision {precision:.3f}, recall {recall:.3f}")
        print(f"  mean points: ham {mean_points[0]:+.2f}, spam {mean_points[1]:+.2f}")
        precision, recall = report[self.SPAM_CUTOFF]
        self.assertGreaterEqual(precision, 0.9)
        self.assertGreaterEqual(recall, 0.7)
        self.assertGreaterEqual(report[0.5][1], 0.9)
        self.assertGreaterEqual(auc, 0.95)
        self.assertLess(mean_points[0], 0.0)
        self.assertGreater(mean_points[1], 2.0)


class BayesEdgeTestsMixin(DatabaseTestBase):
    """BayesTrainer and spam_probability over a real store."""

    def setUp(self) -> Any:
        d = super().setUp()
        self.write(accounts.add_domain, "example.com", NOW)
        self.alice = self.write(accounts.add_user, "alice@example.com", "h", NOW)
        self.bob = self.write(accounts.add_user, "bob@example.com", "h", NOW)
        self.store = DatabaseBlobs(os.path.abspath(self.mktemp()))
        self.clock = Clock()
        self.clock.advance(NOW.timestamp())
        self.trainer = bayes.BayesTrainer(self.runner, KEYRING, self.store, self.clock)
        return d

    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=True, **kwargs)

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=False, **kwargs)

    def deliver(self, user: accounts.User, raw: bytes, role: str = "junk") -> MessageRef:
        sealed = self.store.seal(KEYRING, user.uuid, raw)
        meta = ms.seal_info(KEYRING, user.uuid, sealed.blob_id, analyse(raw))
        done = self.write(ms.deliver, user, role, sealed, meta, (), NOW, NOW,
                          blob_store=self.store)
        return MessageRef(user.id, done.mailbox_id, done.uid, done.blob_id)

    def test_trainer_provides_the_imap_hook(self) -> None:
        self.assertTrue(verifyObject(ISpamTrainer, self.trainer))

    async def test_moving_into_junk_and_back_learns_then_retrains(self) -> None:
        raw = message("Cheap pills", "buy cheap pills now")
        ref = self.deliver(self.alice, raw)
        outcome = await self.trainer.learn(self.alice.id, ref, True)
        self.assertEqual(outcome, stats.TrainOutcome.LEARNED)
        self.assertEqual(await self.trainer.learn(self.alice.id, ref, True),
                         stats.TrainOutcome.UNCHANGED)
        key = bayes.user_key(KEYRING, self.alice.uuid)
        hashed = bayes.hash_tokens(key, bayes.tokenize(raw))
        counts = self.read(stats.token_counts, self.alice.id, hashed)
        self.assertEqual(set(counts), set(hashed))
        self.assertEqual(set(counts.values()), {(0, 1)})
        self.assertEqual(await self.trainer.learn(self.alice.id, ref, False),
                         stats.TrainOutcome.RELEARNED)
        self.assertEqual(set(self.read(stats.token_counts, self.alice.id, hashed).values()),
                         {(1, 0)})
        trained = self.read(stats.totals, self.alice.id)
        self.assertEqual((trained.ham_messages, trained.spam_messages, trained.updated_at),
                         (1, 0, NOW))

    async def test_a_copy_of_a_learned_message_is_not_counted_twice(self) -> None:
        raw = message("Same", "the very same message")
        await self.trainer.learn(self.alice.id, self.deliver(self.alice, raw), True)
        outcome = await self.trainer.learn(self.alice.id, self.deliver(self.alice, raw), True)
        self.assertEqual(outcome, stats.TrainOutcome.UNCHANGED)
        self.assertEqual(self.read(stats.totals, self.alice.id).spam_messages, 1)

    async def test_another_users_message_is_not_read(self) -> None:
        ref = self.deliver(self.bob, message("Bob's", "private words"))
        stolen = MessageRef(self.alice.id, ref.mailbox_id, ref.uid, ref.blob_id)
        self.assertIsNone(await self.trainer.learn(self.alice.id, stolen, True))
        with self.assertRaises(ValueError):
            await self.trainer.learn(self.alice.id, ref, True)
        self.assertEqual(self.read(stats.totals, self.alice.id).spam_messages, 0)
        self.assertEqual(self.read(stats.totals, self.bob.id).spam_messages, 0)

    async def test_the_database_never_holds_the_words(self) -> None:
        raw = message(f"{SECRET_WORD} deal", f"only {SECRET_WORD} today at {SECRET_WORD}.example")
        await self.trainer.learn(self.alice.id, self.deliver(self.alice, raw), True)
        stored = self.read(lambda c: [bytes(r[0]) for r in c.execute(select(bayes_tokens.c.token))]
                           + [bytes(r[0]) for r in c.execute(select(bayes_seen.c.digest))])
        self.assertGreater(len(stored), 5)
        self.assertEqual({len(v) for v in stored[:-1]}, {stats.TOKEN_SIZE})
        blob = b"|".join(stored)
        for fragment in (SECRET_WORD, "zanzib", "deal", "today", "example"):
            self.assertNotIn(fragment.encode(), blob)

    async def test_spam_probability_needs_training_then_recognises_spam(self) -> None:
        spam = [message(f"Cheap pills {i}", f"cheap pills pharmacy discount number{i}")
                for i in range(3)]
        ham = [message(f"Meeting {i}", f"agenda for the project meeting room{i}")
               for i in range(3)]
        probe = message("Cheap pharmacy", "discount pills")
        self.assertIsNone(await bayes.spam_probability(self.runner, KEYRING, self.alice, probe,
                                                       min_messages=3))
        for raw, is_spam in [(m, True) for m in spam] + [(m, False) for m in ham]:
            await self.trainer.learn(self.alice.id, self.deliver(self.alice, raw), is_spam)
        p = await bayes.spam_probability(self.runner, KEYRING, self.alice, probe, min_messages=3)
        self.assertGreater(known(p), 0.9)
        p_ham = await bayes.spam_probability(self.runner, KEYRING, self.alice,
                                             message("Meeting", "project agenda"),
                                             min_messages=3)
        self.assertLess(known(p_ham), 0.1)
        spool = self.mktemp()
        with open(spool, "wb") as f:
            f.write(probe)
        self.assertEqual(await bayes.spam_probability(self.runner, KEYRING, self.alice, spool,
                                                      min_messages=3), p)
        self.assertIsNone(await bayes.spam_probability(self.runner, KEYRING, self.alice, probe))
        # Bob trained nothing; Alice's statistics are not his.
        self.assertIsNone(await bayes.spam_probability(self.runner, KEYRING, self.bob, probe,
                                                       min_messages=0))


class BayesEdgeSQLiteTests(SQLiteDatabaseMixin, BayesEdgeTestsMixin, unittest.TestCase):
    async def test_the_database_files_never_hold_the_words(self) -> None:
        # The strongest form of the promise on SQLite: scan the files themselves, WAL included.
        raw = message(f"{SECRET_WORD} offer", f"{SECRET_WORD} {SECRET_WORD}")
        await self.trainer.learn(self.alice.id, self.deliver(self.alice, raw), True)
        path = self.engine.url.database
        assert path is not None
        files = [p for p in (path, path + "-wal") if os.path.exists(p)]
        self.assertIn(path, files)
        self.assertGreater(self.read(lambda c: len(c.execute(select(bayes_tokens)).all())), 0)
        for name in files:
            with open(name, "rb") as f:
                self.assertNotIn(SECRET_WORD.encode(), f.read(), name)


class BayesEdgePostgresTests(PostgresDatabaseMixin, BayesEdgeTestsMixin, unittest.TestCase):
    pass
