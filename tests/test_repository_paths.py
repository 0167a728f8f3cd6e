"""No file of the repository names a path of the development machine.

Documents are cited by their path relative to the repository (``../shared/...``), and tools
find their folders from the repository or an option, so a clone anywhere works.
"""

from __future__ import annotations

import os
import subprocess

from twisted.trial import unittest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Built in two parts so that this file does not match itself.
FORBIDDEN = ("/work" + "/shared", "/work" + "/main", "/work" + "/wt/")


class RepositoryPathTests(unittest.TestCase):
    def test_no_tracked_file_names_an_absolute_path_of_the_development_machine(self) -> None:
        try:
            listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                                     check=False)
        except FileNotFoundError:
            raise unittest.SkipTest("git is not installed") from None
        if listing.returncode != 0:
            raise unittest.SkipTest("not a git checkout")
        found = []
        for name in listing.stdout.decode().split("\0"):
            path = os.path.join(REPO, name)
            if not name or not os.path.isfile(path):
                continue
            with open(path, "rb") as handle:
                data = handle.read()
            for needle in FORBIDDEN:
                if needle.encode() in data:
                    found.append(f"{name}: {needle}")
        self.assertEqual(found, [])
