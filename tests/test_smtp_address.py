"""mailgosend.smtp.address: RFC 5321 §4.1.2 paths with RFC 6531 UTF-8, table-driven."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from mailgosend.smtp.address import (
    AddressError,
    Mailbox,
    NonASCIIAddress,
    normalise_domain,
    parse_forward_path,
    parse_mailbox,
    parse_reverse_path,
    split_path,
)

VALID = [
    # (path, allow_utf8, local, domain, canonical address)
    ("a@b.org", False, "a", "b.org", "a@b.org"),
    ("First.Last@EXAMPLE.Com", False, "First.Last", "example.com", "First.Last@example.com"),
    ("a+tag@b-c.org", False, "a+tag", "b-c.org", "a+tag@b-c.org"),
    ("!#$%&'*+/=?^_`{|}~-@x.org", False, "!#$%&'*+/=?^_`{|}~-", "x.org", "!#$%&'*+/=?^_`{|}~-@x.org"),
    ('"john smith"@x.org', False, "john smith", "x.org", '"john smith"@x.org'),
    ('"a\\"b"@x.org', False, 'a"b', "x.org", '"a\\"b"@x.org'),
    ('"a@b"@x.org', False, "a@b", "x.org", '"a@b"@x.org'),
    ('"plain"@x.org', False, "plain", "x.org", "plain@x.org"),  # needless quotes dropped
    ("a@[192.0.2.1]", False, "a", "[192.0.2.1]", "a@[192.0.2.1]"),
    ("a@[IPv6:2001:DB8::1]", False, "a", "[IPv6:2001:db8::1]", "a@[IPv6:2001:db8::1]"),
    ("a@[x-tag:some-literal]", False, "a", "[x-tag:some-literal]", "a@[x-tag:some-literal]"),
    ("@r1.example,@r2.example:a@b.org", False, "a", "b.org", "a@b.org"),
    ("pelé@bücher.example", True, "pelé", "xn--bcher-kva.example", "pelé@xn--bcher-kva.example"),
    ("用户@例子.测试", True, "用户", "xn--fsqu00a.xn--0zwm56d", "用户@xn--fsqu00a.xn--0zwm56d"),
    ("a@XN--BCHER-KVA.example", False, "a", "xn--bcher-kva.example", "a@xn--bcher-kva.example"),
    ('"ü x"@b.org', True, "ü x", "b.org", '"ü x"@b.org'),
    ("cafe\u0301@b.org", True, "caf\u00e9", "b.org", "caf\u00e9@b.org"),  # NFC
]

INVALID = [
    ("", False),
    ("a", False),
    ("a@", False),
    ("@b.org", False),
    ("a..b@c.org", False),
    (".a@c.org", False),
    ("a.@c.org", False),
    ("a b@c.org", False),
    ("a@b..org", False),
    ("a@-b.org", False),
    ("a@b-.org", False),
    ("a@b_c.org", False),
    ("a@b.org.", False),
    ("a@" + "x" * 64 + ".org", False),  # label over 63
    ("x" * 65 + "@b.org", False),  # local part over 64 octets (§4.5.3.1.1)
    ("a@" + ".".join(["abcdefgh"] * 30), False),  # path over 256
    ('"unterminated@b.org', False),
    ('"bad\x01char"@b.org', False),
    ("a@[1.2.3]", False),
    ("a@[1.2.3.4", False),
    ("a@[IPv6:zz::1]", False),
    ("a@[:x]", False),
    ("a@xn--zz.org", False),  # invalid punycode
    ("@r.example:", False),
    ("r.example:a@b.org", False),
    ("a\udcff@b.org", True),  # undecodable octet
]

NON_ASCII = ["pelé@b.org", "a@bücher.example", '"ü"@b.org', "@bücher.example:a@b.org"]


class ParseMailboxTests(TestCase):
    def test_valid_paths(self) -> None:
        for path, utf8, local, domain, address in VALID:
            mailbox = parse_mailbox(path, allow_utf8=utf8)
            self.assertEqual((mailbox.local, mailbox.domain, mailbox.address), (local, domain, address), path)

    def test_invalid_paths(self) -> None:
        for path, utf8 in INVALID:
            with self.assertRaises(AddressError, msg=path):
                parse_mailbox(path, allow_utf8=utf8)

    def test_non_ascii_needs_smtputf8(self) -> None:
        for path in NON_ASCII:
            self.assertRaises(NonASCIIAddress, parse_mailbox, path, False)

    def test_unicode_domain_for_display(self) -> None:
        self.assertEqual(Mailbox("a", "xn--bcher-kva.example").unicode_domain, "bücher.example")
        self.assertEqual(Mailbox("a", "[192.0.2.1]").unicode_domain, "[192.0.2.1]")

    def test_is_ascii(self) -> None:
        self.assertTrue(parse_mailbox("a@bücher.example", True).is_ascii)  # domain becomes A-labels
        self.assertFalse(parse_mailbox("ü@b.org", True).is_ascii)


class PathTests(TestCase):
    def test_null_reverse_path(self) -> None:
        self.assertIsNone(parse_reverse_path("", allow_utf8=False))

    def test_postmaster_is_only_a_forward_path(self) -> None:
        self.assertEqual(parse_forward_path("PostMaster", False), Mailbox("postmaster", ""))
        self.assertEqual(parse_forward_path("postmaster", False).address, "postmaster")
        self.assertRaises(AddressError, parse_reverse_path, "postmaster", False)
        self.assertRaises(AddressError, parse_forward_path, "", False)

    def test_split_path(self) -> None:
        cases = [
            ("<a@b.org>", ("a@b.org", "")),
            ("<a@b.org> SIZE=10  BODY=8BITMIME", ("a@b.org", "SIZE=10  BODY=8BITMIME")),
            (" <a@b.org>", ("a@b.org", "")),
            ("<>", ("", "")),
            ('<"a>b"@c.org> X', ('"a>b"@c.org', "X")),
            ('<"a\\">"@c.org>', ('"a\\">"@c.org', "")),
            ("a@b.org SIZE=1", ("a@b.org", "SIZE=1")),
        ]
        for text, expected in cases:
            self.assertEqual(split_path(text), expected, text)

    def test_split_path_errors(self) -> None:
        for text in ("<a@b.org", "<a@b.org>SIZE=1", '<"a@b.org>'):
            self.assertRaises(AddressError, split_path, text)


class DomainTests(TestCase):
    def test_normalise(self) -> None:
        self.assertEqual(normalise_domain("Example.COM", False), "example.com")
        self.assertEqual(normalise_domain("BÜCHER.example", True), "xn--bcher-kva.example")
        self.assertEqual(normalise_domain("[IPv6:0:0:0:0:0:0:0:1]", False), "[IPv6:::1]")

    def test_reject(self) -> None:
        for domain in ("", "a..b", "a b", "[300.0.0.1]", "a@b"):
            self.assertRaises(AddressError, normalise_domain, domain, True)
