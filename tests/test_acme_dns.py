"""DNS-01 parts that need no ACME server: the dns-lexicon provider (offline, with its
``localzone`` provider editing a zone file), the hook runner, and the propagation wait."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from twisted.trial import unittest

from mailgosend.tls import acme, dns01

ZONE = """$ORIGIN example.test.
$TTL 3600
@ IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 3600
@ IN NS ns1.example.test.
ns1 IN A 127.0.0.1
"""


class LexiconProviderTests(unittest.TestCase):
    def test_localzone_adds_and_removes_the_txt_record(self) -> None:
        path = os.path.abspath(self.mktemp())
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(ZONE)
        # Credentials come as LEXICON_<PROVIDER>_<OPTION>, here the zone file's name.
        provider = dns01.LexiconProvider("localzone", lambda fqdn: "example.test",
                                        {"LEXICON_LOCALZONE_FILENAME": path})
        provider.add("_acme-challenge.mail.example.test", "validation-value-1")
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        self.assertIn("_acme-challenge.mail", text)
        self.assertIn("validation-value-1", text)
        provider.remove("_acme-challenge.mail.example.test", "validation-value-1")
        with open(path, encoding="utf-8") as handle:
            self.assertNotIn("validation-value-1", handle.read())

    def test_provider_errors_name_the_provider_and_the_record(self) -> None:
        provider = dns01.LexiconProvider("localzone", lambda fqdn: "example.test",
                                        {"LEXICON_LOCALZONE_FILENAME": "/nonexistent/zone"})
        with self.assertRaises(dns01.DNS01Error) as caught:
            provider.add("_acme-challenge.example.test", "v")
        self.assertIn("dns-lexicon localzone: adding TXT _acme-challenge.example.test failed",
                      str(caught.exception))

    def test_settings_choose_the_provider(self) -> None:
        base = dict(mode="dns01", cache_dir="/tmp", directory="https://ca.invalid/dir")
        self.assertIsInstance(acme.make_provider(acme.ACMESettings(
            **base, dns_provider="hook", dns_hook="/bin/true")), dns01.HookProvider)
        self.assertIsInstance(acme.make_provider(acme.ACMESettings(
            **base, dns_provider="cloudflare")), dns01.LexiconProvider)
        with self.assertRaises(acme.ACMEError):
            acme.make_provider(acme.ACMESettings(**base))


class HookProviderTests(unittest.TestCase):
    def hook(self, body: str) -> str:
        path = os.path.abspath(self.mktemp())
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("#!/bin/sh\n" + body)
        os.chmod(path, 0o755)
        return path

    def test_arguments_and_success(self) -> None:
        seen = os.path.abspath(self.mktemp())
        hook = dns01.HookProvider(self.hook(f'echo "$@" >> {seen}\n'), timeout=10)
        hook.add("_acme-challenge.example.test", "VALUE")
        hook.remove("_acme-challenge.example.test", "VALUE")
        with open(seen, encoding="utf-8") as handle:
            self.assertEqual(handle.read().splitlines(),
                             ["add _acme-challenge.example.test VALUE",
                              "remove _acme-challenge.example.test VALUE"])

    def test_timeout_is_an_error_naming_the_key(self) -> None:
        hook = dns01.HookProvider(self.hook("sleep 5\n"), timeout=0.5)
        with self.assertRaises(dns01.DNS01Error) as caught:
            hook.add("_acme-challenge.example.test", "VALUE")
        self.assertIn("ACME_DNS_HOOK_TIMEOUT", str(caught.exception))


class _TXTServer:
    """A UDP DNS server on loopback answering TXT queries from ``records`` (mutable).

    ``changes[name]`` lists the TXT values to serve for the next TXT queries of ``name``, one
    entry per query; the last entry then stays in ``records``.  A record that changes on the
    n-th query needs no timer thread (a timed thread wait never returns under faketime)."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.changes: dict[str, list[list[str]]] = {}
        self.txt_queries: dict[str, int] = {}
        self.addresses: dict[str, str] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            name = query.question[0].name.to_text(omit_final_dot=True)
            if query.question[0].rdtype == dns.rdatatype.TXT:
                self.txt_queries[name] = self.txt_queries.get(name, 0) + 1
                if self.changes.get(name):
                    self.records[name] = self.changes[name].pop(0)
            values = self.records.get(name, [])
            if query.question[0].rdtype == dns.rdatatype.A and name in self.addresses:
                reply.answer.append(dns.rrset.from_text(
                    query.question[0].name, 60, "IN", "A", self.addresses[name]))
            elif query.question[0].rdtype != dns.rdatatype.TXT:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            elif values:
                reply.answer.append(dns.rrset.from_text_list(
                    query.question[0].name, 60, "IN", "TXT", [f'"{v}"' for v in values]))
            else:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


