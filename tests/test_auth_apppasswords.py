"""App password shape and scopes (auth/apppasswords.py): tables."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.auth import apppasswords as app


class AppPasswordShapeTests(unittest.TestCase):
    def test_new_passwords_are_20_characters_of_the_alphabet_and_differ(self) -> None:
        made = {app.new_app_password() for _ in range(20)}
        self.assertEqual(len(made), 20)
        for password in made:
            self.assertEqual(app.normalize_app_password(password), password)

    def test_normalisation_table(self) -> None:
        cases = [
            ("abcd-efgh-jkmn-pqrs-tuvw", "abcdefghjkmnpqrstuvw"),
            ("ABCD EFGH JKMN PQRS TUVW", "abcdefghjkmnpqrstuvw"),
            ("abcdefghjkmnpqrstuvw", "abcdefghjkmnpqrstuvw"),
            ("abcd-efgh-jkmn-pqrs-tuv", None),              # too short
            ("abcd-efgh-jkmn-pqrs-tuv0", None),             # 0 is not in the alphabet
            ("correct horse battery staple", None),         # an ordinary password
            ("", None),
        ]
        for given, expected in cases:
            with self.subTest(given):
                self.assertEqual(app.normalize_app_password(given), expected)

    def test_format_groups_by_four(self) -> None:
        self.assertEqual(app.format_app_password("abcdefghjkmnpqrstuvw"),
                         "abcd-efgh-jkmn-pqrs-tuvw")


class ScopeTests(unittest.TestCase):
    def test_service_to_protocol_table(self) -> None:
        cases = [("imap", "imap"), ("pop3", "pop3"), ("submission", "submission"),
                 ("smtps", "submission"), ("dav", "dav"), ("web", None), ("admin", None),
                 ("inbound", None), ("unknown", None)]
        for service, expected in cases:
            with self.subTest(service):
                self.assertEqual(app.protocol_of_service(service), expected)

    def test_parse_protocols_table(self) -> None:
        cases = [(["imap"], ("imap",)), (["smtp,imap"], ("imap", "submission")),
                 (["dav pop3", "IMAP"], ("imap", "pop3", "dav")),
                 (["imap,imap"], ("imap",))]
        for given, expected in cases:
            with self.subTest(given):
                self.assertEqual(app.parse_protocols(given), expected)
        for bad, why in [([""], "at least one"), (["web"], "unknown protocol 'web'")]:
            with self.subTest(bad):
                with self.assertRaises(ValueError) as raised:
                    app.parse_protocols(bad)
                self.assertIn(why, str(raised.exception))
