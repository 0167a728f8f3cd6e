"""The TLS page's "Renew now" with the real ACME service (tls/acme.py) against Debian's
pebble: a certificate that is good for months is replaced at once when asked, and swapped in
through ``on_change`` (the SIGHUP path)."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mailgosend.tls import acme
from tests.support import pebble
from tests.support.net import free_ports
from tests import test_acme


class RenewNowTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_renew_now_replaces_a_good_certificate(self) -> Any:
        test_acme._skip_without_pebble()
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        (unused_http,) = free_ports(1)
        ca = pebble.Pebble(os.path.join(directory, "pebble"), unused_http).start()
        self.addCleanup(ca.stop)
        changes: list[int] = []
        # The DNS-01 (hook) settings of tests/test_acme.py, without running its tests here.
        settings = test_acme.DNS01Tests.settings(self, directory, ca,  # type: ignore[arg-type]
                                                 ("renew.example.test",))
        service = acme.ACMEService(settings,
                                   reactor=reactor, clock=task.Clock(),
                                   on_change=lambda: changes.append(1))
        service.startService()
        self.addCleanup(service.stopService)
        yield service.pending()
        first = service.certificate_status()[0]
        self.assertIsNone(first["last_error"], ca.logs()[-3000:])
        self.assertIsNone(service.needs_issuance(["renew.example.test"]))   # good for months
        service.renew_now()
        yield service.pending()
        second = service.certificate_status()[0]
        self.assertIsNone(second["last_error"], ca.logs()[-3000:])
        self.assertNotEqual(second["serial"], first["serial"])
        self.assertEqual(changes, [1, 1])