class PropagationTests(unittest.TestCase):
    def test_waits_until_the_value_is_served(self) -> None:
        server = _TXTServer()
        self.addCleanup(server.close)
        name = "_acme-challenge.example.test"
        # Not served, then only an old value, then the new one: two answers to wait past.
        server.changes[name] = [[], ["old"], ["old", "new-value"]]
        dns01.wait_for_txt(name, "new-value", [("127.0.0.1", server.port)], timeout=30,
                          interval=0.1)
        self.assertEqual(server.txt_queries[name], 3)
        self.assertEqual(server.changes[name], [])

    def test_gives_up_naming_the_servers_still_waited_for(self) -> None:
        server = _TXTServer()
        self.addCleanup(server.close)
        with self.assertRaises(dns01.DNS01Error) as caught:
            dns01.wait_for_txt("_acme-challenge.example.test", "never",
                              [("127.0.0.1", server.port)], timeout=0.3, interval=0.1)
        self.assertIn(f"127.0.0.1:{server.port}", str(caught.exception))
        self.assertIn("ACME_DNS_PROPAGATION_SECONDS", str(caught.exception))

    def test_without_ns_records_dns_primary_is_asked(self) -> None:
        server = _TXTServer()
        self.addCleanup(server.close)
        found: Any = dns01.authoritative_servers("_acme-challenge.example.test",
                                                f"127.0.0.1:{server.port}")
        self.assertEqual(found, [("127.0.0.1", server.port)])


class NamesTests(unittest.TestCase):
    def test_acme_domains_win_else_hostname_and_the_names_of_the_features_on(self) -> None:
        base = {"ACME_DOMAINS": (), "HOSTNAME": "mail.a.test", "WEB_ENABLED": True,
                "WEB_PORT": 0, "MTA_STS_MODE": "none"}
        self.assertEqual(acme.default_names(base, ["b.test", "a.test"]), ["mail.a.test"])
        features = {**base, "WEB_PORT": 443, "MTA_STS_MODE": "testing"}
        self.assertEqual(acme.default_names(features, ["b.test", "a.test"]),
                         ["mail.a.test", "autoconfig.a.test", "autodiscover.a.test",
                          "mta-sts.a.test", "autoconfig.b.test", "autodiscover.b.test",
                          "mta-sts.b.test"])
        chosen = {**features, "ACME_DOMAINS": ("Mail.A.test.", "*.a.test", "mail.a.test")}
        self.assertEqual(acme.default_names(chosen, ["b.test"]), ["mail.a.test", "*.a.test"])

    def test_only_names_with_an_address_are_kept(self) -> None:
        server = _TXTServer()
        self.addCleanup(server.close)
        server.addresses["autoconfig.a.test"] = "192.0.2.1"
        found = dns01.existing_names(["autoconfig.a.test", "mta-sts.a.test"],
                                     f"127.0.0.1:{server.port}")
        self.assertEqual(found, ["autoconfig.a.test"])
