"""MTA-STS (RFC 8461) end to end with two servers: beta.test publishes a policy on a local
HTTPS server (twisted.web, certificate from a test CA alpha trusts through MTA_STS_CA_FILE)
while its MX presents a certificate alpha does not trust.  Under ``enforce`` alpha keeps the
mail queued (deferred, 4.7.5, never sent in clear) and logs why; under ``testing`` it
delivers and counts a TLS-RPT failure.  Also: the policy cache, the policy format, and a
policy refused for its media type."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor, ssl
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import resource, server, static

from mailgosend.db.runner import run_sync
from mailgosend.mtasts import PolicyError, mx_matches, parse_policy, parse_sts_record
from mailgosend.store import mtasts as sts_store
from mailgosend.store import queue as queue_store
from tests.support.certs import make_ca, make_cert
from tests.test_delivery_e2e import TwoServerTestCase, inject, message, wait_for


def policy_text(mode: str) -> bytes:
    return (f"version: STSv1\r\nmode: {mode}\r\nmx: mx.beta.test\r\n"
            f"max_age: 86400\r\n").encode()


class PolicyServerMixin:
    """An HTTPS server for https://mta-sts.beta.test/.well-known/mta-sts.txt."""

    mode = "enforce"
    content_type = "text/plain"

    def start_policy_server(self: Any) -> None:
        pki = os.path.abspath(self.mktemp())
        self.policy_ca = make_ca(pki, name="webpki")
        cert, key = make_cert(pki, ["mta-sts.beta.test"], ca=self.policy_ca, name="mta-sts")
        with open(cert, "rb") as c, open(key, "rb") as k:
            certificate = ssl.PrivateCertificate.loadPEM(c.read() + k.read())
        root = self.policy_root = resource.Resource()
        well_known = resource.Resource()
        root.putChild(b".well-known", well_known)
        self.policy = static.Data(policy_text(self.mode), self.content_type)
        well_known.putChild(b"mta-sts.txt", self.policy)
        self.policy_port = reactor.listenSSL(0, server.Site(root), certificate.options(),
                                             interface="127.0.0.1")
        self.addCleanup(self.policy_port.stopListening)

    def publish_policy(self: Any, policy_id: str = "20261205") -> None:
        self.servers.dns.update_records({
            "_mta-sts.beta.test": {"TXT": [f"v=STSv1; id={policy_id};"]},
            "mta-sts.beta.test": {"A": ["127.0.0.1"]},
        })


class MTASTSTestBase(PolicyServerMixin, TwoServerTestCase):
    def setUp(self) -> Any:
        self.start_policy_server()
        self.alpha_settings = {
            "MTA_STS_CA_FILE": self.policy_ca.root_path,
            "MTA_STS_HTTPS_PORT": str(self.policy_port.getHost().port),
            "DEFAULT_DOMAIN": "alpha.test"}
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        return super().setUp()

    def logged(self, text: str) -> list[str]:
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.events if text in formatEvent(e)]

    def tls_results(self) -> list[Any]:
        return run_sync(self.alpha.engine, sts_store.results_before, "9999-12-31",
                        write=False)


