"""Tests for mailgosend.config: first-run generation, appending missing keys,
profiles, MAILGO_<KEY> overrides, aliases, validation messages, paths and
immutability of the loaded Config."""

from __future__ import annotations

import dataclasses
import os
import re
import stat

from twisted.trial.unittest import SynchronousTestCase

from mailgosend import config_keys as K
from mailgosend.config import (
    Config,
    ConfigError,
    load,
    new_file_notice,
    parse_bool,
    parse_hostname,
    parse_hostport,
    parse_size,
    render_file,
    settings_origin,
)

CONF = "app_config.conf"
HEX64 = re.compile(r"[0-9a-f]{64}")


def _line_re(key: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(key)} = (.*)$", re.MULTILINE)


def _value_in(text: str, key: str) -> str:
    matches = _line_re(key).findall(text)
    assert len(matches) == 1, f"{key} appears {len(matches)} times"
    return matches[0]


def _set(text: str, key: str, value: str) -> str:
    """Replace the one ``KEY = ...`` line of a generated file."""
    new, count = _line_re(key).subn(lambda _: f"{key} = {value}", text)
    assert count == 1, f"{key} appears {count} times"
    return new


def _drop(text: str, key: str) -> str:
    new, count = re.subn(rf"^{re.escape(key)} = .*\n", "", text, flags=re.MULTILINE)
    assert count == 1, f"{key} appears {count} times"
    return new


def _line_number(text: str, startswith: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith(startswith):
            return number
    raise AssertionError(f"no line starts with {startswith!r}")


class _ConfigTestCase(SynchronousTestCase):
    def new_dir(self) -> str:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        return directory

    def generate(self, profile: str | None = None) -> str:
        """Path of a freshly generated file in its own directory."""
        path = os.path.join(self.new_dir(), CONF)
        load(path, profile=profile, environ={})
        return path

    def read(self, path: str) -> str:
        with open(path, encoding="utf-8") as handle:
            return handle.read()

    def write(self, path: str, text: str) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)

    def edit(self, path: str, **values: str) -> str:
        """Set keys of a generated file; returns the new text."""
        text = self.read(path)
        for key, value in values.items():
            text = _set(text, key, value)
        self.write(path, text)
        return text

    def problems(self, path: str, environ: dict[str, str] | None = None) -> list[str]:
        error = self.assertRaises(ConfigError, load, path, environ=environ or {})
        return error.problems

    def readable_file(self, name: str = "file.pem") -> str:
        path = os.path.join(self.new_dir(), name)
        self.write(path, "-----BEGIN CERTIFICATE-----\n")
        return path


