"""scripts/run-tests as a normal user on a machine that lacks Debian packages: it names the
exact apt-get line and stops before installing anything.

``id`` and ``dpkg`` are replaced by stand-ins on PATH (a normal user; a machine where swaks and
isync are missing), so the test runs the same as root in CI and changes nothing.
"""

from __future__ import annotations

import os
import stat
import subprocess

from twisted.trial import unittest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "run-tests")


class RunTestsScriptTests(unittest.TestCase):
    def stand_in(self, directory: str, name: str, body: str) -> None:
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("#!/bin/sh\n" + body + "\n")
        os.chmod(path, stat.S_IRWXU)

    def test_normal_user_gets_the_apt_get_line_for_what_is_missing_and_nothing_runs(
            self) -> None:
        bin_dir = os.path.abspath(self.mktemp())
        os.makedirs(bin_dir)
        self.stand_in(bin_dir, "id", 'echo 1000')
        # dpkg -s PACKAGE: installed unless it is swaks or isync.
        self.stand_in(bin_dir, "dpkg", 'case "$2" in swaks|isync) exit 1;; *) exit 0;; esac')
        for command in ("node", "npm"):                      # present, whatever the machine
            self.stand_in(bin_dir, command, "exit 0")
        env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
        done = subprocess.run([SCRIPT, "tests.test_config"], cwd=bin_dir, env=env,
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        self.assertEqual(done.returncode, 1, done.stdout + done.stderr)
        self.assertIn("    apt-get install -y swaks isync\n", done.stderr)
        self.assertNotIn("==> Python packages", done.stdout)
