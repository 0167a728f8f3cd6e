"""Tests for mailgosend.cli, run in-process through main() against a SQLite
database under a temporary DATA_DIR (and once as a real console process).

Every command goes through ``CLITestCase.run_cli``, which also checks that no
password used by the tests ever appears in standard output or error.
"""

from __future__ import annotations

import getpass
import io
import os
import re
import stat
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

import mailgosend
from mailgosend import cli
from mailgosend.config import load
from mailgosend.db.engine import create_db_engine
from mailgosend.db.migrate import head_revision
from mailgosend.db.runner import run_sync
from mailgosend.passwords import verify_password
from mailgosend.store import accounts, sessions

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "Tr0ub4dor and three more"
WEAK_PASSWORD = "Sh0rt!p"
PASSWORDS = (PASSWORD, NEW_PASSWORD, WEAK_PASSWORD, "another good passphrase", "a different one!")


class TTYInput(io.StringIO):
    """Standard input of an interactive terminal."""

    def isatty(self) -> bool:
        return True


class FakeGetpass:
    """Stands in for getpass.getpass: answers in turn and records the prompts."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str = "Password: ", stream: Any = None) -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)


class CLITestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.config_path = os.path.join(self.directory, "app_config.conf")
        load(self.config_path, environ={})
        self.set_config(BCRYPT_COST="4")

    def set_config(self, **values: str) -> None:
        with open(self.config_path, encoding="utf-8") as handle:
            text = handle.read()
        for key, value in values.items():
            text, count = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
            self.assertEqual(count, 1, key)
        with open(self.config_path, "w", encoding="utf-8") as handle:
            handle.write(text)

    def run_cli(self, *argv: str, stdin: io.StringIO | str = "") -> tuple[int, str, str]:
        stream = io.StringIO(stdin) if isinstance(stdin, str) else stdin
        out, err = io.StringIO(), io.StringIO()
        status = cli.main(["--config", self.config_path, *argv], stdin=stream, stdout=out,
                          stderr=err)
        for password in PASSWORDS:
            self.assertNotIn(password, out.getvalue() + err.getvalue(),
                             f"{argv}: a password was echoed")
        return status, out.getvalue(), err.getvalue()

    def ok(self, *argv: str, stdin: io.StringIO | str = "") -> str:
        status, out, err = self.run_cli(*argv, stdin=stdin)
        self.assertEqual((status, err), (0, ""), f"{argv}: {err}")
        return out

    # --- reading the database behind the CLI's back --------------------------------

    def engine(self) -> Any:
        config = load(self.config_path, create=False, environ={})
        engine = create_db_engine("sqlite", sqlite_path=config["DB_PATH"])
        self.addCleanup(engine.dispose)
        return engine

    def user(self, email: str) -> accounts.User:
        return run_sync(self.engine(), accounts.get_user, email, write=False)

    def snapshot(self) -> tuple[list[Any], list[Any], list[Any]]:
        engine = self.engine()
        return (run_sync(engine, accounts.list_domains, write=False),
                run_sync(engine, accounts.list_users, write=False),
                run_sync(engine, accounts.list_aliases, write=False))

    def populate(self) -> None:
        """example.com with bob (admin), carol, an alias and a catch-all."""
        self.ok("domain", "add", "example.com")
        self.ok("user", "add", "bob@example.com", "--admin", "--password-stdin", stdin=PASSWORD)
        self.ok("user", "add", "carol@example.com", "--password-stdin", stdin=PASSWORD)
        self.ok("alias", "add", "info@example.com", "bob@example.com")
        self.ok("alias", "add", "@example.com", "carol@example.com")


class DomainTests(CLITestCase):
    def test_domain_add_then_list_shows_it_enabled(self) -> None:
        self.assertEqual(self.ok("domain", "add", "Example.COM").splitlines()[0],
                         "added domain example.com")
        self.assertEqual(self.ok("domain", "list"),
                         "example.com\tenabled\t0 user(s)\t0 alias(es)\n")

    def test_domain_add_says_where_postmaster_mail_goes(self) -> None:
        # RFC 5321 §4.5.1: postmaster@ every domain must be accepted (issue 9 item 3).
        self.assertEqual(self.ok("domain", "add", "example.com").splitlines()[1],
                         "postmaster@example.com has no destination: add an administrator "
                         "('mailgosend create-admin') or an alias ('mailgosend alias add "
                         "postmaster@example.com you@example.com')")
        self.ok("user", "add", "bob@example.com", "--admin", "--password-stdin", stdin=PASSWORD)
        self.assertEqual(self.ok("domain", "add", "example.org").splitlines()[1],
                         "mail for postmaster@example.org goes to bob@example.com (the first "
                         "administrator, as it has no postmaster alias)")

    def test_domain_list_when_empty_says_how_to_add_one(self) -> None:
        self.assertIn("domain add", self.ok("domain", "list"))

    def test_domain_list_counts_users_and_aliases(self) -> None:
        self.populate()
        self.assertEqual(self.ok("domain", "list"),
                         "example.com\tenabled\t2 user(s)\t2 alias(es)\n")

    def test_domain_disable_and_enable_change_the_stored_state(self) -> None:
        self.ok("domain", "add", "example.com")
        self.assertEqual(self.ok("domain", "disable", "example.com"),
                         "disabled domain example.com\n")
        self.assertEqual([d.enabled for d in self.snapshot()[0]], [False])
        self.assertIn("\tdisabled\t", self.ok("domain", "list"))
        self.assertEqual(self.ok("domain", "enable", "example.com"),
                         "enabled domain example.com\n")
        self.assertEqual([d.enabled for d in self.snapshot()[0]], [True])

    def test_domain_remove_deletes_an_empty_domain_and_its_aliases(self) -> None:
        self.ok("domain", "add", "example.com")
        self.ok("domain", "add", "example.org")
        self.ok("alias", "add", "@example.org", "someone@elsewhere.example")
        self.assertEqual(self.ok("domain", "remove", "example.org"),
                         "removed domain example.org\n")
        domains, _, aliases = self.snapshot()
        self.assertEqual(([d.name for d in domains], aliases), (["example.com"], []))

    def test_idn_domain_is_stored_as_an_a_label(self) -> None:
        self.assertEqual(self.ok("domain", "add", "München.example").splitlines()[0],
                         "added domain xn--mnchen-3ya.example")
        self.assertEqual([d.name for d in self.snapshot()[0]], ["xn--mnchen-3ya.example"])
        self.ok("user", "add", "Jörg@münchen.example", "--password-stdin", stdin=PASSWORD)
        self.assertEqual(self.user("jörg@xn--mnchen-3ya.example").domain,
                         "xn--mnchen-3ya.example")

    def test_a_label_and_u_label_are_the_same_domain(self) -> None:
        self.ok("domain", "add", "münchen.example")
        status, _, err = self.run_cli("domain", "add", "xn--mnchen-3ya.example")
        self.assertEqual(status, 2)
        self.assertIn("already exists", err)


class UserTests(CLITestCase):
    def setUp(self) -> None:
        super().setUp()
        self.ok("domain", "add", "example.com")

    def test_user_add_with_password_stdin_stores_a_hash_of_that_password(self) -> None:
        self.assertEqual(self.ok("user", "add", "Bob@Example.com", "--password-stdin",
                                 stdin=PASSWORD + "\n"),
                         "added user bob@example.com\n")
        stored = self.user("bob@example.com").password_hash
        self.assertTrue(verify_password(PASSWORD, stored))
        self.assertNotIn(PASSWORD, stored)

    def test_password_stdin_reads_only_the_first_line(self) -> None:
        stdin = io.StringIO(PASSWORD + "\r\nsecond line\n")
        self.ok("user", "add", "bob@example.com", "--password-stdin", stdin=stdin)
        stored = self.user("bob@example.com").password_hash
        self.assertTrue(verify_password(PASSWORD, stored))
        self.assertFalse(verify_password(PASSWORD + "\r\nsecond line", stored))
        self.assertEqual(stdin.read(), "second line\n")

    def test_user_add_hashes_with_the_configured_bcrypt_cost(self) -> None:
        self.ok("user", "add", "bob@example.com", "--password-stdin", stdin=PASSWORD)
        self.assertIn("$2b$04$", self.user("bob@example.com").password_hash)

    def test_user_add_admin_sets_the_admin_flag(self) -> None:
        self.assertEqual(self.ok("user", "add", "bob@example.com", "--admin", "--password-stdin",
                                 stdin=PASSWORD),
                         "added admin user bob@example.com\n")
        self.ok("user", "add", "carol@example.com", "--password-stdin", stdin=PASSWORD)
        self.assertEqual((self.user("bob@example.com").is_admin,
                          self.user("carol@example.com").is_admin), (True, False))

    def test_user_add_quota_accepts_a_size_with_suffix(self) -> None:
        self.ok("user", "add", "bob@example.com", "--quota", "2G", "--password-stdin",
                stdin=PASSWORD)
        self.assertEqual(self.user("bob@example.com").quota_bytes, 2 * 1024 ** 3)

    def test_user_add_without_quota_uses_default_quota(self) -> None:
        self.set_config(DEFAULT_QUOTA="1M")
        self.ok("user", "add", "bob@example.com", "--password-stdin", stdin=PASSWORD)
        self.assertEqual(self.user("bob@example.com").quota_bytes, 1024 ** 2)

    def test_user_add_in_a_terminal_asks_twice_and_stores_the_password(self) -> None:
        prompt = FakeGetpass(PASSWORD, PASSWORD)
        self.patch(getpass, "getpass", prompt)
        self.ok("user", "add", "bob@example.com", stdin=TTYInput())
        self.assertEqual(len(prompt.prompts), 2)
        self.assertIn("bob@example.com", prompt.prompts[0])
        self.assertTrue(verify_password(PASSWORD, self.user("bob@example.com").password_hash))

    def test_user_add_in_a_terminal_refuses_differing_passwords(self) -> None:
        self.patch(getpass, "getpass", FakeGetpass(PASSWORD, NEW_PASSWORD))
        before = self.snapshot()
        status, out, err = self.run_cli("user", "add", "bob@example.com", stdin=TTYInput())
        self.assertEqual((status, out), (2, ""))
        self.assertIn("differ", err)
        self.assertEqual(self.snapshot(), before)

    def test_user_list_shows_admin_and_disabled_flags(self) -> None:
        self.ok("user", "add", "ann@example.com", "--admin", "--password-stdin", stdin=PASSWORD)
        self.ok("user", "add", "bob@example.com", "--password-stdin", stdin=PASSWORD)
        self.ok("user", "add", "cid@example.com", "--admin", "--password-stdin", stdin=PASSWORD)
        self.ok("user", "add", "dan@example.com", "--quota", "1K", "--password-stdin",
                stdin=PASSWORD)
        self.ok("user", "disable", "bob@example.com")
        self.ok("user", "disable", "cid@example.com")
        self.assertEqual(self.ok("user", "list").splitlines(), [
            "ann@example.com\tadmin\tquota unlimited\tused 0 bytes",
            "bob@example.com\tdisabled\tquota unlimited\tused 0 bytes",
            "cid@example.com\tadmin,disabled\tquota unlimited\tused 0 bytes",
            "dan@example.com\t-\tquota 1024 bytes\tused 0 bytes",
        ])

    def test_user_list_filters_by_domain(self) -> None:
        self.ok("domain", "add", "example.org")
        self.ok("user", "add", "bob@example.com", "--password-stdin", stdin=PASSWORD)
        self.ok("user", "add", "eve@example.org", "--password-stdin", stdin=PASSWORD)
        self.assertEqual([line.split("\t")[0] for line in
                          self.ok("user", "list", "--domain", "example.org").splitlines()],
                         ["eve@example.org"])

    def test_user_list_when_empty_says_no_users(self) -> None:
        self.assertEqual(self.ok("user", "list"), "no users\n")

    def test_user_passwd_replaces_the_hash(self) -> None:
        self.ok("user", "add", "bob@example.com", "--password-stdin", stdin=PASSWORD)
        old = self.user("bob@example.com").password_hash
        bob = self.user("bob@example.com")
        moment = datetime.now(timezone.utc)
        run_sync(self.engine(), sessions.create_session, token=b"t" * 32, user_id=bob.id,
                 kind="web", csrf_secret=b"c" * 32, now=moment, expires_at=moment,
                 ip="127.0.0.1", user_agent="", pending_step=None, write=True)
        self.assertEqual(self.ok("user", "passwd", "bob@example.com", "--password-stdin",
                                 stdin=NEW_PASSWORD + "\n"),
                         "changed the password of bob@example.com; their web sessions "
                         "were ended\n")
        self.assertIsNone(run_sync(self.engine(), sessions.find_session, b"t" * 32, "web",
                                   write=False))
        stored = self.user("bob@example.com").password_hash
        self.assertNotEqual(stored, old)
        self.assertTrue(verify_password(NEW_PASSWORD, stored))
        self.assertFalse(verify_password(PASSWORD, stored))

    def test_user_passwd_in_a_terminal_asks_twice(self) -> None:
        self.ok("user", "add", "bob@example.com", "--password-stdin", stdin=PASSWORD)
        prompt = FakeGetpass(NEW_PASSWORD, NEW_PASSWORD)
        self.patch(getpass, "getpass", prompt)
        self.ok("user", "passwd", "bob@example.com", stdin=TTYInput())
        self.assertEqual(len(prompt.prompts), 2)
        self.assertTrue(verify_password(NEW_PASSWORD, self.user("bob@example.com").password_hash))

    def test_user_disable_then_enable(self) -> None:
        self.ok("user", "add", "bob@example.com", "--password-stdin", stdin=PASSWORD)
        self.assertEqual(self.ok("user", "disable", "bob@example.com"),
                         "disabled user bob@example.com\n")
        self.assertFalse(self.user("bob@example.com").enabled)
        self.assertEqual(self.ok("user", "enable", "bob@example.com"),
                         "enabled user bob@example.com\n")
        self.assertTrue(self.user("bob@example.com").enabled)

    def test_user_quota_sets_and_clears_the_quota(self) -> None:
        self.ok("user", "add", "bob@example.com", "--password-stdin", stdin=PASSWORD)
        self.assertEqual(self.ok("user", "quota", "bob@example.com", "500M"),
                         f"quota of bob@example.com is now {500 * 1024 ** 2} bytes\n")
        self.assertEqual(self.user("bob@example.com").quota_bytes, 500 * 1024 ** 2)
        self.assertEqual(self.ok("user", "quota", "bob@example.com", "0"),
                         "quota of bob@example.com is now unlimited\n")
        self.assertEqual(self.user("bob@example.com").quota_bytes, 0)

    def test_user_delete_with_yes_removes_the_user(self) -> None:
        self.ok("user", "add", "bob@example.com", "--password-stdin", stdin=PASSWORD)
        self.ok("user", "add", "carol@example.com", "--password-stdin", stdin=PASSWORD)
        self.assertIn("deleted user bob@example.com",
                      self.ok("user", "delete", "bob@example.com", "--yes"))
        self.assertEqual([u.email for u in self.snapshot()[1]], ["carol@example.com"])


class SecondFactorCLITests(CLITestCase):
    """``user mfa-reset`` and ``user app-password add|list|revoke`` (rules: mailgosend.admin)."""

    def test_app_password_add_shows_it_once_and_stores_only_a_hash(self) -> None:
        self.populate()
        out = self.ok("user", "app-password", "add", "carol@example.com", "phone",
                      "--protocols", "imap,smtp")
        shown = re.search(r"\(imap, submission\): ([a-z2-9]{4}(?:-[a-z2-9]{4}){4})$",
                          out.splitlines()[0])
        self.assertIsNotNone(shown, out)
        assert shown is not None
        listed = self.ok("user", "app-password", "list", "carol@example.com")
        self.assertRegex(listed, rf"^phone\t{shown.group(1)[:4]}-...\timap,submission\t"
                                 r"created \d{4}-\d\d-\d\d \d\d:\d\d UTC\tnever used\n$")
        self.assertNotIn(shown.group(1)[5:], listed)
        rows = run_sync(self.engine(), lambda c: c.exec_driver_sql(
            "SELECT password_hash FROM app_passwords").all(), write=False)
        self.assertTrue(verify_password(shown.group(1).replace("-", ""), rows[0][0]))

    def test_app_password_revoke_then_list_is_empty(self) -> None:
        self.populate()
        self.ok("user", "app-password", "add", "carol@example.com", "phone",
                "--protocols", "pop3")
        self.assertEqual(self.ok("user", "app-password", "revoke", "carol@example.com",
                                 "phone"), "revoked app password 'phone' of carol@example.com\n")
        self.assertEqual(self.ok("user", "app-password", "list", "carol@example.com"),
                         "no app passwords\n")

    def test_app_password_refusals_name_the_problem(self) -> None:
        self.populate()
        for argv, why in [
            (("add", "carol@example.com", "phone", "--protocols", "web"),
             "unknown protocol 'web'"),
            (("add", "nobody@example.com", "phone", "--protocols", "imap"),
             "unknown user nobody@example.com"),
            (("revoke", "carol@example.com", "tablet"), "no app password named 'tablet'"),
        ]:
            with self.subTest(argv):
                status, out, err = self.run_cli("user", "app-password", *argv)
                self.assertEqual((status, out), (2, ""))
                self.assertIn(why, err)
        self.ok("user", "app-password", "add", "carol@example.com", "phone", "--protocols",
                "imap")
        status, _, err = self.run_cli("user", "app-password", "add", "carol@example.com",
                                      "phone", "--protocols", "imap")
        self.assertEqual(status, 2)
        self.assertIn("already exists", err)

    def test_mfa_reset_turns_it_off(self) -> None:
        from mailgosend.store import mfa

        self.populate()
        self.assertEqual(self.ok("user", "mfa-reset", "carol@example.com"),
                         "carol@example.com had no two-factor authentication; nothing "
                         "changed\n")
        carol = self.user("carol@example.com")
        engine = self.engine()
        run_sync(engine, mfa.begin_enrolment, carol.id, b"sealed", write=True)
        run_sync(engine, mfa.enable, carol.id, cli_now(), [b"h" * 32], write=True)
        self.assertEqual(self.ok("user", "mfa-reset", "carol@example.com"),
                         "two-factor authentication of carol@example.com is now off\n")
        state = run_sync(engine, mfa.state, carol.id, write=False)
        self.assertEqual((state.enabled, state.sealed_secret), (False, None))
        self.assertEqual(run_sync(engine, mfa.recovery_left, carol.id, write=False), 0)


def cli_now() -> Any:
    from mailgosend.cli.context import now

    return now()


class AliasTests(CLITestCase):
    def setUp(self) -> None:
        super().setUp()
        self.ok("domain", "add", "example.com")
        self.ok("user", "add", "bob@example.com", "--password-stdin", stdin=PASSWORD)

    def test_alias_add_to_a_local_user_then_list(self) -> None:
        self.assertEqual(self.ok("alias", "add", "Info@Example.com", "bob@example.com"),
                         "added alias info@example.com -> bob@example.com\n")
        self.assertEqual(self.ok("alias", "list"), "info@example.com\tbob@example.com\n")

    def test_catch_all_alias_for_a_domain(self) -> None:
        self.assertEqual(self.ok("alias", "add", "@example.com", "bob@example.com"),
                         "added catch-all @example.com -> bob@example.com\n")
        self.assertEqual([(a.source, a.destination) for a in self.snapshot()[2]],
                         [("@example.com", "bob@example.com")])

    def test_alias_to_a_remote_address_is_accepted(self) -> None:
        self.ok("alias", "add", "ext@example.com", "someone@elsewhere.example")
        self.assertEqual([(a.source, a.destination) for a in self.snapshot()[2]],
                         [("ext@example.com", "someone@elsewhere.example")])

    def test_alias_list_when_empty_says_no_aliases(self) -> None:
        self.assertEqual(self.ok("alias", "list"), "no aliases\n")

    def test_alias_remove_one_destination(self) -> None:
        self.ok("alias", "add", "team@example.com", "bob@example.com")
        self.ok("alias", "add", "team@example.com", "someone@elsewhere.example")
        self.assertEqual(self.ok("alias", "remove", "team@example.com", "bob@example.com"),
                         "removed 1 alias destination(s) of team@example.com\n")
        self.assertEqual([a.destination for a in self.snapshot()[2]],
                         ["someone@elsewhere.example"])

    def test_alias_remove_every_destination(self) -> None:
        self.ok("alias", "add", "team@example.com", "bob@example.com")
        self.ok("alias", "add", "team@example.com", "someone@elsewhere.example")
        self.assertEqual(self.ok("alias", "remove", "team@example.com"),
                         "removed 2 alias destination(s) of team@example.com\n")
        self.assertEqual(self.snapshot()[2], [])


class CreateAdminTests(CLITestCase):
    def test_create_admin_creates_the_domain_and_an_admin_user(self) -> None:
        self.assertEqual(self.ok("create-admin", "root@new.example", "--password-stdin",
                                 stdin=PASSWORD),
                         "added admin user root@new.example\n")
        domains, users, _ = self.snapshot()
        self.assertEqual([d.name for d in domains], ["new.example"])
        self.assertEqual([(u.email, u.is_admin) for u in users], [("root@new.example", True)])
        self.assertTrue(verify_password(PASSWORD, users[0].password_hash))

    def test_create_admin_in_an_existing_domain_keeps_the_domain(self) -> None:
        self.ok("domain", "add", "example.com")
        self.ok("create-admin", "root@example.com", "--password-stdin", stdin=PASSWORD)
        domains, users, _ = self.snapshot()
        self.assertEqual(([d.name for d in domains], [u.is_admin for u in users]),
                         (["example.com"], [True]))

    def test_create_admin_with_weak_password_creates_no_domain(self) -> None:
        status, out, err = self.run_cli("create-admin", "root@new.example", "--password-stdin",
                                        stdin=WEAK_PASSWORD)
        self.assertEqual((status, out), (2, ""))
        self.assertIn("password refused", err)
        self.assertEqual(self.snapshot(), ([], [], []))


class MigrateAndConfigTests(CLITestCase):
    def test_migrate_prints_the_head_revision(self) -> None:
        self.assertEqual(self.ok("migrate"), f"database is at revision {head_revision()}\n")

    def test_config_check_reports_ok_on_a_good_file(self) -> None:
        self.assertEqual(self.ok("config", "check"), f"{self.config_path}: OK\n")

    def test_config_check_names_the_bad_key_and_exits_2(self) -> None:
        self.set_config(SMTP_PORT="70000")
        status, out, err = self.run_cli("config", "check")
        self.assertEqual((status, out), (2, ""))
        self.assertIn("SMTP_PORT", err)
        self.assertIn("'70000'", err)
        self.assertIn(self.config_path, err)

    def test_config_check_warns_about_a_readable_file(self) -> None:
        os.chmod(self.config_path, 0o644)
        out = self.ok("config", "check")
        self.assertIn(f"warning: {self.config_path} is readable by other users", out)
        self.assertTrue(out.endswith(": OK\n"))

    def test_config_check_does_not_create_a_missing_file(self) -> None:
        os.remove(self.config_path)
        status, out, err = self.run_cli("config", "check")
        self.assertEqual((status, out), (2, ""))
        self.assertIn("no such file", err)
        self.assertFalse(os.path.exists(self.config_path))

    def test_config_init_creates_a_private_file_with_the_chosen_profile(self) -> None:
        os.remove(self.config_path)
        status, out, err = self.run_cli("config", "init", "--profile", "local")
        self.assertEqual(status, 0)
        self.assertIn("profile local", out)
        # The operator is told once that a new ENCRYPTION_KEY must be backed up, and where.
        self.assertIn("NEW ENCRYPTION_KEY", err)
        self.assertIn(self.config_path, err)
        self.assertEqual(self.ok("config", "check").count("ENCRYPTION_KEY"), 0)
        self.assertEqual(stat.S_IMODE(os.stat(self.config_path).st_mode), 0o600)
        config = load(self.config_path, create=False, environ={})
        self.assertEqual((config["PROFILE"], config["SMTP_PORT"]), ("local", 10025))

    def test_unknown_mailgo_variable_is_warned_about_with_a_suggestion(self) -> None:
        os.environ["MAILGO_DEFAULT_DOMIAN"] = "example.org"
        self.addCleanup(os.environ.pop, "MAILGO_DEFAULT_DOMIAN")
        status, out, err = self.run_cli("domain", "list")
        self.assertEqual(status, 0)
        self.assertIn("warning: environment MAILGO_DEFAULT_DOMIAN: unknown key", err)
        self.assertIn("(did you mean DEFAULT_DOMAIN?)", err)

    def test_user_list_loads_only_what_it_uses(self) -> None:
        # Start-up time of a command is its imports: no Twisted, no Alembic (the database is
        # current), none of the protocol packages.  (A check of what is loaded, not of time.)
        self.ok("user", "list")                              # migrates the new database
        code = ("import sys; from mailgosend import cli; "
                f"status = cli.main(['--config', {self.config_path!r}, 'user', 'list']); "
                "heavy = ('twisted', 'alembic', 'mailgosend.service', 'mailgosend.smtp', "
                "'mailgosend.imap', 'mailgosend.store.dkimkeys', 'mailgosend.store.queue'); "
                "print(status, sorted({m.split('.')[0] if m.split('.')[0] != 'mailgosend' "
                "else '.'.join(m.split('.')[:3]) for m in sys.modules "
                "if m.startswith(heavy)}))")
        repo = os.path.dirname(os.path.dirname(os.path.abspath(mailgosend.__file__)))
        env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=60)
        self.assertEqual(done.stdout.strip().splitlines()[-1], "0 []", done.stdout + done.stderr)

    def test_config_init_refuses_to_overwrite_an_existing_file(self) -> None:
        with open(self.config_path, "rb") as handle:
            before = handle.read()
        status, out, err = self.run_cli("config", "init")
        self.assertEqual((status, out), (2, ""))
        self.assertIn(self.config_path, err)
        self.assertIn("already exists", err)
        with open(self.config_path, "rb") as handle:
            self.assertEqual(handle.read(), before)

    def test_bad_configuration_stops_other_commands_with_status_2(self) -> None:
        self.set_config(HOSTNAME="bad host!")
        status, out, err = self.run_cli("domain", "list")
        self.assertEqual((status, out), (2, ""))
        self.assertIn("HOSTNAME", err)


class RefusalTests(CLITestCase):
    """Each refused command: status 2, the value named on stderr, nothing printed or stored."""

    def setUp(self) -> None:
        super().setUp()
        self.populate()

    def test_refused_commands_name_the_value_and_change_nothing(self) -> None:
        cases = [
            # argv, stdin, fragments of the error message
            (("domain", "add", "not a domain"), "", ("'not a domain'",)),
            (("domain", "add", "example.com"), "", ("example.com", "already exists")),
            (("domain", "add", "EXAMPLE.com."), "", ("example.com", "already exists")),
            (("domain", "remove", "example.com"), "", ("example.com", "still has 2 user(s)")),
            (("domain", "remove", "nowhere.example"), "", ("unknown domain nowhere.example",)),
            (("domain", "disable", "nowhere.example"), "", ("unknown domain nowhere.example",)),
            (("user", "add", "notanaddress", "--password-stdin"), PASSWORD, ("'notanaddress'",)),
            (("user", "add", "a@b@example.com", "--password-stdin"), PASSWORD,
             ("'a@b@example.com'",)),
            (("user", "add", "dan@nowhere.example", "--password-stdin"), PASSWORD,
             ("unknown domain nowhere.example",)),
            (("user", "add", "Bob@example.com", "--password-stdin"), PASSWORD,
             ("bob@example.com", "already exists")),
            (("user", "add", "info@example.com", "--password-stdin"), PASSWORD,
             ("info@example.com", "alias")),
            (("user", "add", "dan@example.com", "--password-stdin"), "\n",
             ("password refused", "empty")),
            (("user", "add", "dan@example.com", "--password-stdin"), WEAK_PASSWORD,
             ("password refused", "at least 8")),
            (("user", "add", "dan@example.com", "--password-stdin"), "password123",
             ("password refused", "commonly used")),
            (("user", "add", "dan@example.com", "--password-stdin"), "dan@example.com",
             ("password refused", "email address")),
            (("user", "add", "dan@example.com"), "", ("no password given", "--password-stdin")),
            (("user", "passwd", "nobody@example.com", "--password-stdin"), NEW_PASSWORD,
             ("unknown user nobody@example.com",)),
            (("user", "passwd", "bob@example.com", "--password-stdin"), WEAK_PASSWORD,
             ("password refused",)),
            (("user", "passwd", "bob@example.com"), "", ("no password given",)),
            (("user", "enable", "nobody@example.com"), "", ("unknown user nobody@example.com",)),
            (("user", "quota", "nobody@example.com", "1G"), "", ("nobody@example.com",)),
            (("user", "delete", "bob@example.com"), "", ("bob@example.com", "--yes")),
            (("user", "delete", "nobody@example.com", "--yes"), "", ("nobody@example.com",)),
            (("alias", "add", "x@example.com", "nobody@example.com"), "",
             ("nobody@example.com", "neither a user nor an alias")),
            (("alias", "add", "bob@example.com", "someone@elsewhere.example"), "",
             ("bob@example.com is a user",)),
            (("alias", "add", "x@nowhere.example", "bob@example.com"), "",
             ("unknown domain nowhere.example",)),
            (("alias", "add", "x@example.com", "x@example.com"), "", ("x@example.com", "itself")),
            (("alias", "add", "info@example.com", "bob@example.com"), "",
             ("info@example.com -> bob@example.com already exists",)),
            (("alias", "add", "x@example.com", "not-an-address"), "", ("'not-an-address'",)),
            (("alias", "remove", "none@example.com"), "", ("no alias none@example.com",)),
            (("create-admin", "bob@example.com", "--password-stdin"), PASSWORD,
             ("bob@example.com", "already exists")),
            (("create-admin", "root@bad_domain", "--password-stdin"), PASSWORD,
             ("'root@bad_domain'",)),
            (("config", "init"), "", (self.config_path, "already exists")),
        ]
        before = self.snapshot()
        for argv, stdin, fragments in cases:
            status, out, err = self.run_cli(*argv, stdin=stdin)
            self.assertEqual((status, out), (2, ""), f"{argv}: {err}")
            self.assertTrue(err.startswith("mailgosend: "), f"{argv}: {err}")
            for fragment in fragments:
                self.assertIn(fragment, err, argv)
            # One sentence: no full stop or capital in the middle ("...long.; nothing").
            self.assertNotRegex(err, r"\.;|: The ", argv)
            self.assertEqual(self.snapshot(), before, f"{argv} changed the database")

    def test_refused_password_change_keeps_the_old_hash(self) -> None:
        old = self.user("bob@example.com").password_hash
        self.patch(getpass, "getpass", FakeGetpass(NEW_PASSWORD, PASSWORD))
        status, _, err = self.run_cli("user", "passwd", "bob@example.com", stdin=TTYInput())
        self.assertEqual(status, 2, err)
        self.assertEqual(self.user("bob@example.com").password_hash, old)

    def test_passwords_are_never_echoed(self) -> None:
        # run_cli checks every command; this one gathers the paths that handle a password.
        outputs = []
        for argv, stdin in [
            (("user", "add", "eve@example.com", "--password-stdin"), "another good passphrase"),
            (("user", "passwd", "eve@example.com", "--password-stdin"), "a different one!"),
            (("user", "add", "fay@example.com", "--password-stdin"), WEAK_PASSWORD),
            (("create-admin", "root@other.example", "--password-stdin"), NEW_PASSWORD),
            (("user", "list"), ""),
        ]:
            outputs.append(self.run_cli(*argv, stdin=stdin))
        self.patch(getpass, "getpass", FakeGetpass(PASSWORD, NEW_PASSWORD))
        outputs.append(self.run_cli("user", "add", "gus@example.com", stdin=TTYInput()))
        text = "".join(out + err for _, out, err in outputs)
        self.assertEqual([status for status, _, _ in outputs], [0, 0, 2, 0, 0, 2])
        for password in PASSWORDS:
            self.assertNotIn(password, text)


class ArgumentErrorTests(CLITestCase):
    CASES = [
        # argv, fragment of argparse's message
        (("frobnicate",), "'frobnicate'"),
        (("domain", "frobnicate", "example.com"), "'frobnicate'"),
        (("user", "rename", "bob@example.com"), "'rename'"),
        (("domain", "add"), "domain"),
        (("user", "add", "bob@example.com", "--quota", "lots"), "'lots'"),
        (("user", "quota", "bob@example.com", "-5"), "quota"),
        ((), "COMMAND"),
    ]

    def setUp(self) -> None:
        super().setUp()
        self.ok("domain", "add", "example.com")
        # argparse may fall back to the process's stderr; keep it out of the test output.
        self.process_stderr = io.StringIO()
        self.patch(sys, "stderr", self.process_stderr)

    def test_unknown_commands_and_bad_arguments_exit_2_and_change_nothing(self) -> None:
        before = self.snapshot()
        for argv, _ in self.CASES:
            status, out, _ = self.run_cli(*argv, stdin=PASSWORD)
            self.assertEqual((status, out), (2, ""), argv)
            self.assertEqual(self.snapshot(), before, argv)

    def test_argument_errors_are_written_to_the_stderr_given_to_main(self) -> None:
        for argv, fragment in self.CASES:
            _, _, err = self.run_cli(*argv, stdin=PASSWORD)
            self.assertIn(fragment, err, argv)
            self.assertIn("mailgosend: ", err, argv)


class ConsoleEntryTests(SynchronousTestCase):
    def test_console_entry_exits_2_naming_an_unknown_command(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        source_root = os.path.dirname(os.path.dirname(os.path.abspath(mailgosend.__file__)))
        env = dict(os.environ, PYTHONPATH=source_root)
        env.pop("MAILGO_CONFIG", None)
        result = subprocess.run(
            [sys.executable, "-c", "from mailgosend.cli import run; run()", "frobnicate"],
            cwd=directory, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=120)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("mailgosend: argument COMMAND: invalid choice: 'frobnicate'", result.stderr)
        self.assertEqual(result.stdout, "")
        self.assertEqual(os.listdir(directory), [], "nothing may be written")
