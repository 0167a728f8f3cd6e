"""No password, key, token or message content in any log line.

A full server process at LOG_LEVEL = debug, driven the way users drive it
(CLI with a password, logins right and wrong, a message with a recognisable
body), and then every byte it logged is searched.  CI also greps the logs of
the whole trial run for the test password marker (.ci/run).
"""

from __future__ import annotations

import base64
import os
import smtplib
import ssl
import subprocess
import sys

from twisted.internet import defer, threads
from twisted.trial import unittest

from mailgosend.config import load
from tests.support.net import free_port
from tests.support.process import ServerProcess, child_env, quiet_env

PASSWORD = "pw-SECRET-hygiene-4711"
WRONG = "pw-SECRET-wrong-0815"
BODY = "body-marker-7f3a: the quarterly numbers"
SUBJECT = "subject-marker-99c1"


class LogHygieneTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_nothing_secret_reaches_any_log(self):  # type: ignore[no-untyped-def]
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        port = free_port()
        env = {**quiet_env(SUBMIT=port), "MAILGO_LOG_LEVEL": "debug",
               "MAILGO_LOG_FILE": "server.log"}
        conf = os.path.join(directory, "app_config.conf")
        config = load(conf, profile="local", environ=env)
        cli = subprocess.run(
            [sys.executable, "-c", "from mailgosend.cli import run; run()", "--config", conf,
             "create-admin", "alice@localhost.test", "--password-stdin"],
            input=PASSWORD + "\n", capture_output=True, text=True, cwd=directory,
            env=child_env(env), timeout=120)
        self.assertEqual(cli.returncode, 0, cli.stderr)

        proc = ServerProcess.twistd(directory, "--config", "app_config.conf", env=env)
        self.addCleanup(proc.stop)
        proc.start()
        log_path = os.path.join(directory, "server.log")

        def wait_started() -> None:
            import time
            for _ in range(1200):
                if os.path.exists(log_path) and " started (config" in open(log_path).read():
                    return
                time.sleep(0.05)
            raise AssertionError("server did not start:\n" + proc.text())
        yield threads.deferToThread(wait_started)

        def use_it() -> None:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.starttls(context=context)
                try:
                    client.login("alice@localhost.test", WRONG)
                except smtplib.SMTPAuthenticationError:
                    pass
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.starttls(context=context)
                client.login("alice@localhost.test", PASSWORD)
                client.sendmail("alice@localhost.test", ["alice@localhost.test"],
                                f"From: alice@localhost.test\r\nTo: alice@localhost.test\r\n"
                                f"Subject: {SUBJECT}\r\n\r\n{BODY}\r\n".encode())
        yield threads.deferToThread(use_it)
        yield threads.deferToThread(proc.stop)

        logged = open(log_path, encoding="utf-8", errors="replace").read()
        everything = logged + proc.text() + cli.stdout + cli.stderr
        self.assertIn("authenticated as alice@localhost.test", logged)  # the log did record it
        sasl = base64.b64encode(f"\0alice@localhost.test\0{PASSWORD}".encode()).decode()
        for secret in (PASSWORD, WRONG, sasl, config["ENCRYPTION_KEY"].hex(),
                       config["SESSION_SECRET"].hex(), BODY, SUBJECT):
            self.assertNotIn(secret, everything)
