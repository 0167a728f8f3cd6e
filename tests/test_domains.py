"""Tests for mailgosend.domains: the one domain normaliser (IDNA 2008, UTS #46)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mailgosend.domains import DomainError, normalise_domain, to_ascii, to_unicode


class ToASCIITests(SynchronousTestCase):
    def test_canonical_forms(self) -> None:
        cases = [
            ("example.com", "example.com"),
            ("Example.COM", "example.com"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("BÜCHER.example", "xn--bcher-kva.example"),
            ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
            # IDNA 2008, non-transitional: the deviation characters are kept (RFC 5892).
            ("straße.de", "xn--strae-oqa.de"),
            ("βόλος.gr", "xn--nxasmm1c.gr"),
            ("βόλος.gr".upper(), "xn--nxasmq6b.gr"),   # upper case maps to σ, not ς
            # NFC first: u + combining diaeresis is ü.
            ("bu\u0308cher.example", "xn--bcher-kva.example"),
            # UTS #46 mapping: full-width letters and the ideographic full stop.
            ("ＥＸＡＭＰＬＥ。com", "example.com"),
            ("r3---sn-abc.example", "r3---sn-abc.example"),   # hyphens at 3-4 in ASCII labels
            ("localhost", "localhost"),
            ("a" * 63 + ".example", "a" * 63 + ".example"),
        ]
        for given, expected in cases:
            self.assertEqual(to_ascii(given), expected, given)

    def test_refusals_carry_a_short_reason(self) -> None:
        cases = [
            ("", "empty domain"),
            ("a..b", "bad domain label"),
            ("example.com.", "bad domain label"),    # the exact form: no final dot
            (" example.com", "bad domain label"),
            ("a b.example", "bad domain label"),
            ("-a.example", "bad domain label"),
            ("a-.example", "bad domain label"),
            ("a_b.example", "bad domain label"),
            ("a@b.example", "bad domain label"),
            ("a" * 64 + ".example", "bad domain label"),
            ("xn--zz.example", "bad A-label"),
            ("xn--ls8h.la", "bad A-label"),          # 💩.la: valid in IDNA 2003 only
            ("💩.la", "bad internationalised domain"),
            ("bü_cher.example", "bad internationalised domain"),
            (".".join(["a" * 60] * 5), "domain too long"),
        ]
        for given, reason in cases:
            with self.assertRaises(DomainError, msg=given) as caught:
                to_ascii(given)
            self.assertEqual(str(caught.exception), reason, given)

    def test_a_domain_error_is_a_value_error(self) -> None:
        self.assertRaises(ValueError, to_ascii, "a..b")


class NormaliseDomainTests(SynchronousTestCase):
    def test_typed_forms(self) -> None:
        cases = [
            ("  Example.COM. ", "example.com"),
            ("straße.de.", "xn--strae-oqa.de"),
            ("münchen.example", "xn--mnchen-3ya.example"),
        ]
        for given, expected in cases:
            self.assertEqual(normalise_domain(given), expected, given)

    def test_refusals(self) -> None:
        for given in ("", " ", ".", "a..", "example.com..", "bad host", "a_b.example"):
            self.assertRaises(DomainError, normalise_domain, given)


class ToUnicodeTests(SynchronousTestCase):
    def test_display_form(self) -> None:
        cases = [
            ("xn--strae-oqa.de", "straße.de"),
            ("example.com", "example.com"),
            ("xn--zz.example", "xn--zz.example"),   # undecodable: shown as it is
        ]
        for given, expected in cases:
            self.assertEqual(to_unicode(given), expected, given)

    def test_round_trip(self) -> None:
        for name in ("straße.de", "bücher.example", "βόλος.gr"):
            self.assertEqual(to_unicode(to_ascii(name)), name)
