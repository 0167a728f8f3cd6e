"""mailauth.resolver: DNS_PRIMARY/SECONDARY parsing, the shared resolver, library hooks."""

from __future__ import annotations

import dkim  # type: ignore[import-untyped]
import dns.nameserver
import dns.resolver
import spf  # type: ignore[import-untyped]
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mailgosend.mailauth import resolver as mr
from tests.support.dnsserver import serve_for_test

LONG_TEXT = "k=rsa; p=" + "A" * 600


class ParseNameserverTests(unittest.TestCase):
    def test_accepted_forms(self) -> None:
        cases = {
            "127.0.0.1": ("127.0.0.1", 53),
            " 127.0.0.1:5353 ": ("127.0.0.1", 5353),
            "::1": ("::1", 53),
            "[::1]": ("::1", 53),
            "[2001:db8::1]:5300": ("2001:db8::1", 5300),
            "2001:DB8::1": ("2001:db8::1", 53),
        }
        for text, expected in cases.items():
            self.assertEqual(mr.parse_nameserver(text), expected, text)

    def test_rejected_forms_name_the_problem(self) -> None:
        cases = {
            "": "empty",
            "dns.example.com": "not an IP address",
            "dns.example.com:53": "not an IP address",
            "127.0.0.1:0": "out of range",
            "127.0.0.1:65536": "out of range",
            "127.0.0.1:dns": "not a number",
            "[::1": "missing ']'",
            "[::1]53": "unexpected",
            "[192.0.2.1]:53": "not an IPv6 address",
        }
        for text, message in cases.items():
            with self.assertRaises(ValueError, msg=text) as caught:
                mr.parse_nameserver(text)
            self.assertIn(message, str(caught.exception), text)


class MakeResolverTests(unittest.TestCase):
    def test_configured_servers_keep_their_ports(self) -> None:
        resolver = mr.make_resolver("127.0.0.1:5353", "[::1]:5300", timeout=4.0)
        servers = [(ns.address, ns.port) for ns in resolver.nameservers
                   if isinstance(ns, dns.nameserver.Do53Nameserver)]
        self.assertEqual(servers, [("127.0.0.1", 5353), ("::1", 5300)])
        self.assertEqual(resolver.lifetime, 4.0)
        self.assertEqual(resolver.timeout, 2.0)
        self.assertIsInstance(resolver.cache, dns.resolver.LRUCache)

    def test_both_empty_means_system_resolver(self) -> None:
        resolver = mr.make_resolver("", None)
        system = dns.resolver.Resolver(configure=True)
        self.assertEqual([str(n) for n in resolver.nameservers],
                         [str(n) for n in system.nameservers])
        self.assertIsInstance(resolver.cache, dns.resolver.LRUCache)

    def test_invalid_setting_raises(self) -> None:
        self.assertRaises(ValueError, mr.make_resolver, "resolver.example", None)

    @defer.inlineCallbacks
    def test_secondary_answers_when_primary_fails(self):
        primary = serve_for_test(self, {"host.example": "SERVFAIL"})
        secondary = serve_for_test(self, {"host.example": {"A": ["192.0.2.7"]}})
        resolver = mr.make_resolver(primary.nameserver, secondary.nameserver, timeout=2.0)
        answer = yield deferToThread(resolver.resolve, "host.example", "A")
        self.assertEqual([r.address for r in answer], ["192.0.2.7"])
        self.assertEqual(primary.queries, [("host.example", "A")])

    @defer.inlineCallbacks
    def test_answers_are_cached(self):
        server = serve_for_test(self, {"host.example": {"A": ["192.0.2.7"]}}, ttl=300)
        resolver = mr.make_resolver(server.nameserver, None, timeout=2.0)
        yield deferToThread(resolver.resolve, "host.example", "A")
        yield deferToThread(resolver.resolve, "host.example", "A")
        self.assertEqual(server.queries, [("host.example", "A")])


