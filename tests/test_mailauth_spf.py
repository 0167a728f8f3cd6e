"""mailauth.spf: RFC 7208 results through a real DNS server."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mailgosend.mailauth.resolver import make_resolver
from mailgosend.mailauth.spf import SPFResult, check_spf
from tests.support.dnsserver import serve_for_test

LOOKUP_HOSTS = {f"a{i}.example.net": {"A": ["203.0.113.200"]} for i in range(1, 12)}
LONG_RECORD = ("v=spf1 " + " ".join(f"ip4:10.0.{i}.0/24" for i in range(40))
               + " ip4:192.0.2.77 -all")

ZONE = {
    "example.com": {"TXT": ["v=spf1 ip4:192.0.2.0/24 include:_spf.partner.example "
                            "a:mail.example.com -all", "google-site-verification=abc"]},
    "_spf.partner.example": {"TXT": ["v=spf1 ip4:198.51.100.0/24 -all"]},
    "mail.example.com": {"A": ["203.0.113.5"]},
    "soft.example": {"TXT": ["v=spf1 ip4:192.0.2.1 ~all"]},
    "neutral.example": {"TXT": ["v=spf1 ?all"]},
    "nospf.example": {"TXT": ["some other text"]},
    "syntax.example": {"TXT": ["v=spf1 ip4:192.0.2.300 -all"]},
    "twice.example": {"TXT": ["v=spf1 -all", "v=spf1 +all"]},
    "toomany.example": {"TXT": ["v=spf1 " + " ".join(f"a:a{i}.example.net" for i in range(1, 12))
                                + " -all"]},
    **LOOKUP_HOSTS,
    "servfail.example": "SERVFAIL",
    "long.example": {"TXT": [LONG_RECORD]},
    "helo.example.net": {"TXT": ["v=spf1 ip4:192.0.2.10 -all"]},
}


class CheckSPFTests(unittest.TestCase):
    def setUp(self) -> None:
        self.server = serve_for_test(self, ZONE)
        self.resolver = make_resolver(self.server.nameserver, None, timeout=1.0)

    def check(self, ip: str, mail_from: str, helo: str = "client.example.org",
              **kwargs: Any) -> defer.Deferred[SPFResult]:
        return deferToThread(check_spf, ip, mail_from, helo, resolver=self.resolver, **kwargs)

    @defer.inlineCallbacks
    def assertResult(self, ip: str, mail_from: str, expected: str):
        result = yield self.check(ip, mail_from)
        self.assertEqual(result.result, expected, (ip, mail_from, result))
        return result

    @defer.inlineCallbacks
    def test_pass_by_ip4(self):
        result = yield self.assertResult("192.0.2.25", "alice@example.com", "pass")
        self.assertEqual((result.domain, result.identity), ("example.com", "mailfrom"))

    @defer.inlineCallbacks
    def test_pass_by_include(self):
        yield self.assertResult("198.51.100.7", "alice@example.com", "pass")
        self.assertIn(("_spf.partner.example", "TXT"), self.server.queries)

    @defer.inlineCallbacks
    def test_pass_by_a_mechanism(self):
        yield self.assertResult("203.0.113.5", "alice@example.com", "pass")

    @defer.inlineCallbacks
    def test_fail(self):
        result = yield self.assertResult("203.0.113.10", "alice@example.com", "fail")
        self.assertFalse(result.mail_from_passed)

    @defer.inlineCallbacks
    def test_softfail(self):
        yield self.assertResult("203.0.113.10", "bob@soft.example", "softfail")

    @defer.inlineCallbacks
    def test_neutral(self):
        yield self.assertResult("203.0.113.10", "bob@neutral.example", "neutral")

    @defer.inlineCallbacks
    def test_none_without_spf_record(self):
        yield self.assertResult("203.0.113.10", "bob@nospf.example", "none")

    @defer.inlineCallbacks
    def test_none_for_nonexistent_domain(self):
        yield self.assertResult("203.0.113.10", "bob@nowhere.example", "none")

    @defer.inlineCallbacks
    def test_none_for_single_label_domain_without_dns(self):
        yield self.assertResult("203.0.113.10", "root@localhost", "none")
        self.assertNotIn(("localhost", "TXT"), self.server.queries)

    @defer.inlineCallbacks
    def test_permerror_on_syntax_error(self):
        yield self.assertResult("192.0.2.1", "bob@syntax.example", "permerror")

    @defer.inlineCallbacks
    def test_permerror_on_two_records(self):
        yield self.assertResult("192.0.2.1", "bob@twice.example", "permerror")  # §4.5

    @defer.inlineCallbacks
    def test_permerror_on_more_than_ten_lookups(self):
        result = yield self.assertResult("192.0.2.1", "bob@toomany.example", "permerror")
        self.assertIn("Too many DNS lookups", result.explanation)  # §4.6.4
        self.assertNotIn(("a11.example.net", "A"), self.server.queries)

    @defer.inlineCallbacks
    def test_temperror_on_servfail(self):
        yield self.assertResult("192.0.2.1", "bob@servfail.example", "temperror")

    @defer.inlineCallbacks
    def test_record_longer_than_one_character_string(self):
        yield self.assertResult("192.0.2.77", "bob@long.example", "pass")

    @defer.inlineCallbacks
    def test_null_mail_from_checks_postmaster_at_helo(self):
        for null in ("", "<>"):
            result = yield self.check("192.0.2.10", null, "helo.example.net")
            self.assertEqual((result.result, result.identity, result.domain),
                             ("pass", "helo", "helo.example.net"))
            self.assertEqual(result.helo_result, "pass")
        result = yield self.check("192.0.2.11", "", "helo.example.net")
        self.assertEqual((result.result, result.identity), ("fail", "helo"))

    @defer.inlineCallbacks
    def test_null_mail_from_with_address_literal_helo_is_none(self):
        result = yield self.check("192.0.2.10", "", "[192.0.2.10]")
        self.assertEqual((result.result, result.identity), ("none", "helo"))

    @defer.inlineCallbacks
    def test_helo_is_checked_separately(self):
        result = yield self.check("192.0.2.10", "alice@example.com", "helo.example.net")
        self.assertEqual((result.result, result.helo_result, result.helo_domain),
                         ("pass", "pass", "helo.example.net"))
        result = yield self.check("192.0.2.20", "alice@example.com", "helo.example.net")
        self.assertEqual((result.result, result.helo_result), ("pass", "fail"))

    @defer.inlineCallbacks
    def test_helo_check_can_be_skipped_and_is_skipped_for_literals(self):
        result = yield self.check("192.0.2.10", "alice@example.com", "helo.example.net",
                                  check_helo=False)
        self.assertIsNone(result.helo_result)
        self.assertNotIn(("helo.example.net", "TXT"), self.server.queries)
        result = yield self.check("192.0.2.10", "alice@example.com", "[192.0.2.10]")
        self.assertIsNone(result.helo_result)

    @defer.inlineCallbacks
    def test_ipv6_client(self):
        self.server.update_records({"v6.example": {"TXT": ["v=spf1 ip6:2001:db8::/32 -all"]}})
        result = yield self.check("2001:db8::5", "x@v6.example")
        self.assertEqual(result.result, "pass")
        result = yield self.check("2001:db9::5", "x@v6.example")
        self.assertEqual(result.result, "fail")


class TimeoutTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_temperror_when_dns_does_not_answer(self):
        server = serve_for_test(self, {"slow.example": "TIMEOUT"})
        resolver = make_resolver(server.nameserver, None, timeout=0.3)
        result = yield deferToThread(check_spf, "192.0.2.1", "x@slow.example", "h.example",
                                     resolver=resolver, check_helo=False)
        self.assertEqual(result.result, "temperror")
