"""Sessions that share a mailbox: untagged updates at NOOP and IDLE (RFC 3501 §7.4.1,
RFC 2177), \\Recent, UIDVALIDITY, and IDLE after a delivery through the real SMTP listener."""

from __future__ import annotations

import os
import smtplib
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial import unittest

from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import ALICE, PASSWORD, IMAPFixture, RawClient, deferLater, message
from tests.support.mailserver import PASSWORD as SERVER_PASSWORD
from tests.support.mailserver import MailServer


class SharedMailboxTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def two_sessions(self) -> Any:
        yield self.listen()
        a = yield self.in_thread(self.imaplib_client)
        b = yield self.in_thread(self.imaplib_client)
        for client in (a, b):
            self.addCleanup(self.in_thread, client.shutdown)
            yield self.in_thread(client.select, "INBOX")
        return a, b

    @defer.inlineCallbacks
    def test_noop_shows_flags_new_mail_and_expunges_from_another_session(self) -> Any:
        for n in range(3):
            yield self.deliver(message(f"m{n}"))
        a, b = yield self.two_sessions()
        yield self.in_thread(a.store, "2", "+FLAGS", "(\\Flagged)")
        yield self.in_thread(a.append, "INBOX", None, None, message("new"))
        yield self.in_thread(a.store, "1", "+FLAGS", "(\\Deleted)")
        yield self.in_thread(a.expunge)
        yield self.in_thread(b.noop)
        # after the EXPUNGE of message 1, UID 2 is message 1
        self.assertEqual(b.untagged_responses.pop("FETCH"), [b"1 (FLAGS (\\Flagged) UID 2)"])
        self.assertEqual(b.untagged_responses.pop("EXPUNGE"), [b"1"])
        self.assertEqual(b.untagged_responses.pop("EXISTS")[-1], b"3")  # 4 known, 1 gone
        typ, data = yield self.in_thread(b.fetch, "3", "(UID)")
        self.assertEqual(data, [b"3 (UID 4)"])

    @defer.inlineCallbacks
    def test_renaming_inbox_elsewhere_empties_it_at_the_next_noop(self) -> Any:
        for n in range(2):
            yield self.deliver(message(f"m{n}"))
        a, b = yield self.two_sessions()
        yield self.in_thread(b.rename, "INBOX", "OldInbox")  # RFC 3501 §6.3.5: moves the mail
        self.assertEqual(len(self.rows("OldInbox")), 2)
        yield self.in_thread(a.noop)  # the moved rows kept their MODSEQ: only a count shows it
        self.assertEqual(a.untagged_responses.pop("EXPUNGE"), [b"1", b"1"])
        typ, data = yield self.in_thread(a.search, None, "ALL")
        self.assertEqual(data, [b""])

    @defer.inlineCallbacks
    def test_expunges_wait_for_a_command_that_allows_them(self) -> Any:
        for n in range(2):
            yield self.deliver(message(f"m{n}"))
        a, b = yield self.two_sessions()
        yield self.in_thread(a.store, "1", "+FLAGS", "(\\Deleted)")
        yield self.in_thread(a.expunge)
        typ, data = yield self.in_thread(b.fetch, "1:2", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual(typ, "OK")
        self.assertNotIn("EXPUNGE", b.untagged_responses)  # §7.4.1: never during FETCH
        self.assertIn(b"Subject: m0", data[0][1])  # still readable until announced
        typ, data = yield self.in_thread(b.search, None, "ALL")
        self.assertEqual(data, [b"1 2"])
        self.assertNotIn("EXPUNGE", b.untagged_responses)
        yield self.in_thread(b.noop)
        self.assertEqual(b.untagged_responses.pop("EXPUNGE"), [b"1"])
        typ, data = yield self.in_thread(b.search, None, "ALL")
        self.assertEqual(data, [b"1"])

    @defer.inlineCallbacks
    def test_idle_receives_changes_from_another_session(self) -> Any:
        yield self.deliver(message("one"))
        yield self.listen()
        idler = yield self.in_thread(self.imapclient_client)
        other = yield self.in_thread(self.imaplib_client)
        for client in (idler, other):
            self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(idler.select_folder, "INBOX")
        yield self.in_thread(other.select, "INBOX")
        yield self.in_thread(idler.idle)
        yield self.in_thread(other.store, "1", "+FLAGS", "(\\Answered)")
        responses = yield self.in_thread(idler.idle_check, 10)
        self.assertIn((1, b"FETCH", (b"FLAGS", (b"\\Answered", b"\\Recent"), b"UID", 1)),
                      responses)  # the idler selected first: "one" is \Recent there
        yield self.in_thread(other.store, "1", "+FLAGS", "(\\Deleted)")
        yield self.in_thread(other.expunge)
        seen: list[Any] = []
        while (1, b"EXPUNGE") not in seen:
            seen += (yield self.in_thread(idler.idle_check, 10))
        yield self.in_thread(idler.idle_done)

    @defer.inlineCallbacks
    def test_idle_with_imaplib_ends_only_on_done(self) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.select, "INBOX")
        tag = client._new_tag()
        yield self.in_thread(client.send, tag + b" IDLE\r\n")
        self.assertEqual((yield self.in_thread(client.readline)), b"+ idling\r\n")
        yield self.deliver(message("pushed"))
        self.assertEqual((yield self.in_thread(client.readline)), b"* 1 EXISTS\r\n")
        self.assertEqual((yield self.in_thread(client.readline)), b"* 1 RECENT\r\n")
        yield self.in_thread(client.send, b"a2 NOOP\r\n")
        self.assertEqual((yield self.in_thread(client.readline)),
                         b"* BAD Expected DONE to end IDLE\r\n")
        yield self.in_thread(client.send, b"DONE\r\n")
        self.assertEqual((yield self.in_thread(client.readline)), tag + b" OK IDLE terminated\r\n")

    @defer.inlineCallbacks
    def test_recent_belongs_to_the_first_session_that_sees_a_message(self) -> Any:
        yield self.deliver(message("before"))
        a, b = yield self.two_sessions()
        self.assertEqual(a.untagged_responses.pop("RECENT"), [b"1"])  # arrived before: a's
        self.assertEqual(b.untagged_responses.pop("RECENT"), [b"0"])
        yield self.deliver(message("new one"))
        yield self.in_thread(a.noop)
        self.assertEqual(a.untagged_responses.pop("RECENT"), [b"2"])
        typ, data = yield self.in_thread(a.fetch, "2", "(FLAGS)")
        self.assertEqual(data, [b"2 (FLAGS (\\Recent))"])
        typ, data = yield self.in_thread(a.search, None, "NEW")
        self.assertEqual(data, [b"1 2"])
        yield self.in_thread(b.noop)
        typ, data = yield self.in_thread(b.fetch, "2", "(FLAGS)")
        self.assertEqual(data, [b"2 (FLAGS ())"])
        typ, data = yield self.in_thread(b.status, "INBOX", "(RECENT)")
        self.assertEqual(data, [b'"INBOX" (RECENT 0)'])

    @defer.inlineCallbacks
    def test_deleting_a_mailbox_selected_elsewhere_ends_that_session(self) -> Any:
        yield self.listen()
        a = yield self.in_thread(self.imaplib_client)
        b = yield self.in_thread(self.imaplib_client)
        for client in (a, b):
            self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(a.create, "Doomed")
        yield self.in_thread(b.select, "Doomed")
        yield self.in_thread(a.delete, "Doomed")
        yield self.assertFailure(self.in_thread(b.noop), Exception)
        self.assertIn(b"Selected mailbox was deleted", b.untagged_responses.get("BYE", [b""])[0])

    @defer.inlineCallbacks
    def test_uidvalidity_is_stable_and_uids_only_grow(self) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.create, "Box")
        first = self.mailbox("Box").uidvalidity
        for n in range(2):
            yield self.in_thread(client.append, "Box", None, None, message(f"m{n}"))
        yield self.in_thread(client.select, "Box")
        yield self.in_thread(client.store, "1:*", "+FLAGS", "(\\Deleted)")
        yield self.in_thread(client.expunge)
        typ, data = yield self.in_thread(client.append, "Box", None, None, message("after"))
        self.assertIn(b"[APPENDUID %d 3]" % first, data[0])
        yield self.in_thread(client.close)
        yield self.in_thread(client.select, "Box")
        self.assertEqual(client.untagged_responses["UIDVALIDITY"][-1], b"%d" % first)
        yield self.in_thread(client.close)
        yield self.in_thread(client.delete, "Box")
        yield self.in_thread(client.create, "Box")
        self.assertGreater(self.mailbox("Box").uidvalidity, first)

    @defer.inlineCallbacks
    def test_idle_connections_are_logged_out_by_the_injected_clock(self) -> Any:
        clock = task.Clock()
        yield self.listen(clock=clock)
        fresh = yield self.in_thread(RawClient, self.port)
        authed = yield self.in_thread(RawClient, self.port)
        for raw in (fresh, authed):
            self.addCleanup(raw.close)
        yield self.in_thread(authed.command, b"a", b"LOGIN %s %s" % (ALICE.encode(),
                                                                    PASSWORD.encode()))
        clock.advance(61)  # unauthenticated: one minute
        self.assertEqual((yield self.in_thread(fresh.line)),
                         b"* BYE Autologout; idle for too long\r\n")
        lines = yield self.in_thread(authed.command, b"b", b"NOOP")
        self.assertEqual(lines, [b"b OK NOOP completed\r\n"])
        clock.advance(30 * 60 + 1)  # RFC 3501 §5.4: at least 30 minutes once logged in
        self.assertEqual((yield self.in_thread(authed.line)),
                         b"* BYE Autologout; idle for too long\r\n")

    @defer.inlineCallbacks
    def test_shutdown_says_bye_to_idle_sessions(self) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        (session,) = self.factory.open_connections()
        session.server_shutting_down()
        line = yield self.in_thread(client.readline)
        self.assertEqual(line, b"* BYE Server shutting down\r\n")
        while self.factory.open_connections():
            yield deferLater(0.01)


