"""mailauth.dkim: RFC 6376 / RFC 8463 verification with keys published in a real DNS zone."""

from __future__ import annotations

import base64
import re

import dkim  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mailgosend.mailauth.dkim import DKIMResult, verify_dkim
from mailgosend.mailauth.resolver import dkim_dnsfunc, make_resolver
from tests.support.dnsserver import serve_for_test

MESSAGE = (b"From: Alice <alice@example.com>\r\n"
           b"To: bob@example.org\r\n"
           b"Subject: Quarterly numbers\r\n"
           b"Date: Mon, 02 Feb 2026 10:00:00 +0000\r\n"
           b"Message-ID: <1@example.com>\r\n"
           b"\r\n"
           b"Hello Bob,\r\nthe numbers are attached.\r\n")
SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]


def _rsa_keys() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()


def _ed25519_keys() -> tuple[bytes, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    return base64.b64encode(seed), "v=DKIM1; k=ed25519; p=" + base64.b64encode(public).decode()


RSA_PRIVATE, RSA_RECORD = _rsa_keys()
OTHER_RSA_PRIVATE, _ = _rsa_keys()
ED_PRIVATE, ED_RECORD = _ed25519_keys()

ZONE = {
    "rsa._domainkey.example.com": {"TXT": [RSA_RECORD]},
    "ed._domainkey.example.com": {"TXT": [ED_RECORD]},
    "revoked._domainkey.example.com": {"TXT": ["v=DKIM1; k=rsa; p="]},
    "garbled._domainkey.example.com": {"TXT": ["v=DKIM1; k=rsa; p=bm90IGEga2V5"]},
    "broken._domainkey.example.com": "SERVFAIL",
}


def sign(message: bytes, selector: bytes, private: bytes = RSA_PRIVATE,
         algorithm: bytes = b"rsa-sha256", domain: bytes = b"example.com") -> bytes:
    signature = dkim.sign(message, selector, domain, private, signature_algorithm=algorithm,
                          include_headers=SIGNED_HEADERS)
    return signature + message


def b_tag(signed: bytes) -> str:
    found = re.search(rb"\bb=([^;]+)", signed.split(b"\r\n\r\n")[0].replace(b"\r\n", b""))
    assert found is not None
    return re.sub(rb"\s+", b"", found.group(1)).decode()


class VerifyDKIMTests(unittest.TestCase):
    def setUp(self) -> None:
        self.server = serve_for_test(self, ZONE)
        self.dnsfunc = dkim_dnsfunc(make_resolver(self.server.nameserver, None, timeout=1.0))

    def verify(self, message: bytes) -> defer.Deferred[list[DKIMResult]]:
        return deferToThread(verify_dkim, message, self.dnsfunc)

    @defer.inlineCallbacks
    def test_rsa_sha256_pass(self):
        signed = sign(MESSAGE, b"rsa")
        [result] = yield self.verify(signed)
        self.assertEqual(result, DKIMResult("pass", "example.com", "rsa", "rsa-sha256",
                                            b_tag(signed)[:8], "@example.com"))
        self.assertEqual(len(result.header_b), 8)

    @defer.inlineCallbacks
    def test_ed25519_sha256_pass(self):
        [result] = yield self.verify(sign(MESSAGE, b"ed", ED_PRIVATE, b"ed25519-sha256"))
        self.assertEqual((result.result, result.algorithm, result.selector),
                         ("pass", "ed25519-sha256", "ed"))

    @defer.inlineCallbacks
    def test_tampered_body_fails(self):
        signed = sign(MESSAGE, b"rsa").replace(b"attached", b"attached, pay now")
        [result] = yield self.verify(signed)
        self.assertEqual((result.result, result.reason), ("fail", "body hash mismatch"))
        self.assertEqual(result.domain, "example.com")

    @defer.inlineCallbacks
    def test_tampered_header_fails(self):
        for selector, private, algorithm in ((b"rsa", RSA_PRIVATE, b"rsa-sha256"),
                                             (b"ed", ED_PRIVATE, b"ed25519-sha256")):
            signed = sign(MESSAGE, selector, private, algorithm)
            [result] = yield self.verify(signed.replace(b"Quarterly", b"Urgent"))
            self.assertEqual((result.result, result.reason),
                             ("fail", "signature did not verify"), algorithm)

    @defer.inlineCallbacks
    def test_missing_key_record_is_permerror(self):
        [result] = yield self.verify(sign(MESSAGE, b"gone"))
        self.assertEqual((result.result, result.reason, result.selector),
                         ("permerror", "no key", "gone"))

    @defer.inlineCallbacks
    def test_revoked_and_garbled_keys_are_permerror(self):
        for selector in (b"revoked", b"garbled"):
            [result] = yield self.verify(sign(MESSAGE, selector))
            self.assertEqual((result.result, result.reason), ("permerror", "bad key record"))

    @defer.inlineCallbacks
    def test_key_lookup_servfail_is_temperror(self):
        [result] = yield self.verify(sign(MESSAGE, b"broken"))
        self.assertEqual(result.result, "temperror")

    @defer.inlineCallbacks
    def test_two_signatures_one_good_one_bad(self):
        bad = sign(MESSAGE, b"rsa", OTHER_RSA_PRIVATE)        # key not the published one
        both = sign(bad, b"ed", ED_PRIVATE, b"ed25519-sha256")
        results = yield self.verify(both)
        self.assertEqual([(r.result, r.selector) for r in results],
                         [("pass", "ed"), ("fail", "rsa")])

    @defer.inlineCallbacks
    def test_unsigned_message_has_no_results(self):
        results = yield self.verify(MESSAGE)
        self.assertEqual(results, [])

    @defer.inlineCallbacks
    def test_malformed_signature_is_neutral_not_an_exception(self):
        for header in (b"DKIM-Signature: this is not a tag list\r\n",
                       b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa\r\n",
                       b"DKIM-Signature: v=1; a=md5-xyz; d=example.com; s=rsa; h=from;"
                       b" bh=AAAA; b=AAAA\r\n"):
            [result] = yield self.verify(header + MESSAGE)
            self.assertEqual(result.result, "neutral", header)
        [result] = yield self.verify(b"DKIM-Signature: v=1; a=md5-xyz; d=example.com; "
                                     b"s=rsa; h=from; bh=AAAA; b=AAAA\r\n" + MESSAGE)
        self.assertEqual((result.domain, result.selector), ("example.com", "rsa"))

    @defer.inlineCallbacks
    def test_signature_not_covering_from_is_permerror(self):
        signed = sign(MESSAGE, b"rsa")
        header_end = signed.index(b"\r\n\r\n")
        head = re.sub(rb"h=from\s*:\s*", b"h=", signed[:header_end])
        [result] = yield self.verify(head + signed[header_end:])
        self.assertEqual((result.result, result.reason), ("permerror", "From not signed"))

    @defer.inlineCallbacks
    def test_garbage_message_does_not_raise(self):
        results = yield self.verify(b"\x00\xff not a message at all")
        self.assertEqual(results, [])
