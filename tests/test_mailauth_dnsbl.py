"""mailauth.dnsbl: RFC 5782 queries against blocklist zones served by a real DNS server."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mailgosend.mailauth.dnsbl import DNSBLHit, query_dnsbls, reverse_name
from mailgosend.mailauth.resolver import make_resolver
from tests.support.dnsserver import serve_for_test

V6_NAME = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
ZONE = {
    "2.0.0.127.bl.example": {"A": ["127.0.0.2"],
                             "TXT": ["Listed: see https://bl.example/q?ip=127.0.0.2"]},
    "2.0.0.127.multi.example": {"A": ["127.0.0.4", "127.0.0.10"]},
    "2.0.0.127.refused.example": {"A": ["127.255.255.254"]},
    "2.0.0.127.lapsed.example": {"A": ["192.0.2.1"]},
    "2.0.0.127.slow.example": "TIMEOUT",
    "2.0.0.127.broken.example": "SERVFAIL",
    f"{V6_NAME}.bl.example": {"A": ["127.0.0.3"]},
    "4.3.2.1.bl.example": {"A": ["127.0.0.2"]},
}


class QueryDNSBLTests(unittest.TestCase):
    def setUp(self) -> None:
        self.server = serve_for_test(self, ZONE)
        self.resolver = make_resolver(self.server.nameserver, None, timeout=1.0)

    def query(self, ip: str, zones: list[str], **kwargs: Any) -> defer.Deferred[list[DNSBLHit]]:
        kwargs.setdefault("skip_private", False)
        return deferToThread(query_dnsbls, ip, zones, resolver=self.resolver, timeout=0.5,
                             **kwargs)

    @defer.inlineCallbacks
    def test_listed_address_with_reason(self):
        hits = yield self.query("127.0.0.2", ["bl.example"])
        self.assertEqual(hits, [DNSBLHit("bl.example", True, ("127.0.0.2",),
                                         "Listed: see https://bl.example/q?ip=127.0.0.2")])

    @defer.inlineCallbacks
    def test_unlisted_address_gives_nothing(self):
        hits = yield self.query("127.0.0.3", ["bl.example"])
        self.assertEqual(hits, [])
        self.assertEqual(self.server.queries, [("3.0.0.127.bl.example", "A")])

    @defer.inlineCallbacks
    def test_all_return_codes_are_kept(self):
        [hit] = yield self.query("127.0.0.2", ["multi.example"])
        self.assertEqual((hit.listed, hit.codes, hit.reason),
                         (True, ("127.0.0.10", "127.0.0.4"), ""))

    @defer.inlineCallbacks
    def test_operator_error_code_is_not_a_listing(self):
        [hit] = yield self.query("127.0.0.2", ["refused.example"])
        self.assertFalse(hit.listed)
        self.assertIn("127.255.255.254", hit.error)
        self.assertIn("query refused", hit.error)
        self.assertNotIn(("2.0.0.127.refused.example", "TXT"), self.server.queries)

    @defer.inlineCallbacks
    def test_answer_outside_loopback_is_not_a_listing(self):
        [hit] = yield self.query("127.0.0.2", ["lapsed.example"])
        self.assertFalse(hit.listed)
        self.assertTrue(hit.error)

    @defer.inlineCallbacks
    def test_timeout_and_servfail_are_reported_not_listed(self):
        hits = yield self.query("127.0.0.2", ["slow.example", "broken.example"])
        self.assertEqual([(h.zone, h.listed) for h in hits],
                         [("slow.example", False), ("broken.example", False)])
        self.assertEqual(hits[0].error, "timeout")
        self.assertIn("NoNameservers", hits[1].error)

    @defer.inlineCallbacks
    def test_ipv6_uses_reversed_nibbles(self):
        [hit] = yield self.query("2001:db8::1", ["bl.example"])
        self.assertEqual((hit.listed, hit.codes), (True, ("127.0.0.3",)))
        self.assertIn((f"{V6_NAME}.bl.example", "A"), self.server.queries)

    @defer.inlineCallbacks
    def test_ipv4_mapped_ipv6_is_queried_as_ipv4(self):
        [hit] = yield self.query("::ffff:1.2.3.4", ["bl.example"])
        self.assertTrue(hit.listed)

    @defer.inlineCallbacks
    def test_several_zones_keep_their_order(self):
        hits = yield self.query("127.0.0.2", ["refused.example", "bl.example", "none.example",
                                              "multi.example", "BL.example."])
        self.assertEqual([(h.zone, h.listed) for h in hits],
                         [("refused.example", False), ("bl.example", True),
                          ("multi.example", True)])

    @defer.inlineCallbacks
    def test_private_addresses_are_not_sent_to_lists_by_default(self):
        for ip in ("127.0.0.2", "10.1.2.3", "192.168.1.1", "fe80::1", "::1"):
            hits = yield self.query(ip, ["bl.example"], skip_private=True)
            self.assertEqual(hits, [], ip)
        self.assertEqual(self.server.queries, [])


class ReverseNameTests(unittest.TestCase):
    def test_table(self) -> None:
        cases = {
            "192.0.2.99": "99.2.0.192",
            "127.0.0.2": "2.0.0.127",
            "2001:db8::1": V6_NAME,
            "2001:DB8:0:0:0:0:0:1": V6_NAME,
            "::ffff:198.51.100.7": "7.100.51.198",
        }
        for ip, expected in cases.items():
            self.assertEqual(reverse_name(ip), expected, ip)

    def test_invalid_address_raises(self) -> None:
        self.assertRaises(ValueError, reverse_name, "not-an-ip")
