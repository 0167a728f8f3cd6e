"""mailauth.dmarc: RFC 7489 policy discovery, alignment and disposition."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mailgosend.mailauth.dkim import DKIMResult
from mailgosend.mailauth.dmarc import (
    DMARCRecord, DMARCResult, FromDomain, aligned, evaluate_dmarc, from_domain,
    organizational_domain, parse_record)
from mailgosend.mailauth.resolver import make_resolver
from mailgosend.mailauth.spf import SPFResult
from tests.support.dnsserver import serve_for_test

ZONE = {
    "_dmarc.example.com": {"TXT": ["v=DMARC1; p=reject; rua=mailto:agg@example.com",
                                   "unrelated text"]},
    "_dmarc.quarantine.example": {"TXT": ["v=DMARC1; p=quarantine"]},
    "_dmarc.strict.example": {"TXT": ["v=DMARC1; p=reject; adkim=s; aspf=s"]},
    "_dmarc.parent.example": {"TXT": ["v=DMARC1; p=reject; sp=quarantine"]},
    "_dmarc.own.parent.example": {"TXT": ["v=DMARC1; p=none"]},
    "_dmarc.example.co.uk": {"TXT": ["v=DMARC1; p=quarantine"]},
    "_dmarc.sampled.example": {"TXT": ["v=DMARC1; p=reject; pct=0"]},
    "_dmarc.half.example": {"TXT": ["v=DMARC1; p=reject; pct=50"]},
    "_dmarc.multi.example": {"TXT": ["v=DMARC1; p=reject", "v=DMARC1; p=none"]},
    "_dmarc.temp.example": "SERVFAIL",
    "_dmarc.badp.example": {"TXT": ["v=DMARC1; p=bogus; rua=mailto:d@badp.example"]},
    "_dmarc.norua.example": {"TXT": ["v=DMARC1; p=bogus"]},
    "_dmarc.lower.example": {"TXT": ["v=dmarc1; p=reject"]},
}


def spf(result: str, domain: str, identity: str = "mailfrom") -> SPFResult:
    return SPFResult(result, domain, identity)


def dkim(result: str, domain: str) -> DKIMResult:
    return DKIMResult(result, domain, "sel", "rsa-sha256", "abcdefgh")


NO_SPF = spf("none", "bounces.elsewhere.example")


def never() -> float:
    raise AssertionError("pct sampling must not run here")


class EvaluateDMARCTests(unittest.TestCase):
    def setUp(self) -> None:
        self.server = serve_for_test(self, ZONE)
        self.resolver = make_resolver(self.server.nameserver, None, timeout=1.0)

    def evaluate(self, domain: str, spf_result: SPFResult | None = NO_SPF,
                 dkim_results: list[DKIMResult] | None = None,
                 rand: Any = never) -> defer.Deferred[DMARCResult]:
        return deferToThread(evaluate_dmarc, domain, spf_result, dkim_results or [],
                             resolver=self.resolver, rand=rand)

    @defer.inlineCallbacks
    def test_pass_by_aligned_spf(self):
        result = yield self.evaluate("example.com", spf("pass", "example.com"))
        self.assertEqual((result.result, result.disposition, result.spf_aligned,
                          result.dkim_aligned), ("pass", "none", True, False))
        self.assertEqual((result.policy, result.policy_dmarc, result.header_from),
                         ("reject", "reject", "example.com"))

    @defer.inlineCallbacks
    def test_relaxed_spf_alignment_accepts_subdomain_of_mail_from(self):
        result = yield self.evaluate("example.com", spf("pass", "bounce.example.com"))
        self.assertEqual(result.result, "pass")

    @defer.inlineCallbacks
    def test_pass_by_relaxed_dkim_alignment(self):
        result = yield self.evaluate("example.com", spf("fail", "example.com"),
                                     [dkim("pass", "mail.example.com")])
        self.assertEqual((result.result, result.dkim_aligned, result.spf_aligned),
                         ("pass", True, False))

    @defer.inlineCallbacks
    def test_unaligned_or_failing_dkim_does_not_pass(self):
        result = yield self.evaluate("example.com", NO_SPF,
                                     [dkim("fail", "example.com"), dkim("pass", "other.example")])
        self.assertEqual((result.result, result.disposition), ("fail", "reject"))

    @defer.inlineCallbacks
    def test_spf_non_pass_does_not_align(self):
        result = yield self.evaluate("example.com", spf("softfail", "example.com"))
        self.assertEqual(result.result, "fail")

    @defer.inlineCallbacks
    def test_strict_alignment_fails_for_subdomains(self):
        result = yield self.evaluate("strict.example", spf("pass", "mail.strict.example"),
                                     [dkim("pass", "mail.strict.example")])
        self.assertEqual((result.result, result.disposition), ("fail", "reject"))
        result = yield self.evaluate("strict.example", NO_SPF, [dkim("pass", "strict.example")])
        self.assertEqual(result.result, "pass")

    @defer.inlineCallbacks
    def test_quarantine_policy(self):
        result = yield self.evaluate("quarantine.example")
        self.assertEqual((result.result, result.policy, result.disposition),
                         ("fail", "quarantine", "quarantine"))

    @defer.inlineCallbacks
    def test_reject_policy(self):
        result = yield self.evaluate("example.com")
        self.assertEqual((result.result, result.policy, result.disposition),
                         ("fail", "reject", "reject"))

    @defer.inlineCallbacks
    def test_subdomain_policy_applies_to_subdomains_only(self):
        sub = yield self.evaluate("sub.parent.example")
        self.assertEqual((sub.result, sub.published_policy, sub.disposition, sub.record_domain),
                         ("fail", "quarantine", "quarantine", "parent.example"))
        top = yield self.evaluate("parent.example")
        self.assertEqual(top.disposition, "reject")
        own = yield self.evaluate("own.parent.example")   # has its own record: its p applies
        self.assertEqual((own.disposition, own.record_domain), ("none", "own.parent.example"))

    @defer.inlineCallbacks
    def test_org_domain_fallback_with_multi_label_public_suffix(self):
        result = yield self.evaluate("a.b.example.co.uk")
        self.assertEqual((result.result, result.record_domain, result.disposition),
                         ("fail", "example.co.uk", "quarantine"))
        dmarc_queries = [name for name, _type in self.server.queries]
        self.assertEqual(dmarc_queries, ["_dmarc.a.b.example.co.uk", "_dmarc.example.co.uk"])

    @defer.inlineCallbacks
    def test_no_fallback_query_for_org_domain_itself(self):
        result = yield self.evaluate("nothing.example")
        self.assertEqual((result.result, result.disposition), ("none", "none"))
        self.assertEqual(self.server.queries, [("_dmarc.nothing.example", "TXT")])

    @defer.inlineCallbacks
    def test_pct_zero_samples_the_policy_down(self):
        result = yield self.evaluate("sampled.example", rand=lambda: 0.0)
        self.assertEqual((result.result, result.published_policy, result.policy,
                          result.disposition), ("fail", "reject", "quarantine", "quarantine"))

    @defer.inlineCallbacks
    def test_pct_uses_the_random_source(self):
        inside = yield self.evaluate("half.example", rand=lambda: 0.49)
        outside = yield self.evaluate("half.example", rand=lambda: 0.5)
        self.assertEqual((inside.disposition, outside.disposition), ("reject", "quarantine"))

    @defer.inlineCallbacks
    def test_passing_message_is_not_sampled(self):
        result = yield self.evaluate("sampled.example", spf("pass", "sampled.example"))
        self.assertEqual((result.result, result.disposition), ("pass", "none"))

    @defer.inlineCallbacks
    def test_multiple_records_mean_no_policy(self):
        result = yield self.evaluate("multi.example")
        self.assertEqual((result.result, result.policy_dmarc), ("none", None))

    @defer.inlineCallbacks
    def test_version_tag_is_case_sensitive(self):
        result = yield self.evaluate("lower.example")
        self.assertEqual(result.result, "none")

    @defer.inlineCallbacks
    def test_dns_failure_is_temperror(self):
        result = yield self.evaluate("temp.example")
        self.assertEqual((result.result, result.disposition), ("temperror", "none"))

    @defer.inlineCallbacks
    def test_invalid_p_with_rua_acts_as_none(self):
        result = yield self.evaluate("badp.example")
        self.assertEqual((result.result, result.disposition, result.policy_dmarc),
                         ("fail", "none", "none"))
        result = yield self.evaluate("norua.example")
        self.assertEqual(result.result, "none")

    @defer.inlineCallbacks
    def test_unusable_from_domain_is_permerror_without_dns(self):
        for domain in ("", "localhost"):
            result = yield self.evaluate(domain)
            self.assertEqual(result.result, "permerror")
        self.assertEqual(self.server.queries, [])


class ParseRecordTests(unittest.TestCase):
    def test_defaults(self) -> None:
        self.assertEqual(parse_record("v=DMARC1; p=quarantine"),
                         DMARCRecord("quarantine", "quarantine", "r", "r", 100, ()))

    def test_table(self) -> None:
        cases = {
            "v=DMARC1;p=REJECT;sp=none;adkim=s;aspf=s;pct=20;rua=mailto:a@x.example":
                DMARCRecord("reject", "none", "s", "s", 20, ("mailto:a@x.example",)),
            " v = DMARC1 ; p = none ; pct=abc ; adkim=x":
                DMARCRecord("none", "none", "r", "r", 100, ()),
            "v=DMARC1; p=reject; sp=bogus; rua=mailto:a@x.example!10m":
                DMARCRecord("none", "none", "r", "r", 100, ("mailto:a@x.example!10m",)),
            "v=DMARC1; p=reject; pct=101": DMARCRecord("reject", "reject", pct=100),
        }
        for text, expected in cases.items():
            self.assertEqual(parse_record(text), expected, text)

    def test_unusable_records(self) -> None:
        for text in ("p=reject", "v=DMARC2; p=reject", "v=dmarc1; p=reject",
                     "p=reject; v=DMARC1", "v=DMARC1", "v=DMARC1; p=bogus; rua=nonsense"):
            self.assertIsNone(parse_record(text), text)


class DomainTests(unittest.TestCase):
    def test_organizational_domain(self) -> None:
        cases = {
            "example.com": "example.com",
            "Mail.Example.COM.": "example.com",
            "a.b.example.co.uk": "example.co.uk",
            "co.uk": "co.uk",
            "x.y.example.test": "example.test",
        }
        for domain, expected in cases.items():
            self.assertEqual(organizational_domain(domain), expected, domain)

    def test_alignment(self) -> None:
        cases = [
            ("example.com", "example.com", "s", True),
            ("EXAMPLE.com.", "example.com", "s", True),
            ("mail.example.com", "example.com", "s", False),
            ("mail.example.com", "example.com", "r", True),
            ("a.example.co.uk", "b.example.co.uk", "r", True),
            ("example.co.uk", "other.co.uk", "r", False),
            ("example.com", "example.net", "r", False),
            ("", "example.com", "r", False),
        ]
        for a, b, mode, expected in cases:
            self.assertEqual(aligned(a, b, mode), expected, (a, b, mode))


class FromDomainTests(unittest.TestCase):
    def test_table(self) -> None:
        cases = {
            b"From: Alice <alice@Example.COM>\r\n\r\nbody": FromDomain("ok", "example.com"),
            b"Subject: x\r\nFROM:\r\n  alice@example.com\r\n\r\n": FromDomain("ok", "example.com"),
            b"From: a@x.example, b@x.example\r\n\r\n": FromDomain("ok", "x.example"),
            b"From: J\xc3\xb6rg <j@b\xc3\xbccher.example>\r\n\r\n":
                FromDomain("ok", "xn--bcher-kva.example"),
        }
        for raw, expected in cases.items():
            self.assertEqual(from_domain(raw), expected, raw)

    def test_problems(self) -> None:
        cases = {
            b"To: bob@example.org\r\n\r\nFrom: a@example.com\r\n": "none",
            b"From: undisclosed:;\r\n\r\n": "none",
            b"From: a@example.com\r\nFrom: b@example.com\r\n\r\n": "multiple",
            b"From: a@x.example, b@y.example\r\n\r\n": "multiple",
            b"From: alice@example.org)<bob@evil.example>\r\n\r\n": "invalid",
            b"From: a@example.com b@evil.example\r\n\r\n": "invalid",
            b"From: a@[192.0.2.1]\r\n\r\n": "invalid",
            b"From: garbage\r\n\r\n": "invalid",
        }
        for raw, status in cases.items():
            result = from_domain(raw)
            self.assertEqual(result.status, status, raw)
            self.assertEqual(result.domain, "", raw)
            self.assertTrue(result.reason, raw)
