"""mailauth.authresults: our RFC 8601 field, and byte-exact removal of forged ones."""

from __future__ import annotations

import re

from twisted.trial import unittest

from mailgosend.mailauth.authresults import (
    FIELD_NAME, IprevResult, authserv_id_of, build_authentication_results,
    strip_forged_results)
from mailgosend.mailauth.dkim import DKIMResult
from mailgosend.mailauth.dmarc import DMARCResult
from mailgosend.mailauth.headers import header_fields
from mailgosend.mailauth.spf import SPFResult

SPF_PASS = SPFResult("pass", "example.com", "mailfrom")
DKIM_PASS = DKIMResult("pass", "example.com", "sel", "rsa-sha256", "abcd1234")
DMARC_PASS = DMARCResult("pass", "example.com", policy="reject", published_policy="reject",
                         disposition="none", spf_aligned=True, dkim_aligned=True,
                         record_domain="example.com")


def unfold(value: str) -> str:
    return re.sub(r"\r\n[ \t]+", " ", value)


class BuildTests(unittest.TestCase):
    def test_all_pass(self) -> None:
        value = build_authentication_results("mx.example.org", SPF_PASS, [DKIM_PASS], DMARC_PASS)
        self.assertEqual(unfold(value),
                         "mx.example.org; spf=pass smtp.mailfrom=example.com; "
                         "dkim=pass header.d=example.com header.s=sel header.a=rsa-sha256 "
                         "header.b=abcd1234; "
                         "dmarc=pass (p=reject dis=none) header.from=example.com "
                         "policy.dmarc=reject")

    def test_folded_lines_stay_within_78_characters(self) -> None:
        value = build_authentication_results(
            "mx.example.org", SPF_PASS, [DKIM_PASS, DKIM_PASS], DMARC_PASS,
            iprev=IprevResult("pass", "192.0.2.1", "mail.example.com"))
        lines = f"{FIELD_NAME}: {value}".split("\r\n")
        self.assertGreater(len(lines), 3)
        for line in lines:
            self.assertLessEqual(len(line), 78, line)
        for line in lines[1:]:
            self.assertTrue(line.startswith("\t"), line)
        self.assertNotIn("\n", value.replace("\r\n", ""))

    def test_absent_results_say_none(self) -> None:
        value = build_authentication_results("mx.example.org", None, [], None)
        self.assertEqual(value, "mx.example.org; spf=none; dkim=none; dmarc=none")

    def test_failures_carry_reason_and_disposition(self) -> None:
        dkim_fail = DKIMResult("fail", "example.com", "sel", "ed25519-sha256", "Ab/+9xYz",
                               reason="body hash mismatch")
        dmarc_fail = DMARCResult("fail", "example.com", policy="quarantine",
                                 published_policy="reject", disposition="quarantine",
                                 record_domain="example.com")
        value = unfold(build_authentication_results(
            "mx.example.org", SPFResult("softfail", "example.com", "mailfrom"),
            [dkim_fail], dmarc_fail))
        self.assertIn("spf=softfail smtp.mailfrom=example.com;", value)
        self.assertIn('dkim=fail reason="body hash mismatch" header.d=example.com', value)
        self.assertIn('header.b="Ab/+9xYz"', value)   # '/' is a tspecial: quoted
        self.assertIn("dmarc=fail (p=reject dis=quarantine) header.from=example.com "
                      "policy.dmarc=quarantine", value)

    def test_null_sender_reports_helo_identity(self) -> None:
        value = build_authentication_results(
            "mx.example.org", SPFResult("pass", "mx.example.net", "helo"), [], None)
        self.assertIn("spf=pass smtp.helo=mx.example.net;", value)

    def test_dmarc_without_record_has_no_policy(self) -> None:
        value = build_authentication_results(
            "mx.example.org", SPF_PASS, [], DMARCResult("none", "example.com"))
        self.assertTrue(value.endswith("dmarc=none header.from=example.com"), value)

    def test_iprev_comes_first(self) -> None:
        value = unfold(build_authentication_results(
            "mx.example.org", SPF_PASS, [DKIM_PASS], DMARC_PASS,
            iprev=IprevResult("pass", "2001:db8::1", "mail.example.com")))
        self.assertTrue(value.startswith(
            'mx.example.org; iprev=pass policy.iprev="2001:db8::1" (mail.example.com); '), value)

    def test_own_field_is_recognised_by_the_stripper(self) -> None:
        value = build_authentication_results("MX.example.org", SPF_PASS, [DKIM_PASS], DMARC_PASS)
        self.assertEqual(authserv_id_of(value.encode()), b"MX.example.org")
        raw = f"{FIELD_NAME}: {value}\r\nSubject: s\r\n\r\nbody\r\n".encode()
        self.assertEqual(strip_forged_results(raw, "mx.example.org"),
                         b"Subject: s\r\n\r\nbody\r\n")


