# -*- test-case-name: tests.test_support_net -*-
"""The test helper that chooses listener ports: a port is free only if it is free on every
address the servers will bind (a flake in test_delivery_e2e: a port chosen on 127.0.0.1
was already taken on 127.0.0.2 by a parallel test's server)."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.support import net


class Scripted:
    """Stands in for the random source: hands out the given ports in order."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = list(ports)

    def randrange(self, low: int, high: int) -> int:
        return self.ports.pop(0)


class FreePortsTests(unittest.TestCase):
    def listen(self, address: str) -> int:
        """A listening socket on ``address`` at a port of the helper's range."""
        for port in range(net.LOW, net.HIGH):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((address, port))
            except OSError:
                sock.close()
                continue
            sock.listen(1)
            self.addCleanup(sock.close)
            return port
        raise RuntimeError("no port")

    def scripted(self, ports: list[int]) -> Any:
        self.patch(net, "_random", Scripted(ports))

    def test_a_port_taken_on_the_bound_address_is_skipped(self) -> None:
        taken = self.listen("127.0.0.2")
        other = taken + 1 if taken + 1 < net.HIGH else taken - 1
        self.scripted([taken, other])
        self.assertEqual(net.free_ports(1, "127.0.0.2"), [other])

    def test_a_port_taken_on_another_address_of_the_pair_is_skipped(self) -> None:
        taken = self.listen("127.0.0.3")
        other = taken + 1 if taken + 1 < net.HIGH else taken - 1
        self.scripted([taken, other])
        self.assertEqual(net.free_ports(1, "127.0.0.2", also=("127.0.0.3",)), [other])

    def test_ports_are_distinct(self) -> None:
        self.scripted([20001, 20001, 20002])
        self.assertEqual(net.free_ports(2), [20001, 20002])


class WorkerRangeTests(unittest.TestCase):
    def test_each_trial_worker_has_its_own_slice(self) -> None:
        first = net.worker_range("/repo/_trial_temp/0")
        second = net.worker_range("/repo/_trial_temp/1")
        self.assertEqual(first, (net.LOW, net.LOW + net.WORKER_SPAN))
        self.assertEqual(second, (net.LOW + net.WORKER_SPAN, net.LOW + 2 * net.WORKER_SPAN))
        self.assertLessEqual(net.worker_range("/repo/_trial_temp/3")[1], net.HIGH)

    def test_outside_a_worker_the_whole_range(self) -> None:
        self.assertEqual(net.worker_range("/repo/_trial_temp"), (net.LOW, net.HIGH))

    def test_chosen_ports_stay_in_the_slice(self) -> None:
        low, high = net.worker_range()
        for port in net.free_ports(5):
            self.assertTrue(low <= port < high, port)

class MailServerPortsTests(unittest.TestCase):
    """CI flake (2026-12-05): WebServerTestCase chose WEB/ADMIN in one call and MailServer
    chose its seven ports in another, so POP3 could get WEB's port ("WEB_PORT = 24333 is
    also POP3_PORT")."""

    def test_ports_given_by_the_caller_are_not_chosen_again(self) -> None:
        from tests.support.mailserver import MailServer
        # Ports free now, not fixed numbers: a fixed one in use by another program (a
        # parallel run, a server started by hand) was skipped and the script ran out.
        given = net.free_ports(9)
        self.patch(net, "_random", Scripted(given))
        server = MailServer(self.mktemp(), ports={"WEB": given[0], "ADMIN": given[1]})
        ports = list(server.ports.values())
        self.assertEqual(len(ports), len(set(ports)), server.ports)
        self.assertEqual((server.ports["WEB"], server.ports["ADMIN"]), (given[0], given[1]))
        self.assertEqual(server.ports["SMTP"], given[2])

    def test_a_given_port_replaces_the_choice_for_its_service(self) -> None:
        from tests.support.mailserver import MailServer
        given = net.free_ports(8)  # free now (see above)
        self.patch(net, "_random", Scripted(given[1:]))
        server = MailServer(self.mktemp(), ports={"SMTP": given[0]})
        self.assertEqual(server.ports["SMTP"], given[0])
        self.assertEqual(sorted(server.ports.values()), sorted(given[:7]))


class FailedStartTests(unittest.TestCase):
    """A port taken by another program between choosing and binding (parallel runs) failed
    the start; the listeners bound before it stayed open, and the test after it failed too
    ("Reactor was unclean": the ports of the previous test's server)."""

    @defer.inlineCallbacks
    def test_a_failed_start_releases_the_ports_already_bound(self) -> Any:
        from mailgosend.errors import StartupError
        from tests.support.mailserver import MailServer
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", net.free_port()))
        taken.listen(1)
        # IMAPS binds last: the other listeners are open when it fails.
        server = MailServer(self.mktemp(), ports={"IMAPS": taken.getsockname()[1]})
        self.addCleanup(server.stop)
        with self.assertRaises(StartupError):
            yield server.start()
        for name in ("SMTP", "SUBMIT", "SMTPS", "POP3", "POP3S", "IMAP"):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                probe.bind(("127.0.0.1", server.ports[name]))  # released: free again
            finally:
                probe.close()
