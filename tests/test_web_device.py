"""web/device.py: browser names for the session list."""

from __future__ import annotations

from twisted.trial import unittest

from mailgosend.web.device import device_label

CASES = [
    ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
     "Firefox on Linux"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Windows"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari on iOS"),
    ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0 Mobile Safari/537.36", "Chrome on Android"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.1 Safari/605.1.15", "Safari on macOS"),
    ("python-requests/2.32.3", "Unknown browser"),
    ("", "Unknown browser"),
]


class DeviceLabelTests(unittest.TestCase):
    def test_table(self) -> None:
        for agent, expected in CASES:
            with self.subTest(agent=agent):
                self.assertEqual(device_label(agent), expected)
