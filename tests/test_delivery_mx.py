"""delivery.mx: RFC 5321 §5.1 destinations, resolved against a real local DNS server."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mailgosend.delivery.mx import (
    Destinations,
    Host,
    ascii_domain,
    group_by_domain,
    interleave,
    order_by_preference,
    resolve_destinations,
)
from mailgosend.mailauth.resolver import make_resolver
from tests.support.dnsserver import serve_for_test

ZONE: dict[str, Any] = {
    "pref.example": {"MX": [[20, "mx2.pref.example"], [10, "mx1.pref.example"],
                            [30, "mx3.pref.example"]]},
    "mx1.pref.example": {"A": ["192.0.2.11"], "AAAA": ["2001:db8::11", "2001:db8::12"]},
    "mx2.pref.example": {"A": ["192.0.2.12"]},
    "mx3.pref.example": {"AAAA": ["2001:db8::13"]},
    "equal.example": {"MX": [[10, "a.equal.example"], [10, "b.equal.example"],
                             [20, "c.equal.example"]]},
    "a.equal.example": {"A": ["192.0.2.21"]},
    "b.equal.example": {"A": ["192.0.2.22"]},
    "c.equal.example": {"A": ["192.0.2.23"]},
    "nomx.example": {"A": ["192.0.2.30"], "AAAA": ["2001:db8::30"]},
    "nothing.example": {"TXT": ["v=spf1 -all"]},
    # RFC 7505 null MX, written as real zone data would write it.
    "null.example": {"MX": [[0, "."]]},
    "broken.example": "SERVFAIL",
    "slow.example": {"MX": "TIMEOUT", "A": ["192.0.2.40"]},
    "skip.example": {"MX": [[5, "noaddr.skip.example"], [6, "missing.skip.example"],
                            [7, "alias.skip.example"], [20, "good.skip.example"]]},
    "noaddr.skip.example": {"TXT": ["no addresses here"]},
    "alias.skip.example": {"CNAME": "good.skip.example"},
    "good.skip.example": {"A": ["192.0.2.50"]},
    "unusable.example": {"MX": [[10, "noaddr.skip.example"], [20, "alias.skip.example"]]},
    "xn--bcher-kva.example": {"MX": [[10, "mx.xn--bcher-kva.example"]]},
    "mx.xn--bcher-kva.example": {"A": ["192.0.2.60"]},
    "literal.example": {"MX": [[10, "192.0.2.70"]]},
    "literalmix.example": {"MX": [[5, "192.0.2.70"], [10, "mx.literalmix.example"]]},
    "mx.literalmix.example": {"A": ["192.0.2.71"]},
    "hostslow.example": {"MX": [[10, "mx.hostslow.example"]]},
    "mx.hostslow.example": {"A": "TIMEOUT", "AAAA": "TIMEOUT"},
    "backup.example": {"MX": [[10, "mx.hostslow.example"], [20, "good.skip.example"]]},
    "halfv6.example": {"MX": [[10, "mx.halfv6.example"]]},
    "mx.halfv6.example": {"A": ["192.0.2.80"], "AAAA": "SERVFAIL"},
}


class ResolveDestinationsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.server = serve_for_test(self, ZONE)
        self.resolver = make_resolver(self.server.nameserver, None, timeout=2.0)

    def resolve(self, domain: str, *, seed: int = 1, timeout: float | None = None,
                port: int = 25) -> defer.Deferred[Destinations]:
        resolver = self.resolver
        if timeout is not None:
            resolver = make_resolver(self.server.nameserver, None, timeout=timeout)
        return deferToThread(resolve_destinations, domain, resolver=resolver,
                             rand=random.Random(seed), port=port)

    @defer.inlineCallbacks
    def test_hosts_sorted_by_preference(self):
        result = yield self.resolve("pref.example", port=2525)
        self.assertEqual(result.hosts, (
            Host("mx1.pref.example", 10, ("2001:db8::11", "192.0.2.11", "2001:db8::12")),
            Host("mx2.pref.example", 20, ("192.0.2.12",)),
            Host("mx3.pref.example", 30, ("2001:db8::13",)),
        ))
        self.assertIsNone(result.permanent_error)
        self.assertIsNone(result.temporary_error)
        self.assertEqual(result.port, 2525)
        self.assertEqual(list(result.attempts())[:2],
                         [(result.hosts[0], "2001:db8::11"), (result.hosts[0], "192.0.2.11")])

    @defer.inlineCallbacks
    def test_equal_preference_order_is_fixed_by_the_seed(self):
        first = yield self.resolve("equal.example", seed=7)
        again = yield self.resolve("equal.example", seed=7)
        self.assertEqual(first.hosts, again.hosts)

    @defer.inlineCallbacks
    def test_equal_preferences_are_shuffled_and_lower_ones_stay_last(self):
        orders = set()
        for seed in range(20):
            result = yield self.resolve("equal.example", seed=seed)
            names = tuple(h.name for h in result.hosts)
            self.assertEqual(names[2], "c.equal.example")
            orders.add(names[:2])
        self.assertEqual(orders, {("a.equal.example", "b.equal.example"),
                                  ("b.equal.example", "a.equal.example")})

    @defer.inlineCallbacks
    def test_no_mx_falls_back_to_the_domain_itself(self):
        result = yield self.resolve("nomx.example")
        self.assertEqual(result.hosts,
                         (Host("nomx.example", 0, ("2001:db8::30", "192.0.2.30")),))
        self.assertTrue(any("implicit MX" in n for n in result.notes))

    @defer.inlineCallbacks
    def test_no_mx_and_no_address_is_permanent(self):
        result = yield self.resolve("nothing.example")
        self.assertEqual(result.hosts, ())
        self.assertTrue(result.permanent_error.startswith("550 5.4.4 "))
        self.assertIn("no MX and no address records", result.permanent_error)

    @defer.inlineCallbacks
    def test_null_mx_is_a_permanent_556(self):
        result = yield self.resolve("null.example")
        self.assertEqual(result.hosts, ())
        self.assertTrue(result.permanent_error.startswith(
            "556 5.1.10 Recipient address has null MX"))
        self.assertIsNone(result.temporary_error)
        self.assertNotIn(("null.example", "A"), self.server.queries)

    @defer.inlineCallbacks
    def test_nxdomain_is_permanent_domain_does_not_exist(self):
        result = yield self.resolve("nosuch.example")
        self.assertTrue(result.permanent_error.startswith("550 5.1.2 "))
        self.assertIn("does not exist", result.permanent_error)
        self.assertNotIn(("nosuch.example", "A"), self.server.queries)

    @defer.inlineCallbacks
    def test_servfail_is_temporary(self):
        result = yield self.resolve("broken.example")
        self.assertEqual(result.hosts, ())
        self.assertIsNone(result.permanent_error)
        self.assertTrue(result.temporary_error.startswith("451 4.4.3 "))

    @defer.inlineCallbacks
    def test_timeout_is_temporary_not_implicit_mx(self):
        result = yield self.resolve("slow.example", timeout=0.3)
        self.assertIsNone(result.permanent_error)
        self.assertIn("timed out", result.temporary_error)
        self.assertEqual(result.hosts, ())

    @defer.inlineCallbacks
    def test_mx_without_addresses_or_alias_is_skipped_with_notes(self):
        result = yield self.resolve("skip.example")
        self.assertEqual(result.hosts, (Host("good.skip.example", 20, ("192.0.2.50",)),))
        notes = " | ".join(result.notes)
        self.assertIn("noaddr.skip.example has no address records", notes)
        self.assertIn("missing.skip.example does not exist", notes)
        self.assertIn("alias.skip.example is an alias", notes)

    @defer.inlineCallbacks
    def test_no_usable_mx_host_is_permanent(self):
        result = yield self.resolve("unusable.example")
        self.assertTrue(result.permanent_error.startswith("550 5.4.4 "))
        self.assertIn("noaddr.skip.example", result.permanent_error)

    @defer.inlineCallbacks
    def test_mx_host_lookup_timeout_is_temporary(self):
        result = yield self.resolve("hostslow.example", timeout=0.3)
        self.assertIsNone(result.permanent_error)
        self.assertIn("mx.hostslow.example", result.temporary_error)

    @defer.inlineCallbacks
    def test_backup_mx_used_when_primary_lookup_fails(self):
        result = yield self.resolve("backup.example", timeout=0.3)
        self.assertEqual([h.name for h in result.hosts], ["good.skip.example"])
        self.assertTrue(any("mx.hostslow.example skipped for now" in n for n in result.notes))

    @defer.inlineCallbacks
    def test_failed_address_family_leaves_the_other(self):
        result = yield self.resolve("halfv6.example")
        self.assertEqual(result.hosts, (Host("mx.halfv6.example", 10, ("192.0.2.80",)),))
        self.assertTrue(any("AAAA lookup" in n for n in result.notes))

    @defer.inlineCallbacks
    def test_idn_domain_is_looked_up_as_a_label(self):
        result = yield self.resolve("Bücher.example")
        self.assertEqual(result.domain, "xn--bcher-kva.example")
        self.assertEqual(result.hosts, (Host("mx.xn--bcher-kva.example", 10, ("192.0.2.60",)),))
        self.assertIn(("xn--bcher-kva.example", "MX"), self.server.queries)

    @defer.inlineCallbacks
    def test_ip_literal_mx_is_refused(self):
        result = yield self.resolve("literal.example")
        self.assertEqual(result.hosts, ())
        self.assertTrue(result.permanent_error.startswith("550 5.4.4 "))
        self.assertTrue(any("192.0.2.70 is an IP address" in n for n in result.notes))
        self.assertNotIn(("192.0.2.70", "A"), self.server.queries)

    @defer.inlineCallbacks
    def test_ip_literal_mx_is_skipped_beside_a_named_one(self):
        result = yield self.resolve("literalmix.example")
        self.assertEqual(result.hosts, (Host("mx.literalmix.example", 10, ("192.0.2.71",)),))

    @defer.inlineCallbacks
    def test_address_literal_domain_needs_no_dns(self):
        result = yield self.resolve("[192.0.2.90]")
        self.assertEqual(result.hosts, (Host("[192.0.2.90]", 0, ("192.0.2.90",)),))
        self.assertEqual(self.server.queries, [])

    @defer.inlineCallbacks
    def test_invalid_domain_is_permanent_without_a_query(self):
        result = yield self.resolve("bad..example")
        self.assertTrue(result.permanent_error.startswith("550 5.1.2 "))
        self.assertEqual(self.server.queries, [])


class PureHelperTests(unittest.TestCase):
    def test_ascii_domain_table(self):
        cases = [
            ("Example.COM", "example.com"),
            ("example.com.", "example.com"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
            ("[192.0.2.1]", "[192.0.2.1]"),
            ("[IPv6:2001:DB8:0::1]", "[IPv6:2001:db8::1]"),
        ]
        for given, expected in cases:
            self.assertEqual(ascii_domain(given), expected, given)

    def test_ascii_domain_rejects_non_domains(self):
        for bad in ["", ".", "a..b", "[300.1.1.1]", "x" * 64 + ".example"]:
            self.assertRaises(ValueError, ascii_domain, bad)

    def test_group_by_domain_uses_lower_case_a_labels(self):
        groups = group_by_domain(["a@Example.com", "b@bücher.example", "c@example.COM",
                                  "d@xn--bcher-kva.example", "a@Example.com",
                                  '"x@y"@other.example'])
        self.assertEqual(groups, {
            "example.com": ["a@Example.com", "c@example.COM"],
            "xn--bcher-kva.example": ["b@bücher.example", "d@xn--bcher-kva.example"],
            "other.example": ['"x@y"@other.example'],
        })

    def test_group_by_domain_keeps_invalid_domain_apart(self):
        self.assertEqual(group_by_domain(["a@bad..Example", "b@ok.example"]),
                         {"bad..example": ["a@bad..Example"], "ok.example": ["b@ok.example"]})

    def test_group_by_domain_refuses_address_without_domain(self):
        self.assertRaises(ValueError, group_by_domain, ["postmaster"])

    def test_order_ignores_answer_order_and_keeps_lowest_duplicate(self):
        records = [(20, "c"), (10, "b"), (10, "a"), (30, "b")]
        forward = order_by_preference(records, random.Random(3))
        backward = order_by_preference(list(reversed(records)), random.Random(3))
        self.assertEqual(forward, backward)
        self.assertEqual(sorted(forward), [(10, "a"), (10, "b"), (20, "c")])
        self.assertEqual(forward[2], (20, "c"))

    def test_interleave_starts_with_ipv6(self):
        self.assertEqual(interleave(["6a", "6b", "6c"], ["4a"]), ("6a", "4a", "6b", "6c"))
        self.assertEqual(interleave([], ["4a", "4b", "4a"]), ("4a", "4b"))
