"""mailauth.dkimsign: signatures verified by dkimpy, by Perl's Mail::DKIM (RSA) and by the
npm package mailauth (RSA and ed25519); the signer's key cache and its reactor-side
behaviour."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timezone
from typing import Any

import dkim  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from mailgosend.mailauth.dkimsign import (
    DKIMSigner,
    DKIMSigningError,
    sign,
    signed_field_names,
    signing_domain,
)
from mailgosend.store.dkimkeys import KeyMaterial, SigningKey, new_key_material
from tests.support.clientmessages import client_messages
from tests.support.dkimcheck import Verdict, verify_with_mailauth, verify_with_perl
from tests.support.dnsserver import serve_for_test

NOW = 1_767_261_600  # 2026-01-01 10:00:00 UTC
MESSAGE = (b"From: Alice <alice@example.com>\r\n"
           b"To: bob@example.org\r\n"
           b"Cc: carol@example.org\r\n"
           b"Subject: Quarterly numbers\r\n"
           b"Date: Thu, 01 Jan 2026 10:00:00 +0000\r\n"
           b"Message-ID: <1@example.com>\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"X-Mailer: test\r\n"
           b"\r\n"
           b"Hello Bob,\r\nthe numbers are attached.\r\n")


def _signing_key(material: KeyMaterial, selector: str, domain: str = "example.com"
                 ) -> SigningKey:
    if material.algorithm == "ed25519-sha256":
        loaded = serialization.load_pem_private_key(material.private_pem, password=None)
        seed = loaded.private_bytes(serialization.Encoding.Raw,  # type: ignore[union-attr]
                                    serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
        return SigningKey(domain, selector, material.algorithm, base64.b64encode(seed))
    return SigningKey(domain, selector, material.algorithm, material.private_pem)


RSA = new_key_material("rsa2048")
ED = new_key_material("ed25519")
RSA_KEY = _signing_key(RSA, "mg202601")
ED_KEY = _signing_key(ED, "mg202601e")
ZONE = {
    "mg202601._domainkey.example.com": {"TXT": ["v=DKIM1; k=rsa; p=" + RSA.public_key]},
    "mg202601e._domainkey.example.com": {"TXT": ["v=DKIM1; k=ed25519; p=" + ED.public_key]},
}


def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
    entry = ZONE.get(name.decode().rstrip("."))
    return entry["TXT"][0].encode() if entry else None


def verify_all(signed: bytes) -> list[bool]:
    """dkimpy's verdict for every DKIM-Signature of the message, top first."""
    count = len(re.findall(rb"(?im)^dkim-signature:", signed.split(b"\r\n\r\n")[0]))
    verifier = dkim.DKIM(signed)
    results = []
    for i in range(count):
        try:
            results.append(bool(verifier.verify(i, dnsfunc=dnsfunc)))
        except dkim.DKIMException:  # e.g. body hash mismatch
            results.append(False)
    return results


def tags(signature: bytes) -> dict[str, str]:
    value = re.sub(rb"\s+", b"", signature.split(b":", 1)[1]).decode()
    return dict(part.split("=", 1) for part in value.split(";") if part)


def split_signatures(fields: bytes) -> list[bytes]:
    return [b"DKIM-Signature:" + part for part in fields.split(b"DKIM-Signature:")[1:]]