class GenerationTests(_ConfigTestCase):
    def test_new_file_is_created_with_mode_0600(self) -> None:
        path = self.generate()
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_new_file_loads_without_warnings(self) -> None:
        path = os.path.join(self.new_dir(), CONF)
        config = load(path, environ={})
        self.assertEqual(config.warnings, ())
        self.assertEqual(config.appended, ())

    def test_first_load_says_a_new_encryption_key_was_written_and_where(self) -> None:
        path = os.path.join(self.new_dir(), CONF)
        config = load(path, profile="local", environ={})
        self.assertTrue(config.created)
        notice = new_file_notice(config)
        for needle in ("ENCRYPTION_KEY", path, "safe", "profile local"):
            self.assertIn(needle, notice)
        self.assertNotIn(config["ENCRYPTION_KEY"].hex(), notice)
        self.assertFalse(load(path, environ={}).created)
        self.assertTrue(config.replace(LOG_LEVEL="debug").created)

    def test_new_files_get_different_random_64_hex_secrets(self) -> None:
        first, second = self.read(self.generate()), self.read(self.generate())
        secrets = []
        for text in (first, second):
            for key in ("ENCRYPTION_KEY", "SESSION_SECRET"):
                value = _value_in(text, key)
                self.assertTrue(HEX64.fullmatch(value), f"{key} = {value!r}")
                secrets.append(value)
        self.assertEqual(len(set(secrets)), 4, "every generated secret must be distinct")

    def test_generated_secrets_are_the_loaded_ones(self) -> None:
        path = self.generate()
        text = self.read(path)
        config = load(path, environ={})
        self.assertEqual(config["ENCRYPTION_KEY"], bytes.fromhex(_value_in(text, "ENCRYPTION_KEY")))
        self.assertEqual(config["SESSION_SECRET"], bytes.fromhex(_value_in(text, "SESSION_SECRET")))

    def test_every_key_is_written_once_after_a_comment(self) -> None:
        lines = self.read(self.generate()).splitlines()
        missing, uncommented = [], []
        for key in K.KEYS:
            where = [i for i, line in enumerate(lines) if line.startswith(f"{key.name} = ")]
            if len(where) != 1:
                missing.append(key.name)
            elif not lines[where[0] - 1].startswith("#"):
                uncommented.append(key.name)
        self.assertEqual((missing, uncommented), ([], []))

    def test_every_non_secret_key_is_written_with_its_standard_default(self) -> None:
        text = self.read(self.generate())
        wrong = {key.name: _value_in(text, key.name) for key in K.KEYS
                 if key.generate is None and _value_in(text, key.name) != key.default}
        self.assertEqual(wrong, {})

    def test_second_load_leaves_the_file_byte_identical(self) -> None:
        path = self.generate()
        with open(path, "rb") as handle:
            before = handle.read()
        config = load(path, environ={})
        with open(path, "rb") as handle:
            self.assertEqual(handle.read(), before)
        self.assertEqual(config.appended, ())

    def test_removed_key_is_appended_and_user_lines_are_untouched(self) -> None:
        path = self.generate()
        text = _drop(self.read(path), "SMTP_PORT")
        text = _set(text, "HOSTNAME", "mx.mine.example")
        text = "# my own note, keep me\n" + text + "# trailing note\n"
        self.write(path, text)
        load(path, environ={})
        after = self.read(path)
        self.assertTrue(after.startswith(text), "the user's lines must stay as they were")
        tail = after[len(text):]
        self.assertEqual(re.findall(r"^([A-Z_0-9]+) = (.*)$", tail, re.MULTILINE),
                         [("SMTP_PORT", "25")])
        self.assertIn("#", tail.split("SMTP_PORT = ")[0], "the appended key has its comment")

    def test_removed_key_is_reported_in_appended_and_other_values_kept(self) -> None:
        path = self.generate()
        self.write(path, _set(_drop(self.read(path), "SMTP_PORT"), "HOSTNAME", "mx.mine.example"))
        config = load(path, environ={})
        self.assertEqual(config.appended, ("SMTP_PORT",))
        self.assertEqual(config["SMTP_PORT"], 25)
        self.assertEqual(config["HOSTNAME"], "mx.mine.example")

    def test_appending_to_a_file_without_final_newline_keeps_the_last_line(self) -> None:
        path = self.generate()
        text = _drop(self.read(path), "SMTP_PORT")
        text = _drop(text, "LOG_FILE") + "LOG_FILE = mail.log"
        self.write(path, text)
        config = load(path, environ={})
        self.assertEqual(config.appended, ("SMTP_PORT",))
        self.assertEqual(config["LOG_FILE"], os.path.join(os.path.dirname(path), "mail.log"))

    def test_removed_encryption_key_is_replaced_by_a_new_random_one(self) -> None:
        path = self.generate()
        text = self.read(path)
        old = _value_in(text, "ENCRYPTION_KEY")
        self.write(path, _drop(text, "ENCRYPTION_KEY"))
        config = load(path, environ={})
        new = _value_in(self.read(path), "ENCRYPTION_KEY")
        self.assertEqual(config.appended, ("ENCRYPTION_KEY",))
        self.assertTrue(HEX64.fullmatch(new))
        self.assertNotEqual(new, old)
        self.assertEqual(config["ENCRYPTION_KEY"], bytes.fromhex(new))

    def test_missing_file_is_not_created_when_create_is_false(self) -> None:
        path = os.path.join(self.new_dir(), CONF)
        error = self.assertRaises(ConfigError, load, path, create=False, environ={})
        self.assertIn(path, error.problems[0])
        self.assertFalse(os.path.exists(path))

    def test_missing_key_is_not_appended_when_create_is_false(self) -> None:
        path = self.generate()
        text = _drop(self.read(path), "SMTP_PORT")
        self.write(path, text)
        config = load(path, create=False, environ={})
        self.assertEqual((config.appended, self.read(path)), ((), text))
        self.assertEqual(config["SMTP_PORT"], 25)

    def test_group_readable_file_loads_with_a_chmod_warning(self) -> None:
        path = self.generate()
        os.chmod(path, 0o640)
        config = load(path, environ={})
        self.assertEqual(len(config.warnings), 1)
        self.assertIn(f"chmod 600 {path}", config.warnings[0])