class DKIMDnsfuncTests(unittest.TestCase):
    def setUp(self) -> None:
        self.server = serve_for_test(self, {
            "sel._domainkey.example.com": {"TXT": [LONG_TEXT]},
            "broken._domainkey.example.com": "SERVFAIL",
        })
        self.dnsfunc = mr.dkim_dnsfunc(mr.make_resolver(self.server.nameserver, None, 1.0))

    @defer.inlineCallbacks
    def test_long_record_strings_are_concatenated(self):
        record = yield deferToThread(self.dnsfunc, b"sel._domainkey.example.com.", timeout=5)
        self.assertEqual(record, LONG_TEXT.encode())

    @defer.inlineCallbacks
    def test_missing_record_is_none(self):
        record = yield deferToThread(self.dnsfunc, b"gone._domainkey.example.com.", timeout=5)
        self.assertIsNone(record)

    @defer.inlineCallbacks
    def test_servfail_raises_dkim_dns_error(self):
        d = deferToThread(self.dnsfunc, b"broken._domainkey.example.com.", timeout=5)
        yield self.assertFailure(d, dkim.DnsTimeoutError)


class SPFHookTests(unittest.TestCase):
    def setUp(self) -> None:
        original = spf.DNSLookup
        self.addCleanup(setattr, spf, "DNSLookup", original)
        self.server = serve_for_test(self, {
            "example.com": {"TXT": ["v=spf1 mx -all"], "MX": [[10, "mx.example.com"]]},
            "mx.example.com": {"A": ["192.0.2.25"]},
            "slow.example.com": "SERVFAIL",
        })
        self.resolver = mr.make_resolver(self.server.nameserver, None, timeout=1.0)

    @defer.inlineCallbacks
    def test_installed_hook_sends_pyspf_to_our_resolver(self):
        mr.install_spf_resolver(self.resolver)
        result = yield deferToThread(spf.check2, "192.0.2.25", "a@example.com", "mx.example.com")
        self.assertEqual(result[0], "pass")
        self.assertIn(("example.com", "MX"), self.server.queries)

    @defer.inlineCallbacks
    def test_hook_returns_pyspf_shapes(self):
        hook = mr._SPFLookup(self.resolver)
        txt = yield deferToThread(hook, "example.com", "TXT")
        mx = yield deferToThread(hook, "example.com", "MX")
        a = yield deferToThread(hook, "mx.example.com", "A")
        missing = yield deferToThread(hook, "nothing.example.com", "A")
        self.assertEqual(txt, [(("example.com", "TXT"), (b"v=spf1 mx -all",))])
        self.assertEqual(mx, [(("example.com", "MX"), (10, "mx.example.com"))])
        self.assertEqual(a, [(("mx.example.com", "A"), "192.0.2.25")])
        self.assertEqual(missing, [])

    @defer.inlineCallbacks
    def test_hook_turns_servfail_into_spf_temperror(self):
        hook = mr._SPFLookup(self.resolver)
        yield self.assertFailure(deferToThread(hook, "slow.example.com", "TXT"), spf.TempError)

    def test_per_call_resolver_is_reset_after_the_block(self) -> None:
        with mr.spf_resolver_for_call(self.resolver):
            self.assertIs(mr._call_resolver.get(), self.resolver)
            self.assertIsInstance(spf.DNSLookup, mr._SPFLookup)
        self.assertIsNone(mr._call_resolver.get())