class SignTests(unittest.SynchronousTestCase):
    def test_rsa_signature_verifies(self) -> None:
        self.assertEqual(verify_all(sign(MESSAGE, [RSA_KEY], NOW) + MESSAGE), [True])

    def test_ed25519_signature_verifies(self) -> None:
        self.assertEqual(verify_all(sign(MESSAGE, [ED_KEY], NOW) + MESSAGE), [True])

    def test_dual_signing_gives_one_signature_per_algorithm_both_valid(self) -> None:
        fields = sign(MESSAGE, [RSA_KEY, ED_KEY], NOW)
        self.assertEqual([tags(s)["a"] for s in split_signatures(fields)],
                         ["rsa-sha256", "ed25519-sha256"])
        self.assertEqual(verify_all(fields + MESSAGE), [True, True])

    def test_fields_are_crlf_terminated_and_folded(self) -> None:
        fields = sign(MESSAGE, [RSA_KEY, ED_KEY], NOW)
        self.assertTrue(fields.endswith(b"\r\n"))
        self.assertNotIn(b"\n", fields.replace(b"\r\n", b""))
        self.assertTrue(all(len(line) <= 78 for line in fields.split(b"\r\n")))

    def test_tags_relaxed_domain_selector_and_time_from_the_clock(self) -> None:
        found = tags(sign(MESSAGE, [RSA_KEY], NOW))
        self.assertEqual((found["v"], found["c"], found["d"], found["s"], found["t"]),
                         ("1", "relaxed/relaxed", "example.com", "mg202601", str(NOW)))
        self.assertNotIn("l", found)  # RFC 6376 §8.2: no body length limit

    def test_now_may_be_a_datetime(self) -> None:
        when = datetime.fromtimestamp(NOW, timezone.utc)
        self.assertEqual(tags(sign(MESSAGE, [ED_KEY], when))["t"], str(NOW))

    def test_h_lists_present_recommended_fields_and_from_once_more(self) -> None:
        self.assertEqual(tags(sign(MESSAGE, [RSA_KEY], NOW))["h"],
                         "from:to:cc:subject:date:message-id:mime-version:content-type:from")

    def test_h_skips_trace_bcc_and_unknown_fields_and_repeats_repeated_ones(self) -> None:
        message = (b"Received: from a by b; Thu, 01 Jan 2026 10:00:00 +0000\r\n"
                   b"Return-Path: <alice@example.com>\r\n"
                   b"From: alice@example.com\r\n"
                   b"Bcc: secret@example.org\r\n"
                   b"Resent-To: x@example.org\r\n"
                   b"Resent-To: y@example.org\r\n"
                   b"List-Unsubscribe: <https://example.com/u>\r\n"
                   b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                   b"\r\nbody\r\n")
        self.assertEqual(signed_field_names(message),
                         [b"from", b"resent-to", b"resent-to", b"list-unsubscribe",
                          b"list-unsubscribe-post", b"from"])
        self.assertEqual(verify_all(sign(message, [RSA_KEY], NOW) + message), [True])

    def test_relaxed_canonicalization_survives_header_whitespace_changes(self) -> None:
        signed = sign(MESSAGE, [RSA_KEY, ED_KEY], NOW) + MESSAGE
        relayed = (signed.replace(b"Subject: Quarterly numbers",
                                  b"subject:   Quarterly\r\n\t numbers   ")
                   .replace(b"To: bob@example.org", b"TO:\tbob@example.org \t")
                   .replace(b"attached.\r\n", b"attached.   \r\n\r\n\r\n"))
        self.assertNotEqual(relayed, signed)
        self.assertEqual(verify_all(relayed), [True, True])

    def test_a_from_added_above_or_below_breaks_the_signature(self) -> None:
        fields = sign(MESSAGE, [RSA_KEY, ED_KEY], NOW)
        evil = b"From: Mallory <ceo@example.com>\r\n"
        above = fields + evil + MESSAGE
        head, body = MESSAGE.split(b"\r\n\r\n", 1)
        below = fields + head + b"\r\n" + evil + b"\r\n" + body
        self.assertEqual(verify_all(above), [False, False])
        self.assertEqual(verify_all(below), [False, False])

    def test_a_modified_body_fails(self) -> None:
        signed = sign(MESSAGE, [RSA_KEY, ED_KEY], NOW) + MESSAGE
        self.assertEqual(verify_all(signed.replace(b"attached", b"lost")), [False, False])

    def test_a_modified_signed_header_fails(self) -> None:
        signed = sign(MESSAGE, [RSA_KEY], NOW) + MESSAGE
        self.assertEqual(verify_all(signed.replace(b"Quarterly", b"Yearly")), [False])

    def test_an_unsigned_header_may_be_added(self) -> None:
        signed = sign(MESSAGE, [RSA_KEY], NOW) + MESSAGE
        self.assertEqual(verify_all(signed.replace(b"X-Mailer: test", b"X-Mailer: other\r\n"
                                                   b"X-Spam: no")), [True])

    def test_lf_line_endings_are_signed_as_crlf(self) -> None:
        lf = MESSAGE.replace(b"\r\n", b"\n")
        fields = sign(lf, [RSA_KEY], NOW)
        self.assertEqual(verify_all(fields + MESSAGE), [True])

    def test_no_keys_no_signature(self) -> None:
        self.assertEqual(sign(MESSAGE, [], NOW), b"")

    def test_a_key_of_another_domain_is_refused(self) -> None:
        other = SigningKey("example.net", "s", RSA_KEY.algorithm, RSA_KEY.private_key)
        with self.assertRaises(DKIMSigningError):
            sign(MESSAGE, [other], NOW)

    def test_signing_key_repr_hides_the_private_key(self) -> None:
        self.assertNotIn(RSA_KEY.private_key.decode(), repr(RSA_KEY))
        self.assertNotIn("PRIVATE", repr(RSA_KEY))
        self.assertNotIn(ED_KEY.private_key.decode(), repr(ED_KEY))