class ProfileTests(_ConfigTestCase):
    def test_local_profile_binds_to_loopback(self) -> None:
        path = self.generate("local")
        self.assertEqual(_value_in(self.read(path), "BIND_ADDRESS"), "127.0.0.1")
        config = load(path, environ={})
        for name, *_ in K.SERVICES:
            self.assertEqual(config.listener(name).bind, "127.0.0.1", name)

    def test_local_profile_moves_every_privileged_listener_port(self) -> None:
        path = self.generate("local")
        text = self.read(path)
        config = load(path, environ={})
        for name, standard, local, _ in K.SERVICES:
            self.assertEqual(_value_in(text, f"{name}_PORT"), str(local), name)
            self.assertEqual(config[f"{name}_PORT"], local, name)
            self.assertGreaterEqual(config[f"{name}_PORT"], 1024, name)
            if standard >= 1024:
                self.assertEqual(local, standard, f"{name}: unprivileged ports stay")

    def test_local_profile_is_recorded_in_the_file(self) -> None:
        path = self.generate("local")
        self.assertEqual(_value_in(self.read(path), "PROFILE"), "local")
        self.assertEqual(load(path, environ={}).profile, "local")

    def test_standard_profile_is_recorded_in_the_file(self) -> None:
        path = self.generate()
        self.assertEqual(_value_in(self.read(path), "PROFILE"), "standard")
        self.assertEqual(load(path, environ={}).profile, "standard")

    def test_keys_appended_to_a_local_file_get_local_defaults(self) -> None:
        path = self.generate("local")
        text = _drop(_drop(_drop(self.read(path), "SMTP_PORT"), "BIND_ADDRESS"), "HOSTNAME")
        self.write(path, text)
        config = load(path, environ={})
        tail = self.read(path)[len(text):]
        self.assertEqual(sorted(re.findall(r"^([A-Z_]+) = (.*)$", tail, re.MULTILINE)),
                         [("BIND_ADDRESS", "127.0.0.1"), ("HOSTNAME", "localhost"),
                          ("SMTP_PORT", "10025")])
        self.assertEqual(config["SMTP_PORT"], 10025)

    def test_existing_file_keeps_its_profile_whatever_profile_is_asked(self) -> None:
        path = self.generate("local")
        self.write(path, _drop(self.read(path), "SMTP_PORT"))
        config = load(path, profile="standard", environ={})
        self.assertEqual((config.profile, config["SMTP_PORT"]), ("local", 10025))

    def test_profile_asked_for_a_file_of_another_profile_is_reported_with_the_way_out(
            self) -> None:
        path = self.generate()
        config = load(path, profile="local", environ={})
        self.assertEqual((config.profile, config["SMTP_PORT"]), ("standard", 25))
        self.assertEqual(len(config.warnings), 1)
        warning = config.warnings[0]
        for needle in ("--profile local is ignored", path, "PROFILE = standard",
                       "SMTP_PORT = 10025", "BIND_ADDRESS = 127.0.0.1", "PROFILE = local"):
            self.assertIn(needle, warning)

    def test_profile_asked_for_a_file_of_that_profile_is_not_reported(self) -> None:
        path = self.generate("local")
        self.assertEqual(load(path, profile="local", environ={}).warnings, ())
        self.assertEqual(load(path, environ={}).warnings, ())

    def test_mailgo_profile_chooses_the_profile_of_a_new_file(self) -> None:
        path = os.path.join(self.new_dir(), CONF)
        config = load(path, environ={"MAILGO_PROFILE": "local"})
        self.assertEqual((config.profile, config["SMTP_PORT"]), ("local", 10025))
        self.assertEqual(_value_in(self.read(path), "SMTP_PORT"), "10025")

    def test_settings_origin_names_the_file_and_its_profile(self) -> None:
        path = self.generate()
        origin = settings_origin(load(path, environ={}))
        self.assertIn(path, origin)
        self.assertIn("PROFILE = standard", origin)
        self.assertIn("--profile", origin)

    def test_unknown_profile_is_refused_with_the_choices(self) -> None:
        path = os.path.join(self.new_dir(), CONF)
        error = self.assertRaises(ConfigError, load, path, profile="cloud", environ={})
        self.assertIn("'cloud'", error.problems[0])
        self.assertIn("standard, local", error.problems[0])
        self.assertFalse(os.path.exists(path))

    def test_render_file_for_local_profile_writes_local_values(self) -> None:
        text = render_file("local")
        self.assertEqual(_value_in(text, "PROFILE"), "local")
        self.assertEqual(_value_in(text, "SMTP_PORT"), "10025")
        self.assertIn("(profile: local)", text.splitlines()[0])


