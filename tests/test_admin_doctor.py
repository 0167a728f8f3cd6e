"""``mailgosend doctor`` (mailgosend/doctor.py) against the local test DNS (twisted.names,
tests/support/dnsserver.py): a good zone passes every check; a broken one (no SPF, a DKIM
record that is not our key, no DMARC, a blocklist listing, port 25 closed) is reported with
what it means and the record to publish.  The admin panel runs the same checks
(tests/test_admin_domains.py)."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer, protocol, reactor, threads
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.store import dkimkeys
from tests.support.dnsserver import serve_for_test
from tests.support.net import free_ports
from tests.test_cli import CLITestCase

IP = "192.0.2.10"


def good_zone(key: dkimkeys.DKIMKey) -> dict[str, Any]:
    return {
        "example.com": {"MX": [[10, "mail.example.com"]], "TXT": ["v=spf1 mx -all"]},
        "mail.example.com": {"A": [IP]},
        key.record_name: {"TXT": [key.txt_value]},
        "_dmarc.example.com": {"TXT": ["v=DMARC1; p=quarantine; adkim=r; aspf=r"]},
        "10.2.0.192.in-addr.arpa": {"PTR": ["mail.example.com"]},
    }


class DoctorCLITests(CLITestCase, unittest.TestCase):
    def setUp(self) -> None:
        CLITestCase.setUp(self)
        self.ok("domain", "add", "example.com")
        self.ok("dkim", "generate", "example.com", "--algo", "ed25519")
        (self.key,) = run_sync(self.engine(), dkimkeys.list_keys, None, write=False)
        # A listener standing in for a remote MX on port 25.
        self.mx = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol),
                                    interface="127.0.0.1")
        self.addCleanup(self.mx.stopListening)

    def start_dns(self, zone: dict[str, Any], probe: str) -> None:
        dns_server = serve_for_test(self, zone)
        self.set_config(DNS_PRIMARY=dns_server.nameserver, HOSTNAME="mail.example.com",
                        PUBLIC_IP=IP, DNSBL_ZONES="bl.test", DOCTOR_PORT25_PROBE=probe)

    def doctor(self, *argv: str) -> Any:
        return threads.deferToThread(self.ok, "doctor", *argv)

    @defer.inlineCallbacks
    def test_a_good_zone_passes(self) -> Any:
        self.start_dns(good_zone(self.key), f"127.0.0.1:{self.mx.getHost().port}")
        out = yield self.doctor("example.com")
        for check in ("MX", "SPF", f"DKIM {self.key.selector}", "DMARC", "Reverse DNS",
                      "Blocklist bl.test", "Outbound port 25"):
            self.assertRegex(out, rf"\[ok  \] {re.escape(check)}:")
        self.assertNotIn("FAIL", out)
        self.assertIn("10.2.0.192.in-addr.arpa".split(".")[0] and IP, out)
        # The optional records (MTA-STS, autoconfig...) are missing: warnings, not failures.
        self.assertIn("[WARN] CNAME autoconfig.example.com: not published", out)

    @defer.inlineCallbacks
    def test_a_broken_zone_says_what_to_fix(self) -> Any:
        zone = good_zone(self.key)
        zone["example.com"] = {"MX": [[10, "mail.example.com"]]}          # no SPF
        zone[self.key.record_name] = {"TXT": ["v=DKIM1; k=ed25519; p=AAAAwrongkey"]}
        del zone["_dmarc.example.com"]
        zone["10.2.0.192.bl.test"] = {"A": ["127.0.0.2"], "TXT": ["listed for spam"]}
        (closed,) = free_ports(1)
        self.start_dns(zone, f"127.0.0.1:{closed}")
        out = yield self.doctor()
        self.assertIn("[FAIL] SPF: no SPF record", out)
        self.assertIn('example.com. IN TXT ( "v=spf1 mx -all" )', out)
        self.assertIn(f"[FAIL] DKIM {self.key.selector}:", out)
        self.assertIn("not the key this server signs with", out)
        self.assertIn(f'"p={self.key.public_key}" )', out)              # the record to publish
        self.assertIn("[FAIL] DMARC: no DMARC record", out)
        self.assertIn('_dmarc.example.com. IN TXT ( "v=DMARC1; "', out)
        self.assertIn(f"[FAIL] Blocklist bl.test: {IP} is listed (127.0.0.2) listed for spam", out)
        self.assertIn(f"[FAIL] Outbound port 25: could not connect to 127.0.0.1:{closed}", out)
        self.assertIn("[ok  ] MX:", out)
        self.assertIn("5 problem(s)", out)

    @defer.inlineCallbacks
    def test_offline_skips_port_25_cleanly(self) -> Any:
        self.start_dns(good_zone(self.key), "no-such-host.invalid:25")
        out = yield self.doctor("--no-server")
        self.assertNotIn("port 25", out)
        out = yield self.doctor("example.com")
        self.assertIn("[skip] Outbound port 25: no-such-host.invalid could not be resolved",
                      out)

    def test_an_unknown_domain_is_refused(self) -> None:
        status, out, err = self.run_cli("doctor", "nope.example")
        self.assertEqual(status, 2)
        self.assertIn("unknown domain nope.example", err)