class SigningDomainTests(unittest.SynchronousTestCase):
    CASES = [
        (b"From: Alice <alice@Example.COM>\r\n\r\n", "example.com"),
        (b"From: alice@example.com\r\nSubject: x\r\n\r\nFrom: body@evil.test\r\n",
         "example.com"),
        (b"Subject: x\r\n\r\n", None),
        (b"From: a@example.com\r\nFrom: b@example.com\r\n\r\n", None),
        (b"From: a@example.com, b@example.net\r\n\r\n", None),
        (b"From: a@example.com, b@EXAMPLE.com\r\n\r\n", "example.com"),
        (b"From: undisclosed\r\n\r\n", None),
        (b"From: a@[192.0.2.1]\r\n\r\n", None),
        (b"From: =?utf-8?q?J=C3=B6rg?= <j@b\xc3\xbccher.example>\r\n\r\n",
         "xn--bcher-kva.example"),
        (b"From: Alice\r\n <alice@example.com>\r\n\r\n", "example.com"),
    ]

    def test_table(self) -> None:
        for headers, expected in self.CASES:
            self.assertEqual(signing_domain(headers), expected, headers)


class FakeRunner:
    """DatabaseRunner.read with keys from a dict; ``hold`` keeps queries pending."""

    def __init__(self, keys: dict[str, list[SigningKey]]) -> None:
        self.keys = keys
        self.queries: list[str] = []
        self.hold = False
        self.pending: list[tuple[defer.Deferred[list[SigningKey]], str]] = []

    def read(self, fn: Any, keyring: Any, domain: str) -> defer.Deferred[list[SigningKey]]:
        self.queries.append(domain)
        if self.hold:
            d: defer.Deferred[list[SigningKey]] = defer.Deferred()
            self.pending.append((d, domain))
            return d
        return defer.succeed(list(self.keys.get(domain, [])))

    def release(self) -> None:
        for d, domain in self.pending:
            d.callback(list(self.keys.get(domain, [])))
        self.pending = []


class InlineWorkers:
    def __init__(self) -> None:
        self.calls = 0

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        self.calls += 1
        return defer.maybeDeferred(fn, *args, **kwargs)


class DKIMSignerTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.runner = FakeRunner({"example.com": [RSA_KEY, ED_KEY]})
        self.workers = InlineWorkers()
        self.signer = DKIMSigner(self.runner, keyring=None,  # type: ignore[arg-type]
                                 workers=self.workers, clock=self.clock, cache_seconds=300)

    def signature(self, message: bytes = MESSAGE) -> bytes:
        return self.successResultOf(self.signer.signature_for(message))

    def test_signs_with_every_active_key_in_a_worker(self) -> None:
        fields = self.signature()
        self.assertEqual(verify_all(fields + MESSAGE), [True, True])
        self.assertEqual(tags(split_signatures(fields)[0])["t"], str(NOW))
        self.assertEqual(self.workers.calls, 1)

    def test_domain_without_key_gives_empty_bytes(self) -> None:
        message = MESSAGE.replace(b"alice@example.com", b"alice@example.net")
        self.assertEqual(self.signature(message), b"")
        self.assertEqual(self.workers.calls, 0)

    def test_message_without_from_is_not_looked_up(self) -> None:
        self.assertEqual(self.signature(b"Subject: x\r\n\r\nbody\r\n"), b"")
        self.assertEqual(self.runner.queries, [])

    def test_keys_and_their_absence_are_cached_until_they_expire(self) -> None:
        other = MESSAGE.replace(b"alice@example.com", b"alice@example.net")
        for _ in range(3):
            self.signature()
            self.signature(other)
        self.assertEqual(self.runner.queries, ["example.com", "example.net"])
        self.clock.advance(301)
        self.signature()
        self.assertEqual(self.runner.queries, ["example.com", "example.net", "example.com"])

    def test_invalidate_reloads_at_the_next_message(self) -> None:
        self.signature()
        self.runner.keys["example.com"] = [ED_KEY]
        self.signer.invalidate("Example.com")
        fields = self.signature()
        self.assertEqual([tags(s)["a"] for s in split_signatures(fields)], ["ed25519-sha256"])
        self.signer.invalidate()
        self.signature()
        self.assertEqual(len(self.runner.queries), 3)

    def test_concurrent_messages_share_one_key_query(self) -> None:
        self.runner.hold = True
        pending = [self.signer.signature_for(MESSAGE) for _ in range(3)]
        self.assertEqual(self.runner.queries, ["example.com"])
        self.runner.release()
        for d in pending:
            self.assertEqual(verify_all(self.successResultOf(d) + MESSAGE), [True, True])

    def test_a_failed_key_query_fails_every_waiter_and_is_not_cached(self) -> None:
        self.runner.hold = True
        first, second = self.signer.signature_for(MESSAGE), self.signer.signature_for(MESSAGE)
        (d, _domain), = self.runner.pending
        self.runner.pending = []
        d.errback(RuntimeError("database down"))
        self.failureResultOf(first, RuntimeError)
        self.failureResultOf(second, RuntimeError)
        self.runner.hold = False
        self.assertEqual(verify_all(self.signature() + MESSAGE), [True, True])

    def test_a_message_dkimpy_refuses_is_sent_unsigned(self) -> None:
        broken = b"From: alice@example.com\r\n\x00bad header line\r\n\r\nbody\r\n"
        self.assertEqual(self.signature(broken), b"")


# Messages as real clients write them: their h= lists run over several lines.
CLIENT_MESSAGES = client_messages("alice@example.com", "bob@example.org")


class LongHeaderListTests(unittest.SynchronousTestCase):
    """issue 9 item 2: dkimpy folds DKIM-Signature at spaces only, and cut an h= written
    without any inside a field name ("content-tra" / "nsfer-encoding")."""

    def test_client_messages_have_h_lists_longer_than_a_line(self) -> None:
        for name, message in CLIENT_MESSAGES.items():
            self.assertGreater(len(b":".join(signed_field_names(message))), 72, name)

    def test_every_client_message_verifies_with_dkimpy_for_both_algorithms(self) -> None:
        for name, message in CLIENT_MESSAGES.items():
            self.assertEqual(verify_all(sign(message, [RSA_KEY, ED_KEY], NOW) + message),
                             [True, True], name)

    def test_h_is_folded_only_around_colons(self) -> None:
        for name, message in CLIENT_MESSAGES.items():
            signature = sign(message, [RSA_KEY], NOW)
            h = re.search(rb"\bh=([^;]*);", signature).group(1)  # type: ignore[union-attr]
            # RFC 6376 §3.5: hdr-name *( [FWS] ":" [FWS] hdr-name ): every name whole.
            listed = [part.strip() for part in h.split(b":")]
            self.assertEqual(listed, signed_field_names(message), name)


# --- implementations other than dkimpy: Perl's Mail::DKIM and Node's mailauth ------------