class EnvironmentTests(_ConfigTestCase):
    CASES = [
        # variable, value, key, typed value
        ("MAILGO_SMTP_PORT", "2626", "SMTP_PORT", 2626),
        ("MAILGO_HOSTNAME", "MX.Env.Example.", "HOSTNAME", "mx.env.example"),
        ("MAILGO_SMTP_ENABLED", "off", "SMTP_ENABLED", False),
        ("MAILGO_SUBMISSION_PORT", "2588", "SUBMIT_PORT", 2588),
        ("MAILGO_DOMAIN_DEFAULT", "env.example", "DEFAULT_DOMAIN", "env.example"),
        ("MAILGO_QUEUE_RETRY_MIN", "1,2", "QUEUE_RETRY_MINS", (1, 2)),
    ]

    def test_environment_overrides_a_key_or_its_alias(self) -> None:
        path = self.generate()
        for variable, value, key, expected in self.CASES:
            config = load(path, environ={variable: value})
            self.assertEqual(config[key], expected, variable)

    def test_environment_values_are_not_written_to_the_file(self) -> None:
        path = self.generate()
        before = self.read(path)
        load(path, environ={variable: value for variable, value, _, _ in self.CASES})
        self.assertEqual(self.read(path), before)

    def test_key_missing_from_the_file_is_appended_with_its_default_not_the_environment(
            self) -> None:
        path = self.generate()
        self.write(path, _drop(self.read(path), "SMTP_PORT"))
        config = load(path, environ={"MAILGO_SMTP_PORT": "2626"})
        self.assertEqual(config["SMTP_PORT"], 2626)
        self.assertEqual(_value_in(self.read(path), "SMTP_PORT"), "25")

    def test_secret_given_by_the_environment_is_neither_generated_nor_written(self) -> None:
        path = self.generate()
        text = _drop(self.read(path), "ENCRYPTION_KEY")
        self.write(path, text)
        secret = "ab" * 32
        config = load(path, environ={"MAILGO_ENCRYPTION_KEY": secret})
        self.assertEqual(config["ENCRYPTION_KEY"], bytes.fromhex(secret))
        self.assertEqual((config.appended, self.read(path)), ((), text))

    def test_unknown_environment_variable_is_reported_with_a_suggestion(self) -> None:
        path = self.generate()
        config = load(path, environ={"MAILGO_SMTP_PROT": "2525", "MAILGO_smtp_port": "2526"})
        self.assertEqual(config["SMTP_PORT"], 25)
        self.assertEqual(len(config.warnings), 2, config.warnings)
        for warning, name in zip(config.warnings, ("MAILGO_SMTP_PROT", "MAILGO_smtp_port")):
            self.assertIn(f"environment {name}: unknown key", warning)
            self.assertIn("(did you mean SMTP_PORT?)", warning)
            self.assertIn("ignored", warning)

    def test_environment_variables_that_are_not_keys_are_not_reported(self) -> None:
        path = self.generate()
        config = load(path, environ={"MAILGO_CONFIG": path, "MAILGO_TEST_PG_DSN": "x",
                                     "HOME": "/root", "MAILGO_SMTP_PORT": "2525"})
        self.assertEqual(config.warnings, ())

    def test_seed_spellings_are_accepted_in_the_environment(self) -> None:
        path = self.generate()
        config = load(path, environ={"MAILGO_WEBCLIENT_PORT": "8090",
                                     "MAILGO_WEBADMIN_IFACE": "127.0.0.2",
                                     "MAILGO_SPAM_DNSBL": "bl.example"})
        self.assertEqual((config["WEB_PORT"], config["ADMIN_BIND"], config["DNSBL_ZONES"]),
                         (8090, "127.0.0.2", ("bl.example",)))
        self.assertEqual(config.warnings, ())

    def test_bad_environment_value_names_the_variable_and_the_value(self) -> None:
        path = self.generate()
        problems = self.problems(path, {"MAILGO_SMTP_PORT": "70000"})
        self.assertEqual(len(problems), 1)
        for fragment in ("environment", "MAILGO_SMTP_PORT", "'70000'", "0 to 65535"):
            self.assertIn(fragment, problems[0])

    def test_bad_environment_secret_is_not_echoed(self) -> None:
        path = self.generate()
        problems = self.problems(path, {"MAILGO_SESSION_SECRET": "q" * 64})
        self.assertIn("SESSION_SECRET", problems[0])
        self.assertNotIn("qqqq", "\n".join(problems))


