"""The real command line: ``twistd -n mailgosend --config app_config.conf``.

Each test starts the server as a child process in an empty directory, as an
operator would, and talks to it only through files, ports and signals.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import stat
import urllib.request
from typing import Any

from twisted.internet import defer, threads
from twisted.trial import unittest

from mailgosend import config_keys
from tests.support.net import free_ports
from tests.support.process import REPO, ServerProcess, quiet_env

LISTENING = r"admin listening on 127\.0\.0\.1:(\d+)"
# Logged from startService, once the reactor runs and its signal handlers are in place:
# a SIGTERM before that would kill the process without a graceful stop.
READY = r"mailgosend \S+ started"


def _health(port: int) -> int:
    # The standard profile serves the admin port over HTTPS (WEB_TLS) with the self-signed
    # certificate of TLS_MODE = selfsigned, which no client trusts.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=10,
                                context=context) as r:
        return r.status


class TwistdTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.conf = os.path.join(self.dir, "app_config.conf")
        names = ("ADMIN", "SMTP", "SUBMIT", "SMTPS", "POP3", "POP3S", "IMAP", "IMAPS")
        ports = dict(zip(names, free_ports(len(names))))
        self.port = ports["ADMIN"]
        # Cheap bcrypt, and a free admin port for each run.
        # Every listener on a free port: the whole server starts and stops in these tests.
        self.env = quiet_env(**ports)
        self.logs: list[str] = []

    def server(self, *args: str, env: Any = None) -> ServerProcess:
        proc = ServerProcess.twistd(self.dir, "--config", "app_config.conf", *args,
                                    env={**self.env, **(env or {})})
        self.addCleanup(proc.stop)
        return proc.start()

    @defer.inlineCallbacks
    def run_until_listening_then_stop(self, *args: str, env: Any = None):  # type: ignore[no-untyped-def]
        proc = self.server(*args, env=env)
        yield threads.deferToThread(proc.wait_for, READY)
        code = yield threads.deferToThread(proc.stop)
        self.assertClean(code, proc)
        return proc

    def assertClean(self, code: int, proc: ServerProcess) -> None:
        # twistd ends by re-raising the signal it stopped on; systemd counts SIGTERM as clean.
        self.assertIn(code, (0, -signal.SIGTERM), proc.text())
        self.assertIn("mailgosend stopped", proc.text() + self.log_text(), f"exit {code}")

    def log_text(self) -> str:
        return "".join(open(p).read() for p in self.logs if os.path.exists(p))

    @defer.inlineCallbacks
    def test_first_run_generates_private_file_with_every_key(self):  # type: ignore[no-untyped-def]
        yield self.run_until_listening_then_stop("--profile", "local")
        mode = stat.S_IMODE(os.stat(self.conf).st_mode)
        self.assertEqual(mode, 0o600)
        text = open(self.conf).read()
        for key in config_keys.KEYS:
            self.assertRegex(text, rf"(?m)^# .*\n{key.name} = ", msg=key.name)
        keys = re.findall(r"(?m)^(ENCRYPTION_KEY|SESSION_SECRET) = ([0-9a-f]{64})$", text)
        self.assertEqual(len(keys), 2)
        self.assertNotEqual(keys[0][1], keys[1][1])
        self.assertIn("PROFILE = local", text)

    @defer.inlineCallbacks
    def test_second_start_reuses_the_file_unchanged(self):  # type: ignore[no-untyped-def]
        yield self.run_until_listening_then_stop()
        before = open(self.conf, "rb").read()
        yield self.run_until_listening_then_stop()
        self.assertEqual(open(self.conf, "rb").read(), before)

    @defer.inlineCallbacks
    def test_removed_key_is_appended_alone(self):  # type: ignore[no-untyped-def]
        yield self.run_until_listening_then_stop()
        lines = open(self.conf).read().splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith("SPAM_THRESHOLD =")]
        kept = [line.replace("MAX_RECIPIENTS = 100", "MAX_RECIPIENTS = 250") for line in kept]
        open(self.conf, "w").write("".join(kept))
        yield self.run_until_listening_then_stop()
        after = open(self.conf).read()
        self.assertTrue(after.startswith("".join(kept)), "the user's lines were changed")
        added = after[len("".join(kept)):]
        self.assertEqual(re.findall(r"(?m)^([A-Z0-9_]+) = ", added), ["SPAM_THRESHOLD"])

    @defer.inlineCallbacks
    def test_health_answers_and_sigterm_stops_cleanly(self):  # type: ignore[no-untyped-def]
        proc = self.server()
        yield threads.deferToThread(proc.wait_for, READY)
        status = yield threads.deferToThread(_health, self.port)
        self.assertEqual(status, 200)
        code = yield threads.deferToThread(proc.stop)
        self.assertClean(code, proc)
        with socket.socket() as sock:
            self.assertNotEqual(sock.connect_ex(("127.0.0.1", self.port)), 0)

    @defer.inlineCallbacks
    def test_sighup_reloads_and_keeps_serving(self):  # type: ignore[no-untyped-def]
        log_path = os.path.join(self.dir, "hup.log")
        self.logs.append(log_path)
        proc = self.server(env={"MAILGO_LOG_FILE": log_path})
        yield self.wait_for_file(log_path, "started (config")
        os.rename(log_path, log_path + ".1")  # what logrotate does before the HUP
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        yield self.wait_for_file(log_path, "reload done")
        status = yield threads.deferToThread(_health, self.port)
        self.assertEqual(status, 200)
        code = yield threads.deferToThread(proc.stop)
        self.assertClean(code, proc)

    @defer.inlineCallbacks
    def test_port_in_use_is_one_clear_line_and_exit_1(self):  # type: ignore[no-untyped-def]
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", self.port))
        blocker.listen()
        self.addCleanup(blocker.close)
        proc = self.server()
        code = yield threads.deferToThread(proc.wait_exit)
        self.assertEqual(code, 1)
        output = proc.text()
        self.assertNotIn("Traceback", output)
        errors = [line for line in output.splitlines() if "mailgosend: " in line]
        self.assertEqual(len(errors), 1, output)
        self.assertIn("ADMIN_PORT", errors[0])

    @defer.inlineCallbacks
    def test_profile_of_an_existing_file_is_named_when_another_is_asked_and_a_port_fails(
            self):  # type: ignore[no-untyped-def]
        yield self.run_until_listening_then_stop()          # a first start: standard profile
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", self.port))
        blocker.listen()
        self.addCleanup(blocker.close)
        proc = self.server("--profile", "local")
        code = yield threads.deferToThread(proc.wait_exit)
        self.assertEqual(code, 1)
        output = proc.text()
        self.assertIn("--profile local is ignored", output)
        self.assertIn("PROFILE = standard", output)
        errors = [line for line in output.splitlines() if "mailgosend: " in line]
        self.assertEqual(len(errors), 1, output)
        self.assertIn("ADMIN_PORT", errors[0])
        self.assertIn(f"settings from {self.conf}, generated with PROFILE = standard", errors[0])

    @defer.inlineCallbacks
    def test_first_start_says_once_that_the_new_encryption_key_must_be_backed_up(
            self):  # type: ignore[no-untyped-def]
        log_path = os.path.join(self.dir, "mailgosend.log")
        self.logs.append(log_path)
        first = self.server(env={"MAILGO_LOG_FILE": log_path})
        yield self.wait_for_file(log_path, "started (config")
        code = yield threads.deferToThread(first.stop)
        self.assertClean(code, first)
        # The log is a file: the terminal (stderr) hears it as well as the log.
        self.assertIn(f"NEW ENCRYPTION_KEY: {self.conf} was generated", first.text())
        self.assertEqual(self.log_text().count("NEW ENCRYPTION_KEY"), 1)
        second = self.server(env={"MAILGO_LOG_FILE": log_path})
        yield self.wait_for_file(log_path, "started (config", count=2)
        code = yield threads.deferToThread(second.stop)
        self.assertClean(code, second)
        self.assertNotIn("NEW ENCRYPTION_KEY", second.text())
        self.assertEqual(self.log_text().count("NEW ENCRYPTION_KEY"), 1)

    @defer.inlineCallbacks
    def test_bad_configuration_names_the_key_without_traceback(self):  # type: ignore[no-untyped-def]
        proc = self.server(env={"MAILGO_IMAP_PORT": "99999", "MAILGO_TLS_MODE": "sometimes"})
        code = yield threads.deferToThread(proc.wait_exit)
        self.assertEqual(code, 1)
        output = proc.text()
        self.assertNotIn("Traceback", output)
        self.assertIn("MAILGO_IMAP_PORT = '99999': must be a port number from 0 to 65535", output)
        self.assertIn("MAILGO_TLS_MODE = 'sometimes': must be one of: dns01, http01, file, selfsigned, off", output)

    @defer.inlineCallbacks
    def test_log_file_receives_the_log_instead_of_stdout(self):  # type: ignore[no-untyped-def]
        log_path = os.path.join(self.dir, "logs", "mailgosend.log")
        self.logs.append(log_path)
        proc = self.server(env={"MAILGO_LOG_FILE": log_path})
        yield self.wait_for_file(log_path, "started (config")
        code = yield threads.deferToThread(proc.stop)
        self.assertClean(code, proc)
        self.assertNotIn("admin listening on", proc.text())

    @defer.inlineCallbacks
    def test_log_level_warn_hides_info_lines(self):  # type: ignore[no-untyped-def]
        log_path = os.path.join(self.dir, "quiet.log")
        proc = self.server(env={"MAILGO_LOG_FILE": log_path, "MAILGO_LOG_LEVEL": "warn"})
        yield self.wait_for_port()
        code = yield threads.deferToThread(proc.stop)
        self.assertIn(code, (0, -signal.SIGTERM))
        text = open(log_path).read() if os.path.exists(log_path) else ""
        self.assertNotIn("listening on", text)
        self.assertNotIn("started", text)

    @defer.inlineCallbacks
    def test_tac_file_starts_the_same_service(self):  # type: ignore[no-untyped-def]
        proc = ServerProcess.twistd(self.dir, tac=os.path.join(REPO, "mailgosend.tac"),
                                    env={**self.env, "MAILGO_CONFIG": self.conf})
        self.addCleanup(proc.stop)
        proc.start()
        yield threads.deferToThread(proc.wait_for, READY)
        status = yield threads.deferToThread(_health, self.port)
        self.assertEqual(status, 200)
        self.assertTrue(os.path.exists(self.conf))

    def wait_for_file(self, path: str, needle: str, count: int = 1) -> defer.Deferred:
        def poll() -> None:
            import time

            for _ in range(1200):
                if os.path.exists(path) and open(path).read().count(needle) >= count:
                    return
                time.sleep(0.05)
            raise AssertionError(f"{needle!r} never appeared in {path}")
        return threads.deferToThread(poll)

    def wait_for_port(self) -> defer.Deferred:
        def poll() -> None:
            import time

            for _ in range(1200):
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                        return
                time.sleep(0.05)
            raise AssertionError("the server never listened")
        return threads.deferToThread(poll)