class AuthservIdTests(unittest.TestCase):
    def test_table(self) -> None:
        cases = {
            b" mx.example.org; spf=pass": b"mx.example.org",
            b" mx.example.org 1; spf=pass": b"mx.example.org",
            b" (forged) (nested (comment)) mx.example.org;": b"mx.example.org",
            b' "mx.example.org"; dkim=pass': b"mx.example.org",
            b"\r\n\tmx.example.org;": b"mx.example.org",
            b" mx.example.org": b"mx.example.org",
            b" ": b"",
        }
        for value, expected in cases.items():
            self.assertEqual(authserv_id_of(value), expected, value)


class StripForgedTests(unittest.TestCase):
    def test_forged_fields_go_everything_else_stays_byte_exact(self) -> None:
        keep_top = (b"Received: from client.example (client.example [192.0.2.9])\r\n"
                    b"\tby mx.example.org; Mon, 2 Feb 2026 10:00:00 +0000\r\n")
        forged_folded = (b"Authentication-Results: mx.example.org;\r\n"
                         b"   spf=pass smtp.mailfrom=bank.example;\r\n"
                         b"\tdkim=pass header.d=bank.example\r\n")
        legit_other = (b"Authentication-Results: relay.example.net; spf=pass\r\n"
                       b"  smtp.mailfrom=example.com\r\n")
        forged_case = b"authentication-results : (x) MX.Example.ORG; dmarc=pass\r\n"
        forged_quoted = b'Authentication-Results: "mx.example.org"; dkim=pass\r\n'
        lookalike = b"Authentication-Results: mx.example.org.evil.example; spf=pass\r\n"
        rest = (b"From: Alice <alice@example.com>\r\n"
                b"Subject: =?utf-8?q?caf=C3=A9?=  \t\r\n"
                b"\r\n"
                b"Authentication-Results: mx.example.org; this is body text\r\n"
                b"trailing whitespace \r\n\r\n\xff\xfe binary-ish\r\n")
        raw = (keep_top + forged_folded + legit_other + forged_case + forged_quoted
               + lookalike + rest)
        stripped = strip_forged_results(raw, "mx.example.org")
        self.assertEqual(stripped, keep_top + legit_other + lookalike + rest)

    def test_message_without_ours_is_returned_unchanged(self) -> None:
        raw = b"Authentication-Results: other.example; spf=none\r\nSubject: x\r\n\r\nhi\r\n"
        self.assertIs(strip_forged_results(raw, "mx.example.org"), raw)

    def test_bare_lf_and_last_field_without_body(self) -> None:
        raw = b"Subject: x\nAuthentication-Results: mx.example.org;\n spf=pass\n"
        self.assertEqual(strip_forged_results(raw, "MX.EXAMPLE.ORG"), b"Subject: x\n")


class HeaderFieldsTests(unittest.TestCase):
    def test_spans_cover_the_header_section_exactly(self) -> None:
        raw = (b"A: 1\r\nB: 2\r\n  folded\r\nnot a header line\r\n"
               b"C:3\r\n\r\nD: body\r\n")
        fields = header_fields(raw)
        self.assertEqual([f.name for f in fields], [b"A", b"B", b"", b"C"])
        header_section = raw[:raw.index(b"\r\n\r\n") + 2]
        self.assertEqual(b"".join(raw[f.start:f.end] for f in fields), header_section)
        self.assertEqual(fields[1].unfolded(), b" 2  folded")