class AliasTests(_ConfigTestCase):
    def test_alias_in_the_file_sets_its_key(self) -> None:
        cert, key = self.readable_file("cert.pem"), self.readable_file("key.pem")
        cases = [
            # alias line, canonical key it replaces, extra settings, typed value
            ("SUBMISSION_PORT = 2000", "SUBMIT_PORT", {}, 2000),
            ("DOMAIN_DEFAULT = Other.Example", "DEFAULT_DOMAIN", {}, "other.example"),
            ("TLS_MODE = manual", "TLS_MODE", {"TLS_CERT": cert, "TLS_KEY": key}, "file"),
            ("QUEUE_MAX_AGE_H = 48", "QUEUE_MAX_AGE_HOURS", {}, 48.0),
            ("QUEUE_RETRY_MIN = 1,2,3", "QUEUE_RETRY_MINS", {}, (1, 2, 3)),
            ("SMTP_IFACE = 127.0.0.2", "SMTP_BIND", {}, "127.0.0.2"),
            ("CALDAV_PORT = 5233", "DAV_PORT", {}, 5233),
            ("LISTEN_ADDRESS = ::", "BIND_ADDRESS", {}, "::"),
        ]
        for alias_line, canonical, extra, expected in cases:
            path = self.generate()
            text = self.read(path)
            for name, value in extra.items():
                text = _set(text, name, value)
            text = _drop(text, canonical) + alias_line + "\n"
            self.write(path, text)
            config = load(path, environ={})
            self.assertEqual(config[canonical], expected, alias_line)
            self.assertEqual(config.appended, (), f"{alias_line}: the alias counts as the key")
            self.assertEqual(self.read(path), text, alias_line)

    def test_tls_mode_value_manual_means_file(self) -> None:
        path = self.generate()
        self.edit(path, TLS_MODE="Manual", TLS_CERT=self.readable_file("c.pem"),
                  TLS_KEY=self.readable_file("k.pem"))
        self.assertEqual(load(path, environ={})["TLS_MODE"], "file")

    def test_key_given_twice_once_by_alias_names_both_lines(self) -> None:
        path = self.generate()
        text = self.read(path) + "SUBMISSION_PORT = 2000\n"
        self.write(path, text)
        problems = self.problems(path)
        self.assertEqual(len(problems), 1)
        first = _line_number(text, "SUBMIT_PORT = ")
        second = _line_number(text, "SUBMISSION_PORT = ")
        self.assertIn(f"line {first}", problems[0])
        self.assertIn(f"line {second}", problems[0])
        self.assertIn("SUBMIT_PORT", problems[0])

    def test_key_given_twice_by_name_names_both_lines(self) -> None:
        path = self.generate()
        text = self.read(path) + "HOSTNAME = other.example\n"
        self.write(path, text)
        problems = self.problems(path)
        self.assertEqual(len(problems), 1)
        for number in (_line_number(text, "HOSTNAME = mail."), _line_number(text, "HOSTNAME = o")):
            self.assertIn(f"line {number}", problems[0])

    def test_key_names_are_case_insensitive(self) -> None:
        path = self.generate()
        self.write(path, _drop(self.read(path), "SMTP_PORT") + "smtp_port = 2626\n")
        self.assertEqual(load(path, environ={})["SMTP_PORT"], 2626)


