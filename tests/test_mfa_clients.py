"""MFA that really protects the mailbox, through real clients (imaplib, smtplib, poplib)
against a whole server: once MFA is on, the account password is refused on IMAP, POP3 and
SMTP AUTH with a reply that says to use an app password; app passwords open only their
protocols; a revoked one stops at once, also right after it logged in (the verified-login
cache); failures with it count toward bans."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
from datetime import datetime, timezone
from typing import Any

import pyotp
from twisted.internet import defer, threads

from mailgosend.admin import AccountAdmin, AccountPolicy
from mailgosend.auth.mfa import SecondFactor
from mailgosend.db.runner import run_sync
from tests.support.mailserver import PASSWORD, MailServerTestCase

ALICE = "alice@example.com"
HINT = "sign in with an app password"


class MFAClientTestBase(MailServerTestCase):
    users = (ALICE, "bob@example.com")

    @defer.inlineCallbacks
    def setUp(self):  # type: ignore[no-untyped-def]
        yield super().setUp()
        self.admin = AccountAdmin(AccountPolicy(bcrypt_cost=4))

    def write(self, fn: Any, *args: Any) -> Any:
        return run_sync(self.server.engine, fn, *args, write=True)

    def turn_mfa_on(self, email: str = ALICE) -> None:
        """Enrol as the settings page will: a secret, then a code from the app."""
        mfa = SecondFactor(self.server.root.components["keyring"])
        enrolment = self.write(mfa.start_enrolment, email)
        now = datetime.now(timezone.utc)
        self.write(mfa.confirm_enrolment, email, pyotp.TOTP(enrolment.secret).at(now), now)

    def app_password(self, name: str, *protocols: str) -> str:
        new = self.admin.make_app_password(name, protocols)
        self.write(self.admin.add_app_password, ALICE, new, datetime.now(timezone.utc))
        return new.shown

    def revoke(self, name: str) -> None:
        self.write(self.admin.revoke_app_password, ALICE, name)

    # --- the three clients, each in a thread; each returns what the server said -------

    def imap(self, password: str, user: str = ALICE) -> Any:
        def run() -> str:
            client = imaplib.IMAP4_SSL("127.0.0.1", self.server.ports["IMAPS"],
                                       ssl_context=self.server.client_tls(), timeout=30)
            try:
                typ, data = client.login(user, password)
                return f"{typ} {data[0].decode()}"
            except imaplib.IMAP4.error as exc:
                text = exc.args[0]
                return f"NO {text.decode() if isinstance(text, bytes) else text}"
            finally:
                try:
                    client.logout()
                except (imaplib.IMAP4.abort, OSError):
                    pass
        return threads.deferToThread(run)

    def pop3(self, password: str, user: str = ALICE) -> Any:
        def run() -> str:
            client = poplib.POP3_SSL("127.0.0.1", self.server.ports["POP3S"],
                                     context=self.server.client_tls(), timeout=30)
            try:
                client.user(user)
                return client.pass_(password).decode()
            except poplib.error_proto as exc:
                return str(exc.args[0].decode() if isinstance(exc.args[0], bytes)
                           else exc.args[0])
            finally:
                try:
                    client.quit()
                except (poplib.error_proto, OSError):
                    pass
        return threads.deferToThread(run)

    def smtp(self, password: str, user: str = ALICE) -> Any:
        def run() -> str:
            with smtplib.SMTP("127.0.0.1", self.server.ports["SUBMIT"], timeout=30,
                              local_hostname="laptop.test") as client:
                client.starttls(context=self.server.client_tls())
                try:
                    code, text = client.login(user, password)
                except smtplib.SMTPAuthenticationError as exc:
                    code, text = exc.smtp_code, exc.smtp_error
                return f"{code} {text.decode()}"
        return threads.deferToThread(run)


class MFAProtectsProtocolsTests(MFAClientTestBase):
    @defer.inlineCallbacks
    def test_account_password_works_before_mfa(self):  # type: ignore[no-untyped-def]
        self.assertTrue((yield self.imap(PASSWORD)).startswith("OK"))
        self.assertTrue((yield self.pop3(PASSWORD)).startswith("+OK"))
        self.assertTrue((yield self.smtp(PASSWORD)).startswith("235"))

    @defer.inlineCallbacks
    def test_mfa_user_account_password_refused_with_the_app_password_hint(self):  # type: ignore[no-untyped-def]
        self.turn_mfa_on()
        imap = yield self.imap(PASSWORD)
        self.assertTrue(imap.startswith("NO [AUTHENTICATIONFAILED] This account uses "
                                        "two-factor authentication"), imap)
        self.assertIn(HINT, imap)
        pop3 = yield self.pop3(PASSWORD)
        self.assertTrue(pop3.startswith("-ERR [AUTH] This account uses two-factor"), pop3)
        self.assertIn(HINT, pop3)
        smtp = yield self.smtp(PASSWORD)
        self.assertTrue(smtp.startswith("535 5.7.8 This account uses two-factor"), smtp)
        self.assertIn(HINT, smtp)
        # Another user without MFA is not affected.
        self.assertTrue((yield self.imap(PASSWORD, "bob@example.com")).startswith("OK"))

    @defer.inlineCallbacks
    def test_scoped_app_password_accepted_only_on_its_protocols(self):  # type: ignore[no-untyped-def]
        self.turn_mfa_on()
        phone = self.app_password("phone", "imap", "submission")
        self.assertTrue((yield self.imap(phone)).startswith("OK"))
        self.assertTrue((yield self.smtp(phone)).startswith("235"))
        pop3 = yield self.pop3(phone)
        self.assertEqual(pop3, "-ERR [AUTH] This app password is not allowed for POP3; "
                               "create one that is")
        fetcher = self.app_password("fetcher", "pop3")
        self.assertTrue((yield self.pop3(fetcher)).startswith("+OK"))
        self.assertIn("not allowed for IMAP", (yield self.imap(fetcher)))
        self.assertIn("535 5.7.8 This app password is not allowed for SMTP",
                      (yield self.smtp(fetcher)))

    @defer.inlineCallbacks
    def test_revoked_app_password_refused_right_after_logging_in(self):  # type: ignore[no-untyped-def]
        self.turn_mfa_on()
        phone = self.app_password("phone", "imap", "pop3", "submission")
        self.assertTrue((yield self.imap(phone)).startswith("OK"))   # now in the cache
        self.assertTrue((yield self.pop3(phone)).startswith("+OK"))
        self.revoke("phone")
        self.assertTrue((yield self.imap(phone)).startswith("NO [AUTHENTICATIONFAILED]"))
        self.assertTrue((yield self.pop3(phone)).startswith("-ERR [AUTH]"))
        self.assertTrue((yield self.smtp(phone)).startswith("535 5.7.8"))

    @defer.inlineCallbacks
    def test_app_password_works_without_mfa_too(self):  # type: ignore[no-untyped-def]
        laptop = self.app_password("laptop", "imap")
        self.assertTrue((yield self.imap(laptop)).startswith("OK"))
        self.assertTrue((yield self.imap(PASSWORD)).startswith("OK"))


class RevokedAppPasswordBanTests(MFAClientTestBase):
    settings = {"BRUTE_MAX_TRIES": "3"}

    @defer.inlineCallbacks
    def test_failures_with_a_revoked_app_password_count_toward_a_ban(self):  # type: ignore[no-untyped-def]
        phone = self.app_password("phone", "imap", "pop3")
        self.assertTrue((yield self.imap(phone)).startswith("OK"))
        self.revoke("phone")
        for _ in range(3):
            reply = yield self.imap(phone)
            self.assertTrue(reply.startswith("NO [AUTHENTICATIONFAILED]"), reply)
        self.assertTrue(self.server.root.components["bans"].is_banned("127.0.0.1"))
        # Banned: POP3 closes at once, before anyone can try the account password.
        failure = yield self.assertFailure(self.pop3(PASSWORD), poplib.error_proto)
        self.assertIn(b"Too many failed logins", failure.args[0])


class ProtectionOffTests(MFAClientTestBase):
    settings = {"MFA_PROTECTS_PROTOCOLS": "false"}

    @defer.inlineCallbacks
    def test_account_password_still_opens_imap_when_protection_is_off(self):  # type: ignore[no-untyped-def]
        self.turn_mfa_on()
        self.assertTrue((yield self.imap(PASSWORD)).startswith("OK"))
