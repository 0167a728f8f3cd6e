# -*- test-case-name: tests.test_events_clients -*-
"""The change feed end to end with real clients: every writer (POP3 UPDATE, IMAP APPEND, the
SMTP receive pipeline) reaches an IMAP IDLE session at once, and from the data the feed
carries: the idling session reads no message rows back (events.py, imap/selected.py)."""

from __future__ import annotations

import os
import poplib
import smtplib
from typing import Any, Callable

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial import unittest

from mailgosend.imap.factory import IMAPServerFactory
from mailgosend.pop3 import build_pop3_factory
from mailgosend.pop3.maildrop import IPOP3Maildrop, maildrop_factory
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.imap import ALICE, PASSWORD, IMAPFixture, deferLater, message
from tests.support.mailserver import PASSWORD as SERVER_PASSWORD
from tests.support.mailserver import MailServer


def count_view_reads(case: unittest.TestCase) -> list[str]:
    """From now on, every database read a selected view makes to catch up (``sync_state``,
    ``live_uids``, mail/sync.py): what an IDLE session would read back."""
    from mailgosend.mail import sync as selected

    seen: list[str] = []

    def counting(name: str, job: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            seen.append(name)
            return job(*args, **kwargs)
        return wrapped

    case.patch(selected, "sync_state", counting("sync_state", selected.sync_state))
    case.patch(selected, "live_uids", counting("live_uids", selected.live_uids))
    return seen


@defer.inlineCallbacks
def idle_settled(factory: IMAPServerFactory, sessions: int = 1) -> Any:
    """Wait (bounded) until ``sessions`` sessions idle with their first IDLE sync done."""
    for _ in range(2000):
        idle = [s for s in factory.open_connections()
                if s.idling and getattr(s, "_idle_running", None) is None]
        if len(idle) >= sessions:
            return
        yield deferLater(0.01)
    raise AssertionError("no IDLE session settled")


def idle_client(port: int, user: str, password: str) -> Any:
    """Thread side: an imapclient session idling on INBOX."""
    from imapclient import IMAPClient

    client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=20)
    client.login(user, password)
    client.select_folder("INBOX")
    client.idle()
    return client


def wait_for_response(client: Any, wanted: Callable[[Any], bool]) -> list[Any]:
    """Thread side: IDLE responses until one is ``wanted`` (bounded, then what came)."""
    seen: list[Any] = []
    for _ in range(30):
        seen += client.idle_check(1)
        if any(wanted(r) for r in seen):
            break
    return seen