class ValidationTests(_ConfigTestCase):
    def check_one_problem(self, path: str, must: tuple[str, ...], label: str) -> str:
        problems = self.problems(path)
        self.assertEqual(len(problems), 1, f"{label}: {problems}")
        for fragment in must:
            self.assertIn(fragment, problems[0], label)
        return problems[0]

    def test_each_invalid_value_names_key_value_and_what_is_allowed(self) -> None:
        cases = [
            # label, settings, fragments the one problem must contain
            ("port too big", {"SMTP_PORT": "70000"}, ("SMTP_PORT", "'70000'", "0 to 65535")),
            ("port not a number", {"SMTP_PORT": "abc"}, ("SMTP_PORT", "'abc'", "port number from 0 to 65535")),
            ("negative port", {"SMTP_PORT": "-1"}, ("SMTP_PORT", "'-1'", "0 to 65535")),
            ("bad boolean", {"SMTP_ENABLED": "maybe"},
             ("SMTP_ENABLED", "'maybe'", "true or false")),
            ("acme is not a mode (dns01 or http01 are)", {"TLS_MODE": "acme"}, ("TLS_MODE", "'acme'", "dns01, http01, file, selfsigned, off")),
            ("unknown driver", {"DB_DRIVER": "mysql"},
             ("DB_DRIVER", "'mysql'", "sqlite, postgres")),
            ("postgres without DSN", {"DB_DRIVER": "postgres"},
             ("DB_DSN", "DB_DRIVER = postgres", "postgresql://")),
            ("bad size", {"MAX_MESSAGE_SIZE": "10X"},
             ("MAX_MESSAGE_SIZE", "'10X'", "K, M or G")),
            ("size below minimum", {"MAX_MESSAGE_SIZE": "100"},
             ("MAX_MESSAGE_SIZE", "'100'", "at least 1024")),
            ("hostname with space", {"HOSTNAME": "bad host!"},
             ("HOSTNAME", "'bad host!'", "valid DNS name")),
            ("hostname with leading hyphen", {"HOSTNAME": "-mail.example.com"},
             ("HOSTNAME", "'-mail.example.com'", "valid DNS name")),
            ("nameserver port", {"DNS_PRIMARY": "9.9.9.9:70000"},
             ("DNS_PRIMARY", "'9.9.9.9:70000'", "out of range 1-65535")),
            ("bind address is a name", {"BIND_ADDRESS": "localhost"},
             ("BIND_ADDRESS", "'localhost'", "IP address")),
            ("log level", {"LOG_LEVEL": "loud"}, ("LOG_LEVEL", "'loud'", "debug, info")),
            ("int below minimum", {"BCRYPT_COST": "3"}, ("BCRYPT_COST", "'3'", "4 to 16")),
            ("two services on one port", {"IMAP_PORT": "25"},
             ("IMAP_PORT", "25", "SMTP_PORT", "own port")),
        ]
        for label, settings, must in cases:
            path = self.generate()
            self.edit(path, **settings)
            self.check_one_problem(path, must, label)

    def test_problem_names_the_line_of_the_bad_value(self) -> None:
        path = self.generate()
        text = self.edit(path, SMTP_PORT="70000")
        problem = self.check_one_problem(path, ("SMTP_PORT",), "port")
        self.assertTrue(problem.startswith(f"{CONF} line {_line_number(text, 'SMTP_PORT')}:"),
                        problem)

    def test_tls_file_mode_refuses_missing_or_unreadable_certificate(self) -> None:
        key = self.readable_file("key.pem")
        directory = self.new_dir()
        nowhere = os.path.join(directory, "missing.pem")
        cases = [
            ("empty", "", ("TLS_CERT", "empty", "TLS_MODE = file")),
            ("a directory", directory, ("TLS_CERT", repr(directory), "not a readable file")),
            ("no such file", nowhere, ("TLS_CERT", repr(nowhere), "not a readable file")),
        ]
        for label, cert, must in cases:
            path = self.generate()
            self.edit(path, TLS_MODE="file", TLS_KEY=key, TLS_CERT=cert)
            self.check_one_problem(path, must, label)

    def test_tls_file_mode_accepts_readable_files(self) -> None:
        path = self.generate()
        cert, key = self.readable_file("cert.pem"), self.readable_file("key.pem")
        self.edit(path, TLS_MODE="file", TLS_CERT=cert, TLS_KEY=key)
        config = load(path, environ={})
        self.assertEqual((config["TLS_CERT"], config["TLS_KEY"]), (cert, key))

    def test_unknown_key_is_refused_with_suggestion(self) -> None:
        path = self.generate()
        self.write(path, self.read(path) + "SMTP_PROT = 25\n")
        self.check_one_problem(path, ("unknown key SMTP_PROT", "did you mean SMTP_PORT?"),
                               "typo")

    def test_line_without_equals_sign_is_refused(self) -> None:
        path = self.generate()
        text = self.read(path) + "just some words\n"
        self.write(path, text)
        self.check_one_problem(
            path, (f"line {len(text.splitlines())}", "KEY = value", "'just some words'"),
            "no equals sign")

    def test_invalid_secrets_are_named_but_never_echoed(self) -> None:
        cases = [
            # key, bad value, fragment of it that must not be shown
            ("ENCRYPTION_KEY", "deadbeefcafe", "deadbeef"),
            ("SESSION_SECRET", "z" * 64, "zzzz"),
            ("ENCRYPTION_KEYS_OLD", "0123456789abcdef", "0123456789"),
            ("ENCRYPTION_KEY", "fe" * 33, "fefe"),
        ]
        for key, value, fragment in cases:
            path = self.generate()
            self.edit(path, **{key: value})
            problem = self.check_one_problem(path, (key, "64 hexadecimal"), key)
            self.assertNotIn(fragment, problem, key)

    def test_empty_encryption_key_says_it_is_empty(self) -> None:
        path = self.generate()
        self.edit(path, ENCRYPTION_KEY="")
        self.check_one_problem(path, ("ENCRYPTION_KEY is empty", "64 hexadecimal"), "empty")

    def test_line_without_equals_sign_does_not_echo_a_secret(self) -> None:
        path = self.generate()
        text = self.read(path)
        secret = _value_in(text, "ENCRYPTION_KEY")
        self.write(path, _line_re("ENCRYPTION_KEY").sub(f"ENCRYPTION_KEY {secret}", text))
        problems = self.problems(path)
        self.assertNotIn(secret[:16], "\n".join(problems))

    def test_current_key_listed_as_old_key_is_refused(self) -> None:
        path = self.generate()
        current = _value_in(self.read(path), "ENCRYPTION_KEY")
        self.edit(path, ENCRYPTION_KEYS_OLD=current)
        problem = self.check_one_problem(path, ("ENCRYPTION_KEYS_OLD", "current ENCRYPTION_KEY"),
                                         "old key")
        self.assertNotIn(current[:16], problem)

    def test_several_value_problems_are_reported_at_once(self) -> None:
        path = self.generate()
        self.edit(path, SMTP_PORT="70000", SMTP_ENABLED="maybe", HOSTNAME="bad host!",
                  SESSION_SECRET="short")
        problems = self.problems(path)
        self.assertEqual(len(problems), 4, problems)
        for key, problem in zip(("HOSTNAME", "SMTP_ENABLED", "SMTP_PORT", "SESSION_SECRET"),
                                problems):
            self.assertIn(key, problem)

    def test_web_proxies_and_host_names_are_checked(self) -> None:
        path = self.generate()
        self.edit(path, TRUSTED_PROXIES="10.0.0.0/8, proxy.example",
                  WEB_HOSTNAMES="ok.example, bad host!")
        problems = self.problems(path)
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("TRUSTED_PROXIES: 'proxy.example' is not an IP address or network",
                      problems[0])
        self.assertIn("WEB_HOSTNAMES: 'bad host!'", problems[1])

    def test_error_text_lists_every_problem(self) -> None:
        path = self.generate()
        self.edit(path, SMTP_PORT="70000", HOSTNAME="bad host!")
        error = self.assertRaises(ConfigError, load, path, environ={})
        self.assertEqual(str(error).splitlines(), error.problems)

    def test_file_syntax_problems_are_reported_with_value_problems(self) -> None:
        # load() promises "every problem": an unknown key must not hide a bad value.
        path = self.generate()
        text = self.edit(path, SMTP_PORT="70000")
        self.write(path, text + "SMTP_PROT = 25\n")
        problems = self.problems(path)
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("SMTP_PROT", problems[0] + problems[1])
        self.assertIn("'70000'", problems[0] + problems[1])

    def test_cross_check_problems_are_reported_with_value_problems(self) -> None:
        # TLS_MODE = file without TLS_CERT is independent of a bad SMTP_PORT.
        path = self.generate()
        self.edit(path, SMTP_PORT="70000", TLS_MODE="file", TLS_KEY=self.readable_file())
        problems = self.problems(path)
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("TLS_CERT", problems[0] + problems[1])

    def test_quoted_values_are_unquoted(self) -> None:
        path = self.generate()
        self.edit(path, HOSTNAME='"mx.quoted.example"', DB_DSN="'postgresql://u@h/db'")
        config = load(path, environ={})
        self.assertEqual((config["HOSTNAME"], config["DB_DSN"]),
                         ("mx.quoted.example", "postgresql://u@h/db"))


