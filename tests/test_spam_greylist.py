"""Greylisting's pure part (spam/greylist.py): the triplet, the exemptions and the decision,
as tables of cases; the database edge is in tests/test_store_greylist.py and the listener in
tests/test_smtp_greylist.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from twisted.trial import unittest

from mailgosend.errors import StartupError
from mailgosend.spam import greylist as gl
from mailgosend.spam.greylist import Action, GreylistPolicy, Step
from mailgosend.store.greylist import TripletState
from tests.support.config import make_config

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)
KEY = bytes(range(32))
POLICY = GreylistPolicy(delay=timedelta(minutes=5), retry_window=timedelta(hours=24),
                        expire=timedelta(days=35),
                        exempt=gl.parse_networks(["127.0.0.0/8", "::1", "192.0.2.0/28"]))


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


class ClientNetworkTests(unittest.TestCase):
    def test_networks(self) -> None:
        cases = [
            ("198.51.100.77", "198.51.100.0/24"),
            ("198.51.100.1", "198.51.100.0/24"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
            ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
            ("::ffff:198.51.100.9", "198.51.100.0/24"),   # IPv4 seen by a dual-stack socket
            ("fe80::1%eth0", "fe80::/64"),
            ("not-an-ip", "not-an-ip"),
        ]
        for ip, network in cases:
            self.assertEqual(gl.client_network(ip), network, ip)


class TripletKeyTests(unittest.TestCase):
    def test_same_and_different_triplets(self) -> None:
        base = gl.triplet_key(KEY, "198.51.100.7", "Ann@Sender.example", "bob@example.com")
        same = [
            ("198.51.100.200", "Ann@Sender.example", "bob@example.com"),  # same /24 pool
            ("198.51.100.7", "ann@sender.example", "bob@example.com"),    # sender case
            ("198.51.100.7", "ANN@SENDER.EXAMPLE", "Bob@Example.com"),
        ]
        different = [
            ("198.51.101.7", "Ann@Sender.example", "bob@example.com"),    # next /24
            ("198.51.100.7", "ann+x@sender.example", "bob@example.com"),
            ("198.51.100.7", "", "bob@example.com"),                      # null sender
            ("198.51.100.7", "Ann@Sender.example", "alice@example.com"),
        ]
        for triplet in same:
            self.assertEqual(gl.triplet_key(KEY, *triplet), base, triplet)
        for triplet in different:
            self.assertNotEqual(gl.triplet_key(KEY, *triplet), base, triplet)

    def test_key_is_a_keyed_hash_that_never_holds_the_addresses(self) -> None:
        key = gl.triplet_key(KEY, "198.51.100.7", "ann@sender.example", "bob@example.com")
        self.assertEqual(len(key), 32)
        self.assertNotEqual(key, gl.triplet_key(bytes(32), "198.51.100.7",
                                                "ann@sender.example", "bob@example.com"))
        for fragment in (b"ann", b"sender", b"bob", b"198.51"):
            self.assertNotIn(fragment, key)

    def test_client_entry_never_equals_a_triplet(self) -> None:
        client = gl.client_key(KEY, "198.51.100.7")
        self.assertEqual(client, gl.client_key(KEY, "198.51.100.99"))
        self.assertNotEqual(client, gl.triplet_key(KEY, "198.51.100.7", "", ""))

    def test_non_ascii_addresses_hash(self) -> None:
        key = gl.triplet_key(KEY, "198.51.100.7", "jörg@bücher.example", "bob@example.com")
        self.assertEqual(len(key), 32)


class ExemptionTests(unittest.TestCase):
    def test_exemptions(self) -> None:
        cases = [
            ("inbound", None, "198.51.100.7", None),
            ("inbound", None, "127.0.0.1", "exempt network"),
            ("inbound", None, "127.5.6.7", "exempt network"),
            ("inbound", None, "::1", "exempt network"),
            ("inbound", None, "::ffff:127.0.0.1", "exempt network"),
            ("inbound", None, "192.0.2.15", "exempt network"),
            ("inbound", None, "192.0.2.16", None),
            ("inbound", None, "2001:db8::1", None),
            ("inbound", "alice@example.com", "198.51.100.7", "authenticated"),
            ("submission", "alice@example.com", "198.51.100.7", "submission"),
            ("smtps", "alice@example.com", "198.51.100.7", "submission"),
            ("submission", None, "198.51.100.7", "submission"),
        ]
        for listener, authenticated, ip, expected in cases:
            self.assertEqual(gl.exemption(listener, authenticated, ip, POLICY), expected,
                             (listener, authenticated, ip))

    def test_no_exempt_networks_greylists_loopback_too(self) -> None:
        self.assertIsNone(gl.exemption("inbound", None, "127.0.0.1", GreylistPolicy()))


class DecideTests(unittest.TestCase):
    def test_decisions(self) -> None:
        fresh = TripletState(ago(minutes=1), ago(minutes=1), False)
        cases = [
            # (state, action, step)
            (None, Action.DEFER, Step.INSERT),
            (fresh, Action.DEFER, Step.NOTHING),                          # retried too early
            (TripletState(ago(minutes=4, seconds=59), ago(minutes=4, seconds=59), False),
             Action.DEFER, Step.NOTHING),
            (TripletState(ago(minutes=5), ago(minutes=5), False), Action.ACCEPT, Step.PASS),
            (TripletState(ago(hours=23), ago(hours=23), False), Action.ACCEPT, Step.PASS),
            (TripletState(ago(hours=25), ago(hours=25), False), Action.DEFER, Step.RESTART),
            (TripletState(ago(days=3), ago(minutes=10), True), Action.ACCEPT, Step.NOTHING),
            (TripletState(ago(days=3), ago(hours=2), True), Action.ACCEPT, Step.TOUCH),
            (TripletState(ago(days=90), ago(days=34), True), Action.ACCEPT, Step.TOUCH),
            (TripletState(ago(days=90), ago(days=36), True), Action.DEFER, Step.RESTART),
        ]
        for state, action, step in cases:
            outcome = gl.decide(state, NOW, POLICY)
            self.assertEqual((outcome.action, outcome.step), (action, step), state)

    def test_retry_in_says_how_long_is_left(self) -> None:
        self.assertEqual(gl.decide(None, NOW, POLICY).retry_in, 300)
        early = TripletState(ago(minutes=1), ago(minutes=1), False)
        self.assertEqual(gl.decide(early, NOW, POLICY).retry_in, 240)

    def test_zero_delay_passes_the_first_retry(self) -> None:
        policy = GreylistPolicy(delay=timedelta(0))
        self.assertEqual(gl.decide(None, NOW, policy).action, Action.DEFER)
        state = TripletState(NOW, NOW, False)
        self.assertEqual(gl.decide(state, NOW, policy).action, Action.ACCEPT)

    def test_trusted_client(self) -> None:
        cases = [
            (None, False),
            (TripletState(ago(days=2), ago(days=2), True), True),
            (TripletState(ago(days=40), ago(days=36), True), False),
            (TripletState(ago(days=2), ago(days=2), False), False),
        ]
        for state, trusted in cases:
            self.assertEqual(gl.trusted_client(state, NOW, POLICY), trusted, state)


class PolicyConfigTests(unittest.TestCase):
    def test_defaults_from_the_configuration(self) -> None:
        policy = GreylistPolicy.from_config(make_config(self.mktemp()))
        self.assertEqual((policy.delay, policy.retry_window, policy.expire),
                         (timedelta(seconds=300), timedelta(hours=24), timedelta(days=35)))
        self.assertTrue(policy.is_exempt("127.0.0.1"))
        self.assertTrue(policy.is_exempt("::1"))
        self.assertFalse(policy.is_exempt("198.51.100.7"))

    def test_greylisting_is_off_by_default(self) -> None:
        self.assertFalse(make_config(self.mktemp())["GREYLIST_ENABLED"])

    def test_a_bad_network_names_the_key(self) -> None:
        config = make_config(self.mktemp(), GREYLIST_EXEMPT_NETWORKS="10.0.0.0/8, nonsense")
        with self.assertRaises(StartupError) as caught:
            GreylistPolicy.from_config(config)
        self.assertIn("GREYLIST_EXEMPT_NETWORKS", str(caught.exception))
        self.assertIn("nonsense", str(caught.exception))