class FeedToIdleMixin(IMAPFixture):
    @defer.inlineCallbacks
    def idling(self) -> Any:
        client = yield self.in_thread(idle_client, self.port, ALICE, PASSWORD)
        self.addCleanup(self.in_thread, client.shutdown)
        yield idle_settled(self.factory)
        return client

    @defer.inlineCallbacks
    def test_a_pop3_deletion_reaches_an_idle_session_as_expunge(self) -> Any:
        for n in range(3):
            yield self.deliver(message(f"m{n}"))
        yield self.listen()
        self.portal.realm_registry.register(IPOP3Maildrop,
                                            maildrop_factory(self.factory.access.mail))
        pop3 = build_pop3_factory(
            portal=self.portal, bans=self.bans, tls=None, hostname="pop.example.com",
            clock=reactor, implicit_tls=False, allow_plaintext_loopback=True)
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(pop3)
        self.addCleanup(port.stopListening)
        client = yield self.idling()
        reads = count_view_reads(self)

        def delete_second() -> None:
            pop = poplib.POP3("127.0.0.1", port.getHost().port, timeout=20)
            pop.user(ALICE)
            pop.pass_(PASSWORD)
            pop.dele(2)
            pop.quit()

        yield self.in_thread(delete_second)
        responses = yield self.in_thread(wait_for_response, client,
                                         lambda r: r == (2, b"EXPUNGE"))
        self.assertIn((2, b"EXPUNGE"), responses)
        self.assertEqual(reads, [])
        yield self.in_thread(client.idle_done)
        uids = yield self.in_thread(client.search, "ALL")
        self.assertEqual(uids, [1, 3])

    @defer.inlineCallbacks
    def test_an_imap_append_reaches_another_idle_session_with_its_flags(self) -> Any:
        yield self.deliver(message("first"))
        yield self.listen()
        client = yield self.idling()
        reads = count_view_reads(self)
        other = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, other.shutdown)
        yield self.in_thread(other.append, "INBOX", "(\\Flagged)", None, message("appended"))
        responses = yield self.in_thread(wait_for_response, client,
                                         lambda r: r == (2, b"EXISTS"))
        self.assertIn((2, b"EXISTS"), responses)
        self.assertEqual(reads, [])
        yield self.in_thread(client.idle_done)
        flags = yield self.in_thread(client.get_flags, [2])
        self.assertIn(b"\\Flagged", flags[2])

    @defer.inlineCallbacks
    def test_a_flag_change_reaches_another_idle_session_without_a_read(self) -> Any:
        yield self.deliver(message("first"))
        yield self.listen()
        client = yield self.idling()
        reads = count_view_reads(self)
        other = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, other.shutdown)
        yield self.in_thread(other.select, "INBOX")
        yield self.in_thread(other.store, "1", "+FLAGS.SILENT", "(\\Answered)")
        responses = yield self.in_thread(
            wait_for_response, client,
            lambda r: r[:2] == (1, b"FETCH") and b"\\Answered" in repr(r).encode())
        self.assertTrue([r for r in responses if r[:2] == (1, b"FETCH")
                         and b"\\Answered" in repr(r).encode()])
        self.assertEqual(reads, [])

    @defer.inlineCallbacks
    def test_a_move_reaches_idle_sessions_of_both_mailboxes(self) -> Any:
        for n in range(2):
            yield self.deliver(message(f"m{n}"))
        yield self.listen()
        client = yield self.idling()
        other = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, other.shutdown)
        yield self.in_thread(other.create, "Archive")
        yield self.in_thread(other.select, "INBOX")
        yield self.in_thread(other.uid, "MOVE", "1", "Archive")
        responses = yield self.in_thread(wait_for_response, client,
                                         lambda r: r == (1, b"EXPUNGE"))
        self.assertIn((1, b"EXPUNGE"), responses)


    @defer.inlineCallbacks
    def test_a_gap_in_the_uids_makes_the_idle_session_read(self) -> Any:
        yield self.deliver(message("first"))
        yield self.listen()
        client = yield self.idling()
        reads = count_view_reads(self)
        yield self.deliver(message("unannounced"), publish=False)  # as another node would
        yield self.deliver(message("announced"))  # UID 3 while the view expects 2
        responses = yield self.in_thread(wait_for_response, client,
                                         lambda r: r == (3, b"EXISTS"))
        self.assertIn((3, b"EXISTS"), responses)
        self.assertEqual(reads, ["sync_state"])
        yield self.in_thread(client.idle_done)
        uids = yield self.in_thread(client.search, "ALL")
        self.assertEqual(uids, [1, 2, 3])

    @defer.inlineCallbacks
    def test_a_resync_makes_idle_sessions_read(self) -> Any:
        yield self.listen()
        client = yield self.idling()
        yield self.deliver(message("unannounced"), publish=False)
        self.events.resync()  # what the cross-node relay does after a lost connection
        responses = yield self.in_thread(wait_for_response, client,
                                         lambda r: r == (1, b"EXISTS"))
        self.assertIn((1, b"EXISTS"), responses)


class FeedToIdleSQLiteTests(SQLiteDatabaseMixin, FeedToIdleMixin, unittest.TestCase):
    pass


class FeedToIdlePostgresTests(PostgresDatabaseMixin, FeedToIdleMixin, unittest.TestCase):
    pass


class SMTPDeliveryToIdleTests(unittest.TestCase):
    """A message received by the real SMTP listener reaches IDLE with its row: the idling
    session shows EXISTS without reading it back."""

    @defer.inlineCallbacks
    def test_idle_gets_exists_without_reading_the_new_row(self) -> Any:
        server = MailServer(os.path.abspath(self.mktemp()))
        yield server.start()
        self.addCleanup(server.stop)
        server.add_domain("example.com")
        server.add_user(ALICE)
        factory = server.imap_factory()
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        client = yield deferToThread(idle_client, port.getHost().port, ALICE, SERVER_PASSWORD)
        self.addCleanup(deferToThread, client.shutdown)
        yield idle_settled(factory)
        reads = count_view_reads(self)

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", server.ports["SMTP"], timeout=20) as smtp:
                smtp.sendmail("someone@example.org", [ALICE], message("over smtp"))

        yield deferToThread(send)
        responses = yield deferToThread(wait_for_response, client,
                                        lambda r: r == (1, b"EXISTS"))
        self.assertIn((1, b"EXISTS"), responses)
        self.assertEqual(reads, [])
        yield deferToThread(client.idle_done)
        data = yield deferToThread(client.fetch, [1], ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
                                                       "INTERNALDATE", "RFC822.SIZE"])
        self.assertIn(b"over smtp", data[1][b"BODY[HEADER.FIELDS (SUBJECT)]"])


def deferToThread(fn: Any, *args: Any) -> Any:
    from twisted.internet.threads import deferToThread as to_thread

    return to_thread(fn, *args)