class PathTests(_ConfigTestCase):
    def test_relative_paths_are_resolved_against_the_right_directory(self) -> None:
        cases = [
            # settings, key, expected path relative to the config file's directory
            ({"DATA_DIR": "state"}, "DATA_DIR", "state"),
            ({"DATA_DIR": "state", "DB_PATH": "db/mail.db"}, "DB_PATH", "state/db/mail.db"),
            ({"DATA_DIR": "state", "STORAGE_PATH": "blobs"}, "STORAGE_PATH", "state/blobs"),
            ({}, "DB_PATH", "data/mailgosend.db"),
            ({"DATA_DIR": "state", "LOG_FILE": "log/mail.log"}, "LOG_FILE", "log/mail.log"),
            ({"DATA_DIR": "./a/../state"}, "DATA_DIR", "state"),
        ]
        for settings, key, expected in cases:
            path = self.generate()
            self.edit(path, **settings)
            config = load(path, environ={})
            self.assertEqual(config[key], os.path.join(os.path.dirname(path), expected),
                             f"{settings} {key}")

    def test_absolute_paths_are_kept(self) -> None:
        elsewhere = self.new_dir()
        path = self.generate()
        self.edit(path, DATA_DIR=os.path.join(elsewhere, "d"),
                  DB_PATH=os.path.join(elsewhere, "db", "m.db"))
        config = load(path, environ={})
        self.assertEqual((config["DATA_DIR"], config["DB_PATH"]),
                         (os.path.join(elsewhere, "d"), os.path.join(elsewhere, "db", "m.db")))

    def test_relative_db_path_follows_an_absolute_data_dir(self) -> None:
        elsewhere = self.new_dir()
        path = self.generate()
        self.edit(path, DATA_DIR=elsewhere, DB_PATH="m.db")
        self.assertEqual(load(path, environ={})["DB_PATH"], os.path.join(elsewhere, "m.db"))

    def test_config_path_is_made_absolute(self) -> None:
        path = self.generate()
        relative = os.path.relpath(path)
        self.assertEqual(load(relative, environ={}).path, path)