class EnforceTests(MTASTSTestBase):
    mode = "enforce"

    def test_untrusted_mx_certificate_defers_the_message(self) -> Any:
        return defer.Deferred.fromCoroutine(self._enforce())

    async def _enforce(self) -> None:
        self.publish_policy()
        inject(self.alpha, "alice@alpha.test", ["bob@beta.test"],
               message("alice@alpha.test", "bob@beta.test", "under enforce"))
        rows = await wait_for(lambda: self.log_rows(self.alpha))
        self.assertEqual((rows[0].status, rows[0].code), ("deferred", 421))
        self.assertIn("MTA-STS policy of beta.test is enforce", rows[0].text)
        self.assertIn("not verified", rows[0].text)
        # Still queued, for a later attempt; beta got nothing (never sent in clear).
        (entry,) = run_sync(self.alpha.engine, queue_store.list_entries, write=False)
        self.assertEqual(entry.recipients[0].status, "queued")
        self.assertEqual(entry.recipients[0].attempts, 1)
        self.assertEqual(self.beta.stored("bob@beta.test"), [])
        self.assertTrue(self.logged("MTA-STS: beta.test policy 20261205: mode enforce"))
        self.assertTrue(self.logged("(MTA-STS policy of beta.test is enforce)"))
        # The policy is cached for its max_age.
        cached = run_sync(self.alpha.engine, sts_store.cached_policy, "beta.test",
                          write=False)
        self.assertEqual((cached.policy_id, cached.policy.mode, cached.policy.mx,
                          cached.policy.max_age),
                         ("20261205", "enforce", ("mx.beta.test",), 86400))
        self.assertEqual([(r.domain, r.policy_type, r.mx_host, r.result_type, r.count)
                          for r in self.tls_results()],
                         [("beta.test", "sts", "mx.beta.test", "certificate-not-trusted", 1)])

    def test_mx_not_in_the_policy_is_not_used(self) -> Any:
        return defer.Deferred.fromCoroutine(self._mx_mismatch())

    async def _mx_mismatch(self) -> None:
        self.policy.data = policy_text("enforce").replace(b"mx.beta.test", b"other.beta.test")
        self.publish_policy()
        inject(self.alpha, "alice@alpha.test", ["bob@beta.test"],
               message("alice@alpha.test", "bob@beta.test", "wrong mx"))
        rows = await wait_for(lambda: self.log_rows(self.alpha))
        self.assertEqual(rows[0].status, "deferred")
        self.assertIn("4.7.5 MTA-STS policy of beta.test (enforce) lists none", rows[0].text)
        self.assertEqual([(r.mx_host, r.result_type) for r in self.tls_results()],
                         [("mx.beta.test", "validation-failure")])


class TestingModeTests(MTASTSTestBase):
    mode = "testing"

    def test_testing_mode_delivers_and_counts_the_failure(self) -> Any:
        return defer.Deferred.fromCoroutine(self._testing())

    async def _testing(self) -> None:
        self.publish_policy()
        inject(self.alpha, "alice@alpha.test", ["bob@beta.test"],
               message("alice@alpha.test", "bob@beta.test", "under testing"))
        await wait_for(lambda: self.beta.stored("bob@beta.test"))
        await self.queue_drained(self.alpha)
        self.assertEqual([(r.domain, r.policy_type, r.mx_host, r.result_type, r.count)
                          for r in self.tls_results()],
                         [("beta.test", "sts", "mx.beta.test", "certificate-not-trusted", 1)])
        self.assertTrue(self.logged("certificate-not-trusted; delivered anyway (testing)"))


class BadPolicyTests(MTASTSTestBase):
    content_type = "text/html"

    def test_policy_not_text_plain_is_ignored_and_counted(self) -> Any:
        return defer.Deferred.fromCoroutine(self._bad())

    async def _bad(self) -> None:
        self.publish_policy()
        inject(self.alpha, "alice@alpha.test", ["bob@beta.test"],
               message("alice@alpha.test", "bob@beta.test", "bad policy"))
        await wait_for(lambda: self.beta.stored("bob@beta.test"))
        results = {(r.policy_type, r.result_type) for r in self.tls_results()}
        self.assertIn(("no-policy-found", "sts-policy-fetch-error"), results)
        self.assertIsNone(run_sync(self.alpha.engine, sts_store.cached_policy, "beta.test",
                                   write=False))


class NoPolicyTests(TwoServerTestCase):
    def test_a_domain_without_policy_is_delivered_as_before(self) -> Any:
        return defer.Deferred.fromCoroutine(self._none())

    async def _none(self) -> None:
        inject(self.alpha, "alice@alpha.test", ["bob@beta.test"],
               message("alice@alpha.test", "bob@beta.test", "no policy"))
        await wait_for(lambda: self.beta.stored("bob@beta.test"))


