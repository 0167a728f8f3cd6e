"""dnsrecords.records_for: the records a local domain should publish, each SRV following
the port configuration (a disabled service is ``0 0 0 .``), and ``mailgosend dns records``
printing them in zone-file form."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from twisted.trial.unittest import SynchronousTestCase

from mailgosend.dnsrecords import DnsRecord, records_for, zone_file
from mailgosend.mtasts import own_policy, parse_policy
from mailgosend.store.dkimkeys import DKIMKey
from tests.support.config import make_config
from tests.test_cli import CLITestCase

KEY = DKIMKey(1, "example.com", "mg202612", "rsa-sha256", "QUJD" * 100, True,
              datetime(2026, 12, 1, tzinfo=timezone.utc))
PORTS = dict(TLS_MODE="selfsigned", SMTP_PORT="25", SUBMIT_PORT="587", SMTPS_PORT="465",
             IMAP_PORT="143", IMAPS_PORT="993", POP3_PORT="110", POP3S_PORT="995",
             WEB_PORT="443", WEB_TLS="true", HOSTNAME="mail.example.net")


class RecordsTests(SynchronousTestCase):
    def records(self, **values: str) -> dict[tuple[str, str], DnsRecord]:
        config = make_config(self.mktemp(), **{**PORTS, **values})
        found = records_for("example.com", config, [KEY])
        by_key = {}
        for record in found:
            self.assertTrue(record.purpose)
            by_key.setdefault((record.name, record.type), record)
        return by_key

    def test_mail_routing_and_authentication(self) -> None:
        r = self.records()
        self.assertEqual(r["example.com", "MX"].value, "10 mail.example.net.")
        self.assertTrue(r["example.com", "MX"].required)
        self.assertEqual(r["example.com", "TXT"].value, "v=spf1 mx -all")
        self.assertEqual(r["mg202612._domainkey.example.com", "TXT"].value, KEY.txt_value)
        self.assertTrue(r["_dmarc.example.com", "TXT"].value.startswith("v=DMARC1; p="))

    def test_srv_records_follow_the_ports(self) -> None:
        r = self.records(IMAPS_PORT="1993", SUBMIT_PORT="2587")
        srv = {name.split(".")[0]: r[name, "SRV"].value for name, kind in r if kind == "SRV"}
        self.assertEqual(srv["_imaps"], "0 1 1993 mail.example.net.")
        self.assertEqual(srv["_imap"], "10 1 143 mail.example.net.")
        self.assertEqual(srv["_submission"], "10 1 2587 mail.example.net.")
        self.assertEqual(srv["_submissions"], "0 1 465 mail.example.net.")
        self.assertEqual(srv["_pop3s"], "20 1 995 mail.example.net.")
        self.assertEqual(srv["_pop3"], "30 1 110 mail.example.net.")
        self.assertEqual(srv["_caldavs"], "0 1 443 mail.example.net.")
        self.assertEqual(srv["_carddavs"], "0 1 443 mail.example.net.")
        self.assertEqual(r["_caldavs._tcp.example.com", "TXT"].value, "path=/caldav/")
        self.assertEqual(r["_carddavs._tcp.example.com", "TXT"].value, "path=/carddav/")

    def test_a_disabled_service_says_not_offered(self) -> None:
        r = self.records(POP3_PORT="0", POP3S_ENABLED="false")
        self.assertEqual(r["_pop3._tcp.example.com", "SRV"].value, "0 0 0 .")
        self.assertEqual(r["_pop3s._tcp.example.com", "SRV"].value, "0 0 0 .")
        self.assertEqual(r["_imaps._tcp.example.com", "SRV"].value,
                         "0 1 993 mail.example.net.")

    def test_without_tls_the_implicit_tls_ports_are_not_offered(self) -> None:
        r = self.records(TLS_MODE="off", WEB_TLS="false")
        self.assertEqual(r["_imaps._tcp.example.com", "SRV"].value, "0 0 0 .")
        self.assertEqual(r["_submission._tcp.example.com", "SRV"].value, "0 0 0 .")
        self.assertEqual(r["_imap._tcp.example.com", "SRV"].value,
                         "10 1 143 mail.example.net.")
        self.assertIn(("_caldav._tcp.example.com", "SRV"), r)

    def test_mta_sts_and_tlsrpt(self) -> None:
        config = make_config(self.mktemp(), **PORTS)
        r = self.records()
        policy = own_policy(config)
        self.assertEqual(r["_mta-sts.example.com", "TXT"].value, f"v=STSv1; id={policy.id}")
        self.assertEqual(r["mta-sts.example.com", "CNAME"].value, "mail.example.net.")
        self.assertEqual(r["_smtp._tls.example.com", "TXT"].value,
                         "v=TLSRPTv1; rua=mailto:postmaster@example.com")
        self.assertEqual(r["autoconfig.example.com", "CNAME"].value, "mail.example.net.")
        self.assertEqual(r["autodiscover.example.com", "CNAME"].value, "mail.example.net.")
        # The id changes with the policy.
        enforce = self.records(MTA_STS_MODE="enforce")
        self.assertNotEqual(enforce["_mta-sts.example.com", "TXT"].value,
                            r["_mta-sts.example.com", "TXT"].value)
        other = self.records(TLSRPT_RUA="https://reports.example.org/tls")
        self.assertEqual(other["_smtp._tls.example.com", "TXT"].value,
                         "v=TLSRPTv1; rua=https://reports.example.org/tls")
        self.assertNotIn(("_smtp._tls.example.com", "TXT"), self.records(TLSRPT_RUA="off"))

    def test_own_policy_text_parses_back(self) -> None:
        config = make_config(self.mktemp(), **PORTS, MTA_STS_MODE="enforce",
                             MTA_STS_MX="mx1.example.net, *.mx.example.net")
        policy = own_policy(config)
        self.assertEqual(parse_policy(policy.text()), policy)
        self.assertTrue(policy.allows("a.mx.example.net"))
        self.assertFalse(policy.allows("a.b.mx.example.net"))
        self.assertFalse(policy.allows("mail.example.net"))

    def test_zone_file_form(self) -> None:
        config = make_config(self.mktemp(), **PORTS)
        text = zone_file(records_for("example.com", config, [KEY]))
        self.assertIn("example.com. IN MX 10 mail.example.net.", text)
        self.assertIn("_imaps._tcp.example.com. IN SRV 0 1 993 mail.example.net.", text)
        self.assertIn('_dmarc.example.com. IN TXT ( "v=DMARC1; ', text)
        for line in text.splitlines():
            for part in re.findall(r'"([^"]*)"', line):
                self.assertLessEqual(len(part), 255)


class DnsCommandTests(CLITestCase):
    def test_dns_records_prints_every_record(self) -> None:
        self.ok("domain", "add", "example.com")
        out = self.ok("dns", "records", "Example.COM")
        self.assertIn("example.com. IN MX 10 ", out)
        self.assertIn("_submissions._tcp.example.com. IN SRV", out)
        self.assertIn("; no DKIM key yet: mailgosend dkim generate Example.COM", out)
        self.ok("dkim", "generate", "example.com", "--selector", "s1")
        out = self.ok("dns", "records", "example.com")
        self.assertIn("s1._domainkey.example.com. IN TXT", out)
        self.assertNotIn("no DKIM key yet", out)
        self.assertIn("mailgosend dns records example.com", self.ok("dkim", "dns", "example.com"))

    def test_unknown_domain_is_refused(self) -> None:
        status, out, err = self.run_cli("dns", "records", "nowhere.example")
        self.assertEqual(status, 2)
        self.assertIn("nowhere.example", err)
        self.assertEqual(out, "")
