"""The admin panel's domain pages (web/admin_domains.py) over HTTP: list, add (IDNA), bad
input naming the field and changing nothing, enable/disable, removal showing first what it
deletes, DKIM generation and rotation with the TXT record to copy, the DNS record list, the
live DNS check against the test DNS, per-domain administrators; each change in the audit log."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer

from mailgosend import audit
from mailgosend.store import accounts, dkimkeys
from tests.support.adminpanel import ADMIN, ALICE, OpsTestCase, submit
from tests.support.mailserver import HOSTNAME


class DomainPageTests(OpsTestCase):
    @defer.inlineCallbacks
    def test_list_and_add_an_idn_domain(self) -> Any:
        web = yield self.admin_client()
        page = yield web.get("/admin/domains")
        self.assertEqual(page.status_code, 200)
        self.assertIn('href="/admin/domains/example.com"', page.text)
        answer = yield submit(web, "/admin/domains", "/admin/domains", {"domain": "Bücher.Example"})
        self.assertEqual(answer.status_code, 303)
        self.assertEqual(answer.headers["Location"], "/admin/domains/xn--bcher-kva.example?done=added")
        self.assertIn("xn--bcher-kva.example",
                      [d.name for d in self.read(accounts.list_domains)])
        page = yield web.get("/admin/domains/xn--bcher-kva.example?done=added")
        self.assertIn("Domain added.", page.text)
        (entry,) = self.read(audit.search, audit.AuditQuery(action="domain.add"))
        self.assertEqual((entry.actor, entry.target), (ADMIN, "Bücher.Example"))

    @defer.inlineCallbacks
    def test_bad_and_duplicate_domains_name_the_field_and_change_nothing(self) -> Any:
        web = yield self.admin_client()
        before = self.read(accounts.list_domains)
        for bad, says in (("not a domain", "domain"), ("example.com", "already exists")):
            answer = yield submit(web, "/admin/domains", "/admin/domains", {"domain": bad})
            self.assertEqual(answer.status_code, 400)
            self.assertIn('id="domain-error"', answer.text)
            self.assertIn('aria-invalid="true"', answer.text)
            self.assertIn(says, answer.text.split('id="domain-error"')[1][:300])
        self.assertEqual(self.read(accounts.list_domains), before)
        self.assertEqual(self.read(audit.search, audit.AuditQuery(action="domain.add")), [])

    @defer.inlineCallbacks
    def test_disable_and_enable(self) -> Any:
        web = yield self.admin_client()
        self.server.add_domain("other.example")
        base = "/admin/domains/other.example"
        answer = yield submit(web, base, base + "/disable")
        self.assertEqual(answer.status_code, 303)
        self.assertFalse(self.read(accounts.get_domain, "other.example").enabled)
        answer = yield submit(web, base, base + "/enable")
        self.assertTrue(self.read(accounts.get_domain, "other.example").enabled)

    @defer.inlineCallbacks
    def test_removal_shows_what_it_deletes_then_deletes_it(self) -> Any:
        web = yield self.admin_client()
        self.server.add_domain("gone.example")
        self.server.add_user("bob@gone.example")
        self.server.add_alias("info@gone.example", "bob@gone.example")
        page = yield web.get("/admin/domains/gone.example/remove")
        self.assertEqual(page.status_code, 200)
        self.assertIn("1 user(s): bob@gone.example", page.text)
        self.assertIn("1 alias(es)", page.text)
        self.assertIn("0 message(s)", page.text)
        self.assertTrue(self.read(accounts.is_local_domain, "gone.example"))  # nothing yet
        answer = yield submit(web, "/admin/domains/gone.example/remove",
                              "/admin/domains/gone.example/remove", {"confirm": "yes"})
        self.assertEqual(answer.headers["Location"], "/admin/domains?done=removed")
        self.assertFalse(self.read(accounts.is_local_domain, "gone.example"))
        self.assertIsNone(self.read(accounts.find_user, "bob@gone.example"))
        (entry,) = self.read(audit.search, audit.AuditQuery(action="domain.remove"))
        self.assertIn("1 user(s), 1 alias(es)", entry.detail)

    @defer.inlineCallbacks
    def test_unknown_domain_is_404(self) -> Any:
        web = yield self.admin_client()
        for path in ("/admin/domains/nope.example", "/admin/domains/nope.example/remove",
                     "/admin/domains/nope.example/check"):
            page = yield web.get(path)
            self.assertEqual(page.status_code, 404, path)

    @defer.inlineCallbacks
    def test_dkim_generate_rotate_activate_and_the_records(self) -> Any:
        web = yield self.admin_client()
        base = "/admin/domains/example.com"
        answer = yield submit(web, base, base + "/dkim", {"algo": "ed25519"})
        self.assertEqual(answer.status_code, 303)
        (first,) = self.read(dkimkeys.list_keys, "example.com")
        self.assertTrue(first.active)
        page = yield web.get(base)
        self.assertIn(f"{first.selector}._domainkey.example.com. IN TXT", page.text)
        self.assertIn(first.public_key, page.text)
        # The DNS record list (dnsrecords.py): MX to this host, SPF, the key, DMARC.
        self.assertIn(f"10 {HOSTNAME}.", page.text)
        self.assertIn("v=spf1 mx -all", page.text)
        self.assertIn("_dmarc.example.com", page.text)
        answer = yield submit(web, base, base + "/dkim", {"algo": "ed25519", "selector": "next"})
        keys = {k.selector: k for k in self.read(dkimkeys.list_keys, "example.com")}
        self.assertFalse(keys["next"].active)
        page = yield web.get(base)
        self.assertIn("next</strong> · ed25519-sha256 · pending", page.text)
        answer = yield submit(web, base, base + "/dkim/next/activate")
        keys = {k.selector: k for k in self.read(dkimkeys.list_keys, "example.com")}
        self.assertTrue(keys["next"].active)
        self.assertFalse(keys[first.selector].active)
        actions = [e.action for e in self.read(audit.search, audit.AuditQuery())]
        self.assertEqual(actions.count("dkim.generate"), 2)
        self.assertIn("dkim.activate", actions)

    @defer.inlineCallbacks
    def test_dkim_bad_selector_and_algorithm(self) -> Any:
        web = yield self.admin_client()
        base = "/admin/domains/example.com"
        for data, field in (({"algo": "rsa2048", "selector": "bad selector!"}, "selector"),
                            ({"algo": "dsa"}, "algo")):
            answer = yield submit(web, base, base + "/dkim", data)
            self.assertEqual(answer.status_code, 400)
            self.assertIn(f'id="{field}-error"', answer.text)
        self.assertEqual(self.read(dkimkeys.list_keys, "example.com"), [])

    @defer.inlineCallbacks
    def test_domain_administrators(self) -> Any:
        web = yield self.admin_client()
        base = "/admin/domains/example.com"
        answer = yield submit(web, base, base + "/admins", {"email": ALICE})
        self.assertEqual(answer.status_code, 303)
        self.assertEqual(self.read(accounts.domain_admins_of, "example.com"), [ALICE])
        answer = yield submit(web, base, base + "/admins", {"email": "nobody@example.com"})
        self.assertEqual(answer.status_code, 400)
        self.assertIn("Unknown user nobody@example.com.", answer.text)
        answer = yield submit(web, base, base + "/admins/remove", {"email": ALICE})
        self.assertEqual(self.read(accounts.domain_admins_of, "example.com"), [])


class DomainCheckTests(OpsTestCase):
    settings = {"PUBLIC_IP": "192.0.2.20", "DOCTOR_PORT25_PROBE": "no-such-host.invalid"}

    @defer.inlineCallbacks
    def test_the_live_check_says_what_to_fix(self) -> Any:
        web = yield self.admin_client()
        self.server.dns.set_records({
            "example.com": {"MX": [[10, HOSTNAME]]},
            "20.2.0.192.in-addr.arpa": {"PTR": [HOSTNAME]},
            HOSTNAME: {"A": ["192.0.2.20"]},
        })
        page = yield web.get("/admin/domains/example.com/check")
        self.assertEqual(page.status_code, 200)
        text = re.sub(r"<[^>]+>", "", page.text)
        self.assertIn("Problem SPF: no SPF record", text)
        self.assertIn("Problem DKIM: no DKIM key on this server", text)
        self.assertIn("Problem DMARC: no DMARC record", text)
        self.assertIn("OK MX: 10 " + HOSTNAME, text)
        self.assertIn("OK Reverse DNS", text)
        self.assertIn("Skipped Outbound port 25", text)
        self.assertIn('example.com. IN TXT ( "v=spf1 mx -all" )', page.text.replace("&#34;", '"'))
        self.assertIn("mailgosend doctor example.com", text)