class DeliveryToIdleTests(unittest.TestCase):
    """A message sent with smtplib to the real SMTP listener wakes an IDLE client."""

    @defer.inlineCallbacks
    def test_idle_gets_exists_after_an_smtp_delivery(self) -> Any:
        server = MailServer(os.path.abspath(self.mktemp()))
        yield server.start()
        self.addCleanup(server.stop)
        server.add_domain("example.com")
        server.add_user(ALICE)
        factory = server.imap_factory()
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)

        def idle() -> Any:
            from imapclient import IMAPClient

            client = IMAPClient("127.0.0.1", port=port.getHost().port, ssl=False, timeout=20)
            client.login(ALICE, SERVER_PASSWORD)
            client.select_folder("INBOX")
            client.idle()
            return client

        client = yield deferToThreadAndCleanup(self, idle)

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", server.ports["SMTP"], timeout=20) as smtp:
                smtp.sendmail("someone@example.org", [ALICE], message("over smtp"))

        yield deferToThread(send)
        responses = yield deferToThread(client.idle_check, 15)
        self.assertIn((1, b"EXISTS"), responses)
        yield deferToThread(client.idle_done)
        data = yield deferToThread(client.fetch, [1], ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        self.assertIn(b"over smtp", data[1][b"BODY[HEADER.FIELDS (SUBJECT)]"])


def deferToThread(fn: Any, *args: Any) -> Any:
    from twisted.internet.threads import deferToThread as to_thread

    return to_thread(fn, *args)


def deferToThreadAndCleanup(case: unittest.TestCase, fn: Any) -> Any:
    d = deferToThread(fn)

    def remember(client: Any) -> Any:
        case.addCleanup(deferToThread, client.shutdown)
        return client

    return d.addCallback(remember)


class SyncWithoutQueryTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    """Changes by another session of the listener reach a view through the change feed,
    without a database query; changes made outside the feed are read from the database
    (selected.SelectedMailbox.sync)."""

    @defer.inlineCallbacks
    def two_sessions(self) -> Any:
        yield self.listen(clock=task.Clock())  # time stands still: only the rules decide
        a = yield self.in_thread(self.imaplib_client)
        b = yield self.in_thread(self.imaplib_client)
        for client in (a, b):
            self.addCleanup(self.in_thread, client.shutdown)
            yield self.in_thread(client.select, "INBOX")
        return a, b

    def sync_queries(self) -> list[str]:
        from sqlalchemy import event
        seen: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            if "messages.modseq >" in statement:
                seen.append(statement)

        event.listen(self.engine, "before_cursor_execute", record)
        self.addCleanup(event.remove, self.engine, "before_cursor_execute", record)
        return seen

    @defer.inlineCallbacks
    def test_flag_changes_of_another_session_arrive_at_the_next_command(self) -> Any:
        for n in range(3):
            yield self.deliver(message(f"m{n}"))
        a, b = yield self.two_sessions()
        yield self.in_thread(a.store, "2", "+FLAGS", "($Later \\Flagged)")
        queries = self.sync_queries()
        typ, data = yield self.in_thread(b.fetch, "1", "(UID)")
        self.assertEqual(data, [b"1 (UID 1)", b"2 (FLAGS (\\Flagged $Later) UID 2)"])
        self.assertIn(b"$Later", b.untagged_responses.pop("FLAGS")[-1])
        self.assertEqual(queries, [])

    @defer.inlineCallbacks
    def test_new_mail_and_expunges_reach_the_other_session_at_its_next_command(self) -> Any:
        for n in range(3):
            yield self.deliver(message(f"m{n}"))
        a, b = yield self.two_sessions()
        yield self.in_thread(a.store, "1", "+FLAGS", "(\\Deleted)")
        yield self.in_thread(a.expunge)
        yield self.in_thread(a.append, "INBOX", None, None, message("new"))
        yield self.in_thread(b.create, "Other")  # not NOOP: no full check asked for
        self.assertEqual(b.untagged_responses.pop("EXPUNGE"), [b"1"])
        self.assertEqual(b.untagged_responses.pop("EXISTS")[-1], b"3")
        typ, data = yield self.in_thread(b.uid, "SEARCH", "ALL")
        self.assertEqual(data, [b"2 3 4"])

    @defer.inlineCallbacks
    def test_changes_made_elsewhere_show_within_the_sync_interval(self) -> Any:
        from mailgosend.imap import selected
        from mailgosend.store import messages as ms
        for n in range(2):
            yield self.deliver(message(f"m{n}"))
        a, b = yield self.two_sessions()
        box = self.mailbox("INBOX")
        # As another node would: straight into the store, no feed.
        yield self.runner.write(ms.set_flags, box.id, [2], ["\\Answered"], "add")
        typ, data = yield self.in_thread(a.fetch, "1", "(UID)")
        self.assertEqual(data, [b"1 (UID 1)"])  # not looked for yet
        self.patch(selected, "SYNC_INTERVAL", 0.0)
        typ, data = yield self.in_thread(a.fetch, "1", "(UID)")
        self.assertEqual(data, [b"1 (UID 1)", b"2 (FLAGS (\\Answered \\Recent) UID 2)"])
        yield self.in_thread(b.noop)  # NOOP always reads the database
        self.assertEqual(b.untagged_responses.pop("FETCH")[-1],
                         b"2 (FLAGS (\\Answered) UID 2)")
