"""``pip install .`` ships the web pages' templates/ and static/ (setup.py data files), and
web/assets.py finds them in an installed copy as in a checkout."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import zipfile

from twisted.trial import unittest

from mailgosend.web import assets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shipped_assets() -> list[str]:
    found = []
    for top in ("templates", "static"):
        for directory, _dirs, files in os.walk(os.path.join(REPO, top)):
            found += [os.path.relpath(os.path.join(directory, name), REPO) for name in files]
    return sorted(found)


class PackagingTests(unittest.TestCase):
    def test_the_wheel_carries_every_template_and_static_file(self) -> None:
        source = os.path.abspath(self.mktemp())
        shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
            ".git", ".venv", "node_modules", "_trial_temp*", "build", "*.egg-info",
            "__pycache__", "data"))
        out = os.path.abspath(self.mktemp())
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                               "-w", out, source], capture_output=True, text=True,
                              timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr)
        [wheel] = glob.glob(os.path.join(out, "mailgosend-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
        prefix = next(n for n in names if ".data/data/share/mailgosend/" in n)
        prefix = prefix[:prefix.index("share/mailgosend/") + len("share/mailgosend/")]
        expected = shipped_assets()
        self.assertIn("static/css/app.css", expected)
        self.assertIn("templates/account/login.html", expected)
        self.assertEqual(sorted(n[len(prefix):] for n in names if n.startswith(prefix)),
                         expected)

    def test_an_installed_copy_finds_its_assets_under_the_prefix(self) -> None:
        prefix = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(prefix, "share", "mailgosend", "static"))
        self.patch(assets, "_CHECKOUT", os.path.abspath(self.mktemp()))
        self.patch(sys, "prefix", prefix)
        self.assertEqual(assets.asset_dir("static"),
                         os.path.join(prefix, "share", "mailgosend", "static"))
        error = self.assertRaises(OSError, assets.asset_dir, "templates")
        self.assertIn("reinstall mailgosend", str(error))