class MailDKIMTests(unittest.TestCase):
    """RSA signatures checked by Mail::DKIM (Debian libmail-dkim-perl) against the test DNS.

    Debian bookworm's Mail::DKIM (1.20230212) has no ed25519-sha256: MailauthTests
    checks those."""

    def setUp(self) -> None:
        self.server = serve_for_test(self, ZONE)

    def mail_dkim(self, signed: bytes) -> defer.Deferred[tuple[list[Verdict], bool]]:
        """([(result, domain, selector, algorithm, detail)], ed25519 supported?)."""
        return verify_with_perl(signed, self.server.port)

    @defer.inlineCallbacks
    def test_rsa_signature_passes_mail_dkim(self) -> Any:
        results, _ = yield self.mail_dkim(sign(MESSAGE, [RSA_KEY], NOW) + MESSAGE)
        self.assertEqual([r[:4] for r in results],
                         [("pass", "example.com", "mg202601", "rsa-sha256")])

    @defer.inlineCallbacks
    def test_tampered_body_fails_mail_dkim(self) -> Any:
        signed = sign(MESSAGE, [RSA_KEY], NOW) + MESSAGE
        results, _ = yield self.mail_dkim(signed.replace(b"attached", b"lost"))
        self.assertEqual([r[0] for r in results], ["fail"])

    @defer.inlineCallbacks
    def test_added_from_fails_mail_dkim_thanks_to_oversigning(self) -> Any:
        # Mail::DKIM, unlike dkimpy, has no extra From check of its own: the oversigned
        # h= entry is what protects, as the unprotected control shows.
        evil = b"From: Mallory <ceo@example.com>\r\n"
        results, _ = yield self.mail_dkim(sign(MESSAGE, [RSA_KEY], NOW) + evil + MESSAGE)
        self.assertEqual([r[0] for r in results], ["fail"])
        plain = dkim.sign(MESSAGE, b"mg202601", b"example.com", RSA.private_pem,
                          canonicalize=(b"relaxed", b"relaxed"),
                          include_headers=[b"from", b"to", b"subject"])
        results, _ = yield self.mail_dkim(plain + evil + MESSAGE)
        self.assertEqual([r[0] for r in results], ["pass"])

    @defer.inlineCallbacks
    def test_dual_signed_message_passes_mail_dkim(self) -> Any:
        results, ed25519 = yield self.mail_dkim(sign(MESSAGE, [RSA_KEY, ED_KEY], NOW) + MESSAGE)
        by_algorithm = {r[3]: r for r in results}
        self.assertEqual(by_algorithm["rsa-sha256"][0], "pass")
        if ed25519:
            self.assertEqual(by_algorithm["ed25519-sha256"][0], "pass")
        else:
            # RFC 8463 §1: a verifier without ed25519 must not fail the message for it.
            self.assertNotEqual(by_algorithm["ed25519-sha256"][0], "fail")


class ClientMessagesOtherVerifiersTests(unittest.TestCase):
    """The client-shaped messages, signed with both algorithms, pass Mail::DKIM (RSA;
    ed25519 too when it knows it) and mailauth (both)."""

    def setUp(self) -> None:
        self.server = serve_for_test(self, ZONE)

    @defer.inlineCallbacks
    def test_client_messages_pass_mail_dkim_and_mailauth(self) -> Any:
        for name, message in CLIENT_MESSAGES.items():
            signed = sign(message, [RSA_KEY, ED_KEY], NOW) + message
            results, ed25519 = yield verify_with_perl(signed, self.server.port)
            by_algorithm = {r[3]: r[0] for r in results}
            self.assertEqual(by_algorithm["rsa-sha256"], "pass", (name, results))
            if ed25519:
                self.assertEqual(by_algorithm["ed25519-sha256"], "pass", (name, results))
            checked = yield verify_with_mailauth(signed, self.server.port)
            self.assertEqual([(r[0], r[3]) for r in checked],
                             [("pass", "rsa-sha256"), ("pass", "ed25519-sha256")],
                             (name, checked))


