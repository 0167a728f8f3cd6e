"""README.rst's configuration reference is the one generated from the key table."""

from __future__ import annotations

import os

from twisted.trial import unittest

from mailgosend import config_keys
from mailgosend.config_docs import readme_section, reference_rst

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.rst")


class ConfigDocsTests(unittest.TestCase):
    def test_readme_reference_matches_the_key_table(self) -> None:
        with open(README, encoding="utf-8") as handle:
            section = readme_section(handle.read())
        self.assertEqual(section, reference_rst(),
                         "README.rst is stale: replace its reference section with the output "
                         "of `mailgosend config reference`")

    def test_every_key_and_alias_is_documented(self) -> None:
        text = reference_rst()
        for key in config_keys.KEYS:
            self.assertIn(f"``{key.name}``", text)
            for alias in key.aliases:
                self.assertIn(f"``{alias}``", text)

    def test_design_aliases_are_accepted(self) -> None:
        for alias, canonical in [("SUBMISSION_PORT", "SUBMIT_PORT"),
                                 ("DOMAIN_DEFAULT", "DEFAULT_DOMAIN"),
                                 ("QUEUE_MAX_AGE_H", "QUEUE_MAX_AGE_HOURS"),
                                 ("QUEUE_RETRY_MIN", "QUEUE_RETRY_MINS"),
                                 ("SMTP_IFACE", "SMTP_BIND"), ("CALDAV_PORT", "DAV_PORT"),
                                 # DESIGN.md §8: the seed README's spellings.
                                 ("WEBCLIENT_PORT", "WEB_PORT"), ("WEBCLIENT_IFACE", "WEB_BIND"),
                                 ("WEBADMIN_PORT", "ADMIN_PORT"),
                                 ("WEBADMIN_IFACE", "ADMIN_BIND"),
                                 ("SPAM_DNSBL", "DNSBL_ZONES")]:
            self.assertEqual(config_keys.canonical_name(alias), canonical)
