"""Token statistics of the Bayesian classifier (store/bayes.py) on SQLite and PostgreSQL:
learning, retraining, unlearning, isolation between users, and exact counts under
concurrent training."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, select
from twisted.internet.defer import DeferredList
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.db.schema import bayes_seen, bayes_tokens, bayes_totals, users
from mailgosend.store import accounts
from mailgosend.store import bayes as stats
from mailgosend.store.bayes import TrainOutcome
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(hours=1)


def tok(name: str) -> bytes:
    """A stand-in for a keyed token hash: 8 bytes, like the real ones."""
    return hashlib.sha256(name.encode()).digest()[:stats.TOKEN_SIZE]


def digest(name: str) -> bytes:
    return hashlib.sha256(b"message " + name.encode()).digest()[:stats.DIGEST_SIZE]


A, B, C, D = tok("a"), tok("b"), tok("c"), tok("d")


class BayesStoreTestsMixin(DatabaseTestBase):
    def setUp(self) -> Any:
        d = super().setUp()
        self.write(accounts.add_domain, "example.com", NOW)
        self.alice = self.write(accounts.add_user, "alice@example.com", "h", NOW).id
        self.bob = self.write(accounts.add_user, "bob@example.com", "h", NOW).id
        return d

    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=True, **kwargs)

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=False, **kwargs)

    def counts(self, user_id: int, *tokens: bytes) -> dict[bytes, tuple[int, int]]:
        return dict(self.read(stats.token_counts, user_id, tokens or (A, B, C, D)))

    def totals(self, user_id: int) -> tuple[int, int]:
        trained = self.read(stats.totals, user_id)
        return trained.ham_messages, trained.spam_messages

    def rows(self, table: Any) -> int:
        return int(self.read(lambda c: c.execute(
            select(func.count()).select_from(table)).scalar_one()))

    # --- learn / unlearn ---------------------------------------------------------------------

    def test_learn_counts_each_token_once_per_message_and_the_message_in_the_totals(self) -> None:
        self.write(stats.learn, self.alice, [A, B, A], True, NOW)
        self.write(stats.learn, self.alice, [B, C], False, LATER)
        self.assertEqual(self.counts(self.alice), {A: (0, 1), B: (1, 1), C: (1, 0)})
        self.assertEqual(self.totals(self.alice), (1, 1))
        self.assertEqual(self.read(stats.totals, self.alice).updated_at, LATER)

    def test_a_new_user_has_zero_totals_and_no_counts(self) -> None:
        self.assertEqual(self.read(stats.totals, self.alice), stats.BayesTotals(0, 0, None))
        self.assertEqual(self.counts(self.alice), {})

    def test_learning_with_previous_moves_the_message_to_the_other_class(self) -> None:
        self.write(stats.learn, self.alice, [A, B], False, NOW)
        self.write(stats.learn, self.alice, [B, C], False, NOW)
        self.write(stats.learn, self.alice, [A, B], True, NOW, previous=False)
        self.assertEqual(self.counts(self.alice), {A: (0, 1), B: (1, 1), C: (1, 0)})
        self.assertEqual(self.totals(self.alice), (1, 1))

    def test_learning_with_the_same_previous_class_changes_nothing(self) -> None:
        self.write(stats.learn, self.alice, [A], True, NOW)
        self.write(stats.learn, self.alice, [A], True, LATER, previous=True)
        self.assertEqual(self.counts(self.alice), {A: (0, 1)})
        self.assertEqual(self.totals(self.alice), (0, 1))
        self.assertEqual(self.read(stats.totals, self.alice).updated_at, NOW)

    def test_unlearn_reverses_learn_and_drops_rows_that_reach_zero(self) -> None:
        self.write(stats.learn, self.alice, [A, B], True, NOW)
        self.write(stats.learn, self.alice, [B], False, NOW)
        self.write(stats.unlearn, self.alice, [A, B], True, NOW)
        self.assertEqual(self.counts(self.alice), {B: (1, 0)})
        self.assertEqual(self.totals(self.alice), (1, 0))
        self.assertEqual(self.rows(bayes_tokens), 1)

    def test_unlearning_what_was_never_learned_never_goes_below_zero(self) -> None:
        self.write(stats.learn, self.alice, [A], False, NOW)
        self.write(stats.unlearn, self.alice, [A, B], True, NOW)
        self.write(stats.unlearn, self.alice, [A], False, NOW)
        self.write(stats.unlearn, self.alice, [A], False, NOW)
        self.assertEqual(self.counts(self.alice), {})
        self.assertEqual(self.totals(self.alice), (0, 0))
        self.assertEqual(self.rows(bayes_tokens), 0)

    def test_plain_words_are_refused_and_nothing_is_written(self) -> None:
        for bad in ([b"viagra"], [b"longer than eight"], ["a string!"]):
            with self.assertRaises(ValueError):
                self.write(stats.learn, self.alice, [A, *bad], True, NOW)
        self.assertEqual((self.rows(bayes_tokens), self.rows(bayes_totals)), (0, 0))

    def test_more_tokens_than_one_statement_takes_are_counted_and_read(self) -> None:
        many = [tok(f"t{i}") for i in range(1234)]
        self.write(stats.learn, self.alice, many, True, NOW)
        self.write(stats.learn, self.alice, many[::2], False, NOW)
        found = self.read(stats.token_counts, self.alice, many + [tok("unknown")])
        self.assertEqual(len(found), 1234)
        self.assertEqual(found[many[0]], (1, 1))
        self.assertEqual(found[many[1]], (0, 1))

    def test_users_statistics_are_separate(self) -> None:
        self.write(stats.learn, self.alice, [A, B], True, NOW)
        self.write(stats.learn, self.bob, [A], False, NOW)
        self.assertEqual(self.counts(self.alice), {A: (0, 1), B: (0, 1)})
        self.assertEqual(self.counts(self.bob), {A: (1, 0)})
        self.assertEqual((self.totals(self.alice), self.totals(self.bob)), ((0, 1), (1, 0)))

    def test_deleting_a_user_deletes_the_statistics(self) -> None:
        self.write(stats.train_message, self.alice, digest("m"), [A], True, NOW)
        self.write(stats.train_message, self.bob, digest("m"), [A], True, NOW)
        self.write(lambda c: c.execute(delete(users).where(users.c.id == self.alice)).rowcount)
        self.assertEqual(
            (self.rows(bayes_tokens), self.rows(bayes_totals), self.rows(bayes_seen)), (1, 1, 1))
        self.assertEqual(self.counts(self.bob), {A: (0, 1)})

    # --- train_message / forget_message -------------------------------------------------------

    def test_train_message_learns_once_and_retrains_when_the_class_changes(self) -> None:
        m = digest("m")
        self.assertEqual(self.write(stats.train_message, self.alice, m, [A, B], True, NOW),
                         TrainOutcome.LEARNED)
        self.assertEqual(self.write(stats.train_message, self.alice, m, [A, B], True, NOW),
                         TrainOutcome.UNCHANGED)
        self.assertEqual((self.counts(self.alice), self.totals(self.alice)),
                         ({A: (0, 1), B: (0, 1)}, (0, 1)))
        self.assertEqual(self.write(stats.train_message, self.alice, m, [A, B], False, LATER),
                         TrainOutcome.RELEARNED)
        self.assertEqual((self.counts(self.alice), self.totals(self.alice)),
                         ({A: (1, 0), B: (1, 0)}, (1, 0)))
        seen = self.read(lambda c: c.execute(select(bayes_seen)).one())
        self.assertEqual((bytes(seen.digest), seen.is_spam, seen.learned_at), (m, False, LATER))

    def test_the_same_message_is_learned_separately_per_user(self) -> None:
        m = digest("m")
        self.write(stats.train_message, self.alice, m, [A], True, NOW)
        self.assertEqual(self.write(stats.train_message, self.bob, m, [A], False, NOW),
                         TrainOutcome.LEARNED)
        self.assertEqual((self.totals(self.alice), self.totals(self.bob)), ((0, 1), (1, 0)))

    def test_forget_message_takes_a_learned_message_back_out(self) -> None:
        self.write(stats.train_message, self.alice, digest("m1"), [A, B], True, NOW)
        self.write(stats.train_message, self.alice, digest("m2"), [B], True, NOW)
        self.assertTrue(self.write(stats.forget_message, self.alice, digest("m1"), [A, B], NOW))
        self.assertFalse(self.write(stats.forget_message, self.alice, digest("m1"), [A, B], NOW))
        self.assertEqual((self.counts(self.alice), self.totals(self.alice)), ({B: (0, 1)}, (0, 1)))
        self.assertEqual(self.write(stats.train_message, self.alice, digest("m1"), [A], False,
                                    NOW), TrainOutcome.LEARNED)

    def test_digests_must_have_the_digest_size(self) -> None:
        self.assertRaises(ValueError, self.write, stats.train_message, self.alice, b"short",
                          [A], True, NOW)
        self.assertRaises(ValueError, self.write, stats.forget_message, self.alice, b"x" * 32,
                          [A], NOW)
        self.assertEqual(self.rows(bayes_seen), 0)

    # --- concurrency --------------------------------------------------------------------------

    async def test_concurrent_learns_keep_exact_counts(self) -> None:
        # Overlapping token sets in opposite orders, half spam, half ham, all at once.
        shared = [tok(f"s{i}") for i in range(300)]
        jobs = []
        for i in range(24):
            own = [tok(f"own{i}")]
            tokens = shared + own if i % 2 else own + shared[::-1]
            jobs.append(self.runner.write(stats.learn, self.alice, tokens, bool(i % 2), NOW))
        results = await DeferredList(jobs, consumeErrors=True)
        self.assertEqual([ok for ok, _ in results], [True] * 24, results)
        found = self.read(stats.token_counts, self.alice, shared + [tok("own0"), tok("own1")])
        self.assertEqual({found[t] for t in shared}, {(12, 12)})
        self.assertEqual((found[tok("own0")], found[tok("own1")]), ((1, 0), (0, 1)))
        self.assertEqual(self.totals(self.alice), (12, 12))

    async def test_concurrent_trainings_of_one_message_count_it_once(self) -> None:
        m = digest("m")
        jobs = [self.runner.write(stats.train_message, self.alice, m, [A, B, C], True, NOW)
                for _ in range(12)]
        results = await DeferredList(jobs, consumeErrors=True)
        self.assertTrue(all(ok for ok, _ in results), results)
        outcomes = sorted(outcome.value for _, outcome in results)
        self.assertEqual(outcomes, ["learned"] + ["unchanged"] * 11)
        self.assertEqual((self.counts(self.alice), self.totals(self.alice)),
                         ({A: (0, 1), B: (0, 1), C: (0, 1)}, (0, 1)))

    async def test_concurrent_trainings_of_many_messages_and_users(self) -> None:
        jobs = []
        for i in range(20):
            user = self.alice if i % 4 else self.bob
            tokens = [A, B, tok(f"m{i}")] if i % 3 else [tok(f"m{i}"), B, A]
            jobs.append(self.runner.write(stats.train_message, user, digest(f"m{i}"), tokens,
                                          i % 2 == 0, NOW))
        results = await DeferredList(jobs, consumeErrors=True)
        self.assertTrue(all(ok for ok, _ in results), results)
        # Alice: i in 1..19 with i % 4 != 0, 15 messages of which 5 even (spam: 2, 6, ..., 18);
        # Bob: i = 0, 4, ..., 16, all even, so 5 spam.
        self.assertEqual(self.counts(self.alice, A, B), {A: (10, 5), B: (10, 5)})
        self.assertEqual(self.counts(self.bob, A, B), {A: (0, 5), B: (0, 5)})
        self.assertEqual((self.totals(self.alice), self.totals(self.bob)), ((10, 5), (0, 5)))


class BayesStoreSQLiteTests(SQLiteDatabaseMixin, BayesStoreTestsMixin, unittest.TestCase):
    pass


class BayesStorePostgresTests(PostgresDatabaseMixin, BayesStoreTestsMixin, unittest.TestCase):
    pass
