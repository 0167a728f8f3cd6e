"""store.dkimkeys on SQLite and PostgreSQL: generation, encryption at rest, rotation, DNS
records, refusals that name the argument; and DKIMSigner over a real runner and worker pool."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timezone
from typing import Any

import dkim  # type: ignore[import-untyped]
from sqlalchemy import func, select, update
from twisted.internet import defer
from twisted.internet import reactor as global_reactor
from twisted.trial import unittest

from mailgosend.crypto import DecryptionError, KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import dkim_keys
from mailgosend.mailauth.dkimsign import DKIMSigner, sign
from mailgosend.store import accounts, dkimkeys
from mailgosend.store.addresses import AddressError
from mailgosend.workers import WorkerPool
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
LATER = datetime(2026, 4, 2, 9, 0, tzinfo=timezone.utc)
MESSAGE = (b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hi\r\n"
           b"Date: Sun, 01 Mar 2026 09:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n"
           b"\r\nHello\r\n")
# One RSA key pair for the whole module: generation costs ~0.1 s each.
RSA = dkimkeys.new_key_material("rsa2048")


class DKIMKeyStoreTestsMixin(DatabaseTestBase):
    def setUp(self) -> Any:
        d = super().setUp()
        self.keyring = KeyRing(secrets.token_bytes(32))
        self.write(accounts.add_domain, "example.com", NOW)
        self.write(accounts.add_domain, "example.org", NOW)
        return d

    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=True, **kwargs)

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.engine, fn, *args, write=False, **kwargs)

    def generate(self, domain: str = "example.com", algo: str = "rsa2048",
                 selector: str | None = None, now: datetime = NOW) -> dkimkeys.DKIMKey:
        material = RSA if algo == "rsa2048" else None
        return self.write(dkimkeys.generate_key, self.keyring, domain, algo, selector, now=now,
                          material=material)

    def rows(self) -> int:
        return int(self.read(lambda c: c.execute(
            select(func.count()).select_from(dkim_keys)).scalar_one()))

    def dnsfunc(self, domain: str) -> Any:
        records = dict(self.read(dkimkeys.dns_records, domain))

        def lookup(name: bytes, timeout: float = 5) -> bytes | None:
            value = records.get(name.decode().rstrip("."))
            return value.encode() if value else None
        return lookup

    # --- generation ---------------------------------------------------------------------
    def test_signing_domains_are_those_with_an_active_key(self) -> None:
        self.assertEqual(self.read(dkimkeys.signing_domains), frozenset())
        self.generate("example.org")
        self.assertEqual(self.read(dkimkeys.signing_domains), frozenset({"example.org"}))


    def test_generate_default_selectors_by_month_and_algorithm(self) -> None:
        rsa_key = self.generate()
        ed_key = self.generate(algo="ed25519")
        self.assertEqual((rsa_key.selector, rsa_key.algorithm, rsa_key.active),
                         ("mg202603", "rsa-sha256", True))
        self.assertEqual((ed_key.selector, ed_key.algorithm, ed_key.active),
                         ("mg202603e", "ed25519-sha256", True))
        self.assertEqual(self.read(dkimkeys.list_keys, "example.com"), [rsa_key, ed_key])

    def test_generated_keys_have_the_published_shape(self) -> None:
        ed_key = self.generate(algo="ed25519", selector="ed")
        rsa_key = self.write(dkimkeys.generate_key, self.keyring, "example.com", "rsa2048",
                             "rsa", now=NOW)  # a real, fresh RSA key this once
        self.assertEqual(len(base64.b64decode(ed_key.public_key)), 32)        # RFC 8463 §4.2
        self.assertGreater(len(base64.b64decode(rsa_key.public_key)), 256)   # 2048-bit SPKI
        self.assertEqual(ed_key.txt_value, f"v=DKIM1; k=ed25519; p={ed_key.public_key}")
        self.assertEqual(rsa_key.txt_value, f"v=DKIM1; k=rsa; p={rsa_key.public_key}")
        self.assertEqual(rsa_key.record_name, "rsa._domainkey.example.com")

    def test_private_key_is_stored_sealed_and_bound_to_domain_and_selector(self) -> None:
        key = self.generate(selector="s1")
        sealed = self.read(lambda c: c.execute(
            select(dkim_keys.c.private_key).where(dkim_keys.c.id == key.id)).scalar_one())
        self.assertNotIn(b"PRIVATE KEY", bytes(sealed))
        self.assertNotIn(RSA.private_pem[40:80], bytes(sealed))
        opened = self.keyring.open(bytes(sealed), purpose="dkim", owner="example.com",
                                   context=b"s1")
        self.assertEqual(opened, RSA.private_pem)
        for owner, context in (("example.org", b"s1"), ("example.com", b"s2")):
            with self.assertRaises(DecryptionError):
                self.keyring.open(bytes(sealed), purpose="dkim", owner=owner, context=context)

    def test_a_key_copied_to_another_selector_does_not_open(self) -> None:
        self.generate(selector="s1")
        self.write(lambda c: c.execute(update(dkim_keys).values(selector="s2")).rowcount)
        with self.assertRaises(DecryptionError):
            self.read(dkimkeys.active_keys, self.keyring, "example.com")

    def test_selector_is_lower_cased_and_may_be_dotted(self) -> None:
        self.assertEqual(self.generate(selector="Mail.2026").selector, "mail.2026")

    def test_refusals_name_the_argument_and_write_nothing(self) -> None:
        self.generate(selector="taken")
        cases: list[tuple[dict[str, Any], type[Exception], str]] = [
            ({"domain": "unknown.example"}, accounts.UnknownDomain, "domain"),
            ({"domain": "not a domain"}, AddressError, "domain"),
            ({"selector": "under_score"}, dkimkeys.DKIMKeyError, "selector"),
            ({"selector": "a" * 64}, dkimkeys.DKIMKeyError, "selector"),
            ({"selector": "x..y"}, dkimkeys.DKIMKeyError, "selector"),
            ({"selector": "TAKEN"}, dkimkeys.DuplicateSelector, "selector"),
            ({"algo": "rsa1024"}, dkimkeys.DKIMKeyError, "algo"),
        ]
        for overrides, error, argument in cases:
            args = {"domain": "example.com", "algo": "ed25519", "selector": None, **overrides}
            with self.assertRaises(error) as raised:
                self.write(dkimkeys.generate_key, self.keyring, args["domain"], args["algo"],
                           args["selector"], now=NOW)
            self.assertIn(argument, str(raised.exception), overrides)
            if isinstance(raised.exception, dkimkeys.DKIMKeyError):
                self.assertEqual(raised.exception.argument, argument)
            self.assertEqual(self.rows(), 1, overrides)

    def test_the_same_selector_may_exist_in_two_domains(self) -> None:
        self.generate("example.com", selector="s1")
        self.generate("example.org", selector="s1")
        self.assertEqual(self.rows(), 2)

    # --- signing keys and rotation ------------------------------------------------------

    def test_active_keys_are_decrypted_rsa_first_and_sign_verifiably(self) -> None:
        self.generate(algo="ed25519")
        self.generate()
        keys = self.read(dkimkeys.active_keys, self.keyring, "Example.COM")
        self.assertEqual([(k.selector, k.algorithm) for k in keys],
                         [("mg202603", "rsa-sha256"), ("mg202603e", "ed25519-sha256")])
        signed = sign(MESSAGE, keys, NOW) + MESSAGE
        lookup = self.dnsfunc("example.com")
        verifier = dkim.DKIM(signed)
        self.assertEqual([verifier.verify(i, dnsfunc=lookup) for i in (0, 1)], [True, True])

    def test_active_keys_of_an_unknown_or_keyless_domain_are_empty(self) -> None:
        self.assertEqual(self.read(dkimkeys.active_keys, self.keyring, "example.org"), [])
        self.assertEqual(self.read(dkimkeys.active_keys, self.keyring, "nowhere.example"), [])
        self.assertEqual(self.read(dkimkeys.active_keys, self.keyring, "bad domain!"), [])

    def test_rotation_new_key_pending_until_activated_then_old_retired(self) -> None:
        old = self.generate()
        new = self.generate(now=LATER)
        self.assertEqual((new.selector, new.active), ("mg202604", False))
        active = self.read(dkimkeys.active_keys, self.keyring, "example.com")
        self.assertEqual([k.selector for k in active], [old.selector])
        key, retired = self.write(dkimkeys.activate_key, "example.com", "mg202604")
        self.assertEqual((key.selector, key.active), ("mg202604", True))
        self.assertEqual([(k.selector, k.active) for k in retired], [("mg202603", False)])
        active = self.read(dkimkeys.active_keys, self.keyring, "example.com")
        self.assertEqual([k.selector for k in active], ["mg202604"])
        # Both records stay published until the operator removes the old key.
        self.assertEqual([name for name, _ in self.read(dkimkeys.dns_records, "example.com")],
                         ["mg202603._domainkey.example.com", "mg202604._domainkey.example.com"])

    def test_rotation_of_one_algorithm_leaves_the_other_active(self) -> None:
        self.generate(algo="ed25519")
        self.generate()
        self.generate(now=LATER)
        self.write(dkimkeys.activate_key, "example.com", "mg202604")
        active = self.read(dkimkeys.active_keys, self.keyring, "example.com")
        self.assertEqual([k.selector for k in active], ["mg202604", "mg202603e"])

    def test_remove_deletes_the_key_and_its_record(self) -> None:
        self.generate(selector="s1")
        removed = self.write(dkimkeys.remove_key, "example.com", "S1")
        self.assertEqual(removed.selector, "s1")
        self.assertEqual((self.rows(), self.read(dkimkeys.dns_records, "example.com")), (0, []))
        with self.assertRaises(dkimkeys.UnknownKey) as raised:
            self.write(dkimkeys.remove_key, "example.com", "s1")
        self.assertEqual(raised.exception.argument, "selector")

    def test_keys_go_with_their_domain(self) -> None:
        self.generate("example.org")
        self.write(accounts.remove_domain, "example.org")
        self.assertEqual(self.rows(), 0)

    def test_list_keys_of_every_domain(self) -> None:
        self.generate("example.org", selector="b")
        self.generate("example.com", selector="a")
        self.assertEqual([(k.domain, k.selector) for k in self.read(dkimkeys.list_keys)],
                         [("example.com", "a"), ("example.org", "b")])

    # --- the reactor-side signer over the real runner and a worker pool ------------------

    @defer.inlineCallbacks
    def test_dkim_signer_signs_from_the_database_in_a_worker_thread(self) -> Any:
        self.generate()
        self.generate(algo="ed25519")
        workers = WorkerPool(global_reactor, size=1, name="dkim-test")
        self.addCleanup(workers.stopService)
        workers.startService()
        signer = DKIMSigner(self.runner, self.keyring, workers)
        fields = yield signer.signature_for(MESSAGE)
        verifier = dkim.DKIM(fields + MESSAGE)
        lookup = self.dnsfunc("example.com")
        self.assertEqual([verifier.verify(i, dnsfunc=lookup) for i in (0, 1)], [True, True])
        unsigned = yield signer.signature_for(MESSAGE.replace(b"example.com", b"example.org"))
        self.assertEqual(unsigned, b"")


class DKIMKeyStoreSQLiteTests(SQLiteDatabaseMixin, DKIMKeyStoreTestsMixin, unittest.TestCase):
    pass


class DKIMKeyStorePostgresTests(PostgresDatabaseMixin, DKIMKeyStoreTestsMixin,
                                unittest.TestCase):
    pass


class ZoneFileTests(unittest.SynchronousTestCase):
    def test_long_value_is_cut_into_strings_of_at_most_255_bytes(self) -> None:
        value = "v=DKIM1; k=rsa; p=" + "A" * 600
        line = dkimkeys.zone_file_record("s._domainkey.example.com", value)
        self.assertTrue(line.startswith('s._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; "'))
        self.assertTrue(line.endswith('" )'))
        strings = line.split('"')[1::2]
        self.assertEqual([len(s) for s in strings], [16, 255, 255, 92])
        self.assertEqual("".join(strings), value)

    def test_short_value_without_p_is_one_string(self) -> None:
        self.assertEqual(dkimkeys.zone_file_record("s._domainkey.example.com", "v=DKIM1; p"),
                         's._domainkey.example.com. IN TXT ( "v=DKIM1; p" )')

    def test_selector_validation_table(self) -> None:
        good = ["mg202601", "a", "a-b", "mail.2026", "x" * 63, "ED1"]
        bad = ["", " ", "-a", "a-", "a_b", "a..b", ".a", "a.", "x" * 64, "é", "a b"]
        for selector in good:
            self.assertEqual(dkimkeys.validate_selector(selector), selector.lower())
        for selector in bad:
            with self.assertRaises(dkimkeys.DKIMKeyError, msg=selector):
                dkimkeys.validate_selector(selector)