class MailauthTests(unittest.TestCase):
    """Signatures, ed25519-sha256 above all, checked by the npm package mailauth on Node.js
    (tests/support/js; install: npm ci --prefix tests/support/js) against the test DNS.

    mailauth reports a body hash mismatch as "neutral" (RFC 6376 §6.1.3 leaves the
    wording to the verifier) and a bad header signature as "fail"."""

    def setUp(self) -> None:
        self.server = serve_for_test(self, ZONE)

    def mailauth(self, signed: bytes) -> defer.Deferred[list[Verdict]]:
        return verify_with_mailauth(signed, self.server.port)

    @defer.inlineCallbacks
    def test_ed25519_signature_passes_mailauth(self) -> Any:
        results = yield self.mailauth(sign(MESSAGE, [ED_KEY], NOW) + MESSAGE)
        self.assertEqual([r[:4] for r in results],
                         [("pass", "example.com", "mg202601e", "ed25519-sha256")])

    @defer.inlineCallbacks
    def test_rsa_signature_passes_mailauth(self) -> Any:
        results = yield self.mailauth(sign(MESSAGE, [RSA_KEY], NOW) + MESSAGE)
        self.assertEqual([r[:4] for r in results],
                         [("pass", "example.com", "mg202601", "rsa-sha256")])

    @defer.inlineCallbacks
    def test_dual_signed_message_passes_mailauth_for_both(self) -> Any:
        results = yield self.mailauth(sign(MESSAGE, [RSA_KEY, ED_KEY], NOW) + MESSAGE)
        self.assertEqual([r[:4] for r in results],
                         [("pass", "example.com", "mg202601", "rsa-sha256"),
                          ("pass", "example.com", "mg202601e", "ed25519-sha256")])

    @defer.inlineCallbacks
    def test_dkim_signer_output_passes_mailauth(self) -> Any:
        clock = Clock()
        clock.advance(NOW)
        runner = FakeRunner({"example.com": [RSA_KEY, ED_KEY]})
        signer = DKIMSigner(runner, keyring=None,  # type: ignore[arg-type]
                            workers=InlineWorkers(), clock=clock, cache_seconds=300)
        fields = yield signer.signature_for(MESSAGE)
        results = yield self.mailauth(fields + MESSAGE)
        self.assertEqual([(r[0], r[3]) for r in results],
                         [("pass", "rsa-sha256"), ("pass", "ed25519-sha256")])

    @defer.inlineCallbacks
    def test_relaxed_canonicalization_survives_relaying_for_mailauth(self) -> Any:
        signed = sign(MESSAGE, [RSA_KEY, ED_KEY], NOW) + MESSAGE
        relayed = (signed.replace(b"Subject: Quarterly numbers",
                                  b"subject:   Quarterly\r\n\t numbers   ")
                   .replace(b"attached.\r\n", b"attached.   \r\n\r\n\r\n"))
        results = yield self.mailauth(relayed)
        self.assertEqual([r[0] for r in results], ["pass", "pass"])

    @defer.inlineCallbacks
    def test_tampered_body_does_not_pass_mailauth(self) -> Any:
        signed = sign(MESSAGE, [RSA_KEY, ED_KEY], NOW) + MESSAGE
        results = yield self.mailauth(signed.replace(b"attached", b"lost"))
        self.assertEqual([(r[0], r[3], r[4]) for r in results],
                         [("neutral", "rsa-sha256", "body hash did not verify"),
                          ("neutral", "ed25519-sha256", "body hash did not verify")])

    @defer.inlineCallbacks
    def test_tampered_signed_header_fails_mailauth(self) -> Any:
        signed = sign(MESSAGE, [RSA_KEY, ED_KEY], NOW) + MESSAGE
        results = yield self.mailauth(signed.replace(b"Quarterly", b"Yearly"))
        self.assertEqual([(r[0], r[3]) for r in results],
                         [("fail", "rsa-sha256"), ("fail", "ed25519-sha256")])

    @defer.inlineCallbacks
    def test_added_from_fails_mailauth_thanks_to_oversigning(self) -> Any:
        evil = b"From: Mallory <ceo@example.com>\r\n"
        results = yield self.mailauth(sign(MESSAGE, [ED_KEY], NOW) + evil + MESSAGE)
        self.assertEqual([r[0] for r in results], ["fail"])

    @defer.inlineCallbacks
    def test_a_key_missing_from_dns_does_not_pass_mailauth(self) -> Any:
        other = SigningKey("example.com", "absent", ED_KEY.algorithm, ED_KEY.private_key)
        results = yield self.mailauth(sign(MESSAGE, [other], NOW) + MESSAGE)
        self.assertEqual([r[:3] for r in results], [("neutral", "example.com", "absent")])
