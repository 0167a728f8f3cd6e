"""``mailgosend dkim``: generate, dns, list, activate, remove; errors exit 2 naming the
argument and write nothing; no private key is ever printed."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timezone

from mailgosend.config import load
from mailgosend.crypto import KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.store import dkimkeys
from tests.test_cli import CLITestCase

THIS_MONTH = datetime.now(timezone.utc).strftime("%Y%m")


class DKIMCLITestCase(CLITestCase):
    def setUp(self) -> None:
        super().setUp()
        self.ok("domain", "add", "example.com")

    def keys(self, domain: str | None = None) -> list[dkimkeys.DKIMKey]:
        return run_sync(self.engine(), dkimkeys.list_keys, domain, write=False)

    def signing_keys(self, domain: str) -> list[dkimkeys.SigningKey]:
        config = load(self.config_path, create=False, environ={})
        keyring = KeyRing(config["ENCRYPTION_KEY"], config["ENCRYPTION_KEYS_OLD"])
        return run_sync(self.engine(), dkimkeys.active_keys, keyring, domain, write=False)

    def refused(self, *argv: str) -> str:
        status, out, err = self.run_cli(*argv)
        self.assertEqual(status, 2, f"{argv}: {out}{err}")
        return err

    def assert_no_private_key_in(self, text: str) -> None:
        self.assertNotIn("PRIVATE", text)
        for key in self.signing_keys("example.com"):
            secret = key.private_key.decode()
            body = "".join(secret.splitlines()[1:-1]) if "BEGIN" in secret else secret
            self.assertNotIn(body[:40], text.replace("\n", "").replace('"', ""))


class GenerateTests(DKIMCLITestCase):
    def test_generate_rsa_prints_the_record_to_publish_and_stores_an_active_key(self) -> None:
        out = self.ok("dkim", "generate", "example.com")
        (key,) = self.keys()
        self.assertEqual((key.selector, key.algorithm, key.active),
                         (f"mg{THIS_MONTH}", "rsa-sha256", True))
        self.assertIn(f'mg{THIS_MONTH}._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; "', out)
        joined = "".join(re.findall(r'"([^"]*)"', out))
        self.assertEqual(joined, key.txt_value)
        self.assert_no_private_key_in(out)

    def test_generate_ed25519_with_a_selector(self) -> None:
        out = self.ok("dkim", "generate", "Example.COM", "--algo", "ed25519",
                      "--selector", "Ed1")
        (key,) = self.keys()
        self.assertEqual((key.selector, key.algorithm, key.key_type), ("ed1", "ed25519-sha256",
                                                                       "ed25519"))
        self.assertEqual(len(base64.b64decode(key.public_key)), 32)   # RFC 8463 §4.2
        self.assertIn("ed1._domainkey.example.com. IN TXT", out)
        self.assert_no_private_key_in(out)

    def test_rsa_and_ed25519_are_both_active_for_dual_signing(self) -> None:
        self.ok("dkim", "generate", "example.com")
        self.ok("dkim", "generate", "example.com", "--algo", "ed25519")
        self.assertEqual([(k.selector, k.algorithm) for k in self.signing_keys("example.com")],
                         [(f"mg{THIS_MONTH}", "rsa-sha256"),
                          (f"mg{THIS_MONTH}e", "ed25519-sha256")])

    def test_a_second_key_of_an_algorithm_is_pending_until_activated(self) -> None:
        self.ok("dkim", "generate", "example.com", "--selector", "old")
        out = self.ok("dkim", "generate", "example.com", "--selector", "new")
        self.assertIn("pending", out)
        self.assertIn("mailgosend dkim activate example.com new", out)
        self.assertEqual([k.selector for k in self.signing_keys("example.com")], ["old"])
        created = [f"{k.created_at:%Y-%m-%d}" for k in self.keys()]
        self.assertEqual(self.ok("dkim", "list", "example.com").splitlines(),
                         [f"example.com\told\trsa-sha256\tactive\t{created[0]}",
                          f"example.com\tnew\trsa-sha256\tpending\t{created[1]}"])
        out = self.ok("dkim", "activate", "example.com", "new")
        self.assertIn("now signed with rsa-sha256 key new", out)
        self.assertIn("retired old", out)
        self.assertEqual([k.selector for k in self.signing_keys("example.com")], ["new"])
        self.assertIn("\told\trsa-sha256\tretired\t", self.ok("dkim", "list"))

    def test_default_selector_of_a_second_key_in_one_month_gets_a_suffix(self) -> None:
        self.ok("dkim", "generate", "example.com")
        self.ok("dkim", "generate", "example.com")
        self.assertEqual([k.selector for k in self.keys()],
                         [f"mg{THIS_MONTH}", f"mg{THIS_MONTH}-2"])


class DNSAndListTests(DKIMCLITestCase):
    def test_dns_prints_every_key_as_zone_file_records_of_at_most_255_bytes(self) -> None:
        self.ok("dkim", "generate", "example.com")
        self.ok("dkim", "generate", "example.com", "--algo", "ed25519")
        out = self.ok("dkim", "dns", "example.com")
        records = re.findall(r"^(\S+)\. IN TXT \(([^)]*)\)$", out, re.M)
        self.assertEqual([name for name, _ in records], [k.record_name for k in self.keys()])
        for key, (_name, strings_text) in zip(self.keys(), records):
            strings = re.findall(r'"([^"]*)"', strings_text)
            self.assertTrue(all(len(s.encode()) <= 255 for s in strings))
            self.assertEqual("".join(strings), key.txt_value)
        self.assertIn("; active rsa-sha256 key", out)
        self.assertIn("k=ed25519; ", out)
        self.assert_no_private_key_in(out)

    def test_dns_without_keys_says_how_to_make_one(self) -> None:
        self.assertIn("mailgosend dkim generate example.com", self.ok("dkim", "dns",
                                                                      "example.com"))

    def test_list_without_domain_shows_every_domain(self) -> None:
        self.ok("domain", "add", "example.org")
        self.ok("dkim", "generate", "example.org", "--algo", "ed25519", "--selector", "b")
        self.ok("dkim", "generate", "example.com", "--algo", "ed25519", "--selector", "a")
        lines = self.ok("dkim", "list").splitlines()
        self.assertEqual([line.split("\t")[:4] for line in lines],
                         [["example.com", "a", "ed25519-sha256", "active"],
                          ["example.org", "b", "ed25519-sha256", "active"]])

    def test_list_when_empty(self) -> None:
        self.assertIn("no DKIM keys", self.ok("dkim", "list"))


class RemoveTests(DKIMCLITestCase):
    def test_removing_the_active_key_needs_yes(self) -> None:
        self.ok("dkim", "generate", "example.com", "--selector", "s1")
        err = self.refused("dkim", "remove", "example.com", "s1")
        self.assertIn("--yes", err)
        self.assertEqual(len(self.keys()), 1)
        out = self.ok("dkim", "remove", "example.com", "s1", "--yes")
        self.assertIn("s1._domainkey.example.com", out)
        self.assertEqual(self.keys(), [])

    def test_a_pending_key_is_removed_without_confirmation(self) -> None:
        self.ok("dkim", "generate", "example.com", "--selector", "s1")
        self.ok("dkim", "generate", "example.com", "--selector", "s2")
        self.ok("dkim", "remove", "example.com", "s2")
        self.assertEqual([k.selector for k in self.keys()], ["s1"])

    def test_unknown_selector_is_refused_naming_it(self) -> None:
        self.assertIn("selector", self.refused("dkim", "remove", "example.com", "nope"))


class BadInputTests(DKIMCLITestCase):
    CASES: list[tuple[tuple[str, ...], str]] = [
        (("dkim", "generate", "unknown.example"), "domain"),
        (("dkim", "generate", "not a domain!"), "domain"),
        (("dkim", "generate", "example.com", "--selector", "bad_selector"), "selector"),
        (("dkim", "generate", "example.com", "--selector", "-x"), "selector"),
        (("dkim", "generate", "example.com", "--selector", "a" * 64), "selector"),
        (("dkim", "generate", "example.com", "--selector", ""), "selector"),
        (("dkim", "generate", "example.com", "--algo", "rsa1024"), "--algo"),
        (("dkim", "generate", "example.com", "--algo", "dsa"), "--algo"),
        (("dkim", "dns", "unknown.example"), "domain"),
        (("dkim", "list", "unknown.example"), "domain"),
        (("dkim", "activate", "example.com", "nope"), "selector"),
        (("dkim", "remove", "unknown.example", "s"), "domain"),
        (("dkim",), "ACTION"),
        (("dkim", "rotate", "example.com"), "ACTION"),
    ]

    def test_bad_input_exits_2_naming_the_argument_and_writes_nothing(self) -> None:
        for argv, argument in self.CASES:
            err = self.refused(*argv)
            self.assertIn(argument, err, argv)
            self.assertEqual(self.keys(), [], argv)

    def test_duplicate_selector_is_refused_and_the_first_key_kept(self) -> None:
        self.ok("dkim", "generate", "example.com", "--selector", "s1")
        before = self.keys()
        err = self.refused("dkim", "generate", "example.com", "--algo", "ed25519",
                           "--selector", "S1")
        self.assertIn("selector s1 already exists", err)
        self.assertEqual(self.keys(), before)
