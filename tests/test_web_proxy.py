"""web/proxy.py: the client address and scheme, believed only from trusted proxies."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.auth.bruteforce import parse_networks
from mailgosend.web.proxy import ClientOrigin, client_origin

TRUSTED = parse_networks(["10.0.0.0/8", "::1"])

# peer, peer is TLS, X-Forwarded-For headers, X-Forwarded-Proto headers -> origin
CASES = [
    ("203.0.113.9", False, ["198.51.100.1"], ["https"], ClientOrigin("203.0.113.9", False)),
    ("10.0.0.2", False, ["198.51.100.1"], ["https"], ClientOrigin("198.51.100.1", True)),
    ("10.0.0.2", False, [], [], ClientOrigin("10.0.0.2", False)),
    ("10.0.0.2", True, [], [], ClientOrigin("10.0.0.2", True)),
    ("10.0.0.2", True, ["198.51.100.1"], ["http"], ClientOrigin("198.51.100.1", False)),
    # A forged left-most entry is skipped: the first untrusted hop from the right counts.
    ("10.0.0.2", False, ["6.6.6.6, 198.51.100.1, 10.0.0.7"], ["https"],
     ClientOrigin("198.51.100.1", True)),
    ("10.0.0.2", False, ["6.6.6.6", "198.51.100.1"], [], ClientOrigin("198.51.100.1", False)),
    ("10.0.0.2", False, ["garbage, 198.51.100.1"], [], ClientOrigin("198.51.100.1", False)),
    ("10.0.0.2", False, ["198.51.100.1, garbage"], [], ClientOrigin("10.0.0.2", False)),
    ("::1", False, ["2001:db8::5"], ["https"], ClientOrigin("2001:db8::5", True)),
    ("10.0.0.2", False, ["10.0.0.3"], [], ClientOrigin("10.0.0.3", False)),
]


class ClientOriginTests(unittest.TestCase):
    def test_table(self) -> None:
        for peer, secure, forwarded, proto, expected in CASES:
            with self.subTest(peer=peer, forwarded=forwarded, proto=proto):
                self.assertEqual(client_origin(peer, secure, forwarded, proto, TRUSTED),
                                 expected)

    def test_without_trusted_proxies_the_headers_are_ignored(self) -> None:
        self.assertEqual(client_origin("10.0.0.2", False, ["198.51.100.1"], ["https"], ()),
                         ClientOrigin("10.0.0.2", False))
