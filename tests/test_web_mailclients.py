"""web/mailclients.py: the mail-client settings shown on the account settings page follow
the active listeners and TLS, as a table of configurations."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.web.mailclients import ClientEndpoint, client_endpoints
from tests.support.config import make_config


class ClientEndpointTests(unittest.TestCase):
    def test_endpoints_follow_the_listeners_and_tls(self) -> None:
        host = "mail.example.com"
        cases = [
            # (overrides, expected (protocol, port, security) rows)
            ({"TLS_MODE": "selfsigned", "IMAPS_PORT": "993", "IMAP_PORT": "143",
              "SUBMIT_PORT": "587", "SMTPS_PORT": "465", "POP3S_PORT": "995"},
             [("IMAP", 993, "SSL/TLS"), ("IMAP", 143, "STARTTLS"), ("POP3", 995, "SSL/TLS"),
              ("SMTP (sending)", 587, "STARTTLS"), ("SMTP (sending)", 465, "SSL/TLS")]),
            ({"TLS_MODE": "selfsigned", "IMAPS_PORT": "993", "IMAP_ENABLED": "false",
              "IMAP_PORT": "143", "SMTP_PORT": "25"},
             [("IMAP", 993, "SSL/TLS")]),                     # inbound SMTP is not for clients
            ({"TLS_MODE": "off", "IMAPS_PORT": "993", "IMAP_PORT": "143",
              "SUBMIT_PORT": "587", "POP3_PORT": "110"},
             [("IMAP", 143, "None (no TLS configured)"),
              ("POP3", 110, "None (no TLS configured)")]),  # what does not listen without TLS
        ]
        for overrides, expected in cases:
            config = make_config(self.mktemp(), HOSTNAME=host, **overrides)
            got = client_endpoints(config)
            self.assertEqual([(e.protocol, e.port, e.security) for e in got], expected,
                             overrides)
            self.assertTrue(all(isinstance(e, ClientEndpoint) and e.server == host
                                for e in got))