class PolicyFormatTests(SynchronousTestCase):
    def test_parse_policy(self) -> None:
        policy = parse_policy("version: STSv1\nmode: enforce\nmx: mail.example.com\n"
                              "mx: *.example.net\nmax_age: 604800\n")
        self.assertEqual((policy.mode, policy.mx, policy.max_age),
                         ("enforce", ("mail.example.com", "*.example.net"), 604800))
        self.assertTrue(policy.allows("MAIL.example.com."))
        self.assertTrue(policy.allows("mx1.example.net"))
        self.assertFalse(policy.allows("example.net"))
        for bad in ("mode: enforce\nmx: a\nmax_age: 1", "version: STSv1\nmode: strict\nmx: a\n"
                    "max_age: 1", "version: STSv1\nmode: enforce\nmax_age: 1",
                    "version: STSv1\nmode: enforce\nmx: a\nmax_age: 99999999999"):
            self.assertRaises(PolicyError, parse_policy, bad)

    def test_sts_record(self) -> None:
        self.assertEqual(parse_sts_record(["v=STSv1; id=abc123;"]), "abc123")
        self.assertIsNone(parse_sts_record(["v=STSv1; id=abc123", "v=STSv1; id=x"]))
        self.assertIsNone(parse_sts_record(["v=spf1 -all"]))
        self.assertIsNone(parse_sts_record(["v=STSv1; id=not_valid!"]))

    def test_wildcard_matches_one_label(self) -> None:
        self.assertTrue(mx_matches("*.example.com", "a.example.com"))
        self.assertFalse(mx_matches("*.example.com", "a.b.example.com"))


class PolicyChangeTests(MTASTSTestBase):
    mode = "testing"

    def test_a_new_id_fetches_the_new_policy(self) -> Any:
        return defer.Deferred.fromCoroutine(self._change())

    async def _change(self) -> None:
        self.publish_policy("one")
        inject(self.alpha, "alice@alpha.test", ["bob@beta.test"],
               message("alice@alpha.test", "bob@beta.test", "first"))
        await wait_for(lambda: self.beta.stored("bob@beta.test"))
        await self.queue_drained(self.alpha)
        # Same id: the cached policy is used even if the file changed meanwhile.
        self.policy.data = policy_text("enforce")
        inject(self.alpha, "alice@alpha.test", ["bob@beta.test"],
               message("alice@alpha.test", "bob@beta.test", "second"))
        await wait_for(lambda: len(self.beta.stored("bob@beta.test")) == 2)
        await self.queue_drained(self.alpha)
        # A new id in DNS: fetched again, now enforce: deferred.
        self.publish_policy("two")
        inject(self.alpha, "alice@alpha.test", ["bob@beta.test"],
               message("alice@alpha.test", "bob@beta.test", "third"))
        await wait_for(lambda: any(r.status == "deferred" for r in self.log_rows(self.alpha)))
        cached = run_sync(self.alpha.engine, sts_store.cached_policy, "beta.test",
                          write=False)
        self.assertEqual((cached.policy_id, cached.policy.mode), ("two", "enforce"))
        self.assertEqual(len(self.beta.stored("bob@beta.test")), 2)


class ClassifyTests(SynchronousTestCase):
    """Session outcomes as RFC 8460 §4.3 result types (the notes come from clienttls.py)."""

    def test_result_types(self) -> None:
        from mailgosend.delivery.mtasts import StsLookup, classify_tls

        self.assertEqual(classify_tls("TLSv1.3", True, None), "success")
        self.assertEqual(classify_tls(None, False, None), "starttls-not-supported")
        self.assertEqual(classify_tls("TLSv1.3", False, "certificate name mismatch: not "
                                      "valid for mx.example.net"), "certificate-host-mismatch")
        self.assertEqual(classify_tls("TLSv1.3", False, "certificate verify failed: "
                                      "certificate has expired"), "certificate-expired")
        self.assertEqual(classify_tls(None, False, "TLS certificate of mx.example.net not "
                                      "verified: certificate verify failed: self-signed "
                                      "certificate"), "certificate-not-trusted")
        self.assertEqual(classify_tls(None, False, "TLS is required, but was not offered "
                                      "by the server"), "starttls-not-supported")
        none = StsLookup("example.net")
        self.assertEqual((none.policy_type, none.enforced, none.policy_lines),
                         ("no-policy-found", False, ()))