class TestDNSServerTests(unittest.TestCase):
    """The test server itself, as later SMTP and delivery tests rely on it."""

    def setUp(self) -> None:
        self.server = serve_for_test(self, {
            "example.com": {"A": ["192.0.2.1"], "AAAA": ["2001:db8::1"],
                            "MX": [[10, "mx.example.com"]], "TXT": ["x" * 300, ["a", "b"]]},
            "www.example.com": {"CNAME": "example.com"},
            "1.2.0.192.in-addr.arpa": {"PTR": ["example.com"]},
            "deep.below.example.com": {"A": ["192.0.2.2"]},
            "silent.example.com": {"A": "TIMEOUT", "TXT": ["still here"]},
        })
        self.resolver = mr.make_resolver(self.server.nameserver, None, timeout=1.0)

    def resolve(self, name: str, rtype: str) -> defer.Deferred:
        return deferToThread(self.resolver.resolve, name, rtype)

    @defer.inlineCallbacks
    def test_record_types(self):
        a = yield self.resolve("example.com", "A")
        aaaa = yield self.resolve("example.com", "AAAA")
        mx = yield self.resolve("example.com", "MX")
        ptr = yield self.resolve("1.2.0.192.in-addr.arpa", "PTR")
        self.assertEqual([r.address for r in a], ["192.0.2.1"])
        self.assertEqual([r.address for r in aaaa], ["2001:db8::1"])
        self.assertEqual([(r.preference, r.exchange.to_text()) for r in mx],
                         [(10, "mx.example.com.")])
        self.assertEqual([r.target.to_text() for r in ptr], ["example.com."])

    @defer.inlineCallbacks
    def test_long_txt_is_split_into_255_byte_strings_and_served_over_tcp(self):
        txt = yield self.resolve("example.com", "TXT")
        strings = sorted(tuple(r.strings) for r in txt)
        self.assertEqual(strings, [(b"a", b"b"), (b"x" * 255, b"x" * 45)])

    @defer.inlineCallbacks
    def test_cname_is_followed(self):
        answer = yield self.resolve("www.example.com", "A")
        self.assertEqual([r.address for r in answer], ["192.0.2.1"])
        self.assertEqual(answer.canonical_name.to_text(), "example.com.")

    @defer.inlineCallbacks
    def test_nxdomain_and_empty_non_terminal(self):
        yield self.assertFailure(self.resolve("nothing.example.com", "A"), dns.resolver.NXDOMAIN)
        yield self.assertFailure(self.resolve("below.example.com", "A"), dns.resolver.NoAnswer)

    @defer.inlineCallbacks
    def test_timeout_for_one_type_only(self):
        yield self.assertFailure(self.resolve("silent.example.com", "A"),
                                 dns.resolver.LifetimeTimeout)
        txt = yield self.resolve("silent.example.com", "TXT")
        self.assertEqual([r.strings for r in txt], [(b"still here",)])

    @defer.inlineCallbacks
    def test_set_records_replaces_the_zone(self):
        self.server.set_records({"new.example": {"A": ["192.0.2.9"]}})
        answer = yield self.resolve("new.example", "A")
        self.assertEqual([r.address for r in answer], ["192.0.2.9"])
        yield self.assertFailure(self.resolve("example.com", "A"), dns.resolver.NXDOMAIN)

    def test_zone_typos_fail_at_set_up(self) -> None:
        self.assertRaises(ValueError, self.server.set_records, {"x.example": {"SRVV": []}})
        self.assertRaises(ValueError, self.server.set_records, {"x.example": "SERVFAIIL"})

    @defer.inlineCallbacks
    def test_runs_as_a_separate_process(self):
        import json
        import os
        import sys

        from twisted.internet import protocol, reactor

        zone_file = os.path.abspath(self.mktemp())
        with open(zone_file, "w") as f:
            json.dump({"proc.example": {"A": ["192.0.2.77"]}}, f)

        class Child(protocol.ProcessProtocol):
            def __init__(self) -> None:
                self.port: defer.Deferred[int] = defer.Deferred()
                self.ended: defer.Deferred[None] = defer.Deferred()
                self.buffer = b""

            def outReceived(self, data: bytes) -> None:
                self.buffer += data
                if b"\n" in self.buffer and not self.port.called:
                    self.port.callback(int(self.buffer.split(b"\n")[0]))

            def errReceived(self, data: bytes) -> None:
                self.buffer += data

            def processEnded(self, reason: object) -> None:
                if not self.port.called:
                    self.port.errback(RuntimeError(f"server exited: {self.buffer!r}"))
                self.ended.callback(None)

        child = Child()
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        transport = reactor.spawnProcess(
            child, sys.executable,
            [sys.executable, "-m", "tests.support.dnsserver", "--port", "0",
             "--zone-json", zone_file],
            env={**os.environ, "PYTHONPATH": root}, path=root)
        try:
            port = yield child.port
            resolver = mr.make_resolver(f"127.0.0.1:{port}", None, timeout=2.0)
            answer = yield deferToThread(resolver.resolve, "proc.example", "A")
            self.assertEqual([r.address for r in answer], ["192.0.2.77"])
        finally:
            if not child.ended.called:
                transport.signalProcess("TERM")
            yield child.ended
