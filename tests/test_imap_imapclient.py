"""Every command and extension the server advertises, through IMAPClient (which uses UIDs,
LITERAL+ and its own response parser)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from imapclient.imapclient import JUNK, SENT
from imapclient.exceptions import IMAPClientError, LoginError
from twisted.internet import defer
from twisted.trial import unittest

from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import ALICE, MULTIPART, PASSWORD, IMAPFixture, message


class IMAPClientTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def connect(self, login: bool = True) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.imapclient_client, login=login)
        self.addCleanup(self.in_thread, client.shutdown)
        return client

    @defer.inlineCallbacks
    def test_plain_login_and_capabilities(self) -> Any:
        client = yield self.connect(login=False)
        caps = yield self.in_thread(client.capabilities)
        self.assertIn(b"AUTH=PLAIN", caps)
        yield self.assertFailure(self.in_thread(client.plain_login, ALICE, "nope"), LoginError)
        result = yield self.in_thread(client.plain_login, ALICE, PASSWORD)
        self.assertIn(b"Logged in", result)
        caps = yield self.in_thread(client.capabilities)
        self.assertIn(b"MOVE", caps)
        self.assertNotIn(b"AUTH=PLAIN", caps)

    @defer.inlineCallbacks
    def test_folders(self) -> Any:
        client = yield self.connect()
        yield self.in_thread(client.create_folder, "Projekte/Entwürfe")
        folders = yield self.in_thread(client.list_folders)
        names = {name: flags for flags, _, name in folders}
        self.assertEqual(names["Projekte"], (b"\\HasChildren",))
        self.assertEqual(names["Projekte/Entwürfe"], (b"\\HasNoChildren",))
        self.assertEqual((yield self.in_thread(client.find_special_folder, SENT)), "Sent")
        self.assertEqual((yield self.in_thread(client.find_special_folder, JUNK)), "Spam")
        yield self.in_thread(client.rename_folder, "Projekte/Entwürfe", "Projekte/Drafts2")
        self.assertTrue((yield self.in_thread(client.folder_exists, "Projekte/Drafts2")))
        yield self.in_thread(client.unsubscribe_folder, "Projekte/Drafts2")
        subscribed = yield self.in_thread(client.list_sub_folders)
        self.assertNotIn("Projekte/Drafts2", [name for _, _, name in subscribed])
        yield self.in_thread(client.subscribe_folder, "Projekte/Drafts2")
        yield self.in_thread(client.delete_folder, "Projekte/Drafts2")
        self.assertFalse((yield self.in_thread(client.folder_exists, "Projekte/Drafts2")))
        error = yield self.assertFailure(self.in_thread(client.create_folder, "a/../b"),
                                         IMAPClientError)
        self.assertIn("CANNOT", str(error))

    @defer.inlineCallbacks
    def test_select_fetch_envelope_and_bodystructure(self) -> Any:
        yield self.deliver(MULTIPART)
        client = yield self.connect()
        info = yield self.in_thread(client.select_folder, "INBOX")
        self.assertEqual((info[b"EXISTS"], info[b"UIDNEXT"]), (1, 2))
        data = yield self.in_thread(client.fetch, [1], ["ENVELOPE", "BODYSTRUCTURE", "FLAGS",
                                                        "INTERNALDATE", "RFC822.SIZE"])
        envelope = data[1][b"ENVELOPE"]
        self.assertEqual(envelope.subject, b"=?utf-8?q?caf=C3=A9?= report")
        self.assertEqual(envelope.from_[0].mailbox, b"jane")
        self.assertEqual(envelope.from_[0].name, b"Doe, Jane")
        self.assertEqual(envelope.message_id, b"<multi@example.org>")
        self.assertEqual(data[1][b"BODYSTRUCTURE"][-5:-3], (b"mixed", (b"boundary", b"XX")))
        self.assertEqual(data[1][b"RFC822.SIZE"], len(MULTIPART))
        self.assertIsInstance(data[1][b"INTERNALDATE"], datetime)
        body = yield self.in_thread(client.fetch, [1], ["BODY.PEEK[]", "BODY.PEEK[2]"])
        self.assertEqual(body[1][b"BODY[]"], MULTIPART)
        self.assertEqual(body[1][b"BODY[2]"], b"JVBERi0xLjQK")

    @defer.inlineCallbacks
    def test_flags(self) -> Any:
        yield self.deliver(message("one"))
        client = yield self.connect()
        yield self.in_thread(client.select_folder, "INBOX")
        yield self.in_thread(client.add_flags, [1], [b"\\Flagged", b"todo"])
        yield self.in_thread(client.remove_flags, [1], [b"todo"])
        flags = yield self.in_thread(client.get_flags, [1])
        self.assertEqual(flags, {1: (b"\\Flagged", b"\\Recent")})  # first SELECT: \Recent
        yield self.in_thread(client.set_flags, [1], [b"\\Seen"])
        self.assertEqual(self.rows("INBOX")[0].flags, ("\\Seen",))

    @defer.inlineCallbacks
    def test_readonly_select(self) -> Any:
        yield self.deliver(message("one"))
        client = yield self.connect()
        info = yield self.in_thread(client.select_folder, "INBOX", readonly=True)
        self.assertTrue(info[b"READ-ONLY"])
        yield self.assertFailure(self.in_thread(client.add_flags, [1], [b"\\Seen"]),
                                 IMAPClientError)

    @defer.inlineCallbacks
    def test_append_copy_move_and_expunge(self) -> Any:
        client = yield self.connect()
        result = yield self.in_thread(client.append, "INBOX", message("appended"),
                                      flags=[b"\\Seen"], msg_time=datetime(2026, 1, 2, 3, 4, 5))
        uidvalidity = self.mailbox("INBOX").uidvalidity
        self.assertEqual(result, b"[APPENDUID %d 1] APPEND completed" % uidvalidity)
        yield self.in_thread(client.append, "INBOX", message("second"))
        yield self.in_thread(client.select_folder, "INBOX")
        yield self.in_thread(client.copy, [1, 2], "Archive")
        self.assertEqual([r.flags for r in self.rows("Archive")], [("\\Seen",), ()])
        yield self.in_thread(client.move, [2], "Trash")
        self.assertEqual([r.uid for r in self.rows("INBOX")], [1])
        self.assertEqual(len(self.rows("Trash")), 1)
        yield self.in_thread(client.add_flags, [1], [b"\\Deleted"])
        yield self.in_thread(client.uid_expunge, [1])
        self.assertEqual(self.rows("INBOX"), [])
        yield self.in_thread(client.select_folder, "Archive")
        yield self.in_thread(client.delete_messages, [1, 2])
        yield self.in_thread(client.expunge)
        self.assertEqual(self.rows("Archive"), [])

    @defer.inlineCallbacks
    def test_status_namespace_id_enable_quota_noop(self) -> Any:
        yield self.deliver(message("one"))
        client = yield self.connect()
        status = yield self.in_thread(client.folder_status, "INBOX",
                                      ["MESSAGES", "UNSEEN", "UIDNEXT"])
        self.assertEqual(status, {b"MESSAGES": 1, b"UNSEEN": 1, b"UIDNEXT": 2})
        namespace = yield self.in_thread(client.namespace)
        self.assertEqual(namespace.personal, (("", "/"),))
        server_id = yield self.in_thread(client.id_, {"name": "IMAPClient"})
        self.assertEqual(server_id, ((b"name", b"mailgosend"),))
        enabled = yield self.in_thread(client.enable, "CONDSTORE", "X-UNKNOWN")
        self.assertEqual(enabled, [b"CONDSTORE"])
        roots, quotas = yield self.in_thread(client.get_quota_root, "INBOX")
        self.assertEqual((roots.quota_roots, quotas), ([], []))
        yield self.in_thread(client.select_folder, "INBOX")
        self.assertEqual((yield self.in_thread(client.noop))[0], b"NOOP completed")
        yield self.in_thread(client.unselect_folder)
        yield self.in_thread(client.select_folder, "INBOX")
        yield self.in_thread(client.close_folder)

    @defer.inlineCallbacks
    def test_idle_sees_a_new_message_promptly(self) -> Any:
        client = yield self.connect()
        yield self.in_thread(client.select_folder, "INBOX")
        yield self.in_thread(client.idle)
        yield self.deliver(message("while idling"))
        responses = yield self.in_thread(client.idle_check, 10)
        self.assertIn((1, b"EXISTS"), responses)
        yield self.in_thread(client.idle_done)
        data = yield self.in_thread(client.fetch, [1], ["ENVELOPE"])
        self.assertEqual(data[1][b"ENVELOPE"].subject, b"while idling")


class IMAPClientQuotaTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    quota = 2048

    @defer.inlineCallbacks
    def test_quota_is_reported_and_enforced(self) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.imapclient_client)
        self.addCleanup(self.in_thread, client.shutdown)
        yield self.in_thread(client.append, "INBOX", message("fits", body="x" * 1000))
        roots, quotas = yield self.in_thread(client.get_quota_root, "INBOX")
        self.assertEqual(roots.quota_roots, [""])
        self.assertEqual([(q.resource, q.usage, q.limit) for q in quotas],
                         [("STORAGE", 2, 2)])
        error = yield self.assertFailure(
            self.in_thread(client.append, "INBOX", message("too much", body="y" * 1000)),
            IMAPClientError)
        self.assertIn("OVERQUOTA", str(error))
        yield self.in_thread(client.select_folder, "INBOX")
        error = yield self.assertFailure(self.in_thread(client.copy, [1], "Archive"),
                                         IMAPClientError)
        self.assertIn("OVERQUOTA", str(error))
        self.assertEqual(self.rows("Archive"), [])
        yield self.in_thread(client.move, [1], "Archive")  # a move frees before it takes
        self.assertEqual(len(self.rows("Archive")), 1)
