"""The systemd unit promises what README.rst says it does."""

from __future__ import annotations

import configparser
import os

from twisted.trial import unittest

UNIT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "contrib", "mailgosend.service")


class SystemdUnitTests(unittest.TestCase):
    def setUp(self) -> None:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(UNIT)
        self.service = parser["Service"]

    def test_runs_as_dedicated_user_with_only_the_bind_capability(self) -> None:
        self.assertEqual(self.service["User"], "mailgosend")
        self.assertEqual(self.service["AmbientCapabilities"], "CAP_NET_BIND_SERVICE")
        self.assertEqual(self.service["CapabilityBoundingSet"], "CAP_NET_BIND_SERVICE")
        self.assertEqual(self.service["NoNewPrivileges"], "true")

    def test_filesystem_read_only_except_data_and_config(self) -> None:
        self.assertEqual(self.service["ProtectSystem"], "strict")
        self.assertEqual(self.service["ReadWritePaths"].split(),
                         ["/var/lib/mailgosend", "/etc/mailgosend"])

    def test_reload_sends_sighup_and_start_uses_the_plugin(self) -> None:
        self.assertIn("-HUP $MAINPID", self.service["ExecReload"])
        self.assertIn("twistd --nodaemon --pidfile= mailgosend --config", self.service["ExecStart"])