class ImmutabilityTests(_ConfigTestCase):
    def setUp(self) -> None:
        self.config = load(self.generate(), environ={})

    def test_values_cannot_be_assigned(self) -> None:
        with self.assertRaises(TypeError):
            self.config.values["SMTP_PORT"] = 1  # type: ignore[index]
        self.assertEqual(self.config["SMTP_PORT"], 25)

    def test_values_cannot_be_deleted(self) -> None:
        with self.assertRaises(TypeError):
            del self.config.values["SMTP_PORT"]  # type: ignore[attr-defined]

    def test_attributes_cannot_be_assigned(self) -> None:
        for attribute, value in (("values", {}), ("path", "/x"), ("profile", "local")):
            with self.assertRaises(dataclasses.FrozenInstanceError):
                setattr(self.config, attribute, value)

    def test_replace_returns_a_changed_copy_and_leaves_the_original(self) -> None:
        changed = self.config.replace(SMTP_PORT=2525)
        self.assertIsInstance(changed, Config)
        self.assertEqual((changed["SMTP_PORT"], self.config["SMTP_PORT"]), (2525, 25))
        with self.assertRaises(TypeError):
            changed.values["SMTP_PORT"] = 1  # type: ignore[index]


class ParserTests(SynchronousTestCase):
    def test_parse_size(self) -> None:
        cases = [("1024", 1024), ("10k", 10240), ("50M", 50 * 1024 ** 2), ("2G", 2 * 1024 ** 3),
                 ("5 MB", 5 * 1024 ** 2), (" 7 ", 7), ("0", 0)]
        for text, expected in cases:
            self.assertEqual(parse_size(text), expected, text)

    def test_parse_size_refuses_what_is_not_a_size(self) -> None:
        for text in ("", "1.5G", "-1", "10X", "G", "ten"):
            self.assertRaises(ValueError, parse_size, text)

    def test_parse_bool(self) -> None:
        cases = [("true", True), ("Yes", True), ("ON", True), ("1", True),
                 ("false", False), ("no", False), ("off", False), (" 0 ", False)]
        for text, expected in cases:
            self.assertIs(parse_bool(text), expected, text)

    def test_parse_bool_refuses_anything_else(self) -> None:
        for text in ("", "maybe", "2", "tru"):
            self.assertRaises(ValueError, parse_bool, text)

    def test_parse_hostname(self) -> None:
        cases = [("Mail.Example.COM.", "mail.example.com"),
                 ("münchen.example", "xn--mnchen-3ya.example"), ("localhost", "localhost")]
        for text, expected in cases:
            self.assertEqual(parse_hostname(text), expected, text)

    def test_parse_hostname_refuses_invalid_names(self) -> None:
        for text in ("", "bad host", "-a.example", "a-.example", "a..example", "a_b.example",
                     "x" * 64 + ".example"):
            self.assertRaises(ValueError, parse_hostname, text)

    def test_parse_hostport(self) -> None:
        cases = [("ns.example", 53, ("ns.example", 53)), ("9.9.9.9:5353", 53, ("9.9.9.9", 5353)),
                 ("[::1]:54", 53, ("::1", 54)), ("::1", 53, ("::1", 53)),
                 ("[2001:db8::1]", 53, ("2001:db8::1", 53))]
        for text, default, expected in cases:
            self.assertEqual(parse_hostport(text, default), expected, text)

    def test_parse_hostport_refuses_bad_input(self) -> None:
        cases = [("host:0", 53), ("host:70000", 53), ("host:abc", 53), ("[::1", 53),
                 ("[::1]x", 53), (":53", 53), ("relay.example", None), ("bad host:25", 25)]
        for text, default in cases:
            self.assertRaises(ValueError, parse_hostport, text, default)
